"""Shared graph layers and augmentations for the model zoo.

Everything works on the padded, receiver-sorted bipartite `GraphsTuple` of
`jaxrec.graphs.bipartite_graph`/`pad_graph` with static shapes:

* edge masks, degrees and symmetric renormalisation of a subgraph given by a
  0/1 edge mask (SGL dropout views keep every edge and zero its weight);
* symmetric edge / node dropout masks (an interaction's two directed edges
  are kept or dropped together);
* GCN (self-loop normalised), GraphSAGE (mean) and GAT (jraph
  `segment_softmax`) layers as Flax modules, each returning zero rows on
  padding nodes;
* SimGCL's sign-aligned uniform noise and the batch contrastive loss of
  SGL / SimGCL / XSimGCL.

Padding edges join the first padding node to itself, so padding nodes never
send to real nodes; layers also zero padding rows with the node mask, so
biases cannot leak into them.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxrec import losses
from jaxrec.graphs import num_nodes
from jaxrec.graphs import pad_rows
from jaxrec.graphs import propagate
from jaxrec.graphs import split_nodes

# ----------------------------------------------------------------------------
# Masks, degrees, normalisation.


def ego_nodes(graph: jraph.GraphsTuple, users: jnp.ndarray,
              items: jnp.ndarray) -> jnp.ndarray:
  """[users; items] with zero rows appended for padding nodes. # [N, d]"""
  return pad_rows(graph, jnp.concatenate([users, items]))


def real_edges(graph: jraph.GraphsTuple) -> jnp.ndarray:
  """1.0 on edges between real nodes, 0.0 on padding edges. # [E]"""
  mask = graph.nodes["mask"]
  return (mask[graph.senders] * mask[graph.receivers]).astype(jnp.float32)


def in_degree(graph: jraph.GraphsTuple, edge_mask: jnp.ndarray) -> jnp.ndarray:
  """Number of kept incoming edges per node. # [N]"""
  return jax.ops.segment_sum(edge_mask, graph.receivers,
                             num_segments=num_nodes(graph))


def _inv_sqrt(deg: jnp.ndarray) -> jnp.ndarray:
  return jnp.where(deg > 0, jax.lax.rsqrt(jnp.maximum(deg, 1e-12)), 0.0)


def sym_renormalise(graph: jraph.GraphsTuple,
                    keep: jnp.ndarray) -> jnp.ndarray:
  """D_k^-1/2 A_k D_k^-1/2 weights of the subgraph of kept edges.

  Degrees are recomputed from the kept edges with a segment_sum, so the
  result equals `degree_normalise(..., 'sym')` of the graph with the dropped
  edges removed, while every array keeps its static shape.

  Args:
    graph: the (padded) bipartite graph.
    keep: 0/1 edge mask (padding edges must be 0). # [E]

  Returns:
    Edge weights, 0 on dropped edges. # [E]
  """
  inv = _inv_sqrt(in_degree(graph, keep))  # [N]
  return keep * inv[graph.senders] * inv[graph.receivers]


def _hash32(x: jnp.ndarray) -> jnp.ndarray:
  """'lowbias32' integer hash (C. Wellons) on uint32. # same shape"""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def pair_uniform(rng: jax.Array, a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """Uniform [0, 1) numbers that are a function of (rng, a, b). # [E]

  Used to give the two directions of an undirected edge the same draw
  without knowing where the reverse edge is stored.
  """
  seed = jax.random.bits(rng, (2,), jnp.uint32)
  h = _hash32(a.astype(jnp.uint32) ^ seed[0])
  h = _hash32(h ^ (b.astype(jnp.uint32) * jnp.uint32(0x9E3779B9)) ^ seed[1])
  return (h >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def fast_uniform(rng: jax.Array, shape: tuple,
                 dtype=jnp.float32) -> jnp.ndarray:
  """Uniform [0, 1) array from a counter-based integer hash of `rng`.

  A cheap stand-in for `jax.random.uniform` (several times faster on CPU,
  where threefry dominates SimGCL's noise and NGCF's dropout): element k is
  hash(hash(k ^ s0) ^ s1) with (s0, s1) drawn from `rng`, so it is a pure
  function of (rng, shape). 24 random bits per number.
  """
  seed = jax.random.bits(rng, (2,), jnp.uint32)
  size = 1
  for n in shape:
    size *= n
  counter = jax.lax.iota(jnp.uint32, size)
  h = _hash32(_hash32(counter ^ seed[0]) ^ seed[1])
  return ((h >> 8).astype(jnp.float32) * (1.0 / (1 << 24))).reshape(
      shape).astype(dtype)


def fast_dropout(rng: jax.Array, x: jnp.ndarray, rate: float) -> jnp.ndarray:
  """Inverted dropout of x with `fast_uniform` draws. # same shape"""
  if rate <= 0.0:
    return x
  keep = fast_uniform(rng, x.shape) >= rate
  return jnp.where(keep, x / (1.0 - rate), 0.0)


def edge_dropout_keep(rng: jax.Array, graph: jraph.GraphsTuple,
                      rate: float) -> jnp.ndarray:
  """Symmetric edge-dropout mask: each interaction kept w.p. 1 - rate. # [E]"""
  lo = jnp.minimum(graph.senders, graph.receivers)
  hi = jnp.maximum(graph.senders, graph.receivers)
  keep = (pair_uniform(rng, lo, hi) >= rate).astype(jnp.float32)
  return keep * real_edges(graph)


def node_dropout_keep(rng: jax.Array, graph: jraph.GraphsTuple,
                      rate: float) -> jnp.ndarray:
  """Edges of nodes kept w.p. 1 - rate (all edges of a dropped node go). # [E]"""
  kept_nodes = jax.random.bernoulli(rng, 1.0 - rate, (num_nodes(graph),))
  kept_nodes = kept_nodes.astype(jnp.float32)
  return kept_nodes[graph.senders] * kept_nodes[graph.receivers] * real_edges(
      graph)


def gcn_normalisation(graph: jraph.GraphsTuple):
  """Kipf-Welling weights of A + I: (edge [E], self-loop [N]) weights.

  A_tilde = D~^-1/2 (A + I) D~^-1/2 with D~ = deg + 1 on real nodes; padding
  nodes get no self loop (weight 0).
  """
  real = real_edges(graph)
  deg = in_degree(graph, real) + graph.nodes["mask"]  # [N]
  inv = _inv_sqrt(deg)
  edge_w = real * inv[graph.senders] * inv[graph.receivers]  # [E]
  self_w = graph.nodes["mask"] * inv * inv  # [N]
  return edge_w, self_w


def mean_weights(graph: jraph.GraphsTuple) -> jnp.ndarray:
  """Weights 1/deg(receiver) of a neighbour mean (GraphSAGE). # [E]"""
  real = real_edges(graph)
  deg = in_degree(graph, real)
  return real / jnp.maximum(deg, 1.0)[graph.receivers]


def general_method(method: Optional[str]) -> Optional[str]:
  """Kernel for non-symmetric weights: 'symmetric' is swapped for a safe one."""
  return {"symmetric": "segment_sum_sorted",
          "bcsr_symmetric": "bcsr",
          "tiled_symmetric": "bcsr"}.get(method, method)


# ----------------------------------------------------------------------------
# Layers.


class GCNLayer(nn.Module):
  """Graph convolution (Kipf & Welling, 2017): act(A_tilde x W + b).

  Attributes:
    features: output size.
    activation: 'relu', 'leaky_relu', 'tanh' or 'none'.
    method: propagation kernel.
  """
  features: int
  activation: str = "relu"
  method: Optional[str] = None

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, x: jnp.ndarray,
               norm=None) -> jnp.ndarray:
    edge_w, self_w = gcn_normalisation(graph) if norm is None else norm
    h = nn.Dense(self.features, use_bias=False, name="kernel")(x)  # [N, f]
    out = propagate(graph, h, edge_w, self.method) + self_w[:, None] * h
    out = out + self.param("bias", nn.initializers.zeros, (self.features,))
    return activate(out, self.activation) * graph.nodes["mask"][:, None]


class SAGELayer(nn.Module):
  """GraphSAGE mean aggregator (Hamilton et al., 2017), concat variant.

  out = act(W_self x_v + W_neigh mean_{u in N(v)} x_u + b), then optionally
  L2-normalised (the paper's step 7).

  Attributes:
    features: output size.
    activation: as in `GCNLayer`.
    normalise: L2-normalise output rows.
  """
  features: int
  activation: str = "relu"
  normalise: bool = False
  method: Optional[str] = None

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, x: jnp.ndarray,
               weights=None) -> jnp.ndarray:
    weights = mean_weights(graph) if weights is None else weights
    neigh = propagate(graph, x, weights, general_method(self.method))  # [N, d]
    out = (nn.Dense(self.features, name="self")(x) +
           nn.Dense(self.features, use_bias=False, name="neigh")(neigh))
    out = activate(out, self.activation)
    if self.normalise:
      out = out / jnp.maximum(jnp.linalg.norm(out, axis=-1, keepdims=True),
                              1e-12)
    return out * graph.nodes["mask"][:, None]


def with_self_loops(graph: jraph.GraphsTuple):
  """(senders, receivers) of the real edges plus one self loop per node."""
  n = num_nodes(graph)
  loops = jnp.arange(n, dtype=graph.senders.dtype)
  return (jnp.concatenate([graph.senders, loops]),
          jnp.concatenate([graph.receivers, loops]))


class GATLayer(nn.Module):
  """Graph attention (Velickovic et al., 2018) with self loops.

  e_ij = LeakyReLU(a_dst . W h_i + a_src . W h_j) for j -> i, alpha_ij =
  softmax over i's in-edges (`jraph.segment_softmax`, logits [E, H]),
  h'_i = act(sum_j alpha_ij W h_j) with heads concatenated (or averaged).

  Attributes:
    features: output size (heads x head size when concatenating).
    num_heads: H.
    concat_heads: concatenate heads (else average them).
    negative_slope: of the attention LeakyReLU.
    attention_dropout: dropout on alpha during training.
    activation: output activation.
    method: propagation kernel for the neighbour sum (a general one: the
      attention weights are not symmetric).
  """
  features: int
  num_heads: int = 1
  concat_heads: bool = True
  negative_slope: float = 0.2
  attention_dropout: float = 0.0
  activation: str = "elu"
  method: Optional[str] = None

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, x: jnp.ndarray,
               train: bool = False, return_attention: bool = False):
    n, heads = x.shape[0], self.num_heads
    if self.concat_heads and self.features % heads:
      raise ValueError(f"GATLayer: features={self.features} must be a "
                       f"multiple of num_heads={heads}")
    head_dim = self.features // heads if self.concat_heads else self.features
    h = nn.Dense(heads * head_dim, use_bias=False, name="kernel")(x)
    h = h.reshape(n, heads, head_dim)  # [N, H, F]
    init = nn.initializers.lecun_normal()
    a_src = self.param("att_src", init, (heads, head_dim))
    a_dst = self.param("att_dst", init, (heads, head_dim))
    senders, receivers = with_self_loops(graph)  # [E + N]
    src_score = jnp.sum(h * a_src, axis=-1)  # [N, H]
    dst_score = jnp.sum(h * a_dst, axis=-1)  # [N, H]
    logits = nn.leaky_relu(src_score[senders] + dst_score[receivers],
                           self.negative_slope)  # [E + N, H]
    alpha = jraph.segment_softmax(logits, receivers, num_segments=n)
    if self.attention_dropout > 0:
      alpha = nn.Dropout(self.attention_dropout)(alpha, deterministic=not train)
    out = attention_sum(graph, h, alpha, general_method(self.method))
    out = out.reshape(n, heads * head_dim) if self.concat_heads else jnp.mean(
        out, axis=1)
    out = out + self.param("bias", nn.initializers.zeros, (out.shape[-1],))
    out = activate(out, self.activation) * graph.nodes["mask"][:, None]
    if return_attention:
      return out, (senders, receivers, alpha)
    return out


def attention_sum(graph: jraph.GraphsTuple, h: jnp.ndarray,
                  alpha: jnp.ndarray, method: Optional[str]) -> jnp.ndarray:
  """sum_j alpha_ij h_j over in-edges plus the self loop, per head.

  The real edges go through `propagate` (a sparse matmul, ~3x faster than a
  gather + `segment_sum` over E + N edges on CPU) and the self loops, which
  `with_self_loops` appends after the E real edges in node order, are a
  per-node scaling.

  Args:
    graph: graph with E real edges (sorted by receiver for 'bcsr').
    h: transformed node features. # [N, H, F]
    alpha: attention weights of the real edges then the self loops. # [E + N, H]
    method: general propagation kernel.

  Returns:
    Attention-weighted sums. # [N, H, F]
  """
  num_edges = graph.senders.shape[0]
  heads = [propagate(graph, h[:, k], alpha[:num_edges, k], method)
           for k in range(h.shape[1])]  # H x [N, F]
  return jnp.stack(heads, axis=1) + alpha[num_edges:, :, None] * h


def activate(x: jnp.ndarray, name: str) -> jnp.ndarray:
  """Applies a named activation ('none' = identity)."""
  fns = {"relu": nn.relu, "leaky_relu": nn.leaky_relu, "tanh": jnp.tanh,
         "elu": nn.elu, "sigmoid": nn.sigmoid, "none": lambda v: v}
  if name not in fns:
    raise ValueError(f"activation must be one of {sorted(fns)}, got {name!r}")
  return fns[name](x)


def combine_layers(layers: list, how: str) -> jnp.ndarray:
  """Final node representation from per-layer outputs (layer 0 = ego)."""
  if how == "mean":
    return jnp.mean(jnp.stack(layers), axis=0)
  if how == "concat":
    return jnp.concatenate(layers, axis=-1)
  if how == "last":
    return layers[-1]
  if how == "sum":
    return jnp.sum(jnp.stack(layers), axis=0)
  raise ValueError(f"combine must be 'mean', 'sum', 'concat' or 'last', "
                   f"got {how!r}")


# ----------------------------------------------------------------------------
# Self-supervised pieces.


def uniform_noise(rng: jax.Array, x: jnp.ndarray, eps: float) -> jnp.ndarray:
  """SimGCL noise: sign(x) * eps * u / ||u||, u ~ U(0, 1)^d per row. # [N, d]

  Every row has norm eps (where x has no zero entry) and lies in the same
  hyperoctant as x, so the perturbation rotates x by a small angle.
  """
  u = fast_uniform(rng, x.shape, x.dtype)
  u = u / jnp.maximum(jnp.linalg.norm(u, axis=-1, keepdims=True), 1e-12)
  return jnp.sign(x) * u * eps


CONTRAST_NEGATIVES = ("batch", "all")


def batch_contrast(view1: jnp.ndarray, view2: jnp.ndarray, batch: dict,
                   num_users: int, num_items: int,
                   temperature: float, max_rows: int = 0,
                   negatives: str = "batch") -> jnp.ndarray:
  """InfoNCE(users) + InfoNCE(items) between two node views of a batch.

  Positives are the same node in the other view. With negatives='batch' the
  negatives are the batch's other distinct users (items) and repeated ids
  count once (`first_occurrence_mask`); with 'all' the denominator sums over
  ALL users (items) of the second view and every batch row is an anchor,
  as in the released SGL code (`calc_ssl_loss_v2`, its default); it costs
  B x (U + I) similarities instead of B^2.

  Args:
    view1, view2: node representations of the two views. # [N, d]
    batch: dict with 'users', 'pos_items', 'mask'. # [B]
    num_users, num_items: U, I.
    temperature: InfoNCE temperature.
    max_rows: 0 = contrast every batch row; else only the first `max_rows`
      rows of the batch. Batches are shuffled (`sampler.epoch_triples`), so
      these are a uniform random subset; it bounds the [B, B] similarity
      cost for the large batches of full-graph training (B = 16,384 costs
      ~17 GFLOP per InfoNCE, B = 4,096 1/16 of that) while BPR keeps the
      whole batch.
    negatives: 'batch' or 'all' (above).

  Returns:
    Scalar loss.
  """
  if negatives not in CONTRAST_NEGATIVES:
    raise ValueError(f"batch_contrast: negatives must be one of "
                     f"{CONTRAST_NEGATIVES}, got {negatives!r}")
  u1, i1 = split_nodes(view1, num_users, num_items)
  u2, i2 = split_nodes(view2, num_users, num_items)
  users, items, mask = batch["users"], batch["pos_items"], batch["mask"]
  if max_rows and max_rows < users.shape[0]:  # static shapes: a slice
    users, items, mask = users[:max_rows], items[:max_rows], mask[:max_rows]
  if negatives == "all":
    return (losses.info_nce_pool(u1[users], u2[users], u2, temperature,
                                 mask=mask, positive_in_pool=True) +
            losses.info_nce_pool(i1[items], i2[items], i2, temperature,
                                 mask=mask, positive_in_pool=True))
  umask = losses.first_occurrence_mask(users, mask)
  imask = losses.first_occurrence_mask(items, mask)
  return (losses.info_nce(u1[users], u2[users], temperature, mask=umask) +
          losses.info_nce(i1[items], i2[items], temperature, mask=imask))


__all__ = [
    "GATLayer", "GCNLayer", "SAGELayer", "activate", "batch_contrast",
    "combine_layers", "edge_dropout_keep", "ego_nodes", "fast_dropout",
    "fast_uniform", "gcn_normalisation",
    "attention_sum", "general_method", "in_degree", "mean_weights", "node_dropout_keep",
    "pair_uniform", "real_edges", "sym_renormalise",
    "uniform_noise", "with_self_loops",
]

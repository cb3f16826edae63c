"""Attention fusion of ID, language-model text and graph representations.

Every node v has three tokens of size d:

  id     e_v                    free ID embedding (as in MF / LightGCN)
  text   W t_v                  projected language embedding t_v
                                (`graph.nodes['text']`, as in TextGNN)
  graph  mean_{k=1..K} A^k h    LightGCN propagation of h = e + W t,
                                layers 1..K (the neighbourhood; the node's
                                own layer 0 is already in the other tokens)

A multi-head attention pool with one learned query per head weighs them per
node: with keys k_{v,j} = W_k (x_{v,j} + type_j) split into H heads,

  a_{v,h,j} = softmax_j(<q_h, k_{v,j,h}> / sqrt(d / H))
  z_{v,h}   = sum_j a_{v,h,j} x_{v,j,h}        (head h owns d / H dims)

and z_v (heads concatenated) is the node's representation, scored by a dot
product and trained with BPR + L2 on the batch's ID rows, like the other
text models. Nodes without training interactions (cold items, isolated
users) carry no information in their ID row (never trained) nor in their
graph token (no edges), so both tokens are masked out of the softmax and
z_v is the text token alone. During training each node's id and graph
tokens are dropped together with probability `token_dropout`, so the text
token alone is trained to rank, which is what a cold node relies on.

Cost: a step is TextGNN's (the text projection of every node, K
propagations) plus the pool, computed per token on [N, d] tables with the
query folded into W_k (`token_weights`), so every product is a plain
[R, d] @ [d, H] or [R, H] @ [H, d] one; training pools only the batch's
R = 3B rows (`loss`), ranking all N nodes (`propagate_all`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxrec.batches import Batch
from jaxrec.fast_random import fast_uniform
from jaxrec.graphs import pad_rows
from jaxrec.graphs import propagate
from jaxrec.graphs import split_nodes
from jaxrec.graphs.subgraph import in_degree
from jaxrec.graphs.subgraph import real_edges
from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender
from jaxrec.models.textgnn import raw_text
from jaxrec.models.textgnn import text_dot_general

# Token order along the token axis.
TOKENS = ("id", "text", "graph")


class FusionTokens(NamedTuple):
  """The per-node tokens the attention pools over.

  Attributes:
    tokens: id, text and graph tokens of every node. # [N, 3, d]
    mask: 1.0 where a token takes part in the softmax. # [N, 3]
  """
  tokens: jnp.ndarray  # [N, 3, d]
  mask: jnp.ndarray  # [N, 3]


class _Kernel(nn.Module):
  """A bias-free `nn.Dense`'s kernel, as a parameter of the same name, shape
  and initialiser, for a caller that arranges the product itself."""
  features: int

  @nn.compact
  def __call__(self, in_features: int) -> jnp.ndarray:
    """The kernel. # [in_features, features]"""
    return self.param("kernel", nn.initializers.lecun_normal(),
                      (in_features, self.features))


class Fusion(Recommender):
  """Per-node multi-head attention over {ID, text, graph} tokens, BPR loss.

  Attributes (besides Recommender's embed_dim, l2_reg, init_std):
    num_layers: K propagation layers of the graph token.
    num_heads: H attention heads (must divide embed_dim).
    token_dropout: training probability of dropping a node's id and graph
      tokens together (the text token is always kept).
    text_key: key of the semantic embeddings in `graph.nodes`.
    propagation: kernel name for `jaxrec.graphs.propagate`.
    matmul_dtype: dtype of the text projection's product ('float32' or
      'bfloat16', see `textgnn.text_dot_general`).
  """
  num_layers: int = 3
  num_heads: int = 4
  token_dropout: float = 0.1
  text_key: str = "text"
  propagation: Optional[str] = None
  matmul_dtype: str = "float32"

  def setup(self):
    super().setup()
    if self.embed_dim % self.num_heads:
      raise ValueError(f"Fusion: num_heads={self.num_heads} must divide "
                       f"embed_dim={self.embed_dim}")
    self.text_proj = nn.Dense(self.embed_dim, use_bias=False,
                              dot_general=text_dot_general(self.matmul_dtype))
    # The key projection's kernel, read whole (`token_weights` folds the
    # query into it); named and initialised as nn.Dense's.
    self.key_proj = _Kernel(self.embed_dim)
    init = nn.initializers.normal(self.init_std)
    self.type_embedding = self.param("type_embedding", init,
                                     (len(TOKENS), self.embed_dim))
    # Zero queries start as a uniform mean of the tokens.
    self.query = self.param("query", nn.initializers.zeros,
                            (self.num_heads, self.embed_dim // self.num_heads))

  def token_parts(self, graph: jraph.GraphsTuple, train: bool = False
                  ) -> tuple[list[jnp.ndarray], list[jnp.ndarray]]:
    """The id, text and graph tokens of every node and their masks, unstacked.

    Args:
      graph: the (possibly padded) training graph with text features.
      train: draw the token dropout (needs the 'dropout' RNG stream).

    Returns:
      (tokens, masks) in `TOKENS` order: three [N, d] token tables and
      three [N] float masks (1.0 where the token takes part in the
      softmax); padding nodes have zero tokens and zero masks.
    """
    real = graph.nodes["mask"] > 0  # [N]
    ids = pad_rows(graph, jnp.concatenate([self.user_embedding,
                                           self.item_embedding]))  # [N, d]
    # Rows are independent: zero the [N, d] projection's padding rows, not
    # the [N, d_text] table.
    text = jnp.where(real[:, None],
                     self.text_proj(raw_text(graph, self.text_key)), 0.0)
    h = ids + text  # [N, d]
    hops = []
    for _ in range(self.num_layers):
      h = propagate(graph, h, method=self.propagation)
      hops.append(h)
    neighbours = (jnp.mean(jnp.stack(hops), axis=0) if hops
                  else jnp.zeros_like(h))  # [N, d]
    # A node without training edges has an untrained ID row and an empty
    # neighbourhood: only its text says anything about it.
    connected = in_degree(graph, real_edges(graph)) > 0  # [N]
    if train and self.token_dropout > 0:
      keep = fast_uniform(self.make_rng("dropout"),
                          connected.shape) >= self.token_dropout
      connected = connected & keep
    known = (connected & real).astype(jnp.float32)  # [N]
    return [ids, text, neighbours], [known, real.astype(jnp.float32), known]

  def tokens(self, graph: jraph.GraphsTuple, train: bool = False
             ) -> FusionTokens:
    """The id, text and graph tokens of every node and their mask.

    Args:
      graph: the (possibly padded) training graph with text features.
      train: draw the token dropout (needs the 'dropout' RNG stream).

    Returns:
      `FusionTokens`; padding nodes have zero tokens and an all-zero mask.
    """
    parts, masks = self.token_parts(graph, train)
    return FusionTokens(jnp.stack(parts, axis=1), jnp.stack(masks, axis=1))

  def token_weights(self, parts: list[jnp.ndarray],
                    masks: list[jnp.ndarray]) -> list[jnp.ndarray]:
    """Per-node, per-head softmax weight of each token.

    Computed per token on [N, d] tables, with no [N, 3, H, d / H] tensor:
    XLA's CPU backend runs per-node contractions over the 3 tokens (an
    einsum 'nthc,hc->nht' or 'nht,nthc->nhc') as N * H tiny batched matrix
    products; on ml_latest_small those and their gradients took most of a
    training step. The query folds into the key projection (float
    reassociation only):

      <q_h, (W_k (x + type))_h> = (x + type) . (W_k[:, head h] q_h)

    Args:
      parts: the three token tables (`token_parts`). # [N, d] each
      masks: their masks. # [N] each

    Returns:
      One weight table per token, in `TOKENS` order; the weights of a node
      sum to 1 over the tokens; masked tokens and padding nodes get 0.
      # [N, H] each
    """
    d = parts[0].shape[-1]
    heads = self.num_heads
    kernel = self.key_proj(d).reshape(d, heads, d // heads)  # [d, H, d/H]
    folded = jnp.sum(kernel * self.query, axis=-1) / jnp.sqrt(
        d / heads)  # [d, H]
    type_logits = self.type_embedding @ folded  # [3, H]
    present = [m[:, None] > 0 for m in masks]  # [N, 1] each
    logits = [jnp.where(p, x @ folded + t, -1e9)
              for x, t, p in zip(parts, type_logits, present)]  # [N, H]
    # Softmax over the 3 tokens, written out (the shift cancels; no
    # gradient through it, as in jax.nn.softmax).
    top = jax.lax.stop_gradient(functools.reduce(jnp.maximum, logits))
    exps = [jnp.where(p, jnp.exp(z - top), 0.0)
            for z, p in zip(logits, present)]
    total = functools.reduce(jnp.add, exps)  # [N, H]: >= 1 or 0 (padding)
    total = jnp.where(total > 0, total, 1.0)
    return [e / total for e in exps]

  def attention(self, tokens: FusionTokens) -> jnp.ndarray:
    """Per-node, per-head softmax weights over the tokens. # [N, H, 3]

    Masked tokens get weight 0; a node with no token (padding) gets 0s.
    """
    count = tokens.tokens.shape[1]
    weights = self.token_weights([tokens.tokens[:, j] for j in range(count)],
                                 [tokens.mask[:, j] for j in range(count)])
    return jnp.stack(weights, axis=-1)

  def attention_weights(self, graph: jraph.GraphsTuple) -> jnp.ndarray:
    """Inference attention weights of every node (tokens in `TOKENS` order).

    Args:
      graph: the training graph.

    Returns:
      Weights summing to 1 over the last axis for real nodes. # [N, H, 3]
    """
    return jnp.stack(self.token_weights(*self.token_parts(graph)), axis=-1)

  def pool(self, parts: list[jnp.ndarray],
           masks: list[jnp.ndarray]) -> jnp.ndarray:
    """z: the attention-weighted tokens of each row. # [R, d]

    Args:
      parts: the three token tables, any R rows (`token_parts`). # [R, d]
      masks: their masks. # [R] each
    """
    weights = self.token_weights(parts, masks)  # [R, H] each
    d = parts[0].shape[-1]
    # z_{v,h} = sum_j a_{v,h,j} x_{v,j,h}: each head's weight spread over
    # the d / H dims it owns by a 0/1 [H, d] product (its transpose, in the
    # gradient, is a product too; a repeat's is a sum over d / H, slower on
    # CPU).
    spread = jnp.repeat(jnp.eye(self.num_heads, dtype=parts[0].dtype),
                        d // self.num_heads, axis=1)  # [H, d]
    return functools.reduce(jnp.add, [
        (w @ spread) * x for w, x in zip(weights, parts)])

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    fused = self.pool(*self.token_parts(graph, train))  # [N, d]
    user, item = split_nodes(fused, self.num_users, self.num_items)
    return Propagated(user=user, item=item, user_ego=self.user_embedding,
                      item_ego=self.item_embedding, nodes=fused)

  def loss(self, graph: jraph.GraphsTuple, batch: Batch):
    """BPR + l2_reg * L2(ego), as `Recommender.loss`, pooling only the
    batch's rows.

    The pool is per node, so z of the batch's users and items is the same
    as in `propagate_all`'s table (the dropout is drawn for every node and
    then gathered); the tokens still need every node (the propagation), the
    pool does not: 3 * B rows instead of N (on hetrec_lastfm, 6,144 of
    19,524).

    Returns:
      (loss, {'loss', 'bpr', 'reg'}).
    """
    parts, masks = self.token_parts(graph, train=True)
    b = batch.users.shape[0]
    rows = jnp.concatenate([batch.users, batch.pos_items + self.num_users,
                            batch.neg_items.reshape(-1) + self.num_users])
    fused = self.pool([x[rows] for x in parts],
                      [m[rows] for m in masks])  # [B + B + B * k, d]
    # The same scores as `pair_scores` on the node table: each batch index
    # replaced by its row in `fused`.
    iota = jnp.arange(batch.neg_items.size, dtype=batch.users.dtype)
    local = batch._replace(users=iota[:b], pos_items=iota[:b],
                           neg_items=b + iota.reshape(batch.neg_items.shape))
    out = Propagated(user=fused[:b], item=fused[b:],
                     user_ego=self.user_embedding,
                     item_ego=self.item_embedding)
    bpr, reg = self.bpr_terms(out, batch, score_batch=local)
    loss = bpr + self.l2_reg * reg
    return loss, {"loss": loss, "bpr": bpr, "reg": reg}

"""DesignGNN: one configurable GNN collaborative-filtering model.

The model spans the design space of GNN-based collaborative filtering of
Wang, Zhao & Shi ("Profiling the Design Space for Graph Neural Networks based
Collaborative Filtering", WSDM 2022); `jaxrec.search` searches over it. Every
point of the space is a plain set of attributes of this one Flax module:

* aggregation (weights w_ij of the neighbour sum P h = sum_j w_ij m_ij):
  - 'lightgcn': D^-1/2 A D^-1/2 (`graph.edges`), no transform, no activation;
  - 'gcn': Kipf-Welling A + I weights on W h, bias, activation
    (`graphs.subgraph.gcn_normalisation`; equals `layers.GCNLayer` for 'identity');
  - 'sage': W_self h_i + W_neigh mean_j m_ij, bias, activation
    (`graphs.subgraph.mean_weights`; equals `layers.SAGELayer`);
  - 'gat': single-head attention over neighbours + self loop on W h
    (`jraph.segment_softmax`; equals a 1-head `layers.GATLayer`);
  - 'gin': MLP((1 + eps) h_i + sum_j m_ij), eps learned (Xu et al., 2019);
  - 'none': no message passing (matrix factorisation on the ego tables).
* message m_ij from sender j to receiver i: 'identity' h_j, or 'hadamard'
  h_j + h_j * h_i (NGCF's affinity term). Because w_ij does not depend on
  h_i, sum_j w_ij (h_j + h_j * h_i) = P h + h * P h: one extra product, no
  per-edge work.
* num_layers K; layer combination of layers 0..K: 'last', 'mean', 'sum',
  'concat' (`layers.combine_layers`) or 'attention' (per-node softmax over
  layers of <h_l, q> with a learned query q, as JK-Net's attention).
* interaction: 'dot' (u . v) or 'concat_mlp' (MLP([u; v]) -> scalar, one
  hidden layer). `score` ranks all items for a user batch in item chunks, so
  the [B, chunk, hidden] activations stay bounded.

Trained with BPR + l2_reg * L2 on the batch's ego embeddings, like the rest of
the zoo.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxrec.batches import Batch
from jaxrec.graphs import propagate
from jaxrec.graphs import split_nodes
from jaxrec.graphs import subgraph
from jaxrec.graphs.padding import ego_nodes
from jaxrec.graphs.propagation import general_method
from jaxrec.models import layers as layers_lib
from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender

AGGREGATIONS = ("lightgcn", "gcn", "sage", "gat", "gin", "none")
MESSAGES = ("identity", "hadamard")
COMBINES = ("last", "mean", "sum", "concat", "attention")
INTERACTIONS = ("dot", "concat_mlp")


def _check(name: str, value, valid) -> None:
  if value not in valid:
    raise ValueError(f"designgnn: {name} must be one of {valid}, got {value!r}")


class DesignLayer(nn.Module):
  """One message-passing layer of the design space (see module docstring).

  Attributes:
    aggregation: one of AGGREGATIONS except 'none'.
    message: 'identity' or 'hadamard'.
    features: output size (= input size, so layers stack and combine).
    activation: nonlinearity of the transformed aggregators.
    method: propagation kernel for symmetric weights ('lightgcn', 'gcn').
  """
  aggregation: str
  message: str = "identity"
  features: int = 64
  activation: str = "tanh"
  method: Optional[str] = None

  def _message(self, h: jnp.ndarray, agg: jnp.ndarray) -> jnp.ndarray:
    """sum_j w_ij m_ij from agg = sum_j w_ij h_j. # [N, d]"""
    return agg + h * agg if self.message == "hadamard" else agg

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, x: jnp.ndarray) -> jnp.ndarray:
    mask = graph.nodes["mask"][:, None]  # [N, 1]
    general = general_method(self.method)
    if self.aggregation == "lightgcn":
      out = self._message(x, propagate(graph, x, None, self.method))
      return out * mask
    if self.aggregation == "gcn":
      edge_w, self_w = subgraph.gcn_normalisation(graph)
      h = nn.Dense(self.features, use_bias=False, name="kernel")(x)  # [N, f]
      agg = propagate(graph, h, edge_w, self.method) + self_w[:, None] * h
      out = self._message(h, agg)
    elif self.aggregation == "sage":
      neigh = propagate(graph, x, subgraph.mean_weights(graph), general)
      out = (nn.Dense(self.features, name="self")(x) +
             nn.Dense(self.features, use_bias=False, name="neigh")(
                 self._message(x, neigh)))
      return layers_lib.activate(out, self.activation) * mask
    elif self.aggregation == "gat":
      h = nn.Dense(self.features, use_bias=False, name="kernel")(x)  # [N, f]
      init = nn.initializers.lecun_normal()
      a_src = self.param("att_src", init, (1, self.features))
      a_dst = self.param("att_dst", init, (1, self.features))
      senders, receivers = layers_lib.with_self_loops(graph)  # [E + N]
      logits = nn.leaky_relu(jnp.sum(h * a_src, -1)[senders] +
                             jnp.sum(h * a_dst, -1)[receivers], 0.2)  # [E + N]
      alpha = jraph.segment_softmax(logits, receivers,
                                    num_segments=h.shape[0])  # [E + N]
      agg = layers_lib.attention_sum(graph, h[:, None], alpha[:, None],
                                     general)[:, 0]  # [N, f]
      out = self._message(h, agg)
    elif self.aggregation == "gin":
      eps = self.param("eps", nn.initializers.zeros, ())
      neigh = propagate(graph, x, subgraph.real_edges(graph), general)
      h = (1.0 + eps) * x + self._message(x, neigh)  # [N, d]
      h = layers_lib.activate(nn.Dense(self.features, name="mlp_0")(h),
                              self.activation)
      return nn.Dense(self.features, name="mlp_1")(h) * mask
    else:
      raise ValueError(f"designgnn: aggregation must be one of "
                       f"{AGGREGATIONS[:-1]} in a layer, got "
                       f"{self.aggregation!r}")
    out = out + self.param("bias", nn.initializers.zeros, (self.features,))
    return layers_lib.activate(out, self.activation) * mask


def attention_combine(layers: list, query: jnp.ndarray) -> jnp.ndarray:
  """Per-node softmax over layers of <h_l, q>, then the weighted sum. # [N, d]"""
  stack = jnp.stack(layers, axis=1)  # [N, L, d]
  alpha = jax.nn.softmax(stack @ query, axis=1)  # [N, L]
  return jnp.einsum("nl,nld->nd", alpha, stack)


class DesignGNN(Recommender):
  """A point of the GNN-CF design space (see module docstring).

  Attributes:
    aggregation: one of AGGREGATIONS.
    message: one of MESSAGES.
    num_layers: K (ignored when aggregation is 'none').
    combine: one of COMBINES.
    interaction: one of INTERACTIONS.
    activation: nonlinearity of the 'gcn'/'sage'/'gat'/'gin' layers.
    mlp_hidden: hidden size of the 'concat_mlp' interaction.
    score_chunk_bytes: bound on the [B, chunk, hidden] activations of
      'concat_mlp' scoring.
    propagation: kernel name for `jaxrec.graphs.propagate`.
  """
  aggregation: str = "lightgcn"
  message: str = "identity"
  num_layers: int = 3
  combine: str = "mean"
  interaction: str = "dot"
  activation: str = "tanh"
  mlp_hidden: int = 64
  score_chunk_bytes: int = 1 << 26
  propagation: Optional[str] = None

  def setup(self):
    super().setup()
    _check("aggregation", self.aggregation, AGGREGATIONS)
    _check("message", self.message, MESSAGES)
    _check("combine", self.combine, COMBINES)
    _check("interaction", self.interaction, INTERACTIONS)
    depth = 0 if self.aggregation == "none" else self.num_layers
    self.convs = [DesignLayer(self.aggregation, self.message, self.embed_dim,
                              self.activation, self.propagation,
                              name=f"layer_{k}") for k in range(depth)]
    if self.combine == "attention":
      self.layer_query = self.param("layer_query", nn.initializers.normal(0.1),
                                    (self.embed_dim,))
    if self.interaction == "concat_mlp":
      self.mlp_user = nn.Dense(self.mlp_hidden, name="mlp_user")
      self.mlp_item = nn.Dense(self.mlp_hidden, use_bias=False,
                               name="mlp_item")
      self.mlp_out = nn.Dense(1, name="mlp_out")

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    del train
    users, items = self.ego_embeddings()
    h = ego_nodes(graph, users, items)  # [N, d]
    outs = [h]
    for conv in self.convs:
      h = conv(graph, h)  # [N, d]
      outs.append(h)
    if self.combine == "attention":
      final = attention_combine(outs, self.layer_query)
    else:
      final = layers_lib.combine_layers(outs, self.combine)  # [N, d or Ld]
    user, item = split_nodes(final, self.num_users, self.num_items)
    return Propagated(user=user, item=item, user_ego=users, item_ego=items)

  def _mlp(self, hu: jnp.ndarray, hv: jnp.ndarray) -> jnp.ndarray:
    """MLP score from first-layer halves hu [..., h], hv [..., h]. # [...]"""
    return self.mlp_out(nn.relu(hu + hv))[..., 0]

  def pair_scores(self, out: Propagated, batch: Batch):
    if self.interaction == "dot":
      return super().pair_scores(out, batch)
    hu = self.mlp_user(out.user[batch.users])  # [B, h]
    pos = self._mlp(hu, self.mlp_item(out.item[batch.pos_items]))  # [B]
    hneg = self.mlp_item(out.item[batch.neg_items])  # [B, h] / [B, k, h]
    if hneg.ndim == 3:
      hu = hu[:, None, :]
    return pos, self._mlp(hu, hneg)

  def score(self, user_emb: jnp.ndarray, item_emb: jnp.ndarray,
            users: jnp.ndarray) -> jnp.ndarray:
    """Scores of all items for a batch of users. # [B, I]"""
    if self.interaction == "dot":
      return super().score(user_emb, item_emb, users)
    hu = self.mlp_user(user_emb[users])  # [B, h]
    hv = self.mlp_item(item_emb)  # [I, h]
    batch, num_items = hu.shape[0], hv.shape[0]
    chunk = max(1, min(num_items, self.score_chunk_bytes //
                       (4 * batch * self.mlp_hidden)))
    steps = -(-num_items // chunk)
    hv = jnp.pad(hv, ((0, steps * chunk - num_items), (0, 0)))
    hv = hv.reshape(steps, chunk, -1)  # [S, C, h]
    w = self.mlp_out.variables["params"]["kernel"][:, 0]  # [h]
    b = self.mlp_out.variables["params"]["bias"][0]

    def one_chunk(hv_chunk):  # [C, h] -> [B, C]
      return nn.relu(hu[:, None, :] + hv_chunk[None]) @ w + b
    scores = jax.lax.map(one_chunk, hv)  # [S, B, C]
    scores = jnp.moveaxis(scores, 0, 1).reshape(batch, steps * chunk)
    return scores[:, :num_items]

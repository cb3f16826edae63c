"""NGCF: Neural Graph Collaborative Filtering (Wang et al., SIGIR 2019).

Layer l (paper Eq. 7, matrix form):
  side  = A_hat e                              # neighbour messages
  e'    = LeakyReLU(W1 (e + side) + W2 (side * e) + b)
  e'    = message_dropout(e') ; e' = e' / ||e'||
with A_hat = D^-1/2 A D^-1/2 (the graph's 'sym' weights). The final
representation concatenates [e^0, e^1, ..., e^K] (dimension d (K + 1)).
Trained with BPR + L2 on the batch's ego embeddings (LightGCN-paper protocol).
Optional `node_dropout` is NGCF code's dropout on the adjacency's non-zeros
(an interaction's two edges dropped together, kept ones rescaled by 1/(1-p)).
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import jraph

from jaxrec import fast_random
from jaxrec.graphs import propagate
from jaxrec.graphs import split_nodes
from jaxrec.graphs import subgraph
from jaxrec.graphs.padding import ego_nodes
from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender


class NGCF(Recommender):
  """NGCF with K embedding-propagation layers and layer concatenation.

  Attributes:
    num_layers: K.
    layer_dims: output size of each layer (default embed_dim each).
    message_dropout: dropout rate on each layer's output during training.
    node_dropout: dropout rate on the adjacency's edges during training.
    negative_slope: LeakyReLU slope (0.2 in the paper's code).
    propagation: kernel name for `jaxrec.graphs.propagate`.
  """
  num_layers: int = 3
  layer_dims: Optional[Sequence[int]] = None
  message_dropout: float = 0.1
  node_dropout: float = 0.0
  negative_slope: float = 0.2
  propagation: Optional[str] = None

  def setup(self):
    super().setup()
    dims = tuple(self.layer_dims or (self.embed_dim,) * self.num_layers)
    if len(dims) != self.num_layers:
      raise ValueError(f"NGCF: layer_dims {dims} must have num_layers="
                       f"{self.num_layers} entries")
    init = nn.initializers.xavier_uniform()
    self.w1 = [nn.Dense(d, kernel_init=init, name=f"w1_{k}")
               for k, d in enumerate(dims)]
    self.w2 = [nn.Dense(d, kernel_init=init, name=f"w2_{k}")
               for k, d in enumerate(dims)]

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    users, items = self.ego_embeddings()
    ego = ego_nodes(graph, users, items)  # [N, d]
    mask = graph.nodes["mask"][:, None]  # [N, 1]
    weights = graph.edges  # [E]
    if train and self.node_dropout > 0:
      keep = subgraph.edge_dropout_keep(self.make_rng("dropout"), graph,
                                        self.node_dropout)
      weights = weights * keep / (1.0 - self.node_dropout)
    h, outs = ego, [ego]
    for w1, w2 in zip(self.w1, self.w2):
      side = propagate(graph, h, weights, self.propagation)  # [N, d_in]
      h = nn.leaky_relu(w1(h + side) + w2(side * h), self.negative_slope)
      if train and self.message_dropout > 0:
        h = fast_random.fast_dropout(self.make_rng("dropout"), h,
                                     self.message_dropout)
      h = h * mask  # [N, d_out]
      outs.append(h / jnp.maximum(
          jnp.linalg.norm(h, axis=-1, keepdims=True), 1e-12))
    final = jnp.concatenate(outs, axis=-1)  # [N, d + sum(dims)]
    user, item = split_nodes(final, self.num_users, self.num_items)
    return Propagated(user=user, item=item, user_ego=users, item_ego=items)

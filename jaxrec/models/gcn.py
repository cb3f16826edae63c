"""GCN recommender: Kipf & Welling graph convolutions on the user-item graph.

Layer l: e^{l+1} = act(A_tilde e^l W_l + b_l), A_tilde = D~^-1/2 (A + I)
D~^-1/2 (self loops, degrees from the graph's real edges, so the layer does
not depend on how `graph.edges` was normalised). The free embeddings are the
input features; the final representation combines layers 0..K
(`combine='mean'` as LightGCN, or 'concat' / 'last' / 'sum'). BPR + L2 on the
batch's ego embeddings.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jraph

from jaxrec.graphs import split_nodes
from jaxrec.graphs import subgraph
from jaxrec.graphs.padding import ego_nodes
from jaxrec.models import layers as layers_lib
from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender


class GCN(Recommender):
  """Stack of `layers.GCNLayer` over free user/item embeddings.

  Attributes:
    num_layers: K.
    activation: nonlinearity of each layer ('none' gives a linear GCN).
    combine: how layers 0..K are merged: 'mean', 'sum', 'concat', 'last'.
    dropout: feature dropout on each layer's input during training.
    propagation: kernel name for `jaxrec.graphs.propagate`.
  """
  num_layers: int = 2
  activation: str = "tanh"
  combine: str = "mean"
  dropout: float = 0.0
  propagation: Optional[str] = None

  def setup(self):
    super().setup()
    self.convs = [layers_lib.GCNLayer(self.embed_dim, self.activation,
                                      self.propagation, name=f"gcn_{k}")
                  for k in range(self.num_layers)]
    self.drop = nn.Dropout(self.dropout)

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    users, items = self.ego_embeddings()
    ego = ego_nodes(graph, users, items)  # [N, d]
    norm = subgraph.gcn_normalisation(graph)
    h, outs = ego, [ego]
    for conv in self.convs:
      h = conv(graph, self.drop(h, deterministic=not train), norm)  # [N, d]
      outs.append(h)
    final = layers_lib.combine_layers(outs, self.combine)
    user, item = split_nodes(final, self.num_users, self.num_items)
    return Propagated(user=user, item=item, user_ego=users, item_ego=items)

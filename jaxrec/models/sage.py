"""GraphSAGE recommender (Hamilton et al., NeurIPS 2017), mean aggregator.

Layer l: e^{l+1}_v = act(W_self e^l_v + W_neigh mean_{u in N(v)} e^l_u + b),
optionally L2-normalised, over the full user-item graph (no neighbour
sampling: the graph fits in memory and full aggregation is exact). The final
representation combines layers 0..K; BPR + L2 on the batch's ego embeddings.
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


class GraphSAGE(Recommender):
  """Stack of `layers.SAGELayer` over free user/item embeddings.

  Attributes:
    num_layers: K.
    activation: nonlinearity of each layer.
    normalise: L2-normalise each layer's output (GraphSAGE step 7).
    combine: 'mean', 'sum', 'concat' or 'last' over layers 0..K.
    dropout: feature dropout on each layer's input during training.
    propagation: kernel name (mean weights are not symmetric, so
      'symmetric' is replaced by a general kernel).
  """
  num_layers: int = 2
  activation: str = "tanh"
  normalise: bool = False
  combine: str = "mean"
  dropout: float = 0.0
  propagation: Optional[str] = None

  def setup(self):
    super().setup()
    self.convs = [layers_lib.SAGELayer(self.embed_dim, self.activation,
                                       self.normalise, self.propagation,
                                       name=f"sage_{k}")
                  for k in range(self.num_layers)]
    self.drop = nn.Dropout(self.dropout)

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    users, items = self.ego_embeddings()
    ego = ego_nodes(graph, users, items)  # [N, d]
    weights = subgraph.mean_weights(graph)  # [E]
    h, outs = ego, [ego]
    for conv in self.convs:
      h = conv(graph, self.drop(h, deterministic=not train), weights)
      outs.append(h)
    final = layers_lib.combine_layers(outs, self.combine)
    user, item = split_nodes(final, self.num_users, self.num_items)
    return Propagated(user=user, item=item, user_ego=users, item_ego=items)

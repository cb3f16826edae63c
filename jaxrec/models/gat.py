"""GAT recommender (Velickovic et al., ICLR 2018) on the user-item graph.

Layer l: alpha_ij = softmax_{j in N(i) + i}(LeakyReLU(a_dst . W h_i +
a_src . W h_j)) via `jraph.segment_softmax` (logits [E, H]), h'_i =
act(concat_h sum_j alpha_ij W_h h_j). Self loops let isolated nodes keep
their own signal. The final representation combines layers 0..K; BPR + L2 on
the batch's ego embeddings.
"""

from __future__ import annotations

from typing import Optional

import jraph

from jaxrec.graphs import split_nodes
from jaxrec.graphs.padding import ego_nodes
from jaxrec.models import layers as layers_lib
from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender


class GAT(Recommender):
  """Stack of `layers.GATLayer` over free user/item embeddings.

  Attributes:
    num_layers: K.
    num_heads: attention heads per layer (concatenated; embed_dim must be a
      multiple).
    activation: nonlinearity of each layer.
    negative_slope: attention LeakyReLU slope.
    attention_dropout: dropout on attention weights during training.
    combine: 'mean', 'sum', 'concat' or 'last' over layers 0..K.
    propagation: kernel name for the attention-weighted neighbour sums.
  """
  num_layers: int = 2
  num_heads: int = 1
  activation: str = "tanh"
  negative_slope: float = 0.2
  attention_dropout: float = 0.0
  combine: str = "mean"
  propagation: Optional[str] = None

  def setup(self):
    super().setup()
    self.convs = [layers_lib.GATLayer(
        self.embed_dim, self.num_heads, True, self.negative_slope,
        self.attention_dropout, self.activation, self.propagation,
        name=f"gat_{k}")
                  for k in range(self.num_layers)]

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    users, items = self.ego_embeddings()
    ego = ego_nodes(graph, users, items)  # [N, d]
    h, outs = ego, [ego]
    for conv in self.convs:
      h = conv(graph, h, train=train)  # [N, d]
      outs.append(h)
    final = layers_lib.combine_layers(outs, self.combine)
    user, item = split_nodes(final, self.num_users, self.num_items)
    return Propagated(user=user, item=item, user_ego=users, item_ego=items)

  def attention(self, graph: jraph.GraphsTuple, layer: int = 0):
    """(senders, receivers, alpha [E + N, H]) of one layer (inference)."""
    users, items = self.ego_embeddings()
    h = ego_nodes(graph, users, items)
    for conv in self.convs[:layer]:
      h = conv(graph, h)
    return self.convs[layer](graph, h, return_attention=True)[1]


"""Graph autoencoder (Kipf & Welling, 2016) used as a recommender.

Encoder: GCN over the user-item graph with free embeddings as input
features, Z = A_tilde act(... act(A_tilde X W_1) ...) W_K (ReLU between
layers, linear last layer, A_tilde with self loops). Decoder: inner product,
P(edge u-i) = sigmoid(z_u . z_i). Training reconstructs links: binary
cross-entropy of the batch's observed (user, pos_item) edges against its
sampled non-edges (user, neg_item) (`losses.bce_link_loss`), plus L2 on the
batch's ego embeddings. Items are ranked by z_u . z_i (= decoder logits).
"""

from __future__ import annotations

from typing import Optional

import jraph

from jaxrec import losses
from jaxrec.batches import Batch
from jaxrec.graphs import split_nodes
from jaxrec.graphs import subgraph
from jaxrec.graphs.padding import ego_nodes
from jaxrec.models import layers as layers_lib
from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender


class GAE(Recommender):
  """GCN encoder + inner-product decoder, trained on link reconstruction.

  Attributes:
    num_layers: GCN layers of the encoder (>= 1).
    hidden_dim: size of hidden layers (default embed_dim).
    latent_dim: size of Z (default embed_dim).
    activation: nonlinearity between encoder layers.
    propagation: kernel name for `jaxrec.graphs.propagate`.
  """
  num_layers: int = 2
  hidden_dim: Optional[int] = None
  latent_dim: Optional[int] = None
  activation: str = "relu"
  propagation: Optional[str] = None

  def setup(self):
    super().setup()
    if self.num_layers < 1:
      raise ValueError(f"GAE: num_layers must be >= 1, got {self.num_layers}")
    hidden = self.hidden_dim or self.embed_dim
    latent = self.latent_dim or self.embed_dim
    dims = [hidden] * (self.num_layers - 1) + [latent]
    acts = [self.activation] * (self.num_layers - 1) + ["none"]
    self.encoder = [layers_lib.GCNLayer(d, a, self.propagation,
                                        name=f"enc_{k}")
                    for k, (d, a) in enumerate(zip(dims, acts))]

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    del train
    users, items = self.ego_embeddings()
    h = ego_nodes(graph, users, items)  # [N, d]
    norm = subgraph.gcn_normalisation(graph)
    for layer in self.encoder:
      h = layer(graph, h, norm)
    user, item = split_nodes(h, self.num_users, self.num_items)  # Z
    return Propagated(user=user, item=item, user_ego=users, item_ego=items)

  def loss(self, graph: jraph.GraphsTuple, batch: Batch):
    """BCE(observed edges = 1, sampled non-edges = 0) + l2_reg * L2(ego)."""
    out = self.propagate_all(graph, train=True)
    pos, neg = self.pair_scores(out, batch)  # decoder logits z_u . z_i
    bce = losses.bce_link_loss(pos, neg, batch.mask)
    reg = losses.l2_penalty(out.user_ego[batch.users],
                            out.item_ego[batch.pos_items],
                            out.item_ego[batch.neg_items],
                            mask=batch.mask)
    loss = bce + self.l2_reg * reg
    return loss, {"loss": loss, "bce": bce, "reg": reg}


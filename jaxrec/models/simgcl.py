"""SimGCL: Simple Graph Contrastive Learning (Yu et al., SIGIR 2022).

LightGCN propagation where every layer's output is perturbed by uniform noise
aligned with its sign: e^{l+1} = A_hat e^l + Delta, Delta = eps * sign(.) *
u / ||u||, u ~ U(0, 1)^d (`fast_random.uniform_noise`; every noise row has norm
eps). Two noisy forward passes give two views; the loss is BPR on the
UN-noised embeddings + L2 + lambda x InfoNCE (cosine, tau, in-batch) between
the views' embeddings of the batch's distinct users and items. Ranking uses
the un-noised propagation. As in the authors' code, the final embedding is
the mean of layers 1..K (`include_ego=False`; True adds layer 0 like
LightGCN).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import jraph

from jaxrec import fast_random
from jaxrec import losses
from jaxrec.batches import Batch
from jaxrec.graphs import propagate
from jaxrec.graphs import split_nodes
from jaxrec.graphs.padding import ego_nodes
from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender


class SimGCL(Recommender):
  """SimGCL on a LightGCN encoder.

  Attributes:
    num_layers: K.
    eps: noise magnitude (row norm of Delta).
    ssl_weight: lambda.
    ssl_temperature: tau.
    include_ego: average layers 0..K instead of 1..K.
    propagation: kernel name for `jaxrec.graphs.propagate`.
  """
  num_layers: int = 3
  eps: float = 0.1
  ssl_weight: float = 0.5
  ssl_temperature: float = 0.2
  # 0 = InfoNCE over every batch row; > 0 = over the first contrast_rows
  # (a random subset: batches are shuffled), see losses.batch_contrast.
  contrast_rows: int = 0
  include_ego: bool = False
  propagation: Optional[str] = None

  def encode(self, graph: jraph.GraphsTuple,
             rng: Optional[jax.Array] = None):
    """(final [N, d], [e^0, ..., e^K]) with noise on each layer if rng given."""
    users, items = self.ego_embeddings()
    h = ego_nodes(graph, users, items)  # [N, d]
    layers = [h]
    for k in range(self.num_layers):
      h = propagate(graph, h, None, self.propagation)
      if rng is not None:
        h = h + fast_random.uniform_noise(jax.random.fold_in(rng, k), h,
                                          self.eps)
      layers.append(h)
    used = layers if self.include_ego else layers[1:]
    return jnp.mean(jnp.stack(used), axis=0), layers

  def _out(self, final: jnp.ndarray) -> Propagated:
    user, item = split_nodes(final, self.num_users, self.num_items)
    users, items = self.ego_embeddings()
    return Propagated(user=user, item=item, user_ego=users, item_ego=items,
                      nodes=final)

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    del train  # the un-noised encoder serves ranking and the BPR loss
    return self._out(self.encode(graph)[0])

  def loss(self, graph: jraph.GraphsTuple, batch: Batch):
    """BPR(clean) + l2_reg * L2(ego) + ssl_weight * InfoNCE(noisy1, noisy2)."""
    out = self.propagate_all(graph, train=True)
    bpr, reg = self.bpr_terms(out, batch)
    rng1, rng2 = jax.random.split(self.make_rng("dropout"))
    ssl = losses.batch_contrast(
        self.encode(graph, rng1)[0], self.encode(graph, rng2)[0], batch,
        self.num_users, self.num_items, self.ssl_temperature,
        self.contrast_rows)
    loss = bpr + self.l2_reg * reg + self.ssl_weight * ssl
    return loss, {"loss": loss, "bpr": bpr, "reg": reg, "ssl": ssl}

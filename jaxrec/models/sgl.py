"""SGL: Self-supervised Graph Learning (Wu et al., SIGIR 2021).

LightGCN backbone trained with BPR + L2 on the full graph plus lambda x
InfoNCE between two stochastic views of the graph:
  * 'ed' edge dropout: each interaction (both directed edges) dropped w.p. rho,
    one mask for all layers;
  * 'nd' node dropout: each node dropped w.p. rho with all its edges;
  * 'rw' random walk: edge dropout re-drawn for every layer.
Views are re-sampled every step from the 'dropout' RNG stream, or, with
view_period='epoch', once per epoch as in the released SGL code (from
`view_seed` and the batch's `epoch` field, which the model then declares in
its `batch_fields` so that `input_pipeline.epoch_batches` fills it: every
step of an epoch contrasts the same two views). Shapes stay
static: a dropped edge keeps its slot with weight 0 and degrees are
recomputed from the kept edges with a segment_sum (D_k^-1/2 A_k D_k^-1/2,
`graphs.subgraph.sym_renormalise`). The contrastive term is InfoNCE (cosine,
temperature tau, in-batch negatives) between the two views' layer-mean
embeddings of the batch's distinct users, plus the same for its distinct
positive items (or, with contrast_negatives='all', against every user / item
of the other view, as the released SGL code). Ranking uses the un-augmented
LightGCN embeddings.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph

from jaxrec import losses
from jaxrec.batches import Batch
from jaxrec.graphs import propagate
from jaxrec.graphs import subgraph
from jaxrec.graphs.padding import ego_nodes
from jaxrec.models.lightgcn import LightGCN

AUG_TYPES = ("ed", "nd", "rw")


class SGL(LightGCN):
  """SGL-ED / -ND / -RW on a LightGCN backbone.

  Attributes (besides LightGCN's num_layers, propagation):
    aug_type: 'ed', 'nd' or 'rw'.
    drop_rate: rho, the dropout ratio of edges / nodes.
    ssl_weight: lambda, weight of the contrastive loss.
    ssl_temperature: tau.
  """
  aug_type: str = "ed"
  drop_rate: float = 0.1
  ssl_weight: float = 0.1
  ssl_temperature: float = 0.2
  # 0 = InfoNCE over every batch row; > 0 = over the first contrast_rows
  # (a random subset: batches are shuffled), see losses.batch_contrast.
  contrast_rows: int = 0
  # InfoNCE negatives: 'batch' (the batch's other distinct users / items, as
  # SELFRec) or 'all' (every user / item of the other view, the released SGL
  # code's default `calc_ssl_loss_v2`), see losses.batch_contrast.
  contrast_negatives: str = "batch"
  # 'step': new views every step; 'epoch': one pair of views per epoch,
  # drawn from fold_in(key(view_seed), batch.epoch).
  view_period: str = "step"
  view_seed: int = 0

  @property
  def batch_fields(self) -> tuple[str, ...]:
    """('epoch',) with view_period='epoch' (the views' key), else ()."""
    return ("epoch",) if self.view_period == "epoch" else ()

  def view_weights(self, graph: jraph.GraphsTuple,
                   rng: jax.Array) -> list[jnp.ndarray]:
    """Per-layer renormalised edge weights of one augmented view, each [E]."""
    if self.aug_type not in AUG_TYPES:
      raise ValueError(f"SGL: aug_type must be one of {AUG_TYPES}, got "
                       f"{self.aug_type!r}")
    if self.aug_type == "rw":
      keys = jax.random.split(rng, self.num_layers)
      return [subgraph.sym_renormalise(
          graph, subgraph.edge_dropout_keep(k, graph, self.drop_rate))
              for k in keys]
    if self.aug_type == "ed":
      keep = subgraph.edge_dropout_keep(rng, graph, self.drop_rate)
    else:
      keep = subgraph.node_dropout_keep(rng, graph, self.drop_rate)
    return [subgraph.sym_renormalise(graph, keep)] * self.num_layers

  def view(self, graph: jraph.GraphsTuple, ego: jnp.ndarray,
           rng: jax.Array) -> jnp.ndarray:
    """Layer-mean node embeddings of one augmented view. # [N, d]"""
    h, outs = ego, [ego]
    for weights in self.view_weights(graph, rng):
      # Renormalised symmetric dropout keeps A_hat symmetric: the backward
      # can reuse the forward kernel (propagation.SYMMETRIC_METHOD).
      h = propagate(graph, h, weights, self.propagation, symmetric=True)
      outs.append(h)
    return jnp.mean(jnp.stack(outs), axis=0)

  def view_rng(self, batch: Batch) -> jax.Array:
    """PRNG key of this step's pair of views (see `view_period`)."""
    if self.view_period == "step":
      return self.make_rng("dropout")
    if self.view_period != "epoch":
      raise ValueError(f"SGL: view_period must be 'step' or 'epoch', got "
                       f"{self.view_period!r}")
    if batch.epoch is None:
      raise ValueError("SGL: view_period='epoch' needs the batch's 'epoch' "
                       "field (input_pipeline.epoch_batches fills it when "
                       "the model's batch_fields name it)")
    epoch = batch.epoch.reshape(-1)[0]  # the same in every slot
    return jax.random.fold_in(jax.random.key(self.view_seed), epoch)

  def loss(self, graph: jraph.GraphsTuple, batch: Batch):
    """BPR + l2_reg * L2(ego) + ssl_weight * (InfoNCE_users + InfoNCE_items)."""
    out = self.propagate_all(graph, train=True)
    bpr, reg = self.bpr_terms(out, batch)
    ego = ego_nodes(graph, out.user_ego, out.item_ego)
    rng1, rng2 = jax.random.split(self.view_rng(batch))
    ssl = losses.batch_contrast(
        self.view(graph, ego, rng1), self.view(graph, ego, rng2), batch,
        self.num_users, self.num_items, self.ssl_temperature,
        self.contrast_rows, self.contrast_negatives)
    loss = bpr + self.l2_reg * reg + self.ssl_weight * ssl
    return loss, {"loss": loss, "bpr": bpr, "reg": reg, "ssl": ssl}

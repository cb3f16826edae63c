"""Shared base of all recommenders: embedding tables, BPR loss, dot scoring."""

from __future__ import annotations

from typing import NamedTuple, Optional

import flax.linen as nn
import jax.numpy as jnp
import jraph

from jaxrec import losses
from jaxrec.batches import Batch


class Propagated(NamedTuple):
  """A model's propagated representations (`Recommender.propagate_all`).

  A NamedTuple, hence a pytree: it passes through `jax.jit` and
  `nn.intercept_methods` like the arrays it holds.
  """
  user: jnp.ndarray  # [U, d]: final user representations (what ranks)
  item: jnp.ndarray  # [I, d]: final item representations
  user_ego: jnp.ndarray  # [U, d]: layer-0 user rows (the L2 penalty's)
  item_ego: jnp.ndarray  # [I, d]: layer-0 item rows
  # Optional node table whose rows [0, U) are exactly `user` and rows
  # [U, U + I) exactly `item` (padding rows after). `pair_scores` then
  # gathers the batch from it, so the backward pass scatter-adds into one
  # table instead of scattering into separate user and item tables and
  # padding them back to N rows (a LightGCN step on Gowalla, batch 2048:
  # 0.065 -> 0.061 s). None whenever `user` / `item` are anything else
  # (say, transformed after the propagation).
  nodes: Optional[jnp.ndarray] = None  # [N, d]


class Recommender(nn.Module):
  """Base class: subclasses override `propagate_all` (and maybe `loss`).

  Parameters are created in `setup()`, so every method (`embed`, `loss`,
  `score`) can be called through `model.apply(..., method=...)`.

  Attributes:
    num_users: U.
    num_items: I.
    embed_dim: embedding size d.
    l2_reg: weight of the L2 penalty on the batch's ego embeddings.
    init_std: std of the normal initialiser of the embedding tables.
  """
  num_users: int
  num_items: int
  embed_dim: int = 64
  l2_reg: float = 1e-4
  init_std: float = 0.1

  @property
  def batch_fields(self) -> tuple[str, ...]:
    """Optional `batches.Batch` fields this model's `loss` reads.

    The input pipeline fills exactly these (`input_pipeline.epoch_batches`)
    and leaves the other optional fields None; see
    `batches.OPTIONAL_FIELDS`. None by default.
    """
    return ()

  def setup(self):
    # Subclasses that add submodules override setup() and call super().setup().
    init = nn.initializers.normal(self.init_std)
    self.user_embedding = self.param("user_embedding", init,
                                     (self.num_users, self.embed_dim))
    self.item_embedding = self.param("item_embedding", init,
                                     (self.num_items, self.embed_dim))

  def ego_embeddings(self):
    """Free (layer-0) embedding tables: ([U, d], [I, d])."""
    return self.user_embedding, self.item_embedding

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    """The propagated representations of every user and item.

    Args:
      graph: the training graph.
      train: the training pass (dropout on) rather than inference.

    Returns:
      A `Propagated` (with `nodes` where the model has the node table).
    """
    raise NotImplementedError

  def embed(self, graph: jraph.GraphsTuple):
    """Final (users [U, d], items [I, d]) representations for ranking."""
    out = self.propagate_all(graph, train=False)
    return out.user, out.item

  def score(self, user_emb: jnp.ndarray, item_emb: jnp.ndarray,
            users: jnp.ndarray) -> jnp.ndarray:
    """Scores of all items for a batch of users. # [B, I]"""
    return user_emb[users] @ item_emb.T

  def pair_scores(self, out: Propagated, batch: Batch):
    """(pos [B], neg [B] or [B, k]) scores of a batch from `propagate_all`."""
    if out.nodes is not None:  # item i is node U + i (see `Propagated`)
      users = items = out.nodes
      offset = self.num_users
    else:
      users, items, offset = out.user, out.item, 0
    u = users[batch.users]  # [B, d]
    pos = jnp.sum(u * items[batch.pos_items + offset], axis=-1)  # [B]
    neg_emb = items[batch.neg_items + offset]  # [B, d] or [B, k, d]
    if neg_emb.ndim == 3:
      neg = jnp.einsum("bd,bkd->bk", u, neg_emb)
    else:
      neg = jnp.sum(u * neg_emb, axis=-1)
    return pos, neg

  def bpr_terms(self, out: Propagated, batch: Batch,
                score_batch: Batch | None = None):
    """BPR loss and L2 penalty on the batch's ego embeddings.

    Args:
      out: the propagated tables (`propagate_all`), or tables holding only
        the batch's rows (then `score_batch` indexes them).
      batch: the training batch; its ids select the ego rows of the penalty.
      score_batch: the batch whose ids index `out` for the scores, when
        `out` holds only the batch's rows (default: `batch`).

    Returns:
      (bpr, reg) scalars.
    """
    mask = batch.mask
    pos, neg = self.pair_scores(out, batch if score_batch is None
                                else score_batch)
    bpr = losses.bpr_loss(pos, neg, mask)
    ego_rows = [(out.user_ego, batch.users),
                (out.item_ego, batch.pos_items),
                (out.item_ego, batch.neg_items)]
    if out.user is out.user_ego:
      # MF-like: the ranked rows are the ego rows, so the L2 gradients join
      # the BPR scatter-adds; gathering is cheapest.
      reg = losses.l2_penalty(*[t[r] for t, r in ego_rows], mask=mask)
    else:
      # Models that propagate: the gradient reaching the tables is dense anyway,
      # so one dense pass beats gathering and scattering the batch rows.
      reg = losses.l2_penalty_of_rows(ego_rows, mask=mask)
    return bpr, reg

  def loss(self, graph: jraph.GraphsTuple, batch: Batch):
    """BPR + l2_reg * L2(ego). Returns (loss, metrics)."""
    out = self.propagate_all(graph, train=True)
    bpr, reg = self.bpr_terms(out, batch)
    loss = bpr + self.l2_reg * reg
    return loss, {"loss": loss, "bpr": bpr, "reg": reg}

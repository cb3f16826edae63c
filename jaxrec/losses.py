"""Loss functions as pure JAX functions (Optax style: arrays in, scalar out).

Every loss takes an optional `mask` (1 for real rows, 0 for padding rows of a
fixed-shape batch) and averages over real rows only, so padded and unpadded
batches give the same value.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from jaxrec.batches import Batch


def _masked_mean(values: jnp.ndarray, mask: Optional[jnp.ndarray]) -> jnp.ndarray:
  if mask is None:
    return jnp.mean(values)
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def bpr_loss(pos_scores: jnp.ndarray, neg_scores: jnp.ndarray,
             mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """Bayesian personalised ranking: mean of -log sigmoid(s_pos - s_neg).

  Args:
    pos_scores: scores of observed items. # [B]
    neg_scores: scores of sampled negatives. # [B] or [B, n_neg]
      (several negatives are averaged per row).
    mask: optional row mask. # [B]

  Returns:
    Scalar loss.
  """
  if neg_scores.ndim == pos_scores.ndim + 1:
    per_row = jnp.mean(-jax.nn.log_sigmoid(pos_scores[:, None] - neg_scores),
                       axis=-1)  # [B]
  else:
    per_row = -jax.nn.log_sigmoid(pos_scores - neg_scores)  # [B]
  return _masked_mean(per_row, mask)


def mse_loss(pred: jnp.ndarray, target: jnp.ndarray,
             mask: Optional[jnp.ndarray] = None,
             l2_reg: float = 0.0,
             reg_rows: Sequence[jnp.ndarray] = ()) -> jnp.ndarray:
  """Mean squared error of predicted ratings, plus an optional L2 penalty.

  loss = mean_b (pred_b - target_b)^2 + l2_reg * l2_penalty(*reg_rows, mask)
  over real rows (the penalty is `l2_penalty`: 0.5 * the squared norms of
  the batch's parameter rows, averaged over real rows).

  Args:
    pred: predicted ratings. # [B]
    target: observed ratings. # [B]
    mask: optional row mask. # [B]
    l2_reg: weight of the L2 penalty (0: none).
    reg_rows: row-aligned parameter rows to penalise, each [B] or [B, d]
      (1-D rows, e.g. biases, count as [B, 1]).

  Returns:
    Scalar loss.
  """
  loss = _masked_mean(jnp.square(pred - target), mask)
  if l2_reg and reg_rows:
    rows = [r[:, None] if r.ndim == 1 else r for r in reg_rows]
    loss = loss + l2_reg * l2_penalty(*rows, mask=mask)
  return loss


def l2_penalty(*embeddings: jnp.ndarray,
               mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """LightGCN-style L2 regulariser: sum_j 0.5 * ||e_j||^2 averaged over rows.

  Args:
    *embeddings: row-aligned batch embeddings, each [B, d] (or [B, k, d]).
    mask: optional row mask. # [B]

  Returns:
    Scalar: mean over real rows of 0.5 * sum of squared norms.
  """
  per_row = 0.0
  for emb in embeddings:
    sq = jnp.sum(jnp.square(emb), axis=-1)
    per_row = per_row + (sq if sq.ndim == 1 else jnp.sum(sq, axis=-1))
  return _masked_mean(0.5 * per_row, mask)


def l2_penalty_of_rows(table_rows: Sequence[tuple[jnp.ndarray, jnp.ndarray]],
                       mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """`l2_penalty(*[t[r] for t, r in table_rows], mask)` without the gathers.

  The sum over batch rows of ||t[r_b]||^2 equals the sum over table rows of
  count_r * ||t_r||^2, with count_r the number of real batch rows that pick
  row r. One dense pass over each table (its gradient, 2 count_r t_r, is
  dense, as a table's gradient is anyway) replaces gathering B rows and
  scatter-adding their gradients into a zero table: random reads that, on
  tables beyond the cache, cost far more than the pass (1e7-edge LightGCN
  step: docs/results/speed.md). Equal up to float
  summation order.

  Args:
    table_rows: (table [n, d], rows [B] or [B, k] int) pairs; pairs that
      share a table (the same array object, e.g. positive and negative
      items) read it once.
    mask: optional row mask. # [B]

  Returns:
    Scalar: mean over real rows of 0.5 * sum of squared norms.
  """
  counts = {}  # id(table) -> (table, [n] how often each row is picked)
  for table, rows in table_rows:
    weight = jnp.ones(rows.shape, table.dtype)
    if mask is not None:
      weight = weight * mask.astype(table.dtype).reshape(
          mask.shape + (1,) * (rows.ndim - mask.ndim))
    key = id(table)
    if key not in counts:
      counts[key] = (table, jnp.zeros(table.shape[0], table.dtype))
    counts[key] = (table, counts[key][1].at[rows.ravel()].add(weight.ravel()))
  total = sum(jnp.sum(c * jnp.sum(jnp.square(t), axis=-1))
              for t, c in counts.values())
  batch = table_rows[0][1].shape[0]
  real = (jnp.asarray(batch, jnp.float32) if mask is None
          else jnp.maximum(jnp.sum(mask.astype(jnp.float32)), 1.0))
  return 0.5 * total / real


def info_nce(anchors: jnp.ndarray, positives: jnp.ndarray,
             temperature: float = 0.2,
             mask: Optional[jnp.ndarray] = None,
             normalise: bool = True) -> jnp.ndarray:
  """InfoNCE with in-batch negatives (SGL / SimGCL / RLMRec form).

  loss_i = -log( exp(s(a_i, p_i)/t) / sum_j exp(s(a_i, p_j)/t) ), s = cosine
  when `normalise`, else dot product. Masked rows are neither anchors nor
  negatives. Leading axes are independent losses (e.g. RLMRec-Con's user,
  positive-item and negative-item terms stacked into one [3, B, d] call).

  The anchors are scaled by 1/t ([B, d] values instead of [B, B] logits),
  the positive logit is the row dot product and the denominator one masked
  `logsumexp`, so the [B, B] logits are read by one fused pass forward and
  one backward (no log-softmax table, no one-hot diagonal).

  Args:
    anchors: first view. # [..., B, d]
    positives: second view, row-aligned with anchors. # [..., B, d]
    temperature: softmax temperature t > 0.
    mask: optional row mask. # [..., B]
    normalise: L2-normalise both views first (cosine similarity).

  Returns:
    The loss, averaged over real rows: a scalar for [B, d] views, else one
    per leading index. # [...]
  """
  if normalise:
    anchors = anchors / jnp.maximum(
        jnp.linalg.norm(anchors, axis=-1, keepdims=True), 1e-12)
    positives = positives / jnp.maximum(
        jnp.linalg.norm(positives, axis=-1, keepdims=True), 1e-12)
  scaled = anchors / temperature  # [..., B, d]
  logits = jnp.einsum("...bd,...cd->...bc", scaled, positives)  # [..., B, B]
  pos = jnp.sum(scaled * positives, axis=-1)  # [..., B] the diagonal
  if mask is not None:
    # A finite fill: a row with no real column stays finite (and its
    # gradient too); exp underflows to exactly 0 on masked columns.
    logits = jnp.where(mask[..., None, :] > 0, logits, -1e30)
  per_row = jax.nn.logsumexp(logits, axis=-1) - pos  # [..., B]
  if mask is None:
    return jnp.mean(per_row, axis=-1)
  mask = mask.astype(per_row.dtype)
  per_row = jnp.where(mask > 0, per_row, 0.0)
  return jnp.sum(per_row, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1), 1.0)


def sampled_softmax(pos_scores: jnp.ndarray, neg_scores: jnp.ndarray,
                    temperature: float = 1.0,
                    mask: Optional[jnp.ndarray] = None,
                    neg_mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """Softmax cross-entropy of the positive against sampled negatives.

  loss_i = -log( exp(p_i/t) / (exp(p_i/t) + sum_k m_ik exp(n_ik/t)) ),
  computed as logaddexp(p_i/t, logsumexp_k n_ik/t) - p_i/t (no [B, 1+K]
  concatenation or log-softmax table).

  Args:
    pos_scores: positive scores. # [B]
    neg_scores: negative scores. # [B, K]
    temperature: t > 0 (1.0: scores already divided by t).
    mask: optional row mask. # [B]
    neg_mask: optional mask m of the negatives (0 = not in the denominator),
      e.g. padding negatives or a shared negative that is the row's own
      positive (an "accidental hit"). # [K] or [B, K]

  Returns:
    Scalar loss.
  """
  if temperature != 1.0:
    pos_scores, neg_scores = pos_scores / temperature, neg_scores / temperature
  if neg_mask is not None:  # finite fill: a row without negatives stays finite
    neg_scores = jnp.where(neg_mask > 0, neg_scores, -1e30)
  lse = jnp.logaddexp(pos_scores, jax.nn.logsumexp(neg_scores, axis=-1))  # [B]
  return _masked_mean(lse - pos_scores, mask)


def info_nce_pool(anchors: jnp.ndarray, positives: jnp.ndarray,
                  pool: jnp.ndarray, temperature: float = 0.2,
                  mask: Optional[jnp.ndarray] = None,
                  pool_mask: Optional[jnp.ndarray] = None,
                  normalise: bool = True,
                  positive_in_pool: bool = False) -> jnp.ndarray:
  """InfoNCE whose negatives are a separate candidate pool.

  loss_i = -log( exp(s(a_i, p_i)/t) / (exp(s(a_i, p_i)/t)
                                       + sum_j exp(s(a_i, c_j)/t)) ).
  With `positive_in_pool` the pool already holds every positive (e.g. the
  pool is all users of the second view) and the denominator is the pool
  alone, sum_j exp(s(a_i, c_j)/t): the released SGL code's
  `calc_ssl_loss_v2`, where each positive counts exactly once.

  Args:
    anchors: first view. # [B, d]
    positives: second view, row-aligned with anchors. # [B, d]
    pool: candidate negatives. # [P, d]
    temperature: softmax temperature t > 0.
    mask: optional row mask of the anchors. # [B]
    pool_mask: optional mask of the pool rows (0 = not a negative). # [P]
    normalise: cosine similarity instead of dot product.
    positive_in_pool: the pool contains each anchor's positive (above).

  Returns:
    Scalar loss.
  """
  if normalise:
    anchors, positives, pool = (
        x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
        for x in (anchors, positives, pool))
  pos = jnp.sum(anchors * positives, axis=-1) / temperature  # [B]
  neg = anchors @ pool.T / temperature  # [B, P]
  if pool_mask is not None:
    neg = jnp.where(pool_mask[None, :] > 0, neg, -jnp.inf)
  if positive_in_pool:
    per_row = jax.nn.logsumexp(neg, axis=-1) - pos  # [B]
  else:
    logits = jnp.concatenate([pos[:, None], neg], axis=1)  # [B, 1+P]
    per_row = -jax.nn.log_softmax(logits, axis=-1)[:, 0]  # [B]
  return _masked_mean(per_row, mask)


def bce_link_loss(pos_logits: jnp.ndarray, neg_logits: jnp.ndarray,
                  mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """Link-reconstruction binary cross-entropy (graph autoencoders).

  loss_i = -log sigmoid(p_i) - mean_k log(1 - sigmoid(n_ik)): an observed
  edge is labelled 1, its sampled non-edges 0; rows are averaged.

  Args:
    pos_logits: decoder logits of observed edges. # [B]
    neg_logits: logits of sampled non-edges. # [B] or [B, K]
    mask: optional row mask. # [B]

  Returns:
    Scalar loss.
  """
  neg_term = -jax.nn.log_sigmoid(-neg_logits)  # -log(1 - sigmoid(n))
  if neg_term.ndim == pos_logits.ndim + 1:
    neg_term = jnp.mean(neg_term, axis=-1)  # [B]
  per_row = -jax.nn.log_sigmoid(pos_logits) + neg_term  # [B]
  return _masked_mean(per_row, mask)


def first_occurrence_mask(ids: jnp.ndarray,
                          mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """1.0 on the first real row of each distinct id, else 0.0 (jit-safe).

  Contrastive losses over a batch's users/items use it so a repeated id is
  not its own negative (the static-shape analogue of `unique`).

  Args:
    ids: int ids. # [B]
    mask: optional row mask; masked rows never count. # [B]

  Returns:
    float32 mask. # [B]
  """
  real = jnp.ones(ids.shape, bool) if mask is None else mask > 0
  key = jnp.where(real, ids, -1)  # [B]
  order = jnp.argsort(key, stable=True)  # [B]
  sorted_key = key[order]
  first_sorted = jnp.concatenate(
      [jnp.ones((1,), bool), sorted_key[1:] != sorted_key[:-1]])
  first = jnp.zeros(ids.shape, bool).at[order].set(first_sorted)
  return (first & real).astype(jnp.float32)


CONTRAST_NEGATIVES = ("batch", "all")


def batch_contrast(view1: jnp.ndarray, view2: jnp.ndarray, batch: Batch,
                   num_users: int, num_items: int,
                   temperature: float, max_rows: int = 0,
                   negatives: str = "batch") -> jnp.ndarray:
  """InfoNCE(users) + InfoNCE(items) between two node views of a batch.

  Positives are the same node in the other view. With negatives='batch' the
  anchors and negatives are the batch's distinct users (items), each once,
  as `torch.unique` gives them in the SimGCL / SGL code: the distinct ids
  are moved to the front and the InfoNCE runs on the smallest of a few
  static sizes that holds them (`_distinct_info_nce`), so its k x k
  similarities cost what the k distinct ids need, not B x B (a batch of
  2,048 rows holds ~1,250 distinct users on Last.fm, ~470 on
  MovieLens-small). With 'all' the denominator sums over ALL users (items)
  of the second view and every batch row is an anchor, as in the released
  SGL code (`calc_ssl_loss_v2`, its default); it costs B x (U + I)
  similarities instead.

  Args:
    view1, view2: node representations of the two views. # [N, d]
    batch: the `batches.Batch` (its users, pos_items and mask). # [B]
    num_users, num_items: U, I.
    temperature: InfoNCE temperature.
    max_rows: 0 = contrast every batch row; else only the first `max_rows`
      rows of the batch. Batches are shuffled (`sampler.epoch_triples`), so
      these are a uniform random subset; it bounds the [B, B] similarity
      cost for the large batches of full-graph training (B = 16,384 costs
      ~17 GFLOP per InfoNCE, B = 4,096 1/16 of that) while BPR keeps the
      whole batch.
    negatives: 'batch' or 'all' (above).

  Returns:
    Scalar loss.
  """
  if negatives not in CONTRAST_NEGATIVES:
    raise ValueError(f"batch_contrast: negatives must be one of "
                     f"{CONTRAST_NEGATIVES}, got {negatives!r}")
  users, items, mask = batch.users, batch.pos_items, batch.mask
  if max_rows and max_rows < users.shape[0]:  # static shapes: a slice
    users, items, mask = users[:max_rows], items[:max_rows], mask[:max_rows]
  if negatives == "all":
    # Node rows are users, then items, then padding.
    u1, i1 = view1[:num_users], view1[num_users:num_users + num_items]
    u2, i2 = view2[:num_users], view2[num_users:num_users + num_items]
    return (info_nce_pool(u1[users], u2[users], u2, temperature,
                                 mask=mask, positive_in_pool=True) +
            info_nce_pool(i1[items], i2[items], i2, temperature,
                                 mask=mask, positive_in_pool=True))
  # Rows are gathered from the whole node tables (items at offset U): the
  # gradient is then one scatter into [N, d], not a pad of a [U, d] slice.
  return (_distinct_info_nce(view1, view2, users, mask, temperature, 0,
                             num_users) +
          _distinct_info_nce(view1, view2, items, mask, temperature,
                             num_users, num_items))


def _distinct_ids(ids: jnp.ndarray, mask: jnp.ndarray,
                  num_ids: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  """The distinct ids of the real rows, ascending, moved to the front.

  Args:
    ids: int ids in [0, num_ids). # [B]
    mask: row mask; masked rows never count. # [B]
    num_ids: id range (a sentinel past it marks masked rows).

  Returns:
    (front, count): the count distinct ids then zeros # [B], and count # [].
  """
  key = jnp.where(mask > 0, ids, num_ids)  # [B] masked rows sort last
  key = jnp.sort(key)
  first = jnp.concatenate([jnp.ones((1,), bool), key[1:] != key[:-1]])
  first = first & (key < num_ids)  # [B]
  slot = jnp.cumsum(first) - 1  # [B] rank of each first occurrence
  slot = jnp.where(first, slot, ids.shape[0])  # the rest: out of range
  front = jnp.zeros_like(ids).at[slot].set(key, mode="drop")
  return front, jnp.sum(first.astype(jnp.int32))


def _contrast_sizes(batch: int, num_ids: int) -> tuple[int, ...]:
  """Static InfoNCE sizes for `_distinct_info_nce`: multiples of ~B/4.

  Every size is a compiled `lax.switch` branch (forward and gradient): four
  keep compilation short, at most (5/4)^2 of the InfoNCE work of an exact
  size.
  """
  top = min(batch, num_ids)
  step = max(8, -(-batch // 4))
  return tuple(range(step, top, step)) + (top,)


# Jitted so that eager callers (tests) compile its switch once per shape.
@functools.partial(jax.jit,
                   static_argnames=("temperature", "offset", "num_ids"))
def _distinct_info_nce(view1: jnp.ndarray, view2: jnp.ndarray,
                       ids: jnp.ndarray, mask: jnp.ndarray,
                       temperature: float, offset: int,
                       num_ids: int) -> jnp.ndarray:
  """`info_nce` over the distinct ids of a batch column (each id once).

  The k distinct ids are gathered to the front of a [B] vector and
  `lax.switch` runs `info_nce` on its first s rows, s the smallest of
  `_contrast_sizes` >= k, rows past k masked: the same anchors, negatives
  and mean as a [B, B] InfoNCE whose repeated and padding rows are masked,
  at (s / B)^2 of its cost. Each size is compiled once; only the chosen one
  runs. The chosen branch returns the loss with its gradients (a custom
  VJP): differentiating through `lax.switch` instead would make every
  branch emit zero-filled copies of every other branch's [s, s] residuals.
  The gradients are computed in the forward pass, used or not.

  Args:
    view1, view2: the two node views. # [N, d]
    ids: the batch's ids of one node type, in [0, num_ids). # [B]
    mask: row mask. # [B]
    temperature: InfoNCE temperature.
    offset: row of id 0 in the views (0 for users, U for items).
    num_ids: how many nodes of that type (U or I).

  Returns:
    Scalar loss (0 for a batch without real rows).
  """
  front, count = _distinct_ids(ids, mask, num_ids)
  sizes = _contrast_sizes(ids.shape[0], num_ids)

  def contrast(size, rows1, rows2, count):
    real = (jnp.arange(size) < count).astype(rows1.dtype)  # [size]
    loss, grads = jax.value_and_grad(
        lambda a, b: info_nce(a, b, temperature, mask=real), (0, 1))(
            rows1[:size], rows2[:size])
    pad = ((0, rows1.shape[0] - size), (0, 0))
    return loss, jnp.pad(grads[0], pad), jnp.pad(grads[1], pad)  # [B, d]

  def forward(rows1, rows2, count):
    branch = jnp.searchsorted(jnp.asarray(sizes), count)  # first size >= k
    loss, grad1, grad2 = jax.lax.switch(
        branch, [functools.partial(contrast, size) for size in sizes],
        rows1, rows2, count)
    return loss, (grad1, grad2)

  def backward(grads, cotangent):
    return cotangent * grads[0], cotangent * grads[1], None

  loss_of = jax.custom_vjp(lambda *args: forward(*args)[0])
  loss_of.defvjp(forward, backward)
  return loss_of(view1[front + offset], view2[front + offset],  # [B, d]
                 count)

"""Full-ranking top-K evaluation and rating metrics.

Every user is scored against ALL items (no negative sampling), items the user
already interacted with in the `exclude` splits are masked to -inf, and the
top-K list is compared with the user's held-out `target` items. Users are
processed in batches by one jitted function, so the users x items score matrix
is never materialised; its size is bounded by `memory_budget_bytes`.

Masking happens inside the jit: the host passes each batch's excluded and
target (row, item) pairs as padded int32 arrays (pair count rounded up to a
power of two so few shapes are compiled; padding entries point to the
out-of-range row `B` and are dropped by the scatter). Target membership is
resolved by comparing target pairs against the top-K lists, O(pairs * K),
so no dense [B, I] membership array is built either.

Top-K is exact: `jaxrec.topk.chunked_top_k` (re-exported here).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from jaxrec.data.dataset import DataError
from jaxrec.topk import chunked_top_k, default_chunk_size, next_pow2

ScoreFn = Callable[[Any, jax.Array], jax.Array]

ACCURACY_METRICS = ("recall", "ndcg", "precision", "hit_rate", "mrr", "map")
BEYOND_METRICS = ("novelty", "avg_popularity")
DEFAULT_MEMORY_BUDGET = 1 << 30  # 1 GiB for the per-batch [B, I] arrays.
# Inside a batch, users are scored in blocks of about this many bytes of
# float32 scores: blocks that (nearly) stay in cache across the mask, chunk-max
# and gather passes are ~1.5x faster on CPU than one big [B, I] block.
SCORE_BLOCK_BYTES = 16 << 20
# Live float32 [B, I]-sized buffers per batch (scores, masked scores, chunk
# reductions and XLA temporaries), used to turn the memory budget into a
# user batch size.
_ROW_SAFETY_FACTOR = 4
_MIN_PAIR_BUCKET = 64


def _ranking_sums(top_val, top_idx, tgt_rows, tgt_items, num_targets,
                  row_weight, ks):
  """Per-batch sums of the accuracy metrics. # [len(ACCURACY_METRICS), nK]"""
  batch, k_max = top_idx.shape
  # hit[b, j] = top_idx[b, j] is one of row b's target items.
  rows = jnp.minimum(tgt_rows, batch - 1)
  match = (tgt_items[:, None] == top_idx[rows]).astype(jnp.int32)  # [P, Kmax]
  hits = jnp.zeros((batch, k_max), jnp.int32).at[tgt_rows].add(
      match, mode="drop")  # [B, Kmax]
  hits = (jnp.minimum(hits, 1) * jnp.isfinite(top_val)).astype(jnp.float32)
  # Host-side constants: transcendental ops are slow to compile on CPU.
  rank = np.arange(1, k_max + 1, dtype=np.float32)  # [Kmax]
  discount = (1.0 / np.log2(rank + 1.0)).astype(np.float32)  # [Kmax]
  cut = np.asarray(ks) - 1  # [nK]
  # Prefix sums as products with an upper-triangular ones matrix: one small
  # dot each instead of scans (cheaper to compile; exact for these sizes).
  upper = np.triu(np.ones((k_max, k_max), np.float32))  # [Kmax, Kmax]
  prefix = lambda x, cols: jnp.dot(x, upper[:, cols],
                                   precision=jax.lax.Precision.HIGHEST)
  cum_hits = prefix(hits, slice(None))  # [B, Kmax]
  n_hits = cum_hits[:, cut]  # [B, nK]
  dcg = prefix(hits * discount, cut)  # [B, nK]
  avg_prec = prefix(hits * cum_hits / rank, cut)  # [B, nK]
  first_in_cut = upper[:, cut].T[None] > 0  # [1, nK, Kmax]
  recip_rank = jnp.max(jnp.where(first_in_cut, (hits / rank)[:, None, :], 0.0),
                       axis=2)  # [B, nK]
  ideal_dcg = np.cumsum(discount, dtype=np.float64).astype(np.float32)  # [Kmax]
  n_target = num_targets.astype(jnp.float32)[:, None]  # [B, 1]
  n_ideal = jnp.clip(jnp.minimum(num_targets[:, None], cut + 1), 1, None)  # [B, nK]
  per_user = jnp.stack([
      n_hits / jnp.maximum(n_target, 1.0),  # recall
      dcg / jnp.asarray(ideal_dcg)[n_ideal - 1],  # ndcg
      n_hits / np.asarray(ks, np.float32),  # precision
      (n_hits > 0).astype(jnp.float32),  # hit_rate
      recip_rank,  # mrr
      avg_prec / n_ideal.astype(jnp.float32),  # map
  ])  # [M, B, nK], in ACCURACY_METRICS order
  return jnp.sum(per_user * row_weight[None, :, None], axis=1)  # [M, nK]


def _beyond_sums(top_val, top_idx, row_weight, popularity, self_info, covered,
                 ks):
  """Novelty / popularity sums [2, nK] and the updated coverage masks [nK, I]."""
  num_items = popularity.shape[0]
  k_max = top_idx.shape[1]
  cut = np.asarray(ks) - 1  # [nK]
  valid = jnp.isfinite(top_val).astype(jnp.float32)  # [B, Kmax]
  pop = popularity[top_idx]  # [B, Kmax]
  info = self_info[top_idx]  # [B, Kmax]
  in_cut = (np.arange(k_max)[:, None] <= cut[None, :]).astype(np.float32)  # [Kmax, nK]
  prefix = lambda x: jnp.dot(x, in_cut, precision=jax.lax.Precision.HIGHEST)
  n_valid = jnp.maximum(prefix(valid), 1.0)  # [B, nK]
  novelty = prefix(info * valid) / n_valid  # [B, nK]
  avg_pop = prefix(pop * valid) / n_valid  # [B, nK]
  sums = jnp.stack([novelty, avg_pop]) * row_weight[None, :, None]  # [2, B, nK]
  # covered[i, item] |= item is in some evaluated user's top-ks[i].
  keep = ((valid > 0) & (row_weight[:, None] > 0))[None]  # [1, B, Kmax]
  items = jnp.where(keep & (in_cut.T[:, None, :] > 0), top_idx[None],
                    num_items)  # [nK, B, Kmax]
  which = jnp.broadcast_to(jnp.arange(len(ks))[:, None, None], items.shape)
  covered = covered.at[which.reshape(-1), items.reshape(-1)].set(True, mode="drop")
  return jnp.sum(sums, axis=1), covered


@functools.partial(
    jax.jit, static_argnames=("score_fn", "ks", "chunk_size", "num_items"),
    donate_argnames=("covered",))
def _eval_batch(score_params, users, row_weight, excl_rows, excl_items,
                tgt_rows, tgt_items, num_targets, popularity, self_info, covered,
                *, score_fn, ks, chunk_size, num_items):
  """Scores, masks and ranks one user batch block by block; returns metric sums.

  Args:
    score_params: pytree passed to `score_fn`.
    users: user ids, one row per scoring block. # [nb, blk]
    row_weight: 1 for evaluated users, 0 for padding rows. # [B = nb * blk]
    excl_rows / excl_items: excluded (row in block, item) pairs; padding rows
      equal blk and are dropped. # [nb, Pe]
    tgt_rows / tgt_items: target (row in batch, item) pairs; padding rows
      equal B and are dropped. # [Pt]
    num_targets: |T_u| per row. # [B]
    popularity / self_info: per-item train counts and -log2(pop / U), or None.
    covered: items seen in some top-K so far, per K. # [nK, I] bool
    score_fn / ks / chunk_size / num_items: static configuration.

  Returns:
    (metric sums [M, nK], updated covered).
  """
  num_blocks, block = users.shape
  k_max = max(ks)

  def rank_block(args):
    block_users, rows, cols = args  # [blk], [Pe], [Pe]
    scores = score_fn(score_params, block_users)  # [blk, I]
    if scores.shape != (block, num_items):
      raise ValueError(f"score_fn must return scores of shape [{block}, "
                       f"{num_items}], got {scores.shape}")
    if not jnp.issubdtype(scores.dtype, jnp.floating):
      scores = scores.astype(jnp.float32)
    scores = scores.at[rows, cols].set(-jnp.inf, mode="drop")  # [blk, I]
    return chunked_top_k(scores, k_max, chunk_size)  # [blk, Kmax] x 2

  if num_blocks == 1:
    top_val, top_idx = rank_block((users[0], excl_rows[0], excl_items[0]))
  else:  # one cache-sized [blk, I] score block alive at a time
    top_val, top_idx = jax.lax.map(rank_block, (users, excl_rows, excl_items))
  top_val = top_val.reshape(num_blocks * block, k_max)  # [B, Kmax]
  top_idx = top_idx.reshape(num_blocks * block, k_max)  # [B, Kmax]
  sums = _ranking_sums(top_val, top_idx, tgt_rows, tgt_items, num_targets,
                       row_weight, ks)
  if popularity is not None:
    extra, covered = _beyond_sums(top_val, top_idx, row_weight, popularity,
                                  self_info, covered, ks)
    sums = jnp.concatenate([sums, extra], axis=0)
  return sums, covered


def _canonical_csr(mat, shape: tuple[int, int], name: str) -> sp.csr_matrix:
  """A binary-pattern CSR with sorted, duplicate-free, explicit nonzeros."""
  if not sp.issparse(mat):
    raise DataError(f"evaluate_ranking: {name} must be a scipy sparse "
                    f"user x item matrix, got {type(mat).__name__}")
  if mat.shape != shape:
    raise DataError(f"evaluate_ranking: {name} has shape {mat.shape}, "
                    f"expected {shape} (users x items)")
  mat = sp.csr_matrix(mat)
  if not mat.has_canonical_format:
    mat = mat.copy()
    mat.sum_duplicates()
  if mat.nnz and not np.all(mat.data != 0):
    mat = mat.copy()
    mat.eliminate_zeros()
  return mat


def _row_pairs(mat: sp.csr_matrix, users: np.ndarray):
  """(position in `users`, item) pairs of the given rows, vectorised."""
  start = mat.indptr[users].astype(np.int64)  # [n]
  lens = (mat.indptr[users + 1] - start).astype(np.int64)  # [n]
  total = int(lens.sum())
  pos = np.repeat(np.arange(len(users), dtype=np.int64), lens)  # [total]
  offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
  items = mat.indices[np.repeat(start, lens) + offset].astype(np.int32)
  return pos, items, lens


def _grouped_pairs(pos: np.ndarray, items: np.ndarray, group_size: int,
                   num_groups: int) -> tuple[np.ndarray, np.ndarray]:
  """Pairs sorted by `pos`, bucketed by group = pos // group_size.

  Returns:
    (rows, cols): int32 arrays [num_groups, P], rows relative to the group,
    P = the largest group's pair count rounded up to a power of two; padding
    entries have row == group_size (out of range, dropped by the scatter).
  """
  group = pos // group_size  # [n]
  counts = np.bincount(group, minlength=num_groups)  # [G]
  size = max(_MIN_PAIR_BUCKET, next_pow2(counts.max() if len(pos) else 0))
  slot = np.arange(len(pos)) - (np.cumsum(counts) - counts)[group]  # [n]
  rows = np.full((num_groups, size), group_size, np.int32)
  cols = np.zeros((num_groups, size), np.int32)
  rows[group, slot] = pos - group * group_size
  cols[group, slot] = items
  return rows, cols


def score_block_users(num_items: int, batch: int,
                      block_bytes: int = SCORE_BLOCK_BYTES) -> int:
  """Users scored together: a [blk, I] float32 block of about `block_bytes`.

  Args:
    num_items: number of items I.
    batch: users per jitted batch (upper bound).
    block_bytes: target size of one score block.

  Returns:
    The block size blk, balanced so ceil(batch / blk) * blk - batch is small.
  """
  target = max(1, min(batch, block_bytes // (4 * max(num_items, 1))))
  num_blocks = -(-batch // target)
  return -(-batch // num_blocks)


def user_batch_size_for(num_items: int, num_users: int,
                        memory_budget_bytes: Optional[int] = None) -> int:
  """User batch size whose [B, I] float32 working set fits the memory budget.

  Args:
    num_items: number of items I scored per user.
    num_users: number of users to evaluate.
    memory_budget_bytes: bytes for the per-batch arrays (default 1 GiB).

  Returns:
    A batch size (>= 1). Batches are balanced so the last one is barely padded,
    and rounded up to a multiple of 32 so that nearby user counts share one
    compiled shape.
  """
  budget = memory_budget_bytes or DEFAULT_MEMORY_BUDGET
  max_batch = max(1, budget // (4 * max(num_items, 1) * _ROW_SAFETY_FACTOR))
  num_users = max(num_users, 1)
  if num_users <= max_batch:
    return num_users
  num_batches = -(-num_users // max_batch)
  batch = -(-num_users // num_batches)
  return int(min(max_batch, -(-batch // 32) * 32)) if max_batch >= 32 else int(batch)


def evaluate_ranking(score_fn: ScoreFn, score_params: Any, target: sp.spmatrix,
                     exclude: Sequence[sp.spmatrix] = (), ks: Sequence[int] = (20,),
                     user_batch_size: Optional[int] = None,
                     memory_budget_bytes: Optional[int] = None,
                     users: Optional[np.ndarray] = None,
                     item_popularity: Optional[np.ndarray] = None,
                     chunk_size: Optional[int] = None,
                     block_users: Optional[int] = None,
                     across_processes: bool = False) -> dict[str, float]:
  """Full-ranking top-K evaluation of all items (LightGCN/RecBole conventions).

  For user u with held-out items T_u, ranking of all items not in any
  `exclude` matrix, and hit_k = 1 if the item at rank k (1-based) is in T_u:
    recall@K    = sum_{k<=K} hit_k / |T_u|
    precision@K = sum_{k<=K} hit_k / K
    ndcg@K      = DCG / IDCG, DCG = sum_{k<=K} hit_k / log2(k + 1),
                  IDCG = sum_{k<=min(|T_u|, K)} 1 / log2(k + 1)
    hit_rate@K  = 1[sum_{k<=K} hit_k > 0]
    mrr@K       = 1 / (rank of the first hit) if it is <= K, else 0
    map@K       = sum_{k<=K} hit_k * precision@k / min(|T_u|, K)
  With `item_popularity` (pop_i = train interaction count of item i):
    coverage@K       = |union of evaluated users' top-K lists| / num_items
    novelty@K        = mean over users and their top-K items of
                       -log2(max(pop_i, 1) / num_users_total)
    avg_popularity@K = mean over users and their top-K items of pop_i
  Metrics are averaged over the evaluated users: users with no target item
  are skipped (not scored, not counted). Items scored -inf (excluded items, or
  by `score_fn`) never count as hits or recommendations; they only fill a
  list when a user has fewer than K rankable items. Ties in scores are broken
  towards the lower item index.

  Args:
    score_fn: pure JAX function `(score_params, users[B] int32) -> [B, I]`
      scores; used as a static jit argument (pass the same function object
      across calls to reuse the compilation).
    score_params: pytree of arrays passed to `score_fn` (e.g. embeddings).
    target: held-out user x item matrix (scipy sparse, [U, I]).
    exclude: user x item matrices whose items are masked before ranking
      (train; train + valid when testing).
    ks: cut-offs K; the top-max(ks) list is computed once.
    user_batch_size: users per jitted batch; derived from the budget if None.
    memory_budget_bytes: budget for the per-batch [B, I] arrays (default 1 GiB).
    users: optional subset of user ids to evaluate (default: all users).
    item_popularity: optional train interaction count per item, [I]; enables
      coverage@K, novelty@K and avg_popularity@K.
    chunk_size: item chunk size of `chunked_top_k` (None = auto, 0 = plain
      `jax.lax.top_k`).
    block_users: users scored together inside a batch (None = about
      SCORE_BLOCK_BYTES of scores, see `score_block_users`); the batch is
      rounded up to a multiple of it.
    across_processes: in a multi-process JAX job (`jax.distributed`), split
      the evaluated users over the processes: each scores a contiguous share
      with `score_params` (process-local arrays, equal on every process) and
      the metric sums are added up (coverage sets joined) over processes, so
      every process returns the metrics of all users. Every process must
      call it with the same arguments. No effect in a one-process job.

  Returns:
    {'recall@K', 'ndcg@K', 'precision@K', 'hit_rate@K', 'mrr@K', 'map@K'
    (+ 'coverage@K', 'novelty@K', 'avg_popularity@K') for K in ks,
    'num_users_evaluated'}. Averages are 0.0 when no user has a target item.
  """
  num_users, num_items = target.shape
  ks = tuple(sorted({int(k) for k in ks}))
  if not ks or ks[0] < 1 or ks[-1] > num_items:
    raise DataError(f"evaluate_ranking: ks must lie in [1, {num_items}], got {ks}")
  target = _canonical_csr(target, (num_users, num_items), "target")
  exclude = [_canonical_csr(m, (num_users, num_items), f"exclude[{i}]")
             for i, m in enumerate(exclude)]
  if users is None:
    users = np.arange(num_users, dtype=np.int32)
  users = np.asarray(users).astype(np.int32).reshape(-1)
  if users.size and (users.min() < 0 or users.max() >= num_users):
    raise DataError(f"evaluate_ranking: users must lie in [0, {num_users}), got "
                    f"[{users.min()}, {users.max()}]")
  users = users[np.diff(target.indptr)[users] > 0]  # skip users without targets
  total_eval = int(users.size)
  share = across_processes and jax.process_count() > 1
  if share:  # this process's contiguous share of the evaluated users
    users = np.array_split(users, jax.process_count())[jax.process_index()]
  num_eval = int(users.size)
  popularity = None
  if item_popularity is not None:
    popularity = np.asarray(item_popularity, np.float32).reshape(-1)
    if popularity.shape != (num_items,):
      raise DataError(f"evaluate_ranking: item_popularity must have shape "
                      f"[{num_items}], got {np.shape(item_popularity)}")
  names = list(ACCURACY_METRICS) + (list(BEYOND_METRICS) if popularity is not None else [])
  if total_eval == 0:
    out = {f"{m}@{k}": 0.0 for m in names for k in ks}
    if popularity is not None:
      out.update({f"coverage@{k}": 0.0 for k in ks})
    out["num_users_evaluated"] = 0
    return out

  num_cov = len(ks) if popularity is not None else 1
  totals = np.zeros((len(names), len(ks)), np.float64)  # [M, nK]
  covered = np.zeros((num_cov, num_items), bool)  # [nK, I]
  if num_eval:  # (a process's share may be empty)
    batch = int(user_batch_size or user_batch_size_for(
        num_items, num_eval, memory_budget_bytes))
    block = int(block_users or score_block_users(num_items, batch))
    block = min(block, batch)
    blocks_per_batch = -(-batch // block)
    batch = blocks_per_batch * block
    num_batches = -(-num_eval // batch)
    # All (user position, item) pairs at once, bucketed per block (exclusions)
    # and per batch (targets); the loop below only slices.
    t_pos, t_items, t_lens = _row_pairs(target, users)
    e_parts = [_row_pairs(m, users) for m in exclude]
    e_pos = np.concatenate([p[0] for p in e_parts] + [np.zeros(0, np.int64)])
    e_items = np.concatenate([p[1] for p in e_parts] + [np.zeros(0, np.int32)])
    order = np.argsort(e_pos, kind="stable")
    e_rows, e_cols = _grouped_pairs(e_pos[order], e_items[order], block,
                                    num_batches * blocks_per_batch)  # [G, Pe]
    t_rows, t_cols = _grouped_pairs(t_pos, t_items, batch, num_batches)  # [nB, Pt]
    padded_users = np.zeros(num_batches * batch, np.int32)  # pad rows: user 0
    padded_users[:num_eval] = users
    padded_users = padded_users.reshape(-1, block)  # [G, blk]
    weight = np.zeros(num_batches * batch, np.float32)  # [nB * B]
    weight[:num_eval] = 1.0
    counts = np.zeros(num_batches * batch, np.int32)  # [nB * B]
    counts[:num_eval] = t_lens

    params = jax.device_put(score_params)
    pop_dev = info_dev = None
    if popularity is not None:
      pop_dev = jax.device_put(popularity)  # [I]
      info_dev = jax.device_put(  # self-information -log2(pop / U). # [I]
          (-np.log2(np.maximum(popularity, 1.0) / num_users)).astype(np.float32))
    covered = jnp.zeros((num_cov, num_items), bool)  # on the device
    step = functools.partial(
        _eval_batch, score_fn=score_fn, ks=ks, num_items=num_items,
        chunk_size=default_chunk_size(num_items, ks[-1]) if chunk_size is None
        else int(chunk_size))
    per_batch = []
    for b in range(num_batches):  # dispatch is asynchronous: host prep overlaps
      rows, blocks = slice(b * batch, (b + 1) * batch), slice(
          b * blocks_per_batch, (b + 1) * blocks_per_batch)
      sums, covered = step(params, padded_users[blocks], weight[rows],
                           e_rows[blocks], e_cols[blocks], t_rows[b], t_cols[b],
                           counts[rows], pop_dev, info_dev, covered)
      per_batch.append(sums)
    totals = np.sum([np.asarray(s, np.float64) for s in per_batch], axis=0)
    covered = np.asarray(covered)
  if share:
    totals, covered = _sum_over_processes(totals, covered)
    num_eval = total_eval
  out = {}
  for i, m in enumerate(names):
    for j, k in enumerate(ks):
      out[f"{m}@{k}"] = float(totals[i, j] / num_eval)
  if popularity is not None:
    frac = np.asarray(covered).sum(axis=1) / num_items
    out.update({f"coverage@{k}": float(frac[j]) for j, k in enumerate(ks)})
  out["num_users_evaluated"] = num_eval
  return out


def _sum_over_processes(totals: np.ndarray, covered: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
  """Adds metric sums [M, nK] and joins coverage [nK, I] over all processes."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  # float64 sums travel as int32 pairs (JAX arrays hold no float64 without
  # x64), so nothing is rounded on the way. # [P, M, 2 nK]
  bits = np.asarray(multihost_utils.process_allgather(
      np.ascontiguousarray(totals, np.float64).view(np.int32)))
  sums = np.ascontiguousarray(bits).view(np.float64).sum(axis=0)  # [M, nK]
  seen = np.asarray(multihost_utils.process_allgather(
      covered.astype(np.int32)))  # [P, nK, I]
  return sums, seen.max(axis=0) > 0


def dot_product_scores(params: tuple[jax.Array, jax.Array],
                       users: jax.Array) -> jax.Array:
  """Scores of all items for a user batch: user_emb[users] @ item_emb.T.

  Args:
    params: (user_emb [U, d], item_emb [I, d]).
    users: int32 user ids. # [B]

  Returns:
    Scores. # [B, I]
  """
  user_emb, item_emb = params
  return jnp.take(user_emb, users, axis=0) @ item_emb.T  # [B, I]


def evaluate_embeddings(user_emb, item_emb, target: sp.spmatrix,
                        exclude: Sequence[sp.spmatrix] = (),
                        ks: Sequence[int] = (20,), **kwargs) -> dict[str, float]:
  """`evaluate_ranking` with dot-product scores of user and item embeddings.

  Args:
    user_emb: user representations. # [U, d]
    item_emb: item representations. # [I, d]
    target: held-out user x item matrix (scipy sparse, [U, I]).
    exclude: user x item matrices masked before ranking.
    ks: cut-offs K.
    **kwargs: any other `evaluate_ranking` argument (user_batch_size,
      memory_budget_bytes, users, item_popularity, chunk_size).

  Returns:
    The metrics dict of `evaluate_ranking`.
  """
  if np.shape(user_emb)[0] != target.shape[0] or np.shape(item_emb)[0] != target.shape[1]:
    raise DataError(f"evaluate_embeddings: embeddings [{np.shape(user_emb)[0]}, d] x "
                    f"[{np.shape(item_emb)[0]}, d] do not match target {target.shape}")
  params = (jnp.asarray(user_emb), jnp.asarray(item_emb))
  return evaluate_ranking(dot_product_scores, params, target, exclude, ks, **kwargs)


# Metrics where lower is better (the rating task's selection metrics).
LOWER_IS_BETTER = ("rmse", "mae")


def selection_score(name: str, value: float) -> float:
  """`value` of metric `name` oriented so that higher is better.

  Args:
    name: metric name ('recall@20', 'rmse', ...).
    value: its value.

  Returns:
    -value for `LOWER_IS_BETTER` metrics, else value.
  """
  return -float(value) if name in LOWER_IS_BETTER else float(value)


def rating_metrics(pred, true) -> dict[str, float]:
  """Error metrics for explicit ratings.

  Args:
    pred: predicted ratings. # [n]
    true: observed ratings. # [n]

  Returns:
    {'mae': mean |pred - true|, 'rmse': sqrt(mean (pred - true)^2)}.
  """
  pred = np.asarray(pred, np.float64)
  true = np.asarray(true, np.float64)
  if pred.shape != true.shape or pred.size == 0:
    raise DataError(f"rating_metrics: pred {pred.shape} and true {true.shape} "
                    "must be non-empty arrays of equal shape")
  err = pred - true
  return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2)))}

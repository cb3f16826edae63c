"""Train/valid/test splitting of interactions (vectorised, seeded).

Every function returns `(train, valid, test)` as `Interactions`; the three
parts are disjoint, cover the input, and keep the input's row order. Per-user
splits never take a user's last training interaction: a user with n >= 2
interactions keeps >= 1 in train; a user with a single interaction keeps it in
train. Results are a pure function of the inputs and `seed`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxrec.data.dataset import DataError, Dataset, Interactions, empty_interactions

Split = tuple[Interactions, Interactions, Interactions]


def _check_ratios(test_ratio: float, valid_ratio: float) -> None:
  if not (0 <= test_ratio < 1 and 0 <= valid_ratio < 1 and
          test_ratio + valid_ratio < 1):
    raise DataError(f"split ratios: expected 0 <= test_ratio, valid_ratio and "
                    f"test_ratio + valid_ratio < 1, got test_ratio="
                    f"{test_ratio}, valid_ratio={valid_ratio}")


def rank_within_user(users: np.ndarray, key: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Rank of each row among its user's rows by ascending `key`.

  Ties are broken by row order (the sort is stable).

  Args:
    users: user id per row. # [n]
    key: sort key per row. # [n]

  Returns:
    (rank int64 [n], count [n] = number of rows of the row's user).
  """
  if len(users) == 0:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  return _rank_from_order(users, np.lexsort((key, users)))


def _rank_from_order(users: np.ndarray, order: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Ranks given `order`, a permutation that groups rows by user."""
  n = len(users)
  counts = np.bincount(users, minlength=int(users.max()) + 1)  # [U]
  starts = np.cumsum(counts) - counts  # [U]
  rank = np.empty(n, np.int64)
  rank[order] = np.arange(n) - starts[users[order]]
  return rank, counts[users]


def _split_by_rank(inter: Interactions, rank: np.ndarray, n_test: np.ndarray,
                   n_valid: np.ndarray) -> Split:
  """Rows with rank < n_test go to test, the next n_valid to valid."""
  test = rank < n_test
  valid = ~test & (rank < n_test + n_valid)
  train = ~(test | valid)
  return inter.subset(train), inter.subset(valid), inter.subset(test)


def _per_user_counts(count: np.ndarray, test_ratio: float, valid_ratio: float,
                     u_test, u_valid) -> tuple[np.ndarray, np.ndarray]:
  """n_test/n_valid for interaction counts `count`, keeping >= 1 in train."""
  n_test = np.floor(count * test_ratio + u_test).astype(np.int64)
  n_valid = np.floor(count * valid_ratio + u_valid).astype(np.int64)
  cap = np.maximum(count - 1, 0)
  n_test = np.minimum(n_test, cap)
  n_valid = np.minimum(n_valid, cap - n_test)
  return n_test, n_valid


def random_split(inter: Interactions, test_ratio: float = 0.2,
                 valid_ratio: float = 0.0, seed: int = 0) -> Split:
  """Per-user random split.

  Each user with n interactions gets floor(n * ratio + U) test (and valid)
  rows, U ~ Uniform[0, 1) per user (unbiased stochastic rounding; exact when
  n * ratio is an integer), capped so that >= 1 row stays in train.

  Args:
    inter: interactions to split.
    test_ratio: expected fraction of each user's rows moved to test.
    valid_ratio: expected fraction moved to valid.
    seed: random seed.

  Returns:
    (train, valid, test).
  """
  _check_ratios(test_ratio, valid_ratio)
  if len(inter) == 0:
    return inter, empty_interactions(), empty_interactions()
  rng = np.random.default_rng(seed)
  perm = rng.permutation(len(inter))  # random order within each user
  order = perm[np.argsort(inter.users[perm], kind="stable")]
  rank, _ = _rank_from_order(inter.users, order)
  per_user = np.bincount(inter.users)  # [U]
  u_test, u_valid = rng.random((2, len(per_user)))  # [2, U]
  n_test, n_valid = _per_user_counts(per_user, test_ratio, valid_ratio,
                                     u_test, u_valid)  # [U] each
  return _split_by_rank(inter, rank, n_test[inter.users],
                        n_valid[inter.users])


def temporal_split(inter: Interactions, test_ratio: float = 0.2,
                   valid_ratio: float = 0.0, per_user: bool = True) -> Split:
  """Temporal split: the latest interactions become valid/test.

  Args:
    inter: interactions with `timestamps`.
    test_ratio: fraction of rows (per user, or overall) put in test.
    valid_ratio: fraction put in valid (the rows just before test).
    per_user: if True each user's latest round(n * ratio) rows (capped to
      keep >= 1 in train) are held out; if False a global time cut puts the
      latest round(N * ratio) rows in test (users may lose all train rows).
      Equal timestamps are ordered by row order.

  Returns:
    (train, valid, test).
  """
  _check_ratios(test_ratio, valid_ratio)
  if inter.timestamps is None:
    raise DataError("temporal_split: field 'timestamps' is required")
  if len(inter) == 0:
    return inter, empty_interactions(), empty_interactions()
  ts = np.asarray(inter.timestamps)
  if per_user:
    rank_t, count = rank_within_user(inter.users, ts)
    rank = count - 1 - rank_t  # 0 = latest; ties: later row = more recent
    n_test, n_valid = _per_user_counts(count, test_ratio, valid_ratio,
                                       0.5, 0.5)
    return _split_by_rank(inter, rank, n_test, n_valid)
  n = len(inter)
  order = np.argsort(ts, kind="stable")
  rank = np.empty(n, np.int64)
  rank[order] = n - 1 - np.arange(n)  # 0 = latest
  n_test = int(np.floor(n * test_ratio + 0.5))
  n_valid = int(np.floor(n * valid_ratio + 0.5))
  return _split_by_rank(inter, rank, n_test, n_valid)


def leave_one_out(inter: Interactions, seed: int = 0,
                  with_valid: bool = True) -> Split:
  """Leave-one-out: each user's last interaction is test, the one before valid.

  "Last" is by timestamp when `inter.timestamps` is set (ties by row order),
  otherwise a random interaction chosen with `seed`. Users with a single row
  keep it in train; users with two rows get no valid row.

  Args:
    inter: interactions.
    seed: seed for the random choice without timestamps.
    with_valid: also hold out a second-to-last interaction as valid.

  Returns:
    (train, valid, test).
  """
  if len(inter) == 0:
    return inter, empty_interactions(), empty_interactions()
  if inter.timestamps is not None:
    rank_t, count = rank_within_user(inter.users, np.asarray(inter.timestamps))
    rank = count - 1 - rank_t  # 0 = latest
  else:
    key = np.random.default_rng(seed).random(len(inter))
    rank, count = rank_within_user(inter.users, key)
  n_test = np.minimum(1, count - 1)
  n_valid = np.minimum(int(with_valid), np.maximum(count - 2, 0))
  return _split_by_rank(inter, rank, n_test, n_valid)


def split_dataset(dataset: Dataset, method: str = "random",
                  test_ratio: float = 0.2, valid_ratio: float = 0.0,
                  seed: int = 0, per_user: bool = True) -> Dataset:
  """Splits a Dataset whose interactions are all in `train`.

  Args:
    dataset: a Dataset with empty valid and test.
    method: 'random', 'temporal' or 'leave_one_out'.
    test_ratio / valid_ratio: fractions (ignored by leave_one_out, which
      holds out one valid row iff valid_ratio > 0).
    seed: random seed.
    per_user: per-user or global cut (temporal only).

  Returns:
    A new Dataset with train/valid/test filled.
  """
  if len(dataset.valid) or len(dataset.test):
    raise DataError(f"{dataset.name}: split_dataset expects all interactions "
                    f"in train (valid/test must be empty)")
  if method == "random":
    parts = random_split(dataset.train, test_ratio, valid_ratio, seed)
  elif method == "temporal":
    parts = temporal_split(dataset.train, test_ratio, valid_ratio, per_user)
  elif method == "leave_one_out":
    parts = leave_one_out(dataset.train, seed, valid_ratio > 0)
  else:
    raise DataError(f"split_dataset: unknown method {method!r}; expected "
                    f"'random', 'temporal' or 'leave_one_out'")
  train, valid, test = parts
  return dataclasses.replace(dataset, train=train, valid=valid, test=test)


def carve_validation(dataset: Dataset, ratio: float = 0.1, seed: int = 0
                     ) -> Dataset:
  """Moves a per-user random fraction of TRAIN into `valid` (test untouched).

  Every user keeps >= 1 train interaction (see `random_split`). Items whose
  only interactions move to valid become cold in train.

  Args:
    dataset: a Dataset without a validation split.
    ratio: expected fraction of each user's train rows moved to valid; 0
      returns the dataset unchanged.
    seed: random seed.

  Returns:
    A new Dataset with the same test split.
  """
  if ratio <= 0:
    return dataset
  if len(dataset.valid):
    raise DataError(f"{dataset.name}: carve_validation: field 'valid' is "
                    f"already non-empty ({len(dataset.valid)} rows)")
  train, valid, _ = random_split(dataset.train, 0.0, ratio, seed)
  return dataclasses.replace(dataset, train=train, valid=valid)

"""Tests for jaxrec.data.splits."""

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from jaxrec.data import splits
from jaxrec.data.dataset import DataError, Dataset, Interactions


def tagged(n=400, num_users=40, num_items=50, seed=0, timestamps=True):
  """Random interactions; `ratings` holds the row index to track rows."""
  rng = np.random.default_rng(seed)
  users = rng.integers(0, num_users, n)
  users[:num_users] = np.arange(num_users)  # every user present
  ts = rng.integers(0, 1000, n) if timestamps else None
  return Interactions(users, rng.integers(0, num_items, n),
                      np.arange(n, dtype=np.float32), ts)


def ids(inter):
  return inter.ratings.astype(int)


def assert_partition(inter, parts):
  got = np.sort(np.concatenate([ids(p) for p in parts]))
  np.testing.assert_array_equal(got, np.arange(len(inter)))


def assert_train_keeps_users(inter, train):
  count = np.bincount(inter.users)
  kept = np.bincount(train.users, minlength=len(count))
  assert np.all(kept[count >= 1] >= 1)


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(seed=st.integers(0, 10**6), test=st.floats(0, 0.6),
                  valid=st.floats(0, 0.35), n=st.integers(1, 300))
def test_random_split_properties(seed, test, valid, n):
  inter = tagged(n, num_users=min(n, 30), seed=seed)
  parts = splits.random_split(inter, test, valid, seed)
  assert_partition(inter, parts)
  assert_train_keeps_users(inter, parts[0])
  again = splits.random_split(inter, test, valid, seed)
  for a, b in zip(parts, again):
    np.testing.assert_array_equal(ids(a), ids(b))


def test_random_split_ratio_and_seed():
  inter = tagged(20000, num_users=500, seed=1)
  train, valid, test = splits.random_split(inter, 0.1, 0.1, seed=0)
  assert abs(len(test) / len(inter) - 0.1) < 0.01
  assert abs(len(valid) / len(inter) - 0.1) < 0.01
  other = splits.random_split(inter, 0.1, 0.1, seed=1)[2]
  assert not np.array_equal(ids(test), ids(other))


def test_random_split_exact_when_integral():
  inter = Interactions(np.repeat(np.arange(5), 10), np.tile(np.arange(10), 5))
  train, valid, test = splits.random_split(inter, 0.1, 0.2, seed=3)
  np.testing.assert_array_equal(np.bincount(test.users), np.ones(5))
  np.testing.assert_array_equal(np.bincount(valid.users), np.full(5, 2))


def test_single_interaction_users_stay_in_train():
  inter = Interactions(np.arange(10), np.arange(10))
  train, valid, test = splits.random_split(inter, 0.5, 0.4, seed=0)
  assert (len(train), len(valid), len(test)) == (10, 0, 0)


def test_temporal_per_user_and_global():
  inter = tagged(3000, num_users=50, seed=2)
  train, valid, test = splits.temporal_split(inter, 0.2, 0.1, per_user=True)
  assert_partition(inter, (train, valid, test))
  assert_train_keeps_users(inter, train)
  for u in range(50):
    t_tr = train.timestamps[train.users == u]
    t_va = valid.timestamps[valid.users == u]
    t_te = test.timestamps[test.users == u]
    if len(t_te):
      assert t_tr.max() <= t_te.min()
    if len(t_va):
      assert t_tr.max() <= t_va.min() and (not len(t_te) or
                                            t_va.max() <= t_te.min())
  train, valid, test = splits.temporal_split(inter, 0.2, 0.1, per_user=False)
  assert_partition(inter, (train, valid, test))
  assert (len(test), len(valid)) == (600, 300)
  assert train.timestamps.max() <= valid.timestamps.min()
  assert valid.timestamps.max() <= test.timestamps.min()
  with pytest.raises(DataError, match="timestamps"):
    splits.temporal_split(tagged(timestamps=False))


def test_leave_one_out():
  inter = tagged(600, num_users=60, seed=4)
  train, valid, test = splits.leave_one_out(inter)
  assert_partition(inter, (train, valid, test))
  count = np.bincount(inter.users)
  np.testing.assert_array_equal(np.bincount(test.users, minlength=60),
                                count >= 2)
  np.testing.assert_array_equal(np.bincount(valid.users, minlength=60),
                                count >= 3)
  for u in np.flatnonzero(count >= 2):
    assert test.timestamps[test.users == u][0] == inter.timestamps[
        inter.users == u].max()
  no_ts = tagged(600, num_users=60, seed=4, timestamps=False)
  a = splits.leave_one_out(no_ts, seed=1, with_valid=False)
  b = splits.leave_one_out(no_ts, seed=1, with_valid=False)
  np.testing.assert_array_equal(ids(a[2]), ids(b[2]))
  assert len(a[1]) == 0 and len(a[2]) == int((count >= 2).sum())


def _dataset(inter):
  return Dataset("t", int(inter.users.max()) + 1, int(inter.items.max()) + 1,
                 inter)


def test_carve_validation_never_touches_test():
  inter = tagged(2000, num_users=80, seed=5)
  train, _, test = splits.random_split(inter, 0.2, 0.0, seed=0)
  ds = _dataset(inter)
  ds.train, ds.test = train, test
  carved = splits.carve_validation(ds, 0.1, seed=7)
  np.testing.assert_array_equal(ids(carved.test), ids(test))
  got = np.sort(np.concatenate([ids(carved.train), ids(carved.valid)]))
  np.testing.assert_array_equal(got, np.sort(ids(train)))
  assert_train_keeps_users(train, carved.train)
  assert 0.07 < len(carved.valid) / len(train) < 0.13
  again = splits.carve_validation(ds, 0.1, seed=7)
  np.testing.assert_array_equal(ids(again.valid), ids(carved.valid))
  assert splits.carve_validation(ds, 0.0) is ds
  with pytest.raises(DataError, match="valid"):
    splits.carve_validation(carved, 0.1)


def test_split_dataset_methods():
  inter = tagged(500, num_users=20, seed=6)
  for method in ("random", "temporal", "leave_one_out"):
    ds = splits.split_dataset(_dataset(inter), method, 0.2, 0.1, seed=0)
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 500
    assert len(ds.test) > 0 and len(ds.valid) > 0
  with pytest.raises(DataError, match="unknown method"):
    splits.split_dataset(_dataset(inter), "nope")
  with pytest.raises(DataError, match="test_ratio"):
    splits.random_split(inter, 0.7, 0.5)

"""Tests for jaxrec.data.preprocess."""

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from jaxrec.data import preprocess
from jaxrec.data.dataset import Interactions
from jaxrec.data.preprocess import DataWarning, RawInteractions


def brute_force_kcore(rows, ku, ki):
  """Reference k-core with Python sets: indices of the kept rows."""
  alive = set(range(len(rows)))
  while True:
    deg_u, deg_i = {}, {}
    for r in alive:
      u, i = rows[r]
      deg_u[u] = deg_u.get(u, 0) + 1
      deg_i[i] = deg_i.get(i, 0) + 1
    bad = {r for r in alive
           if deg_u[rows[r][0]] < ku or deg_i[rows[r][1]] < ki}
    if not bad:
      return sorted(alive)
    alive -= bad


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(seed=st.integers(0, 10**6), ku=st.integers(1, 4),
                  ki=st.integers(1, 4), n=st.integers(0, 120))
def test_kcore_matches_brute_force(seed, ku, ki, n):
  rng = np.random.default_rng(seed)
  users = rng.integers(0, 15, n) * 7 + 3  # non-contiguous ids
  items = rng.integers(0, 12, n)
  # Tag rows with their index so we can identify the kept ones.
  inter = RawInteractions(users, items, ratings=np.arange(n, dtype=float))
  kept = preprocess.kcore_filter(inter, ku, ki)
  rows = list(zip(users.tolist(), items.tolist()))
  assert kept.ratings.astype(int).tolist() == brute_force_kcore(rows, ku, ki)
  if len(kept):
    assert np.bincount(np.unique(kept.users, return_inverse=True)[1]).min() >= ku
    assert np.bincount(np.unique(kept.items, return_inverse=True)[1]).min() >= ki


def test_kcore_on_interactions_keeps_type():
  inter = Interactions(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 2]))
  kept = preprocess.kcore_filter(inter, 2, 2)
  assert isinstance(kept, Interactions)
  assert sorted(zip(kept.users, kept.items)) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_deduplicate_keeps_first_and_warns():
  inter = Interactions(np.array([1, 0, 1, 1, 0]), np.array([2, 3, 2, 4, 3]),
                       ratings=np.arange(5, dtype=np.float32))
  with pytest.warns(DataWarning, match="dropped 2 duplicate"):
    out = preprocess.deduplicate(inter, "x")
  np.testing.assert_array_equal(out.ratings, [0, 1, 3])
  raw = RawInteractions(np.array(["a", "b", "a"]), np.array(["x", "x", "x"]))
  with pytest.warns(DataWarning, match="dropped 1 duplicate"):
    assert len(preprocess.deduplicate(raw)) == 2


def test_remap_ids_reversible_and_drops_unseen():
  train = RawInteractions(np.array([50, 7, 50]), np.array([9, 3, 3]))
  test = RawInteractions(np.array([7, 8, 50]), np.array([9, 3, 4]),
                         ratings=np.array([1.0, 2.0, 3.0]))
  with pytest.warns(DataWarning, match="test: dropped 2 of 3"):
    tr, (te,), umap, imap = preprocess.remap_ids(train, test, names=["test"])
  np.testing.assert_array_equal(umap.original, [7, 50])
  np.testing.assert_array_equal(imap.original, [3, 9])
  np.testing.assert_array_equal(umap.to_original(tr.users), train.users)
  np.testing.assert_array_equal(imap.to_original(tr.items), train.items)
  assert (te.users.tolist(), te.items.tolist(), te.ratings.tolist()) == (
      [0], [1], [1.0])
  tr, (te,), umap, imap = preprocess.remap_ids(train, test, drop_unseen=False)
  assert len(te) == 3 and len(umap) == 3 and len(imap) == 3


def test_remap_string_ids():
  raw = RawInteractions(np.array(["bob", "al", "bob"]),
                        np.array(["z", "y", "y"]))
  tr, _, umap, imap = preprocess.remap_ids(raw)
  assert list(umap.original) == ["al", "bob"]
  assert tr.users.tolist() == [1, 0, 1] and tr.items.tolist() == [1, 0, 0]


def test_filter_to_train_and_remove_overlap():
  train = Interactions(np.array([0, 1]), np.array([0, 1]))
  test = Interactions(np.array([0, 2, 1, 0]), np.array([1, 0, 2, 0]))
  with pytest.warns(DataWarning, match="dropped 2 of 4"):
    out = preprocess.filter_to_train(train, test, 3, 3)
  assert sorted(zip(out.users.tolist(), out.items.tolist())) == [(0, 0),
                                                                 (0, 1)]
  with pytest.warns(DataWarning, match="dropped 1 rows"):
    out = preprocess.remove_overlap(train, test, 3)
  assert len(out) == 3


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(seed=st.integers(0, 10**6),
                  fraction=st.sampled_from([0.0, 0.05, 0.3, 0.6]))
def test_replace_with_noise_keeps_users_and_avoids_real_pairs(seed, fraction):
  rng = np.random.default_rng(seed)
  num_users, num_items = 30, 12
  keys = np.unique(rng.integers(0, num_users * num_items, 150))
  keys = keys[(keys % num_items) < num_items // 3]  # every user misses >= 7
  train = Interactions(keys // num_items, keys % num_items)
  test = Interactions(np.arange(num_users), np.full(num_users, num_items - 1))
  out = preprocess.replace_with_noise(train, num_items, fraction, seed=seed,
                                      exclude=[test])
  np.testing.assert_array_equal(out.users, train.users)
  changed = out.items != train.items
  assert changed.sum() == round(fraction * len(train))
  out_keys = out.users.astype(np.int64) * num_items + out.items
  assert len(np.unique(out_keys)) == len(out_keys)  # no repeated pair
  real = set(keys.tolist()) | set((test.users * num_items + test.items).tolist())
  assert not set(out_keys[changed].tolist()) & real  # fakes are new pairs
  assert out.items.min() >= 0 and out.items.max() < num_items
  again = preprocess.replace_with_noise(train, num_items, fraction, seed=seed,
                                        exclude=[test])
  np.testing.assert_array_equal(again.items, out.items)  # deterministic


def test_replace_with_noise_rejects_bad_input():
  train = Interactions(np.array([0, 0]), np.array([0, 1]))
  with pytest.raises(Exception, match="fraction must be in"):
    preprocess.replace_with_noise(train, 2, 1.0)
  with pytest.raises(Exception, match="user 0 needs 1 fake items but has "
                     "only 0"):
    preprocess.replace_with_noise(train, 2, 0.5)
  with pytest.raises(Exception, match="user 0 needs 2 fake items but has "
                     "only 1"):
    preprocess.replace_with_noise(train, 3, 0.99)


def test_relabel_by_degree_moves_everything_with_its_node():
  from jaxrec.data import synthetic  # pylint: disable=g-import-not-at-top
  ds = synthetic.make_synthetic(num_users=60, num_items=40,
                                num_interactions=600, seed=0)
  out = preprocess.relabel_by_degree(ds)
  assert np.all(np.diff(np.bincount(out.train.users,
                                    minlength=out.num_users)) <= 0)
  assert np.all(np.diff(np.bincount(out.train.items,
                                    minlength=out.num_items)) <= 0)
  assert ds.user_ids is None and ds.item_ids is None  # ids are the originals
  for split in ("train", "valid", "test"):  # same pairs in original ids
    a, b = getattr(ds, split), getattr(out, split)
    new = set(zip(out.user_ids.to_original(b.users).tolist(),
                  out.item_ids.to_original(b.items).tolist()))
    assert set(zip(a.users.tolist(), a.items.tolist())) == new
    assert len(b) == len(a)
  orig_item = out.item_ids.original  # old id of each new item
  assert out.item_texts == [ds.item_texts[k] for k in orig_item]
  np.testing.assert_array_equal(out.item_categories,
                                ds.item_categories[orig_item])
  assert ds.train.users is not out.train.users  # input left unchanged


def test_relabel_by_degree_is_idempotent():
  """A second relabelling changes nothing (train_and_evaluate may apply it
  to a dataset load_data already ordered)."""
  from jaxrec.data import synthetic  # pylint: disable=g-import-not-at-top
  ds = synthetic.make_synthetic(num_users=60, num_items=40,
                                num_interactions=600, seed=1)
  once = preprocess.relabel_by_degree(ds)
  twice = preprocess.relabel_by_degree(once)
  for split in ("train", "valid", "test"):
    np.testing.assert_array_equal(getattr(once, split).users,
                                  getattr(twice, split).users)
    np.testing.assert_array_equal(getattr(once, split).items,
                                  getattr(twice, split).items)
  np.testing.assert_array_equal(once.user_ids.original, twice.user_ids.original)
  np.testing.assert_array_equal(once.item_ids.original, twice.item_ids.original)
  assert once.item_texts == twice.item_texts

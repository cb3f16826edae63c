"""Tests for jaxrec.data.synthetic."""

import itertools

import chex
import numpy as np
import pytest

from jaxrec.data import synthetic
from jaxrec.data.dataset import DataError


@pytest.fixture(scope="module")
def data():
  return synthetic.make_synthetic(num_users=400, num_items=600,
                                  num_interactions=12000, seed=3,
                                  return_factors=True)


def all_rows(ds):
  return (np.concatenate([ds.train.users, ds.valid.users, ds.test.users]),
          np.concatenate([ds.train.items, ds.valid.items, ds.test.items]))


def test_sizes_and_split(data):
  ds, _ = data
  users, items = all_rows(ds)
  assert (ds.num_users, ds.num_items, len(users)) == (400, 600, 12000)
  assert len(np.unique(users.astype(np.int64) * 600 + items)) == 12000
  count = np.bincount(users, minlength=400)
  assert count.min() >= 3 and count.max() <= 300
  assert abs(len(ds.test) / 12000 - 0.1) < 0.02
  assert abs(len(ds.valid) / 12000 - 0.1) < 0.02
  assert np.all(np.bincount(ds.train.users, minlength=400) >= 1)
  chex.assert_shape(ds.item_categories, (600,))


def test_deterministic_by_seed_and_thread_count():
  kw = dict(num_users=120, num_items=150, num_interactions=2500)
  a = synthetic.make_synthetic(seed=1, num_threads=1, **kw)
  b = synthetic.make_synthetic(seed=1, num_threads=3, **kw)
  c = synthetic.make_synthetic(seed=2, **kw)
  for split in ("train", "valid", "test"):
    np.testing.assert_array_equal(getattr(a, split).users,
                                  getattr(b, split).users)
    np.testing.assert_array_equal(getattr(a, split).items,
                                  getattr(b, split).items)
  assert a.item_texts == b.item_texts and a.user_texts == b.user_texts
  assert not np.array_equal(a.train.items, c.train.items)


def test_power_law_popularity():
  kw = dict(num_users=300, num_items=500, num_interactions=9000, seed=0,
            with_texts=False)
  share = {}
  for alpha in (0.0, 1.0):
    ds = synthetic.make_synthetic(alpha=alpha, **kw)
    counts = np.sort(np.bincount(all_rows(ds)[1], minlength=500))[::-1]
    share[alpha] = counts[:50].sum() / counts.sum()
  assert share[1.0] > 0.35  # top 10% of items hold a large share
  assert share[1.0] > share[0.0] + 0.1


def test_preference_structure(data):
  ds, factors = data
  users, items = all_rows(ds)
  same = ds.item_categories[items] == factors["user_categories"][users]
  # 10 categories: chance is ~0.1.
  assert same.mean() > 0.3


def test_texts(data):
  ds, _ = data
  assert len(ds.item_texts) == 600 and len(ds.user_texts) == 400
  assert all(t.startswith("a ") for t in ds.item_texts)
  names = synthetic.category_names(10)
  clean = synthetic.make_synthetic(num_users=50, num_items=200,
                                   num_interactions=600, text_signal=1.0)
  for text, cat in zip(clean.item_texts, clean.item_categories):
    assert f" {names[cat]} for " in text
  noisy = synthetic.make_synthetic(num_users=50, num_items=200,
                                   num_interactions=600, text_signal=0.0)
  match = np.mean([f" {names[c]} for " in t
                   for t, c in zip(noisy.item_texts, noisy.item_categories)])
  assert match < 0.3
  with pytest.raises(DataError, match="text_signal"):
    synthetic.make_synthetic(text_signal=2.0)


def test_allocate_activity_exact_sum():
  rng = np.random.default_rng(0)
  counts = synthetic.allocate_activity(rng, 1000, 54321, 2, 90, 1.5)
  assert counts.sum() == 54321 and counts.min() >= 2 and counts.max() <= 90
  with pytest.raises(DataError, match="num_interactions"):
    synthetic.allocate_activity(rng, 10, 5, 2, 90, 1.0)


@pytest.mark.parametrize("k", [2, 3])
def test_gumbel_top_k_is_exact(k):
  """Inclusion frequencies match Plackett-Luce sampling without replacement
  (rows with k and k - 1 items mixed)."""
  logits = np.array([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, 1.5], np.float32)
  n, rows = len(logits), 40000
  w = np.exp(logits.astype(np.float64))

  def inclusion(size):
    out = np.zeros(n)
    for seq in itertools.permutations(range(n), size):
      p, rest = 1.0, w.sum()
      for i in seq:
        p *= w[i] / rest
        rest -= w[i]
      out[list(seq)] += p
    return out

  counts = np.where(np.arange(rows) % 2 == 0, k, k - 1)
  items = synthetic._sample_chunk(
      np.random.SeedSequence(0), np.zeros((rows, 1), np.float32),
      np.zeros((1, n), np.float32), logits[None, :], counts)
  assert len(items) == counts.sum()
  split = np.split(items, np.cumsum(counts)[:-1])
  assert all(len(set(s.tolist())) == len(s) for s in split[:100])
  first = np.concatenate(split[0::2])
  freq = np.bincount(first, minlength=n) / (rows // 2)
  np.testing.assert_allclose(freq, inclusion(k), atol=0.02)
  second = np.concatenate(split[1::2])
  freq = np.bincount(second, minlength=n) / (rows // 2)
  np.testing.assert_allclose(freq, inclusion(k - 1), atol=0.02)

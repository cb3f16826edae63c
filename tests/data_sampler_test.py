"""Tests for jaxrec.data.sampler."""

import chex
import numpy as np
import pytest
import scipy.stats

from jaxrec.data import sampler
from jaxrec.data.dataset import DataError, Interactions


def random_train(num_users=50, num_items=40, n=600, seed=0):
  rng = np.random.default_rng(seed)
  keys = np.unique(rng.integers(0, num_users * num_items, n))
  return Interactions(keys // num_items, keys % num_items)


def is_positive(train, num_items, users, items):
  keys = sampler.positive_keys(train, num_items)
  query = users.astype(np.int64) * num_items + items
  return np.isin(query, keys)


@pytest.mark.parametrize("form", ["interactions", "csr", "keys"])
def test_never_returns_positive(form):
  num_users, num_items = 50, 40
  train = random_train(num_users, num_items, 1200)
  positives = {"interactions": train,
               "csr": train.to_csr(num_users, num_items),
               "keys": sampler.positive_keys(train, num_items)}[form]
  users = np.repeat(np.arange(num_users), 200)
  neg = sampler.sample_negatives(np.random.default_rng(0), users, positives,
                                 num_items, num_negatives=3)
  chex.assert_shape(neg, (len(users), 3))
  chex.assert_type(neg, np.int32)
  assert neg.min() >= 0 and neg.max() < num_items
  assert not is_positive(train, num_items, np.repeat(users, 3),
                         neg.ravel()).any()


@pytest.mark.parametrize("max_rounds", [16, 0])  # 0: exact complement path
def test_uniform_over_non_positives(max_rounds):
  num_items = 30
  positives = np.array([0, 3, 4, 5, 17, 29])
  train = Interactions(np.zeros(6), positives)
  n = 30000
  neg = sampler.sample_negatives(np.random.default_rng(1), np.zeros(n),
                                 train, num_items, max_rounds=max_rounds)
  counts = np.bincount(neg, minlength=num_items)
  assert counts[positives].sum() == 0
  free = np.setdiff1d(np.arange(num_items), positives)
  stat, p = scipy.stats.chisquare(counts[free])
  assert p > 1e-4, (stat, p)


def test_heavy_users_use_exact_fallback():
  num_items = 50
  # User 0 has every item but 7; user 1 every item but 0 and 49.
  items0 = np.setdiff1d(np.arange(num_items), [7])
  items1 = np.arange(1, 49)
  train = Interactions(np.r_[np.zeros(49), np.ones(48)], np.r_[items0, items1])
  users = np.r_[np.zeros(500), np.ones(500)].astype(int)
  neg = sampler.sample_negatives(np.random.default_rng(2), users, train,
                                 num_items, max_rounds=2)
  assert np.all(neg[:500] == 7)
  assert set(neg[500:].tolist()) == {0, 49}
  full = Interactions(np.zeros(num_items), np.arange(num_items))
  with pytest.raises(DataError, match="all 50 items"):
    sampler.sample_negatives(np.random.default_rng(0), np.zeros(3), full,
                             num_items, max_rounds=1)


def test_epoch_triples_deterministic_and_complete():
  num_users, num_items = 50, 40
  train = random_train(num_users, num_items, 800)
  a = sampler.epoch_triples(train, num_users, num_items, seed=3, epoch=5)
  b = sampler.epoch_triples(train, num_users, num_items, seed=3, epoch=5)
  c = sampler.epoch_triples(train, num_users, num_items, seed=3, epoch=6)
  chex.assert_trees_all_equal(a, b)
  assert not np.array_equal(a["users"], c["users"])
  chex.assert_type(list(a.values()), np.int32)
  # One triple per train interaction, positives are exactly the train set.
  got = sorted(zip(a["users"].tolist(), a["pos_items"].tolist()))
  assert got == sorted(zip(train.users.tolist(), train.items.tolist()))
  assert not is_positive(train, num_items, a["users"], a["neg_items"]).any()
  keys = sampler.positive_keys(train, num_items)
  d = sampler.epoch_triples(train, num_users, num_items, 3, 5, keys=keys)
  chex.assert_trees_all_equal(a, d)
  k = sampler.epoch_triples(train, num_users, num_items, 3, 5,
                            num_negatives=4)
  chex.assert_shape(k["neg_items"], (len(train), 4))
  # Negatives are drawn before the shuffle and must travel with their triple.
  assert not is_positive(train, num_items, np.repeat(k["users"], 4),
                         k["neg_items"].ravel()).any()


def test_batches_fixed_shape_and_mask():
  n = 103
  triples = {"users": np.arange(n, dtype=np.int32),
             "pos_items": np.arange(n, dtype=np.int32) + 1,
             "neg_items": np.ones((n, 2), np.int32)}
  out = list(sampler.batches(triples, 25))
  assert len(out) == sampler.num_batches(n, 25) == 5
  for b in out:
    chex.assert_shape([b["users"], b["pos_items"], b["mask"]], (25,))
    chex.assert_shape(b["neg_items"], (25, 2))
    chex.assert_type(b["mask"], np.float32)
  mask = np.concatenate([b["mask"] for b in out])
  assert mask.sum() == n and mask[:n].all()
  users = np.concatenate([b["users"] for b in out])[mask > 0]
  np.testing.assert_array_equal(users, triples["users"])
  assert len(list(sampler.batches(triples, 25, drop_last=True))) == 4
  with pytest.raises(DataError, match="batch_size"):
    next(sampler.batches(triples, 0))


def test_user_uniform_sampling_matches_its_distribution():
  """'user' sampling: users uniform over active users, positives uniform
  within the user, negatives never positives; deterministic per epoch."""
  # User 0 has 1 item, user 1 has 3, user 2 has 6; user 3 has none.
  users = np.array([0, 1, 1, 1] + [2] * 6)
  items = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  train = Interactions(users, items)
  counts_u = np.zeros(4)
  counts_pair = {}
  for epoch in range(400):
    t = sampler.epoch_triples(train, 4, 12, seed=0, epoch=epoch,
                              sampling="user")
    chex.assert_shape(t["users"], (len(train),))
    keys = set(zip(users.tolist(), items.tolist()))
    assert all((u, p) in keys for u, p in zip(t["users"], t["pos_items"]))
    assert not any((u, n) in keys for u, n in zip(t["users"], t["neg_items"]))
    counts_u += np.bincount(t["users"], minlength=4)
    for u, p in zip(t["users"].tolist(), t["pos_items"].tolist()):
      counts_pair[(u, p)] = counts_pair.get((u, p), 0) + 1
  total = counts_u.sum()
  assert counts_u[3] == 0
  np.testing.assert_allclose(counts_u[:3] / total, 1 / 3, atol=0.02)
  # Within user 2, each of its 6 items ~1/6 of the user's draws.
  share = np.array([counts_pair[(2, i)] for i in range(4, 10)]) / counts_u[2]
  np.testing.assert_allclose(share, 1 / 6, atol=0.03)
  a = sampler.epoch_triples(train, 4, 12, seed=3, epoch=7, sampling="user")
  b = sampler.epoch_triples(train, 4, 12, seed=3, epoch=7, sampling="user")
  chex.assert_trees_all_equal(a, b)


def test_unknown_sampling_is_rejected():
  train = Interactions(np.array([0]), np.array([0]))
  with pytest.raises(DataError, match="sampling must be one of"):
    sampler.epoch_triples(train, 1, 3, seed=0, epoch=0, sampling="popularity")

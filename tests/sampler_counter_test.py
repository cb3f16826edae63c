"""The counter sampler: sliceable, uniform over non-positives, deterministic.

`sampler.epoch_triples(..., sampler='counter', rows=R)` must equal rows R
of the whole epoch; its negatives must never be a positive of their user and
be uniform over the user's non-positives (frequencies on a tiny case against
the exact distribution with scipy's chi-square test); the epoch depends only
on (seed, epoch). `input_pipeline.epoch_batches` with `columns` (the batch
columns of one process) must equal those columns of the stacked epoch. The
epoch order (`sampler.epoch_order`, a Feistel network cycle-walked onto
[0, n)) must be a bijection for every n, computed per row (a slice equals
that part of the whole), inverted by `sampler.epoch_rows`, and spread
uniformly (chi-square over many epochs).
"""

import ml_collections
import numpy as np
import pytest
from scipy import stats

from jaxrec import config_utils
from jaxrec import input_pipeline
from jaxrec.data import sampler
from jaxrec.data.dataset import DataError
from jaxrec.data.dataset import Interactions


def _train(seed=0, num_users=40, num_items=30, density=0.3):
  rng = np.random.default_rng(seed)
  mask = rng.random((num_users, num_items)) < density
  mask[:, 0] = False  # every user keeps a negative
  mask[0, 1:] = True  # user 0 has exactly one non-positive (item 0)
  mask[np.arange(num_users), rng.integers(1, num_items, num_users)] = True
  users, items = np.nonzero(mask)
  return Interactions(users.astype(np.int32), items.astype(np.int32))


def _triples(train, **kwargs):
  args = dict(num_users=40, num_items=30, seed=3, epoch=2, sampler="counter")
  args.update(kwargs)
  return sampler.epoch_triples(train, **args)


@pytest.mark.parametrize("sampling", ["interaction", "user"])
@pytest.mark.parametrize("k", [1, 3])
def test_a_slice_equals_those_rows_of_the_epoch(sampling, k):
  train = _train()
  whole = _triples(train, sampling=sampling, num_negatives=k)
  n = len(train)
  assert all(len(v) == n for v in whole.values())
  rng = np.random.default_rng(1)
  for rows in (np.arange(10, 57), rng.permutation(n)[:33], np.array([n - 1]),
               np.array([], np.int64)):
    part = _triples(train, sampling=sampling, num_negatives=k, rows=rows)
    for name, value in whole.items():
      np.testing.assert_array_equal(part[name], value[rows], err_msg=name)


@pytest.mark.parametrize("sampling", ["interaction", "user"])
def test_negatives_are_never_positives_and_pairs_are_positives(sampling):
  train = _train()
  out = _triples(train, sampling=sampling, num_negatives=4)
  positives = set(zip(train.users.tolist(), train.items.tolist()))
  users = out["users"].tolist()
  assert all((u, i) in positives for u, i in zip(users, out["pos_items"]))
  for u, negs in zip(users, out["neg_items"].tolist()):
    assert not any((u, i) in positives for i in negs)
  if sampling == "interaction":  # each interaction once, in the epoch order
    got = sorted(zip(users, out["pos_items"].tolist()))
    assert got == sorted(positives)


def test_deterministic_per_seed_and_epoch():
  train = _train()
  a, b = _triples(train), _triples(train)
  for name in a:
    np.testing.assert_array_equal(a[name], b[name])
  other_epoch = _triples(train, epoch=3)["neg_items"]
  other_seed = _triples(train, seed=4)["neg_items"]
  assert (other_epoch != a["neg_items"]).mean() > 0.5
  assert (other_seed != a["neg_items"]).mean() > 0.5
  # A NumPy integer seed is the same key.
  np.testing.assert_array_equal(_triples(train, seed=np.int64(3))["neg_items"],
                                a["neg_items"])


def test_negatives_are_uniform_over_non_positives():
  """Chi-square of the negative counts of one user vs the uniform law."""
  num_items = 12
  positives = np.array([1, 4, 5, 9], np.int64)  # user 2's train items
  keys = 2 * num_items + positives
  non_positives = np.setdiff1d(np.arange(num_items), positives)
  draws = 24_000
  neg = sampler.counter_negatives(7, 0, np.arange(draws), np.full(draws, 2),
                                  keys, num_items)
  assert not np.isin(neg, positives).any()
  counts = np.bincount(neg, minlength=num_items)[non_positives]
  expected = np.full(len(non_positives), draws / len(non_positives))
  assert stats.chisquare(counts, expected).pvalue > 1e-3
  # With no rejection rounds, every draw that hits a positive falls back to
  # the exact complement: still uniform, never a positive.
  neg0 = sampler.counter_negatives(7, 0, np.arange(draws), np.full(draws, 2),
                                   keys, num_items, max_rounds=0)
  assert not np.isin(neg0, positives).any()
  counts0 = np.bincount(neg0, minlength=num_items)[non_positives]
  assert stats.chisquare(counts0, expected).pvalue > 1e-3


def test_counter_uniforms_are_uniform_and_keyed_by_every_word():
  u = sampler.counter_uniforms(0, 0, 0, np.arange(100_000))
  assert ((u >= 0) & (u < 1)).all()
  counts = np.histogram(u, bins=20, range=(0, 1))[0]
  assert stats.chisquare(counts).pvalue > 1e-3
  for other in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
    v = sampler.counter_uniforms(*other, np.arange(100_000))
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.02
  np.testing.assert_array_equal(
      sampler.counter_uniforms(0, 0, 0, np.arange(5, 9)), u[5:9])


def test_rows_need_the_counter_sampler_and_valid_indices():
  train = _train()
  with pytest.raises(DataError, match="needs sampler='counter'"):
    _triples(train, sampler="sequential", rows=np.arange(3))
  with pytest.raises(DataError, match="sampler must be one of"):
    _triples(train, sampler="philox")
  with pytest.raises(DataError, match="rows must be indices"):
    _triples(train, rows=np.array([len(train)]))


def test_config_refuses_an_unknown_sampler():
  config = config_utils.base_config("synthetic_small")
  assert config.sampler == "sequential"
  config.sampler = "philox"
  with pytest.raises(config_utils.ConfigError, match="config.sampler"):
    config_utils.validate_config(config)


class _Dataset:
  def __init__(self, train):
    self.train, self.num_users, self.num_items = train, 40, 30


@pytest.mark.parametrize("fields", [(), ("epoch",)])
def test_epoch_batches_of_some_columns_equal_those_columns(fields):
  train = _train()
  config = ml_collections.ConfigDict(dict(
      task="ranking", seed=5, num_negatives=2, sampling="user",
      sampler="counter", batch_size=48))
  dataset = _Dataset(train)
  whole = input_pipeline.epoch_batches(config, dataset, 1, fields=fields)
  steps = whole.mask.shape[0]
  assert steps == -(-len(train) // 48)
  # A 'data' axis of 4 pads B=48 to 48; of 5 to 50: columns >= B are padding.
  for columns in (np.arange(12, 24), np.array([0, 7, 47]), np.arange(40, 50)):
    part = input_pipeline.epoch_batches(config, dataset, 1, fields=fields,
                                        columns=columns)
    real = columns < 48
    for name, got in part._asdict().items():
      want = getattr(whole, name)
      if want is None:
        assert got is None
        continue
      assert got.shape == (steps, len(columns)) + want.shape[2:]
      np.testing.assert_array_equal(got[:, real], want[:, columns[real]],
                                    err_msg=name)
      assert not got[:, ~real].any(), name  # shard_batch pads with zeros
  config.sampler = "sequential"
  with pytest.raises(ValueError, match="sampler='counter'"):
    input_pipeline.epoch_batches(config, dataset, 1, columns=np.arange(4))


def test_placed_column_batches_equal_the_placed_epoch():
  """One process holds every column: `shard_local_batch` of the sampled
  columns places the same global arrays (and shardings) as `shard_batch`."""
  import jax  # pylint: disable=g-import-not-at-top
  from jaxrec import sharding  # pylint: disable=g-import-not-at-top
  if jax.device_count() < 4:
    pytest.skip("needs 4 devices (tests/conftest.py sets 8 CPU devices)")
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:4]), (sharding.DATA,))
  config = ml_collections.ConfigDict(dict(
      task="ranking", seed=5, num_negatives=3, sampling="interaction",
      sampler="counter", batch_size=30))  # padded to 32 on 4 devices
  dataset = _Dataset(_train())
  columns = sharding.local_batch_columns(mesh, config.batch_size)
  np.testing.assert_array_equal(columns, np.arange(32))
  whole = sharding.shard_batch(
      input_pipeline.epoch_batches(config, dataset, 0, fields=("epoch",)),
      mesh)
  local = sharding.shard_local_batch(
      input_pipeline.epoch_batches(config, dataset, 0, fields=("epoch",),
                                   columns=columns),
      mesh, columns, config.batch_size)
  for want, got in zip(whole, local):
    assert got.sharding == want.sharding
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# Sizes where a Feistel network over 2**bits with cycle walking can go wrong:
# below the minimum width, powers of two and one past them, primes.
_SIZES = (1, 2, 3, 5, 7, 13, 97, 251, 255, 256, 257, 1021, 1024, 1025, 4096,
          4097, 65536, 65537, 100_003)


@pytest.mark.parametrize("n", _SIZES)
def test_epoch_order_is_a_bijection_and_epoch_rows_its_inverse(n):
  order = sampler.epoch_order(11, 4, n, np.arange(n))
  assert order.dtype == np.int64
  np.testing.assert_array_equal(np.sort(order), np.arange(n))
  np.testing.assert_array_equal(sampler.epoch_rows(11, 4, n, order),
                                np.arange(n))
  np.testing.assert_array_equal(
      sampler.epoch_order(11, 4, n, sampler.epoch_rows(11, 4, n,
                                                       np.arange(n))),
      np.arange(n))


def test_epoch_order_of_a_slice_equals_that_part_of_the_whole():
  n = 10_007
  whole = sampler.epoch_order(2, 9, n, np.arange(n))
  rng = np.random.default_rng(0)
  batch = 64  # process 1 of 4 holds columns 16..31 of every batch
  columns = np.arange(n)[(np.arange(n) % batch) // 16 == 1]
  for rows in (np.arange(500, 1500), rng.integers(0, n, 300), columns,
               np.array([n - 1, 0, n - 1]), np.array([], np.int64)):
    np.testing.assert_array_equal(sampler.epoch_order(2, 9, n, rows),
                                  whole[rows])
    np.testing.assert_array_equal(sampler.epoch_rows(2, 9, n, whole[rows]),
                                  rows)


def test_epoch_order_beyond_32_bits_round_trips():
  """n >= 2**31 takes the uint64 path; rows are checked, not the whole."""
  n = 2**40 + 3
  rows = np.concatenate([np.random.default_rng(0).integers(0, n, 2000),
                         [0, n - 1]])
  order = sampler.epoch_order(0, 1, n, rows)
  assert ((order >= 0) & (order < n)).all()
  assert len(np.unique(order)) == len(np.unique(rows))
  np.testing.assert_array_equal(sampler.epoch_rows(0, 1, n, order), rows)


def test_epoch_order_is_deterministic_and_differs_across_epochs_and_seeds():
  n = 5000
  rows = np.arange(n)
  a = sampler.epoch_order(3, 2, n, rows)
  np.testing.assert_array_equal(sampler.epoch_order(3, 2, n, rows), a)
  np.testing.assert_array_equal(sampler.epoch_order(np.int64(3), 2, n, rows),
                                a)
  for other in (sampler.epoch_order(3, 3, n, rows),
                sampler.epoch_order(4, 2, n, rows)):
    # Two independent uniform permutations share about one fixed point.
    assert (other == a).sum() < 10
    assert abs(stats.spearmanr(a, other)[0]) < 0.05
  assert abs(stats.spearmanr(rows, a)[0]) < 0.05  # not near the identity


def test_epoch_order_positions_and_neighbours_are_uniform():
  """Over 1000 epochs: where each value lands (an n x n table) and the gap
  between neighbouring rows' values mod n, each against the uniform law
  with a loose chi-square bound (deterministic: fixed seeds)."""
  n, epochs = 50, 1000
  orders = np.stack([sampler.epoch_order(7, e, n, np.arange(n))
                     for e in range(epochs)])  # [epochs, n]
  table = np.zeros((n, n))
  np.add.at(table, (np.tile(np.arange(n), epochs), orders.ravel()), 1)
  assert stats.chisquare(table.ravel()).pvalue > 1e-3
  gaps = ((orders[:, 1:] - orders[:, :-1]) % n).ravel()
  assert stats.chisquare(np.bincount(gaps, minlength=n)[1:]).pvalue > 1e-3
  # All 6 orders of 3 rows, equally often.
  codes = [tuple(sampler.epoch_order(7, e, 3, np.arange(3)))
           for e in range(300)]
  counts = np.unique(np.array(codes), axis=0, return_counts=True)[1]
  assert len(counts) == 6
  assert stats.chisquare(counts).pvalue > 1e-3


def test_epoch_order_refuses_bad_arguments():
  with pytest.raises(DataError, match="n > 0"):
    sampler.epoch_order(0, 0, 0, np.arange(0))
  with pytest.raises(DataError, match=r"rows must be indices in \[0, 5\)"):
    sampler.epoch_order(0, 0, 5, np.array([5]))
  with pytest.raises(DataError, match="epoch_rows: interactions must be"):
    sampler.epoch_rows(0, 0, 5, np.array([-1]))


def test_sort_order_is_an_argsort():
  rng = np.random.default_rng(0)
  for values in (rng.integers(0, 40, 1000), rng.integers(0, 2**62, 100),
                 np.array([3]), np.zeros(0, np.int64)):
    order = sampler._sort_order(values)  # pylint: disable=protected-access
    np.testing.assert_array_equal(np.sort(order), np.arange(len(values)))
    np.testing.assert_array_equal(values[order], np.sort(values))


def test_two_processes_columns_are_disjoint_and_cover_the_epoch():
  """B = 48 split over 2 processes (columns 0..23 and 24..47): side by side
  they are the whole epoch, and every train interaction is used once."""
  train = _train()
  config = ml_collections.ConfigDict(dict(
      task="ranking", seed=5, num_negatives=1, sampling="interaction",
      sampler="counter", batch_size=48))
  dataset = _Dataset(train)
  whole = input_pipeline.epoch_batches(config, dataset, 3)
  halves = [input_pipeline.epoch_batches(config, dataset, 3,
                                         columns=np.arange(24) + 24 * p)
            for p in range(2)]
  for name, want in whole._asdict().items():
    if want is None:
      continue
    got = np.concatenate([getattr(h, name) for h in halves], axis=1)
    np.testing.assert_array_equal(got, want, err_msg=name)
  used = []
  for half in halves:
    real = half.mask > 0
    used += list(zip(half.users[real].tolist(), half.pos_items[real].tolist()))
  assert sorted(used) == sorted(zip(train.users.tolist(),
                                    train.items.tolist()))

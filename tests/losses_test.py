"""Tests of the loss functions against closed forms and brute-force NumPy."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import losses


def _log_sigmoid(x):
  return -np.log1p(np.exp(-x))


def _rand(*shape, seed=0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _pad(x, n=3):
  x = np.asarray(x)
  return np.concatenate([x, _rand(n, *x.shape[1:], seed=99) * 5])


def _mask(b, n=3):
  return np.concatenate([np.ones(b), np.zeros(n)]).astype(np.float32)


def test_bpr_closed_form():
  pos, neg = _rand(6), _rand(6, seed=1)
  want = np.mean(-_log_sigmoid(pos - neg))
  chex.assert_trees_all_close(losses.bpr_loss(pos, neg), want, rtol=1e-5)
  negs = _rand(6, 4, seed=2)
  want = np.mean(np.mean(-_log_sigmoid(pos[:, None] - negs), axis=1))
  chex.assert_trees_all_close(losses.bpr_loss(pos, negs), want, rtol=1e-5)
  # Equal scores give log 2.
  chex.assert_trees_all_close(losses.bpr_loss(jnp.zeros(3), jnp.zeros(3)),
                              np.log(2.0), rtol=1e-6)


def test_l2_penalty_closed_form():
  a, b, c = _rand(5, 3), _rand(5, 3, seed=1), _rand(5, 2, 3, seed=2)
  want = np.mean(0.5 * (np.sum(a ** 2, 1) + np.sum(b ** 2, 1) +
                        np.sum(c ** 2, (1, 2))))
  chex.assert_trees_all_close(losses.l2_penalty(a, b, c), want, rtol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_l2_penalty_of_rows_equals_gathered_penalty(masked):
  users, items = _rand(6, 3), _rand(9, 3, seed=1)
  rng = np.random.default_rng(0)
  u = rng.integers(0, 6, 8)  # repeated rows count once per pick
  pos, neg = rng.integers(0, 9, 8), rng.integers(0, 9, (8, 2))  # [B], [B, k]
  mask = np.array([1, 1, 0, 1, 1, 1, 0, 1], np.float32) if masked else None
  ego_rows = [(users, u), (items, pos), (items, neg)]  # items: one table
  want = losses.l2_penalty(users[u], items[pos], items[neg], mask=mask)
  got = losses.l2_penalty_of_rows(ego_rows, mask=mask)
  chex.assert_trees_all_close(got, want, rtol=1e-5)
  # Gradients too: count * table, zero for rows no real batch row picks.
  grad = lambda fn: jax.grad(fn, argnums=(0, 1))(jnp.asarray(users),
                                                 jnp.asarray(items))
  chex.assert_trees_all_close(
      grad(lambda a, b: losses.l2_penalty_of_rows(
          [(a, u), (b, pos), (b, neg)], mask=mask)),
      grad(lambda a, b: losses.l2_penalty(a[u], b[pos], b[neg], mask=mask)),
      rtol=1e-5)


def _info_nce_numpy(a, p, t, normalise=True):
  if normalise:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
  logits = a @ p.T / t
  loss = [-(logits[i, i] - np.log(np.sum(np.exp(logits[i]))))
          for i in range(len(a))]
  return np.mean(loss)


@pytest.mark.parametrize("normalise", [True, False])
def test_info_nce_brute_force(normalise):
  a, p = _rand(5, 4), _rand(5, 4, seed=1)
  chex.assert_trees_all_close(
      losses.info_nce(a, p, 0.3, normalise=normalise),
      _info_nce_numpy(a, p, 0.3, normalise), rtol=1e-5)


def test_info_nce_identical_orthogonal_views():
  # Orthonormal rows, identical views: loss = log(1 + (B-1) e^{-1/t}).
  a = np.eye(4, dtype=np.float32)
  want = np.log(1 + 3 * np.exp(-1 / 0.5))
  chex.assert_trees_all_close(losses.info_nce(a, a, 0.5), want, rtol=1e-5)


def test_info_nce_pool_closed_form():
  a, p, pool = _rand(4, 3), _rand(4, 3, seed=1), _rand(6, 3, seed=2)
  n = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  pos = np.sum(n(a) * n(p), 1) / 0.2
  neg = n(a) @ n(pool).T / 0.2
  want = np.mean(-pos + np.log(np.exp(pos) + np.exp(neg).sum(1)))
  chex.assert_trees_all_close(losses.info_nce_pool(a, p, pool, 0.2), want,
                              rtol=1e-5)
  pool_mask = np.array([1, 1, 1, 0, 0, 0], np.float32)
  chex.assert_trees_all_close(
      losses.info_nce_pool(a, p, pool, 0.2, pool_mask=pool_mask),
      losses.info_nce_pool(a, p, pool[:3], 0.2), rtol=1e-5)
  # The pool holds the positives (SGL's all-node form): each counts once.
  full = np.concatenate([p, pool])
  want = np.mean(-pos + np.log(np.exp(n(a) @ n(full).T / 0.2).sum(1)))
  chex.assert_trees_all_close(
      losses.info_nce_pool(a, p, full, 0.2, positive_in_pool=True), want,
      rtol=1e-5)


def test_sampled_softmax_closed_form():
  pos, neg = _rand(5), _rand(5, 3, seed=1)
  logits = np.concatenate([pos[:, None], neg], 1) / 0.5
  want = np.mean(-logits[:, 0] + np.log(np.exp(logits).sum(1)))
  chex.assert_trees_all_close(losses.sampled_softmax(pos, neg, 0.5), want,
                              rtol=1e-5)


def test_bce_link_loss_closed_form():
  pos, neg = _rand(5), _rand(5, seed=1)
  want = np.mean(-_log_sigmoid(pos) - np.log(1 - 1 / (1 + np.exp(-neg))))
  chex.assert_trees_all_close(losses.bce_link_loss(pos, neg), want, rtol=1e-5)
  negs = _rand(5, 3, seed=2)
  want = np.mean(-_log_sigmoid(pos) - np.mean(_log_sigmoid(-negs), 1))
  chex.assert_trees_all_close(losses.bce_link_loss(pos, negs), want,
                              rtol=1e-5)


def test_padding_rows_do_not_change_any_loss():
  b = 5
  pos, neg, negs = _rand(b), _rand(b, seed=1), _rand(b, 3, seed=2)
  a, p = _rand(b, 4, seed=3), _rand(b, 4, seed=4)
  m = _mask(b)
  cases = [
      (losses.bpr_loss, (pos, neg), {}),
      (losses.bpr_loss, (pos, negs), {}),
      (losses.sampled_softmax, (pos, negs), {}),
      (losses.bce_link_loss, (pos, negs), {}),
      (losses.info_nce, (a, p), {"temperature": 0.2}),
      (losses.info_nce_pool, (a, p, _rand(7, 4, seed=5)), {}),
  ]
  for fn, args, kw in cases:
    unpadded = fn(*args, **kw)
    padded_args = [_pad(x) for x in args]
    if fn is losses.info_nce_pool:
      padded_args[2] = args[2]
    padded = fn(*padded_args, mask=m, **kw)
    chex.assert_trees_all_close(padded, unpadded, rtol=1e-5)
    grad = jax.grad(lambda x: fn(x, *padded_args[1:], mask=m, **kw))(
        jnp.asarray(padded_args[0]))
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[b:] == 0)
  chex.assert_trees_all_close(
      losses.l2_penalty(_pad(a), _pad(p), mask=m), losses.l2_penalty(a, p),
      rtol=1e-5)


def test_info_nce_masked_rows_are_not_negatives():
  a, p = _rand(4, 3), _rand(4, 3, seed=1)
  m = np.array([1, 0, 1, 1], np.float32)
  keep = m > 0
  chex.assert_trees_all_close(losses.info_nce(a, p, 0.2, mask=m),
                              losses.info_nce(a[keep], p[keep], 0.2),
                              rtol=1e-5)


def test_first_occurrence_mask():
  ids = jnp.array([3, 1, 3, 2, 1, 7, 7])
  mask = jnp.array([1, 1, 1, 1, 1, 0, 1.0])
  got = jax.jit(losses.first_occurrence_mask)(ids, mask)
  chex.assert_trees_all_close(got, jnp.array([1, 1, 0, 1, 0, 0, 1.0]))
  chex.assert_trees_all_close(losses.first_occurrence_mask(ids),
                              jnp.array([1, 1, 0, 1, 0, 1, 0.0]))


def test_info_nce_leading_axes_are_independent_losses():
  a, p = _rand(3, 6, 4), _rand(3, 6, 4, seed=1)
  m = np.array([[1, 1, 0, 1, 1, 1], [1] * 6, [0, 1, 1, 1, 0, 1]], np.float32)
  got = losses.info_nce(a, p, 0.3, mask=m)
  chex.assert_shape(got, (3,))
  for t in range(3):
    keep = m[t] > 0
    chex.assert_trees_all_close(got[t], _info_nce_numpy(a[t][keep],
                                                        p[t][keep], 0.3),
                                rtol=1e-5)


def test_sampled_softmax_negative_mask_closed_form():
  pos, neg = _rand(4), _rand(4, 5, seed=1)
  neg_mask = np.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1],
                       [1, 0, 1, 0, 1]], np.float32)
  want = []
  for b in range(4):
    kept = neg[b][neg_mask[b] > 0] / 0.5
    want.append(np.log(np.exp(pos[b] / 0.5) + np.exp(kept).sum()) - pos[b] / 0.5)
  chex.assert_trees_all_close(
      losses.sampled_softmax(pos, neg, 0.5, neg_mask=neg_mask),
      np.mean(want), rtol=1e-5)
  # A [K] mask applies to every row; a row with no negative left costs 0
  # and keeps finite gradients.
  chex.assert_trees_all_close(
      losses.sampled_softmax(pos, neg, 0.5, neg_mask=np.array([1, 1, 0, 0, 1.])),
      losses.sampled_softmax(pos, neg[:, [0, 1, 4]], 0.5), rtol=1e-5)
  none = np.zeros((4, 5), np.float32)
  chex.assert_trees_all_close(
      losses.sampled_softmax(pos, neg, 0.5, neg_mask=none), 0.0, atol=1e-6)
  grad = jax.grad(lambda n: losses.sampled_softmax(
      jnp.asarray(pos), n, 0.5, neg_mask=none))(jnp.asarray(neg))
  assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad) == 0)

"""Tests for jaxrec.metrics against brute-force NumPy and closed forms."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from jaxrec import metrics
from jaxrec.data.dataset import DataError

NUM_USERS, NUM_ITEMS = 40, 300
KS = (1, 5, 10, 20)


def table_scores(table, users):
  """score_fn reading a dense score table, so NumPy sees identical scores."""
  return table[users]  # [B, I]


def random_binary(rng, shape, density):
  return sp.csr_matrix((rng.random(shape) < density).astype(np.float32))


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=(NUM_USERS, NUM_ITEMS)).astype(np.float32)
  train = random_binary(rng, (NUM_USERS, NUM_ITEMS), 0.1)
  valid = random_binary(rng, (NUM_USERS, NUM_ITEMS), 0.03)
  test = (random_binary(rng, (NUM_USERS, NUM_ITEMS), 0.05)
          - train.multiply(1)).maximum(0).tocsr()  # mostly disjoint from train
  test = test.tolil()
  test[0, 7] = 1.0  # a target that is also a training item (never hit)
  train = train.tolil()
  train[0, 7] = 1.0
  for u in (3, 11, 12):  # users without targets
    test[u, :] = 0
  test, train = sp.csr_matrix(test), sp.csr_matrix(train)
  test.eliminate_zeros()
  popularity = np.asarray(train.sum(axis=0)).ravel()
  return scores, train, valid, test, popularity


def reference(scores, target, exclude, ks, popularity):
  """Loop over users with np.argsort: the textbook definitions."""
  num_users, num_items = scores.shape
  excluded = sum(m.toarray() for m in exclude) > 0  # [U, I]
  out = {f"{m}@{k}": [] for k in ks for m in metrics.ACCURACY_METRICS
         + metrics.BEYOND_METRICS}
  covered = {k: set() for k in ks}
  for u in range(num_users):
    truth = set(target[u].indices.tolist())
    if not truth:
      continue
    cand = np.flatnonzero(~excluded[u])
    ranked = cand[np.argsort(-scores[u, cand], kind="stable")]
    for k in ks:
      top = ranked[:k]
      hit = np.array([i in truth for i in top], np.float64)
      n_ideal = min(len(truth), k)
      ranks = np.arange(1, len(top) + 1)
      dcg = np.sum(hit / np.log2(ranks + 1))
      idcg = np.sum(1.0 / np.log2(np.arange(1, n_ideal + 1) + 1))
      first = np.flatnonzero(hit)
      out[f"recall@{k}"].append(hit.sum() / len(truth))
      out[f"precision@{k}"].append(hit.sum() / k)
      out[f"ndcg@{k}"].append(dcg / idcg)
      out[f"hit_rate@{k}"].append(float(hit.sum() > 0))
      out[f"mrr@{k}"].append(1.0 / (first[0] + 1) if len(first) else 0.0)
      out[f"map@{k}"].append(np.sum(np.cumsum(hit) / ranks * hit) / n_ideal)
      info = -np.log2(np.maximum(popularity[top], 1) / num_users)
      out[f"novelty@{k}"].append(info.mean())
      out[f"avg_popularity@{k}"].append(popularity[top].mean())
      covered[k].update(top.tolist())
  result = {name: float(np.mean(v)) for name, v in out.items()}
  result.update({f"coverage@{k}": len(covered[k]) / num_items for k in ks})
  result["num_users_evaluated"] = len(out[f"recall@{ks[0]}"])
  return result


def assert_metrics_close(actual, expected, atol=1e-5):
  assert set(actual) == set(expected), set(actual) ^ set(expected)
  for name in expected:
    chex.assert_trees_all_close(actual[name], expected[name], atol=atol,
                                custom_message=name)


@pytest.mark.parametrize("chunk_size", [0, 8])
def test_matches_numpy_reference(data, chunk_size):
  scores, train, valid, test, popularity = data
  got = metrics.evaluate_ranking(
      table_scores, jnp.asarray(scores), test, [train, valid], ks=KS,
      user_batch_size=16, item_popularity=popularity, chunk_size=chunk_size)
  want = reference(scores, test, [train, valid], KS, popularity)
  assert got["num_users_evaluated"] == NUM_USERS - 3
  assert_metrics_close(got, want)


def test_batch_size_invariance(data):
  scores, train, _, test, popularity = data
  results = [metrics.evaluate_ranking(
      table_scores, jnp.asarray(scores), test, [train], ks=(5, 20),
      user_batch_size=b, item_popularity=popularity) for b in (1, 7, NUM_USERS)]
  for other in results[1:]:
    assert_metrics_close(other, results[0], atol=1e-6)
  # A budget that forces several balanced batches gives the same answer.
  small = metrics.evaluate_ranking(
      table_scores, jnp.asarray(scores), test, [train], ks=(5, 20),
      memory_budget_bytes=NUM_ITEMS * 4 * 4 * 7,  # => batch size 7
      item_popularity=popularity)
  assert_metrics_close(small, results[0], atol=1e-6)


def test_users_subset(data):
  scores, train, _, test, _ = data
  users = np.array([5, 0, 3, 17, 30])  # user 3 has no target
  got = metrics.evaluate_ranking(table_scores, jnp.asarray(scores), test,
                                 [train], ks=(5,), users=users)
  keep = np.zeros(NUM_USERS, bool)
  keep[users] = True
  sub = sp.csr_matrix(test.multiply(keep[:, None]))
  want = metrics.evaluate_ranking(table_scores, jnp.asarray(scores), sub,
                                  [train], ks=(5,))
  assert got["num_users_evaluated"] == 4
  assert_metrics_close(got, want, atol=1e-6)


def test_excluded_items_never_recommended(data):
  scores, train, _, _, _ = data
  # Training items score highest (each user's top-1 unmasked item is a
  # training item); as targets they must still never be hit once excluded.
  boosted = scores + 100.0 * train.toarray()  # [U, I]
  has_train = np.diff(train.indptr) > 0
  assert train.toarray()[np.arange(NUM_USERS), boosted.argmax(1)][has_train].all()
  got = metrics.evaluate_ranking(table_scores, jnp.asarray(boosted, jnp.float32),
                                 train, [train], ks=(1, 20),
                                 item_popularity=np.ones(NUM_ITEMS))
  assert got["num_users_evaluated"] == has_train.sum()
  for k in (1, 20):
    assert got[f"hit_rate@{k}"] == 0.0
    assert got[f"recall@{k}"] == 0.0


def test_perfect_ranking_scores_one():
  rng = np.random.default_rng(1)
  target = random_binary(rng, (30, 500), 0.01)
  target[np.diff(target.indptr) == 0] = 0
  target = target.tolil()
  target[:, 499] = 1.0  # every user has at least one target
  target = sp.csr_matrix(target)
  assert np.diff(target.indptr).max() <= 10
  scores = (rng.random((30, 500)) + 2.0 * target.toarray()).astype(np.float32)
  got = metrics.evaluate_ranking(table_scores, jnp.asarray(scores), target,
                                 ks=(10,), chunk_size=8)
  for name in ("recall", "ndcg", "hit_rate", "mrr", "map"):
    chex.assert_trees_all_close(got[f"{name}@10"], 1.0, atol=1e-6)
  chex.assert_trees_all_close(got["precision@10"],
                              np.mean(np.diff(target.indptr)) / 10, atol=1e-6)


def test_hand_computed_case():
  # One user, scores decreasing with item id, targets at ranks 2 and 5.
  scores = -jnp.arange(10, dtype=jnp.float32)[None, :]  # [1, 10]
  target = sp.csr_matrix(([1.0, 1.0], ([0, 0], [1, 4])), shape=(1, 10))
  exclude = sp.csr_matrix(([1.0], ([0], [9])), shape=(1, 10))
  got = metrics.evaluate_ranking(table_scores, scores, target, [exclude], ks=(1, 5))
  ndcg = (1 / np.log2(3) + 1 / np.log2(6)) / (1 + 1 / np.log2(3))
  chex.assert_trees_all_close(got["ndcg@5"], ndcg, atol=1e-6)  # 0.62404...
  chex.assert_trees_all_close(got["recall@5"], 1.0)
  chex.assert_trees_all_close(got["precision@5"], 0.4, atol=1e-7)
  chex.assert_trees_all_close(got["mrr@5"], 0.5)
  chex.assert_trees_all_close(got["map@5"], (1 / 2 + 2 / 5) / 2, atol=1e-7)
  for name in metrics.ACCURACY_METRICS:
    assert got[f"{name}@1"] == 0.0


def test_embeddings_wrapper_two_stage_top_k():
  rng = np.random.default_rng(2)
  user_emb = rng.normal(size=(25, 16)).astype(np.float32)
  item_emb = rng.normal(size=(2000, 16)).astype(np.float32)
  train = random_binary(rng, (25, 2000), 0.02)
  test = random_binary(rng, (25, 2000), 0.01)
  popularity = np.asarray(train.sum(axis=0)).ravel()
  assert metrics.default_chunk_size(2000, 20) > 0  # auto = two-stage top-k
  got = metrics.evaluate_embeddings(user_emb, item_emb, test, [train], ks=(10, 20),
                                    item_popularity=popularity)
  scores = np.asarray(jnp.asarray(user_emb) @ jnp.asarray(item_emb).T)  # [U, I]
  want = reference(scores, test, [train], (10, 20), popularity)
  assert_metrics_close(got, want, atol=1e-5)


def test_user_batch_size_for():
  assert metrics.user_batch_size_for(1000, 10) == 10
  batch = metrics.user_batch_size_for(40981, 29858)
  assert batch * 40981 * 4 * 4 <= (1 << 30) and batch >= 1024
  assert -(-29858 // batch) == -(-29858 // ((1 << 30) // (40981 * 16)))


def test_no_evaluable_users():
  target = sp.csr_matrix((4, 30), dtype=np.float32)
  got = metrics.evaluate_ranking(table_scores, jnp.zeros((4, 30)), target, ks=(5,))
  assert got["num_users_evaluated"] == 0 and got["recall@5"] == 0.0


def test_bad_input_raises():
  target = sp.csr_matrix((4, 30), dtype=np.float32)
  with pytest.raises(DataError, match="exclude"):
    metrics.evaluate_ranking(table_scores, jnp.zeros((4, 30)), target,
                             [sp.csr_matrix((4, 31))])
  with pytest.raises(DataError, match="ks"):
    metrics.evaluate_ranking(table_scores, jnp.zeros((4, 30)), target, ks=(31,))
  with pytest.raises(DataError, match="item_popularity"):
    metrics.evaluate_ranking(table_scores, jnp.zeros((4, 30)), target,
                             item_popularity=np.ones(3))
  with pytest.raises(DataError, match="users"):
    metrics.evaluate_ranking(table_scores, jnp.zeros((4, 30)), target, users=[4])


def test_rating_metrics_closed_form():
  got = metrics.rating_metrics(np.array([1.0, 2.0, 3.0]), jnp.array([2.0, 2.0, 5.0]))
  chex.assert_trees_all_close(got, {"mae": 1.0, "rmse": np.sqrt(5 / 3)})
  with pytest.raises(DataError):
    metrics.rating_metrics([1.0], [1.0, 2.0])

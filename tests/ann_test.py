"""Approximate top-k (jaxrec.serve.ann) against exact NumPy scoring."""

from __future__ import annotations

import numpy as np
import pytest

faiss = pytest.importorskip("faiss", reason="faiss-cpu (extra 'ann') is not installed")

from jaxrec import bundle as bundle_lib  # pylint: disable=wrong-import-position
from jaxrec.serve import ann  # pylint: disable=wrong-import-position
from jaxrec.serve import engine  # pylint: disable=wrong-import-position


def _clustered(n: int, dim: int, seed: int, clusters: int = 20) -> np.ndarray:
  # Recommender embeddings are clustered and of varied norms (popularity);
  # uniform noise would be the unrealistic worst case.
  rng = np.random.default_rng(seed)
  centres = rng.normal(0, 1, (clusters, dim))
  points = centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(0, 1, (n, dim))
  return (points * rng.lognormal(0, 0.3, (n, 1))).astype(np.float32)


def _exact(queries, items, k, exclude):
  scores = queries @ items.T
  for q, rows in enumerate(exclude):
    scores[q, rows] = -np.inf
  return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_mips_reduction_orders_by_inner_product():
  items = _clustered(300, 8, 0)
  query = _clustered(1, 8, 1)[0]
  points = ann.mips_to_l2(items)
  radius2 = float((items ** 2).sum(1).max())
  dist2 = ((np.append(query, 0.0) - points) ** 2).sum(1)
  # |q - x'|^2 = |q|^2 + R^2 - 2 q.x: L2 order is inner-product order.
  np.testing.assert_allclose(dist2, query @ query + radius2 - 2 * items @ query,
                             rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(np.linalg.norm(points, axis=1),
                             np.sqrt(radius2), rtol=1e-5)


def test_recall_and_exclusions():
  items = _clustered(5000, 16, 2)
  queries = _clustered(64, 16, 3)
  rng = np.random.default_rng(4)
  exclude = [rng.choice(5000, rng.integers(0, 40), replace=False)
             for _ in range(64)]
  index = ann.HnswIndex(items, ann.HnswOptions(m=16, ef_search=128))
  rows, scores = index.search(queries, 20, exclude)
  exact = _exact(queries, items, 20, exclude)
  recall = np.mean([len(np.intersect1d(r, e)) / 20 for r, e in zip(rows, exact)])
  assert recall >= 0.95, recall
  for q in range(64):
    assert not np.isin(rows[q], exclude[q]).any()
    np.testing.assert_allclose(scores[q], items[rows[q]] @ queries[q], rtol=1e-5)
    assert np.all(np.diff(scores[q]) <= 0)  # best first


def test_small_catalogue_is_exact_and_pads():
  items = _clustered(50, 8, 5)
  queries = _clustered(3, 8, 6)
  index = ann.HnswIndex(items)
  rows, _ = index.search(queries, 10, [np.arange(45)])
  # ef_search >= catalogue: every item is visited, so the search is exact.
  np.testing.assert_array_equal(rows[1:], _exact(queries, items, 10, [])[1:])
  assert list(rows[0, :5]) == list(_exact(queries[:1], items, 5,
                                          [np.arange(45)])[0])
  assert (rows[0, 5:] == -1).all()  # only 5 items left for query 0


def test_scorer_uses_the_index(tmp_path):
  rng = np.random.default_rng(7)
  users, items = _clustered(30, 8, 8), _clustered(400, 8, 9)
  indptr = np.arange(0, 31 * 3, 3)
  indices = np.concatenate([np.sort(rng.choice(400, 3, replace=False))
                            for _ in range(30)])
  bundle_lib.write(str(tmp_path / "b"), {
      "user_vectors.npy": users, "item_vectors.npy": items,
      "user_ids.npy": np.arange(30), "item_ids.npy": np.arange(400),
      "seen_indptr.npy": indptr, "seen_indices.npy": indices},
      {"model": "random", "dataset": "random", "num_users": 30,
       "num_items": 400, "dim": 8, "dtype": "float32",
       "fold_in": {"mode": "mean"}})
  model = engine.ServingModel.from_bundle(bundle_lib.read(str(tmp_path / "b")))
  approx = model._replace(ann=ann.HnswIndex(model.item_vectors,
                                            ann.HnswOptions(ef_search=400)))
  scorer = engine.Scorer(max_rows=8)
  jobs = [engine.Job(users[:5], [model.seen(r) for r in range(5)], 10),
          engine.Job(items[:2], [], 4, similar=True)]
  exact_out = scorer.run(model, jobs)
  approx_out = scorer.run(approx, jobs)
  for a, b in zip(exact_out[0], approx_out[0]):
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
  for a, b in zip(exact_out[1], approx_out[1]):  # similar items: exact path
    np.testing.assert_array_equal(a.rows, b.rows)


def test_l2_reduction_index_recalls():
  items = _clustered(3000, 16, 10)
  queries = _clustered(32, 16, 11)
  index = ann.HnswIndex(items, ann.HnswOptions(ef_search=256, metric="l2"))
  rows, _ = index.search(queries, 20)
  exact = _exact(queries, items, 20, [])
  recall = np.mean([len(np.intersect1d(r, e)) / 20 for r, e in zip(rows, exact)])
  assert recall >= 0.9, recall
  with pytest.raises(ValueError, match="metric"):
    ann.HnswIndex(items, ann.HnswOptions(metric="cosine"))


def test_service_builds_the_index_per_version(tmp_path, capsys):
  from jaxrec.serve import __main__ as cli  # pylint: disable=import-outside-toplevel
  from jaxrec.serve import app as app_lib  # pylint: disable=import-outside-toplevel
  items = _clustered(64, 8, 12)
  bundle_lib.write(str(tmp_path / "b"), {
      "user_vectors.npy": items[:4], "item_vectors.npy": items,
      "user_ids.npy": np.arange(4), "item_ids.npy": np.arange(64),
      "seen_indptr.npy": np.arange(5), "seen_indices.npy": np.arange(4)},
      {"model": "random", "dataset": "random", "num_users": 4,
       "num_items": 64, "dim": 8, "dtype": "float32",
       "fold_in": {"mode": "mean"}})
  service = app_lib.Service(app_lib.BundleSource(str(tmp_path / "b")),
                            app_lib.Options(index="hnsw", ef_search=64))
  assert isinstance(service.model.ann, ann.HnswIndex)
  assert service.model.ann.num_items == 64
  assert cli.main(["--bundle", str(tmp_path / "b"), "--index", "hnsw",
                   "--ef_search", "0"]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err == ["error: --ef_search must be >= 1, got 0"]

"""Tests of the closed-form baselines (MostPop, ItemKNN, EASE).

Each fit is checked against a brute-force NumPy reference on a small random
binary matrix; end to end, `train.train_and_evaluate` fits them on synthetic
data with planted structure, writes the usual workdir, and
`jaxrec.recommend` reloads the run.
"""

import json
import os

import chex
import jax
import numpy as np
import pytest
import scipy.sparse as sp

from jaxrec import recommend
from jaxrec import train
from jaxrec.data.dataset import DataError
from jaxrec.data.synthetic import make_synthetic
from jaxrec import models as models_lib
from jaxrec.models import baselines
from jaxrec import input_pipeline
from jaxrec import models
from tests import config_loader

NUM_USERS, NUM_ITEMS = 40, 25


@pytest.fixture(scope="module")
def matrix():
  """Random binary user x item matrix [40, 25] (one empty item and user)."""
  rng = np.random.default_rng(0)
  dense = (rng.random((NUM_USERS, NUM_ITEMS)) < 0.25).astype(np.float32)
  dense[:, 7] = 0.0  # an item nobody has
  dense[3] = 0.0  # a user without train items
  return dense


def _scores(model, params):
  """Scores of all users through embed + score, as the Evaluator uses them."""
  variables = {"params": params}
  user_emb, item_emb = model.apply(variables, None, method="embed")
  users = np.arange(model.num_users, dtype=np.int32)
  return np.asarray(model.apply(variables, user_emb, item_emb, users,
                                method="score"))  # [U, I]


def _check_specs(model, params):
  specs = model.param_specs()
  assert set(params) == set(specs)
  for name, (shape, dtype) in specs.items():
    assert params[name].shape == shape and params[name].dtype == dtype, name


def test_mostpop_is_train_popularity(matrix):
  model = baselines.MostPop(num_users=NUM_USERS, num_items=NUM_ITEMS)
  params = model.fit(sp.csr_matrix(matrix))
  _check_specs(model, params)
  pop = matrix.sum(axis=0)  # [I]
  np.testing.assert_array_equal(params["popularity"], pop)
  scores = _scores(model, params)
  np.testing.assert_array_equal(scores, np.broadcast_to(pop, scores.shape))
  # Every user gets the items by decreasing popularity (ties: lower id).
  order = np.argsort(-scores[0], kind="stable")
  np.testing.assert_array_equal(order, np.argsort(-pop, kind="stable"))


def _itemknn_reference(x, k, shrink):
  """Dense W [I, I]: shrunk cosine, zero diagonal, top-k per row i."""
  co = x.T.astype(np.float64) @ x  # [I, I]
  norms = np.sqrt(np.diag(co))  # [I]
  denom = norms[:, None] * norms[None, :] + shrink
  sim = np.divide(co, denom, out=np.zeros_like(co), where=co > 0)  # 0 / 0 = 0
  np.fill_diagonal(sim, 0.0)
  w = np.zeros_like(sim)
  for i in range(sim.shape[0]):  # brute force, one item at a time
    keep = np.argsort(-sim[i], kind="stable")[:k]  # ties: lower item id
    w[i, keep] = sim[i, keep]
  return w


@pytest.mark.parametrize("k,shrink", [(3, 2.0), (100, 0.0), (1, 10.0)])
def test_itemknn_matches_brute_force(matrix, k, shrink):
  model = baselines.ItemKNN(num_users=NUM_USERS, num_items=NUM_ITEMS,
                            num_neighbors=k, shrink=shrink)
  params = model.fit(sp.csr_matrix(matrix))
  _check_specs(model, params)
  w = _itemknn_reference(matrix, k, shrink)
  np.testing.assert_allclose(params["item_weights"], w.T, rtol=1e-6)
  assert np.all(np.count_nonzero(params["item_weights"], axis=0) <= k)
  np.testing.assert_array_equal(np.asarray(params["user_items"], np.float32),
                                matrix)
  np.testing.assert_allclose(_scores(model, params), matrix @ w, rtol=1e-5,
                             atol=1e-6)


def test_itemknn_without_shrink_or_cut_is_cosine(matrix):
  model = baselines.ItemKNN(num_users=NUM_USERS, num_items=NUM_ITEMS,
                            num_neighbors=NUM_ITEMS, shrink=0.0)
  w = model.fit(sp.csr_matrix(matrix))["item_weights"]
  cols = matrix / np.maximum(np.linalg.norm(matrix, axis=0), 1e-30)
  cosine = cols.T @ cols
  np.fill_diagonal(cosine, 0.0)
  np.testing.assert_allclose(w, cosine, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("l2", [0.5, 5.0, 500.0])
def test_ease_matches_explicit_inverse(matrix, l2):
  model = baselines.EASE(num_users=NUM_USERS, num_items=NUM_ITEMS, l2=l2)
  params = model.fit(sp.csr_matrix(matrix))
  _check_specs(model, params)
  x = matrix.astype(np.float64)
  p = np.linalg.inv(x.T @ x + l2 * np.eye(NUM_ITEMS))
  b = np.eye(NUM_ITEMS) - p / np.diag(p)[None, :]  # B = I - P diag(1/diag P)
  assert np.abs(np.diag(b)).max() < 1e-12
  bt = params["item_weights"]  # row j = B[:, j]
  np.testing.assert_array_equal(np.diag(bt), 0.0)
  scale = np.abs(b).max()
  np.testing.assert_allclose(bt, b.T, rtol=0, atol=1e-5 * scale)
  np.testing.assert_allclose(_scores(model, params), x @ b, rtol=0,
                             atol=1e-5 * scale * x.sum(axis=1).max())


def test_ease_is_the_constrained_ridge_solution(matrix):
  """Gradient of ||X - XB||^2 + l2 ||B||^2 vanishes off the diagonal."""
  l2 = 5.0
  model = baselines.EASE(num_users=NUM_USERS, num_items=NUM_ITEMS, l2=l2)
  b = model.fit(sp.csr_matrix(matrix))["item_weights"].T.astype(np.float64)
  x = matrix.astype(np.float64)
  grad = -x.T @ (x - x @ b) + l2 * b  # [I, I], half the gradient
  np.fill_diagonal(grad, 0.0)  # the diagonal is constrained (Lagrangian)
  assert np.abs(grad).max() < 1e-3 * np.abs(x.T @ x).max()


def test_fit_rejects_bad_input(matrix):
  model = baselines.EASE(num_users=NUM_USERS, num_items=NUM_ITEMS)
  with pytest.raises(DataError, match="expected"):
    model.fit(sp.csr_matrix(matrix[:, :-1]))
  with pytest.raises(DataError, match="scipy sparse"):
    model.fit(matrix)
  with pytest.raises(ValueError, match="l2"):
    baselines.EASE(num_users=NUM_USERS, num_items=NUM_ITEMS,
                   l2=0.0).fit(sp.csr_matrix(matrix))
  with pytest.raises(ValueError, match="num_neighbors"):
    baselines.ItemKNN(num_users=NUM_USERS, num_items=NUM_ITEMS,
                      num_neighbors=0).fit(sp.csr_matrix(matrix))


def test_registry_and_dispatch():
  assert all(models_lib.is_closed_form(n) for n in ("mostpop", "itemknn",
                                                   "ease"))
  assert not models_lib.is_closed_form("lightgcn")
  assert not models_lib.is_closed_form("no_such_model")


# ----------------------------------------------------------------------------
# End to end through train.train_and_evaluate.


@pytest.fixture(scope="module")
def dataset():
  return make_synthetic(num_users=150, num_items=200, num_interactions=3000,
                        seed=1)


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
  root = tmp_path_factory.mktemp("baselines")
  out = {}
  for name in ("mostpop", "itemknn", "ease"):
    workdir = str(root / name)
    config = config_loader.load("test.py", name)
    out[name] = dict(workdir=workdir, config=config,
                     results=train.train_and_evaluate(config, workdir,
                                                      dataset))
  return out


@pytest.mark.parametrize("name", ["mostpop", "itemknn", "ease"])
def test_run_writes_results_like_the_gradient_path(runs, dataset, name):
  run = runs[name]
  with open(os.path.join(run["workdir"], "results.json")) as f:
    results = json.load(f)
  assert results == json.loads(json.dumps(run["results"]))
  assert results["model"] == name and not results["refit"]
  assert results["best_epoch"] == 1 and results["epochs_run"] == 1
  assert results["seconds_per_epoch"] == results["fit_seconds"]
  assert results["train_seconds"] == results["fit_seconds"] >= 0.0
  assert results["num_train"] == len(dataset.train)
  for split in ("valid", "test"):
    assert 0.0 <= results[split]["recall@20"] <= 1.0
    assert np.isfinite(results[split]["ndcg@20"])
  with open(os.path.join(run["workdir"], "metrics.jsonl")) as f:
    history = [json.loads(line) for line in f]
  assert len(history) == 1 and history[0]["epoch"] == 1
  assert history[0]["valid/recall@20"] == results["valid"]["recall@20"]
  assert os.path.isdir(os.path.join(run["workdir"], "checkpoints", "1"))


def test_valid_metrics_are_the_evaluators(runs, dataset):
  """results.json's validation = Evaluator on a fresh fit of the same model."""
  run = runs["itemknn"]
  config = run["config"]
  model = models.get_model("itemknn", dataset.num_users, dataset.num_items,
                          **config.model.to_dict())
  params = jax.tree.map(np.asarray, model.fit(dataset.csr("train")))
  graph = input_pipeline.build_graph(config, dataset)
  valid = train.Evaluator(model, graph, dataset, config)(params, "valid")
  chex.assert_trees_all_close(valid, run["results"]["valid"], rtol=1e-6)


def test_ease_beats_mostpop_on_planted_structure(runs):
  ease, pop = runs["ease"]["results"], runs["mostpop"]["results"]
  knn = runs["itemknn"]["results"]
  for split in ("valid", "test"):
    assert ease[split]["recall@20"] > pop[split]["recall@20"]
    assert ease[split]["ndcg@20"] > pop[split]["ndcg@20"]
    assert knn[split]["recall@20"] > pop[split]["recall@20"]


def test_rerun_reuses_the_fitted_checkpoint(runs, dataset):
  run = runs["ease"]
  again = train.train_and_evaluate(run["config"], run["workdir"], dataset)
  assert again["fit_seconds"] == run["results"]["fit_seconds"]
  chex.assert_trees_all_close(again["test"], run["results"]["test"])


def test_refit_fits_on_train_plus_valid(dataset, tmp_path):
  config = config_loader.load("test.py", "ease")
  config.refit_epochs = 1
  results = train.train_and_evaluate(config, str(tmp_path), dataset)
  assert results["refit"] and results["valid"] == {}
  assert results["num_train"] == len(dataset.train) + len(dataset.valid)
  assert 0.0 <= results["test"]["recall@20"] <= 1.0


@pytest.mark.parametrize("name", ["mostpop", "ease"])
def test_recommend_loads_the_fitted_run(runs, dataset, name):
  run = runs[name]
  trained = recommend.TrainedModel.load(run["workdir"])
  assert trained.best_epoch == 1
  model = trained.model
  params = model.fit(dataset.csr("train"))  # deterministic: same parameters
  chex.assert_trees_all_close(jax.tree.map(np.asarray, trained.params),
                              params)
  # Brute force: NumPy scores, train + valid masked, ties to the lower id.
  if name == "mostpop":
    scores = np.tile(params["popularity"].astype(np.float64),
                     (dataset.num_users, 1))
  else:
    scores = (np.asarray(params["user_items"], np.float64)
              @ params["item_weights"].astype(np.float64).T)
  seen = (dataset.csr("train") + dataset.csr("valid")).toarray() > 0
  scores[seen] = -np.inf
  k = 5
  frame = recommend.recommend(run["workdir"], k=k)
  assert len(frame) == dataset.num_users * k
  got = frame["score"].to_numpy().reshape(dataset.num_users, k)
  best = -np.sort(-scores, axis=1)[:, :k]  # [U, k]
  np.testing.assert_allclose(got, best, rtol=1e-5, atol=1e-6)
  items = frame["item"].to_numpy().reshape(dataset.num_users, k)
  np.testing.assert_allclose(np.take_along_axis(scores, items, axis=1), best,
                             rtol=1e-5, atol=1e-6)

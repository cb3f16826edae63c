"""The rating task: MSE loss, rating split, rating models and training."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import config_utils
from jaxrec import losses
from jaxrec.batches import RatingBatch
from jaxrec import train
from jaxrec.data import splits
from jaxrec.data.dataset import Dataset, Interactions
from jaxrec.data.synthetic import make_synthetic_ratings
from jaxrec.errors import ConfigError
from jaxrec.graphs import bipartite_graph
from jaxrec.graphs import pad_graph
from jaxrec.graphs.bipartite import edge_ratings
from jaxrec.input_pipeline import rating_batches
from jaxrec.models import get_model
from jaxrec.models.rating import train_mean
from jaxrec import input_pipeline


@pytest.fixture(scope="module")
def small():
  return make_synthetic_ratings(num_users=40, num_items=30, num_ratings=500,
                                seed=1)


def _predictor(model):
  """Jitted `predict(params, graph, users, items)` of a model."""
  return jax.jit(lambda params, graph, users, items: model.apply(
      {"params": params}, graph, users, items, method="predict"))


def _init(model, graph):
  return jax.jit(lambda g: train.init_params(model, g, 8,
                                             jax.random.key(0)))(graph)


def _config(name, **overrides):
  config = config_utils.load_config_file(name.removesuffix(".py"))
  config.progress = False
  for key, value in overrides.items():
    config[key] = value
  return config


# ----------------------------------------------------------------------------
# Loss.


def test_mse_loss_matches_numpy():
  rng = np.random.default_rng(0)
  pred, target = rng.normal(size=(2, 7)).astype(np.float32)
  mask = np.array([1, 1, 1, 1, 1, 0, 0], np.float32)
  p, q = rng.normal(size=(2, 7, 3)).astype(np.float32)
  bias = rng.normal(size=7).astype(np.float32)
  real = mask > 0
  want = np.mean((pred[real] - target[real]) ** 2)
  chex.assert_trees_all_close(losses.mse_loss(pred, target, mask), want,
                              rtol=1e-6)
  reg = np.mean(0.5 * (np.sum(p[real] ** 2, 1) + np.sum(q[real] ** 2, 1)
                       + bias[real] ** 2))
  chex.assert_trees_all_close(
      losses.mse_loss(pred, target, mask, 0.3, (p, q, bias)),
      want + 0.3 * reg, rtol=1e-5)
  # No mask: the plain mean; zero weight ignores the rows.
  chex.assert_trees_all_close(losses.mse_loss(pred, target, None, 0.0, (p,)),
                              np.mean((pred - target) ** 2), rtol=1e-6)


# ----------------------------------------------------------------------------
# Data: split, batches, graph.


def test_rating_split_proportions_disjoint_and_seeded():
  data = make_synthetic_ratings(num_users=200, num_items=300,
                                num_ratings=20000, valid_ratio=0.0,
                                test_ratio=0.0, seed=3)
  inter = data.train
  parts = splits.random_split(inter, test_ratio=0.1, valid_ratio=0.1, seed=5)
  sizes = np.array([len(p) for p in parts]) / len(inter)
  np.testing.assert_allclose(sizes, [0.8, 0.1, 0.1], atol=0.01)
  keys = [set((p.users.astype(np.int64) * 300 + p.items).tolist())
          for p in parts]
  assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
  assert sum(len(k) for k in keys) == len(inter)
  # Ratings travel with their rows.
  lookup = dict(zip((inter.users.astype(np.int64) * 300 + inter.items
                     ).tolist(), inter.ratings.tolist()))
  for part in parts:
    got = [lookup[k] for k in (part.users.astype(np.int64) * 300
                               + part.items).tolist()]
    np.testing.assert_array_equal(part.ratings, got)
  # Per user: about 10% each, at least one train row.
  per_user = np.bincount(inter.users, minlength=200)
  held = np.bincount(parts[2].users, minlength=200)
  assert np.all(np.abs(held - 0.1 * per_user) < 1.0 + 1e-9)
  assert np.all(np.bincount(parts[0].users, minlength=200) >= 1)
  again = splits.random_split(inter, test_ratio=0.1, valid_ratio=0.1, seed=5)
  other = splits.random_split(inter, test_ratio=0.1, valid_ratio=0.1, seed=6)
  np.testing.assert_array_equal(again[2].items, parts[2].items)
  assert not np.array_equal(other[2].items, parts[2].items)


def test_rating_batches_cover_the_train_split_once(small):
  config = _config("biased_mf.py", batch_size=64)
  rows = rating_batches(config, small, epoch=2)
  assert isinstance(rows, RatingBatch)
  assert set(rows._fields) == {"users", "items", "ratings", "mask"}
  steps = -(-len(small.train) // 64)
  for value in rows:
    assert value.shape == (steps, 64)
  real = rows.mask.ravel() > 0
  assert real.sum() == len(small.train)
  got = sorted(zip(rows.users.ravel()[real], rows.items.ravel()[real],
                   rows.ratings.ravel()[real]))
  want = sorted(zip(small.train.users, small.train.items,
                    small.train.ratings))
  assert got == want
  np.testing.assert_array_equal(rating_batches(config, small, 2).items,
                                rows.items)


def test_rating_weighted_edges_match_dense_normalisation():
  users, items = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 0, 2])
  ratings = np.array([5.0, 1.0, 3.0, 2.0, 4.0], np.float32)
  inter = Interactions(users, items, ratings)
  graph = bipartite_graph(inter, 3, 3, norm="sym", edge_weight="rating",
                          keep_ratings=True)
  a = np.zeros((6, 6))
  a[users, 3 + items] = ratings
  a = a + a.T
  deg = a.sum(1)
  want = a / np.sqrt(np.outer(deg, deg))
  got = np.zeros((6, 6))
  got[graph.receivers, graph.senders] = graph.edges
  np.testing.assert_allclose(got, want, rtol=1e-6)
  stored = np.zeros((6, 6))
  stored[graph.receivers, graph.senders] = edge_ratings(graph)
  np.testing.assert_allclose(stored, a)
  # Padding appends zero ratings and leaves the train mean unchanged.
  padded = pad_graph(graph, 8, 16)
  assert edge_ratings(padded).shape == (16,)
  chex.assert_trees_all_close(train_mean(padded), ratings.mean(), rtol=1e-6)
  log = bipartite_graph(inter, 3, 3, norm="none", edge_weight="log_rating")
  np.testing.assert_allclose(np.sort(log.edges),
                             np.sort(np.tile(np.log1p(ratings), 2)),
                             rtol=1e-6)


def test_rating_edges_for_the_ranking_task(small):
  config = _config("lightgcn.py")
  config.graph.edge_weight = "rating"
  config_utils.validate_config(config)
  graph = input_pipeline.build_graph(config, small)
  plain = input_pipeline.build_graph(_config("lightgcn.py"), small)
  assert edge_ratings(graph) is None  # ranking graphs keep no ratings
  assert not np.allclose(graph.edges, plain.edges)
  config.graph.edge_weight = "stars"
  with pytest.raises(ConfigError, match="edge_weight"):
    config_utils.validate_config(config)


def test_task_and_model_must_agree():
  config = _config("biased_mf.py")
  config.task = "ranking"
  with pytest.raises(ConfigError, match="predicts ratings"):
    config_utils.validate_config(config)
  config = _config("lightgcn.py")
  config.task = "rating"
  with pytest.raises(ConfigError, match="rating model"):
    config_utils.validate_config(config)
  config = _config("biased_mf.py", selection_metric="recall@20")
  with pytest.raises(ConfigError, match="rmse"):
    config_utils.validate_config(config)
  with pytest.raises(ConfigError, match="config.task"):
    config_utils.validate_config(_config("biased_mf.py", task="regression"))


# ----------------------------------------------------------------------------
# Models.


def test_biased_mf_learns_low_rank_ratings_to_noise_level(tmp_path):
  noise = 0.25
  data = make_synthetic_ratings(num_users=100, num_items=80,
                                num_ratings=5000, rank=3, noise=noise,
                                discrete=False, seed=0)
  config = _config("biased_mf.py", batch_size=512, num_epochs=100,
                   patience=5, steps_per_call=8)
  config.model = dict(embed_dim=8, l2_reg=0.01, init_std=0.1)
  config.optimizer.learning_rate = 0.02
  result = train.train_and_evaluate(config, str(tmp_path), dataset=data)
  mean_rmse = np.std(data.test.ratings - data.train.ratings.mean())
  assert result["test"]["rmse"] < 1.25 * noise < 0.5 * mean_rmse


def _permuted(data: Dataset, perm_u, perm_i) -> Dataset:
  def move(inter):
    return Interactions(perm_u[inter.users], perm_i[inter.items],
                        inter.ratings)
  return Dataset("perm", data.num_users, data.num_items, move(data.train),
                 move(data.valid), move(data.test))


def test_gcmc_shapes_and_permutation_equivariance(small):
  config = _config("gcmc.py")
  config.model = dict(config.model, dropout=0.0, embed_dim=8, hidden_dim=6,
                      out_dim=5)
  model = get_model("gcmc", small.num_users, small.num_items,
                    **config.model.to_dict())
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, small))
  params = _init(model, graph)
  predict = _predictor(model)
  assert params["level_weights"].shape == (5, 8, 6)
  user_emb, item_emb = train.embed(params, graph, model=model)
  assert user_emb.shape == (small.num_users, 5)
  assert item_emb.shape == (small.num_items, 5)
  users, items = small.test.users, small.test.items
  pred = predict(params, graph, users, items)
  assert pred.shape == (len(users),)
  assert np.all((pred >= 1.0) & (pred <= 5.0))
  rng = np.random.default_rng(0)
  perm_u = rng.permutation(small.num_users)
  perm_i = rng.permutation(small.num_items)
  moved = _permuted(small, perm_u, perm_i)
  moved_graph = jax.tree.map(jnp.asarray,
                             input_pipeline.build_graph(config, moved))
  inv_u, inv_i = np.argsort(perm_u), np.argsort(perm_i)
  moved_params = dict(params, user_embedding=params["user_embedding"][inv_u],
                      item_embedding=params["item_embedding"][inv_i])
  moved_pred = predict(moved_params, moved_graph, perm_u[users],
                       perm_i[items])
  np.testing.assert_allclose(moved_pred, pred, rtol=1e-4, atol=1e-5)
  # Messages are rating-typed: the same edges with other ratings differ.
  flipped = Interactions(small.train.users, small.train.items,
                         6.0 - small.train.ratings)
  other = input_pipeline.build_graph(config, Dataset("f", small.num_users,
                                            small.num_items, flipped))
  other_pred = predict(params, jax.tree.map(jnp.asarray, other), users,
                       items)
  assert not np.allclose(other_pred, pred, atol=1e-4)


def test_rating_head_wraps_a_gnn_backbone(small):
  config = _config("rating_head.py")
  config_utils.validate_config(config)
  model = get_model("rating_head", small.num_users, small.num_items,
                    **config.model.to_dict())
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, small))
  params = _init(model, graph)
  assert set(params) == {"net", "user_bias", "item_bias"}
  batch = jax.tree.map(lambda v: v[0], rating_batches(config, small, 0))
  loss, _ = jax.jit(lambda p, g, b: model.apply(
      {"params": p}, g, b, method="loss",
      rngs={"dropout": jax.random.key(1)}))(params, graph, batch)
  assert np.isfinite(loss)
  pred = _predictor(model)(params, graph, small.valid.users,
                           small.valid.items)
  # Zero biases and near-zero products: about the train mean.
  np.testing.assert_allclose(pred, small.train.ratings.mean(), atol=0.2)


def _ridge_biases(data, reg_user, reg_item):
  """Exact minimiser of sum (r - mu - b_u - b_i)^2 + reg * ||b||^2."""
  u, i, r = data.train.users, data.train.items, data.train.ratings
  nu, ni = data.num_users, data.num_items
  x = np.zeros((len(r), nu + ni))
  x[np.arange(len(r)), u] = 1.0
  x[np.arange(len(r)), nu + i] = 1.0
  reg = np.diag(np.r_[np.full(nu, reg_user), np.full(ni, reg_item)])
  b = np.linalg.solve(x.T @ x + reg, x.T @ (r - r.mean()))
  return r.mean(), b[:nu], b[nu:]


def test_user_item_bias_is_the_ridge_solution(small):
  model = get_model("user_item_bias", small.num_users, small.num_items,
                    reg_user=3.0, reg_item=2.0, num_iters=300)
  fitted = model.fit(small.train)
  mu, b_u, b_i = _ridge_biases(small, 3.0, 2.0)
  np.testing.assert_allclose(fitted["mean"], [mu], rtol=1e-6)
  np.testing.assert_allclose(fitted["user_bias"], b_u, atol=1e-4)
  np.testing.assert_allclose(fitted["item_bias"], b_i, atol=1e-4)


def test_user_item_bias_matches_surprise_baseline(small):
  surprise = pytest.importorskip("surprise")
  import pandas as pd  # pylint: disable=g-import-not-at-top
  frame = pd.DataFrame({"u": small.train.users, "i": small.train.items,
                        "r": small.train.ratings})
  trainset = surprise.Dataset.load_from_df(
      frame, surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
  algo = surprise.BaselineOnly(
      bsl_options=dict(method="als", reg_u=15, reg_i=10, n_epochs=10),
      verbose=False)
  algo.fit(trainset)
  model = get_model("user_item_bias", small.num_users, small.num_items)
  fitted = model.fit(small.train)
  users, items = small.test.users, small.test.items
  known = np.array([trainset.knows_user(trainset.to_inner_uid(u))
                    if u in trainset._raw2inner_id_users else False
                    for u in users])
  known &= np.array([i in trainset._raw2inner_id_items for i in items])
  want = [algo.predict(u, i, clip=False).est
          for u, i in zip(users[known], items[known])]
  got = (fitted["mean"][0] + fitted["user_bias"][users[known]]
         + fitted["item_bias"][items[known]])
  np.testing.assert_allclose(got, want, atol=1e-4)


# ----------------------------------------------------------------------------
# Training.


def test_train_and_evaluate_writes_rmse_and_mae(small, tmp_path):
  for name in ("global_mean.py", "user_item_bias.py", "biased_mf.py"):
    workdir = tmp_path / name
    config = _config(name, num_epochs=3)
    result = train.train_and_evaluate(config, str(workdir), dataset=small)
    with open(workdir / "results.json") as f:
      saved = json.load(f)
    assert set(saved["test"]) == {"rmse", "mae"}
    assert saved["selection_metric"] == "rmse"
    assert saved["test"] == result["test"]
    assert 0 < saved["test"]["mae"] <= saved["test"]["rmse"]
  mean = small.train.ratings.mean()
  want = np.clip(mean, small.train.ratings.min(), small.train.ratings.max())
  np.testing.assert_allclose(
      json.load(open(tmp_path / "global_mean.py" / "results.json"))["test"]
      ["mae"], np.mean(np.abs(small.test.ratings - want)), rtol=1e-5)
  # Top-K serving takes ranking runs only: one line, exit status 1.
  from jaxrec import recommend  # pylint: disable=import-outside-toplevel
  trained = recommend.TrainedModel.load(str(tmp_path / "biased_mf.py"))
  with pytest.raises(ConfigError, match="config.task='rating'"):
    trained.recommend(k=5)
  assert recommend.main(["--workdir", str(tmp_path / "biased_mf.py"),
                         "--all_users", "--k", "5"]) == 1


def test_validation_selects_the_lowest_rmse(small, tmp_path):
  config = _config("biased_mf.py", num_epochs=12, patience=3, batch_size=64)
  config.optimizer.learning_rate = 0.05  # overfits: validation RMSE turns up
  config.model = dict(embed_dim=16, l2_reg=0.0)
  result = train.train_and_evaluate(config, str(tmp_path), dataset=small)
  with open(os.path.join(tmp_path, "metrics.jsonl")) as f:
    history = [json.loads(line) for line in f]
  rmse = [h["valid/rmse"] for h in history]
  assert result["best_epoch"] == history[int(np.argmin(rmse))]["epoch"]
  assert result["best_epoch"] < history[-1]["epoch"]  # stopped after the best
  np.testing.assert_allclose(result["valid"]["rmse"], min(rmse), rtol=1e-6)


def test_report_and_comparison_show_rmse_and_mae(tmp_path):
  from jaxrec import compare  # pylint: disable=g-import-not-at-top
  from jaxrec import report  # pylint: disable=g-import-not-at-top
  config = _config("biased_mf.py", num_epochs=2)
  config.dataset.kwargs = dict(num_users=40, num_items=30, num_ratings=500,
                               valid_ratio=0.1, test_ratio=0.1)
  config.compare = [dict(name="bmf", model_name="biased_mf",
                         model=dict(embed_dim=8, l2_reg=0.04)),
                    dict(name="bias", model_name="user_item_bias",
                         model=dict())]
  table = compare.run_comparison(config, str(tmp_path))
  assert "| model | best epoch | rmse | mae | s/epoch |" in table
  assert table.count("\n") == 3
  out = report.make_report(str(tmp_path / "bmf"),
                           compare=[str(tmp_path / "bias")])
  text = open(out["report"]).read()
  assert "| rmse |" in text and "| mae |" in text
  assert "recall" not in text
  assert os.path.isfile(out["Rating metrics"])
  # The snapshot keeps the ratings, so the embedding plots are drawn too.
  assert "Embeddings (PCA)" in out


def test_synthetic_ratings_preset_loads_through_the_registry():
  config = _config("biased_mf.py")
  config.dataset.kwargs = dict(num_users=30, num_items=20, num_ratings=300,
                               valid_ratio=0.1, test_ratio=0.1)
  data = input_pipeline.load_data(config)
  assert data.name == "synthetic_ratings"
  assert all(getattr(data, s).ratings is not None
             for s in ("train", "valid", "test"))
  assert len(data.train) + len(data.valid) + len(data.test) == 300


def test_rating_benchmark_page_pairs_by_seed():
  from benchmarks import rating as bench  # pylint: disable=g-import-not-at-top
  from benchmarks import real_text_report  # pylint: disable=g-import-not-at-top

  def runs(rmse):
    return [{"seed": s, "test": {"rmse": r, "mae": r - 0.2},
             "best_epoch": 3, "seconds_per_epoch": 0.5}
            for s, r in enumerate(rmse)]
  models = {"biased_mf": {"selected": "a", "runs": runs([0.85, 0.86, 0.84])},
            "gcmc": {"selected": "b", "runs": runs([0.87, 0.89, 0.86])}}
  for entry in models.values():
    entry["summary"] = bench.summary(entry["runs"])
  paired = {"gcmc": {m: real_text_report.paired_runs(models, "gcmc",
                                                      "biased_mf", m)
                     for m in ("rmse", "mae")}}
  np.testing.assert_allclose(paired["gcmc"]["rmse"]["mean"], 0.0233333,
                             rtol=1e-4)
  page = bench.render({"command": "python -m benchmarks.rating",
                       "hardware": "2-core x86_64 CPU, shared",
                       "date": "2026-01-01", "seeds": [0, 1, 2],
                       "patience": 5, "max_epochs": 100, "models": models,
                       "paired": paired, "search": {}, "not_run": []})
  assert "| Biased MF | 0.8500 ± 0.0100 |" in page
  assert "GC-MC does not beat biased MF" in page


def test_architecture_search_refuses_the_rating_task(small, tmp_path):
  from jaxrec.search import runner  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="ranking metrics"):
    runner.Runner(None, _config("biased_mf.py"), str(tmp_path), 1,
                  dataset=small)

"""Warm starts: config.init_from / init_map / init_text (jaxrec/warm_start.py)."""

import dataclasses

import jax
import numpy as np
import pytest
from sklearn.decomposition import PCA

from jaxrec import train
from jaxrec import warm_start
from jaxrec.config_utils import with_defaults
from jaxrec.data.dataset import Interactions
from jaxrec.data.synthetic import make_synthetic
from jaxrec.errors import ConfigError

TEXT_DIM = 12


@pytest.fixture(scope="module")
def dataset():
  ds = make_synthetic(num_users=40, num_items=60, num_interactions=700,
                      seed=0)
  rng = np.random.default_rng(0)
  return dataclasses.replace(
      ds, item_embeddings=rng.normal(size=(60, TEXT_DIM)).astype(np.float32),
      user_embeddings=rng.normal(size=(40, TEXT_DIM)).astype(np.float32))


def _config(model_name="lightgcn", epochs=2, **extra):
  model = {"mf": dict(embed_dim=8), "lightgcn": dict(embed_dim=8,
                                                     num_layers=2)}.get(
                                                         model_name)
  config = with_defaults(dict(
      model_name=model_name, model=model, batch_size=64, num_epochs=epochs,
      eval_every=1, steps_per_call=16, eval_ks=(10,),
      selection_metric="recall@10", progress=False, max_checkpoints=1,
      optimizer=dict(learning_rate=1e-2), seed=0))
  config.update(extra)
  return config


@pytest.fixture(scope="module")
def source(dataset, tmp_path_factory):
  """A finished LightGCN run (8 epochs) and its best parameters."""
  workdir = str(tmp_path_factory.mktemp("warm") / "source")
  config = _config(epochs=8)
  train.train_and_evaluate(config, workdir, dataset)
  exp = train.setup_experiment(config, dataset)
  _, best, _ = train.restore_best_params(workdir, config, exp.model,
                                         exp.graph)
  return workdir, best


def _initial(config, dataset):
  return train.setup_experiment(config, dataset).state.params


def test_init_from_restores_the_source_best_params(dataset, source):
  workdir, best = source
  params = _initial(_config(init_from=workdir), dataset)
  for name in ("user_embedding", "item_embedding"):
    np.testing.assert_array_equal(params[name], best[name])
  scratch = _initial(_config(), dataset)
  assert not np.allclose(scratch["item_embedding"], best["item_embedding"])


def test_init_map_copies_only_the_named_tables(dataset, source):
  workdir, best = source
  scratch = _initial(_config(), dataset)
  params = _initial(_config(init_from=workdir,
                            init_map="item_embedding:item_embedding"),
                    dataset)
  np.testing.assert_array_equal(params["item_embedding"],
                                best["item_embedding"])
  np.testing.assert_array_equal(params["user_embedding"],
                                scratch["user_embedding"])
  # Into another model's paths: an RLMRec wrapper's backbone tables.
  config = _config("rlmrec_con", init_from=workdir,
                   init_map="user_embedding:net/user_embedding,"
                            "item_embedding:net/item_embedding")
  wrapper = {"net": {"user_embedding": np.zeros((40, 8), np.float32),
                     "item_embedding": np.zeros((60, 8), np.float32)},
             "con_mlp": {"kernel": np.ones((TEXT_DIM, 8), np.float32)}}
  params = warm_start.initial_params(config, wrapper, dataset, model=None)
  np.testing.assert_array_equal(params["net"]["user_embedding"],
                                best["user_embedding"])
  np.testing.assert_array_equal(params["con_mlp"]["kernel"], 1.0)


SRC = "<source run>"  # replaced by the source fixture's workdir


@pytest.mark.parametrize("extra,match", [
    (dict(init_from="/nonexistent/run"), "does not exist"),
    (dict(init_map="user_embedding:user_embedding"), "init_from is empty"),
    (dict(init_from=SRC, init_map="user_embedding"),
     "is not 'source_path:target_path'"),
    (dict(init_from=SRC, init_map="a:x,b:x"), "named twice"),
    (dict(init_from=SRC, init_map="net/user_embedding:user_embedding"),
     "'net/user_embedding' is not a parameter of the run"),
    (dict(init_from=SRC, init_map="user_embedding:user_table"),
     "'user_table' is not a parameter of this run"),
    (dict(init_text="svd"), "config.init_text: unknown value"),
    (dict(init_text="pca"), "needs node text features"),
])
def test_errors_are_one_line_config_errors(dataset, source, extra, match):
  extra = {k: source[0] if v == SRC else v for k, v in extra.items()}
  with pytest.raises(ConfigError, match=match) as err:
    _initial(_config(**extra), dataset)
  assert "\n" not in str(err.value)


def test_shape_mismatch_and_no_common_parameter(dataset, source, tmp_path):
  config = _config(init_from=source[0])
  config.model.embed_dim = 16
  with pytest.raises(ConfigError, match=r"init_from: 'item_embedding' in .* "
                     r"has shape \(60, 8\) but 'item_embedding' needs "
                     r"\(60, 16\)"):
    _initial(config, dataset)
  text_only = {"mlp": {"kernel": np.zeros((TEXT_DIM, 8), np.float32)}}
  with pytest.raises(ConfigError, match="no parameter of this run has the "
                     "same path"):
    warm_start.initial_params(_config(init_from=source[0]), text_only,
                              dataset, model=None)


def test_source_trained_on_another_split_is_refused(dataset, source):
  """Source training rows in this run's test split: refused (leakage)."""
  moved = dataclasses.replace(
      dataset, train=Interactions(dataset.train.users[10:],
                                  dataset.train.items[10:]),
      test=Interactions(np.concatenate([dataset.test.users,
                                        dataset.train.users[:10]]),
                        np.concatenate([dataset.test.items,
                                        dataset.train.items[:10]])))
  with pytest.raises(ConfigError, match="10 training interactions"):
    _initial(_config(init_from=source[0]), moved)


def test_fine_tune_starts_from_the_warm_start(dataset, source, tmp_path):
  """The first epoch's loss of a warm-started run is below the scratch one."""
  warm = train.train_and_evaluate(_config(epochs=1, init_from=source[0]),
                                  str(tmp_path / "warm"), dataset)
  cold = train.train_and_evaluate(_config(epochs=1),
                                  str(tmp_path / "cold"), dataset)
  assert warm["epoch_losses"][0] < 0.8 * cold["epoch_losses"][0]
  assert warm["valid"]["recall@10"] > cold["valid"]["recall@10"]


def test_init_text_pca_matches_sklearn(dataset):
  config = _config("mf", init_text="pca")
  config.graph.text_features = True
  params = _initial(config, dataset)
  x = np.concatenate([dataset.user_embeddings, dataset.item_embeddings])
  ref = PCA(n_components=8, svd_solver="full").fit_transform(x)
  ref *= 0.1 / ref.std()  # the model's init_std
  got = np.concatenate([params["user_embedding"], params["item_embedding"]])
  # Components are defined up to sign: compare the dot products (scores).
  np.testing.assert_allclose(got @ got.T, ref @ ref.T, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(got.std(), 0.1, rtol=1e-5)
  config.model.embed_dim = TEXT_DIM + 1
  with pytest.raises(ConfigError, match="exceeds the text features"):
    _initial(config, dataset)


def test_parse_init_map():
  assert warm_start.parse_init_map("") == []
  assert warm_start.parse_init_map(" a/b : c , d:e ") == [("a/b", "c"),
                                                          ("d", "e")]
  flat = warm_start.flatten({"net": {"w": jax.numpy.zeros(2)}, "b": 1})
  assert sorted(flat) == ["b", "net/w"]


def test_benchmark_page_pairs_by_seed():
  """benchmarks/warm_start.py: paired t interval as scipy's, page from JSON."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  from benchmarks import warm_start as bench  # pylint: disable=g-import-not-at-top
  from benchmarks import real_text_report  # pylint: disable=g-import-not-at-top
  scratch, fine = [0.20, 0.22, 0.21], [0.23, 0.24, 0.22]
  run = lambda r, epoch: {"test": {"recall@20": r, "ndcg@20": r / 2},
                          "best_epoch": epoch, "epochs_run": 100,
                          "seconds_per_epoch": 0.5}
  runs = {str(s): {"scratch": run(scratch[s], 95), "finetune": run(fine[s], 50),
                   "pretrain": run(0.1, 50)} for s in range(3)}
  paired = {m: real_text_report.paired(
      [runs[s]["finetune"]["test"][m] for s in runs],
      [runs[s]["scratch"]["test"][m] for s in runs])
            for m in bench.METRICS}
  d = np.subtract(fine, scratch)
  lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(),
                            scale=stats.sem(d))
  np.testing.assert_allclose([paired["recall@20"]["lo"],
                              paired["recall@20"]["hi"]], [lo, hi], rtol=1e-3)
  page = bench.render({
      "protocol": dict(dataset="ml_latest_small", total_epochs=150,
                       pretrain_epochs=50, eval_every=5),
      "command": "python -m benchmarks.warm_start", "hardware": "Hardware: x",
      "runs": runs, "paired": paired})
  assert "| two-stage | 0.2300 ± 0.0100 |" in page
  assert "scratch 3/3 seeds, two-stage 0/3" in page
  assert (f"| recall@20 | +{d.mean():.4f} [{lo:+.4f}, {hi:+.4f}] (includes 0) |"
          in page)

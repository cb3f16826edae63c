"""Tests of the training loop: learning, selection on validation, exact resume."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import train
from jaxrec.data.synthetic import make_synthetic
from jaxrec import checkpoint as checkpoint_lib
from jaxrec import input_pipeline
from jaxrec import models
from jaxrec import optimizers
from jaxrec.data import dataset as dataset_lib
from jaxrec.data import sampler
from tests import config_loader


@pytest.fixture(scope="module")
def dataset():
  return make_synthetic(num_users=150, num_items=200, num_interactions=3000,
                        seed=1)


def _config(model="lightgcn", epochs=4):
  config = config_loader.load("test.py", model)
  config.num_epochs = epochs
  config.patience = 100
  return config


def test_train_step_reduces_loss(dataset):
  config = _config()
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, dataset))
  model = models.get_model("lightgcn", dataset.num_users, dataset.num_items,
                          **config.model.to_dict())
  params = train.init_params(model, graph, 64, jax.random.key(0))
  state = train.TrainState.create(apply_fn=model.apply, params=params,
                                  tx=optimizers.make_optimizer(config))
  rows = input_pipeline.stack_batches(sampler.epoch_triples(
      dataset.train, dataset.num_users, dataset.num_items, 0, 0), 64)
  batch = jax.tree.map(lambda v: v[0], rows)
  step = jax.jit(lambda s, b, r: train.train_step(s, graph, b, r, model=model),
                 donate_argnums=0)
  losses = []
  for _ in range(20):
    state, metrics = step(state, batch, jax.random.key(1))
    losses.append(float(metrics["loss"]))
  assert losses[-1] < losses[0]
  assert int(state.step) == 20


def test_best_epoch_is_chosen_on_validation(dataset, tmp_path):
  result = train.train_and_evaluate(_config(epochs=5), str(tmp_path), dataset)
  with open(tmp_path / "metrics.jsonl") as f:
    history = [json.loads(line) for line in f]
  assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
  valid = [h["valid/recall@20"] for h in history]
  assert result["best_epoch"] == 1 + int(np.argmax(valid))
  assert not any(k.startswith("test/") for h in history for k in h)
  assert result["valid"]["recall@20"] == pytest.approx(max(valid))
  with open(tmp_path / "results.json") as f:
    assert json.load(f)["test"] == result["test"]


@pytest.mark.parametrize("model", ["mf", "lightgcn"])
def test_resume_is_exact(dataset, tmp_path, model):
  full = train.train_and_evaluate(_config(model, 4), str(tmp_path / "full"),
                                  dataset)
  part = str(tmp_path / "part")
  train.train_and_evaluate(_config(model, 2), part, dataset)
  resumed = train.train_and_evaluate(_config(model, 4), part, dataset)
  assert resumed["best_epoch"] == full["best_epoch"]
  chex.assert_trees_all_close(resumed["test"], full["test"], rtol=1e-6)
  read = lambda d: [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
  h_full, h_part = read(tmp_path / "full"), read(part)
  assert [h["loss"] for h in h_full] == pytest.approx([h["loss"] for h in h_part],
                                                       rel=1e-6)


def test_early_stopping(dataset, tmp_path):
  config = _config(epochs=50)
  config.patience = 2
  # No progress (updates below float32 resolution): stops after patience.
  config.optimizer.learning_rate = 1e-12
  result = train.train_and_evaluate(config, str(tmp_path), dataset)
  assert result["epochs_run"] == 3 and result["best_epoch"] == 1
  # Re-running a run that stopped early trains nothing more.
  again = train.train_and_evaluate(config, str(tmp_path), dataset)
  assert again["epochs_run"] == 3
  chex.assert_trees_all_close(again["test"], result["test"])


def test_should_stop_rule():
  config = _config(epochs=1000)
  config.patience, config.min_epochs, config.relative_patience = 3, 0, 0.0
  meta = lambda epoch, best, bad: dict(epoch=epoch, best_epoch=best,
                                       bad_evals=bad)
  assert not train.should_stop(config, meta(5, 3, 2))
  assert train.should_stop(config, meta(6, 3, 3))
  config.min_epochs = 20  # no stop before 20 epochs, however flat
  assert not train.should_stop(config, meta(6, 3, 3))
  assert train.should_stop(config, meta(20, 3, 17))
  config.min_epochs, config.relative_patience = 0, 0.5
  # Peak at epoch 200: patience alone would stop at 203; the relative rule
  # waits until 100 epochs past the best.
  assert not train.should_stop(config, meta(203, 200, 3))
  assert not train.should_stop(config, meta(299, 200, 99))
  assert train.should_stop(config, meta(300, 200, 100))


def test_min_epochs_and_relative_patience_delay_stopping(dataset, tmp_path):
  config = _config(epochs=50)
  config.patience, config.min_epochs = 2, 6
  config.optimizer.learning_rate = 1e-12  # flat validation curve
  result = train.train_and_evaluate(config, str(tmp_path / "min"), dataset)
  assert result["epochs_run"] == 6 and result["best_epoch"] == 1
  assert result["stopped_early"]
  config.num_epochs = 4  # the budget ends the run before the rule does
  capped = train.train_and_evaluate(config, str(tmp_path / "cap"), dataset)
  assert capped["epochs_run"] == 4 and not capped["stopped_early"]


def test_eval_test_false_never_reads_test_then_reads_it_once(dataset, tmp_path,
                                                           monkeypatch):
  config = _config(epochs=2)
  config.eval_test = False
  splits = []
  evaluate = train.Evaluator.__call__
  monkeypatch.setattr(train.Evaluator, "__call__", lambda self, p, split: (
      splits.append(split), evaluate(self, p, split))[1])
  searched = train.train_and_evaluate(config, str(tmp_path), dataset)
  assert searched["test"] == {} and "test" not in splits
  config.eval_test = True  # the selected run: resumes finished, tests once
  tested = train.train_and_evaluate(config, str(tmp_path), dataset)
  assert splits.count("test") == 1 and tested["test"]["recall@20"] >= 0
  assert tested["valid"] == searched["valid"]


def test_nan_loss_stops_and_keeps_checkpoint(dataset, tmp_path):
  config = _config(epochs=2)
  train.train_and_evaluate(config, str(tmp_path), dataset)
  config.num_epochs = 4
  config.optimizer.learning_rate = float("nan")
  with pytest.raises(FloatingPointError, match="last good checkpoint"):
    train.train_and_evaluate(config, str(tmp_path), dataset,
                             allow_config_change=True)
  steps = checkpoint_lib.Checkpointer(str(tmp_path / "checkpoints")).all_steps()
  assert max(steps) == 2


def test_missing_validation_split_is_an_error(dataset, tmp_path):
  empty = dataset.valid.subset(np.zeros(len(dataset.valid), bool))
  bad = dataset_lib.Dataset(dataset.name, dataset.num_users, dataset.num_items,
                      dataset.train, empty, dataset.test)
  with pytest.raises(ValueError, match="no validation split"):
    train.train_and_evaluate(_config(), str(tmp_path), bad)


def test_refit_trains_on_train_plus_valid_for_fixed_epochs(dataset, tmp_path):
  config = _config(epochs=50)
  config.refit_epochs = 3
  config.eval_every = 2  # checkpoints at epochs 2 and 3 (the last)
  result = train.train_and_evaluate(config, str(tmp_path / "a"), dataset)
  assert result["refit"] and result["epochs_run"] == 3
  assert result["best_epoch"] == 3 and result["valid"] == {}
  assert result["num_train"] == len(dataset.train) + len(dataset.valid)
  assert 0.0 <= result["test"]["recall@20"] <= 1.0
  with open(tmp_path / "a" / "metrics.jsonl") as f:
    history = [json.loads(line) for line in f]
  assert [h["epoch"] for h in history] == [2, 3]
  assert not any(k.startswith(("valid/", "test/")) for h in history for k in h)
  # The same as training a dataset whose train already holds the valid rows.
  merged = input_pipeline.refit_dataset(dataset)
  chex.assert_equal(len(merged.valid), 0)
  chex.assert_trees_all_equal(merged.test.users, dataset.test.users)
  again = train.train_and_evaluate(config, str(tmp_path / "b"), merged)
  chex.assert_trees_all_close(again["test"], result["test"], rtol=1e-6)
  # Resume: 2 epochs, then the 3-epoch refit continues to the same result.
  config.refit_epochs = 2
  train.train_and_evaluate(config, str(tmp_path / "c"), dataset)
  config.refit_epochs = 3
  resumed = train.train_and_evaluate(config, str(tmp_path / "c"), dataset)
  chex.assert_trees_all_close(resumed["test"], result["test"], rtol=1e-6)


def test_schedule_is_logged_and_resumes(dataset, tmp_path):
  config = _config(epochs=3)
  config.optimizer.schedule = "cosine"
  config.optimizer.decay_epochs = 2
  full = train.train_and_evaluate(config, str(tmp_path / "full"), dataset)
  with open(tmp_path / "full" / "metrics.jsonl") as f:
    rates = [json.loads(line)["learning_rate"] for line in f]
  lr = config.optimizer.learning_rate
  steps = train.math.ceil(len(dataset.train) / config.batch_size)
  # Closed form at the last step (e * steps - 1) of epochs 1, 2, 3.
  expected = [lr * (0.01 + 0.99 * 0.5 * (1 + np.cos(
      np.pi * min(1.0, (e * steps - 1) / (2 * steps))))) for e in (1, 2, 3)]
  assert rates == pytest.approx(expected, rel=1e-4)
  assert rates[2] == pytest.approx(0.01 * lr)
  config.num_epochs = 1
  train.train_and_evaluate(config, str(tmp_path / "part"), dataset)
  config.num_epochs = 3
  resumed = train.train_and_evaluate(config, str(tmp_path / "part"), dataset)
  chex.assert_trees_all_close(resumed["test"], full["test"], rtol=1e-6)

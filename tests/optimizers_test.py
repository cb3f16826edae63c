"""Tests of the optimiser and its learning-rate schedule (jaxrec/optimizers.py)."""

import chex
import jax.numpy as jnp
import optax
import pytest

from jaxrec import optimizers
from tests import config_loader


def _config():
  return config_loader.load("test.py", "lightgcn")


def test_cosine_schedule_is_set_in_epochs():
  config = _config()
  config.optimizer.learning_rate = 0.02
  config.optimizer.schedule = "cosine"
  config.optimizer.hold_epochs = 2
  config.optimizer.decay_epochs = 4
  config.optimizer.final_lr_ratio = 0.1
  for steps_per_epoch in (3, 7):  # e.g. a validation run and its refit
    lr = optimizers.learning_rate(config, steps_per_epoch)
    at = lambda epoch: float(lr(int(epoch * steps_per_epoch)))
    assert at(0) == pytest.approx(0.02) and at(2) == pytest.approx(0.02)
    # Half-way through the decay: lr * (alpha + (1 - alpha) / 2).
    assert at(4) == pytest.approx(0.02 * (0.1 + 0.9 * 0.5), rel=1e-5)
    assert at(6) == pytest.approx(0.002) and at(50) == pytest.approx(0.002)
  config.optimizer.schedule = "constant"
  assert optimizers.learning_rate(config, 3) == 0.02


@pytest.mark.parametrize("bad, match", [
    (dict(schedule="linear"), "unknown schedule 'linear'"),
    (dict(schedule="cosine", decay_epochs=0), "decay_epochs"),
])
def test_bad_schedule_is_rejected(bad, match):
  config = _config()
  config.optimizer.update(bad)
  with pytest.raises(optimizers.ConfigError, match=match):
    optimizers.make_optimizer(config)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "adagrad"])
def test_given_schedule_drives_the_optimiser(name):
  # make_optimizer(lr=...) must use the schedule it is given (train builds
  # it once, for the optimiser and for the per-epoch log): one step from
  # the same state equals the optax reference with that schedule.
  config = _config()
  config.optimizer.name = name
  config.optimizer.learning_rate = 0.05
  config.optimizer.schedule = "cosine"
  config.optimizer.decay_epochs = 3
  lr = optimizers.learning_rate(config, steps_per_epoch=2)
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  grads = {"w": jnp.array([0.5, 0.25, -1.0])}
  reference = {"adam": optax.adam, "sgd": optax.sgd, "adagrad": optax.adagrad,
               # the config's weight_decay defaults to 0 (optax's to 1e-4)
               "adamw": lambda lr: optax.adamw(lr, weight_decay=0.0)}[name](lr)
  for tx in (optimizers.make_optimizer(config, 2, lr=lr),
             optimizers.make_optimizer(config, 2)):
    state, ref_state = tx.init(params), reference.init(params)
    for _ in range(4):  # through the decay
      update, state = tx.update(grads, state, params)
      ref_update, ref_state = reference.update(grads, ref_state, params)
      chex.assert_trees_all_close(update, ref_update, rtol=1e-6)


def test_unknown_optimiser_names_the_key():
  config = _config()
  config.optimizer.name = "lamb"
  with pytest.raises(ValueError, match="config.optimizer.name"):
    optimizers.make_optimizer(config)

"""Optimiser and learning-rate schedule from `config.optimizer`.

Keys: name ('adam' | 'adamw' | 'sgd' | 'adagrad'), learning_rate,
weight_decay (adamw), momentum (sgd), grad_clip (global-norm clipping), and
the schedule: 'constant', or 'cosine' with hold_epochs, decay_epochs and
final_lr_ratio, all set in epochs (`learning_rate`). Their defaults are those of
the base config (`jaxrec.config_utils.base_config`).
"""

from __future__ import annotations

import ml_collections
import optax

from jaxrec.errors import ConfigError

OPTIMIZER_KEYS = ("name", "learning_rate", "weight_decay", "momentum",
                  "grad_clip", "schedule", "hold_epochs", "decay_epochs",
                  "final_lr_ratio")
SCHEDULES = ("constant", "cosine")


def learning_rate(config: ml_collections.ConfigDict,
                  steps_per_epoch: int = 1):
  """Learning rate (a float or an optax schedule) from `config.optimizer`.

  `schedule='cosine'`: hold `learning_rate` for `hold_epochs`, then cosine
  decay to `final_lr_ratio` x it over `decay_epochs` and stay there. The
  schedule is set in epochs so a refit on train + valid (more steps per
  epoch) decays over the same epochs as the validation run it refits.

  Args:
    config: experiment config.
    steps_per_epoch: optimiser steps per epoch (1 gives the right state
      structure for restoring a checkpoint, not the right values).

  Returns:
    A float or a step -> learning-rate schedule.
  """
  opt = config.optimizer
  lr = opt.learning_rate
  schedule = opt.schedule
  if schedule not in SCHEDULES:
    raise ConfigError(f"config.optimizer.schedule: unknown schedule "
                      f"{schedule!r}; valid: {list(SCHEDULES)}")
  if schedule == "constant":
    return lr
  decay_epochs = opt.decay_epochs
  if decay_epochs <= 0:
    raise ConfigError("config.optimizer.decay_epochs: the cosine schedule "
                      f"needs a positive number of epochs, got {decay_epochs}")
  hold = opt.hold_epochs * steps_per_epoch
  cosine = optax.cosine_decay_schedule(
      lr, decay_epochs * steps_per_epoch, alpha=opt.final_lr_ratio)
  return optax.join_schedules([optax.constant_schedule(lr), cosine], [hold])


def make_optimizer(config: ml_collections.ConfigDict,
                   steps_per_epoch: int = 1,
                   lr=None) -> optax.GradientTransformation:
  """Optax optimiser from `config.optimizer` (name, learning_rate, ...).

  Args:
    config: experiment config.
    steps_per_epoch: optimiser steps per epoch, for learning-rate schedules.
    lr: the rate or schedule from `learning_rate(config, steps_per_epoch)`
      when the caller already built it (None: built here).

  Returns:
    The optax transformation.
  """
  opt = config.optimizer
  name = opt.name
  if lr is None:
    lr = learning_rate(config, steps_per_epoch)
  if name == "adam":
    tx = optax.adam(lr)
  elif name == "adamw":
    tx = optax.adamw(lr, weight_decay=opt.weight_decay)
  elif name == "sgd":
    tx = optax.sgd(lr, momentum=opt.momentum)
  elif name == "adagrad":
    tx = optax.adagrad(lr)
  else:
    raise ValueError(f"config.optimizer.name: unknown optimiser {name!r}; "
                     "valid: adam, adamw, sgd, adagrad")
  if opt.grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip), tx)
  return tx

"""Training and evaluation loop: `train_and_evaluate(config, workdir)`.

Protocol: each epoch draws one (user, positive, negative) triple per training
interaction (deterministically from (seed, epoch)), runs jitted train steps over
fixed-shape batches (a `lax.scan` over `steps_per_call` steps per dispatch),
evaluates on the VALIDATION split every `eval_every` epochs, keeps the best
parameters by `selection_metric`, stops after `patience` evaluations without
improvement, and finally reports the TEST split once, for the selected
parameters. The test split never influences any choice.

Refit (`config.refit_epochs > 0`): the validation split is merged back into
train and the model trains for exactly that many epochs (a count chosen
earlier on validation, e.g. the best epoch of a validation run) with no
evaluation until the end; the final parameters are tested once. This is the
usual "select on validation, then refit on all training data" protocol.

Every evaluation saves an Orbax checkpoint (state, best params, counters and
metric history), so a killed run resumes to the same result. Before any work
the workdir is checked (`workdir.check_workdir`: writable, no run of another
config in it); while a run writes it, `workdir.WorkdirLock` keeps a second
process out.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from typing import Any, Callable, NamedTuple, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import jraph
import ml_collections
import numpy as np
from flax.training import train_state
import tqdm

from jaxrec import batches
from jaxrec import checkpoint as checkpoint_lib
from jaxrec import config_utils
from jaxrec import files
from jaxrec.config_utils import with_defaults
from jaxrec import metrics as metrics_lib
from jaxrec import run_logging
from jaxrec import sharding as sharding_lib
from jaxrec import warm_start
from jaxrec import workdir as workdir_lib
from jaxrec.batches import AnyBatch
from jaxrec.batches import Batch
from jaxrec.batches import RatingBatch
from jaxrec.data import sampler
from jaxrec.data.dataset import DataError
from jaxrec.data.dataset import Dataset
from jaxrec.errors import ConfigError
from jaxrec.input_pipeline import build_graph
from jaxrec.input_pipeline import epoch_batches
from jaxrec.input_pipeline import load_data
from jaxrec.input_pipeline import order_nodes
from jaxrec.input_pipeline import refit_dataset
from jaxrec.input_pipeline import with_text_features
from jaxrec.models import get_model
from jaxrec.models import is_closed_form
from jaxrec import text_finetune
from jaxrec.optimizers import learning_rate
from jaxrec.optimizers import make_optimizer

TrainState = train_state.TrainState
LossFn = Callable[..., tuple[jnp.ndarray, dict]]


class TrainHooks(NamedTuple):
  """Calls into a running `train_and_evaluate`, at points a caller may watch.

  Tests use them to stop or kill a run at a known point (tests/faults_test.py);
  a run without hooks does no extra work.

  Attributes:
    after_steps: `fn(epoch, chunk)` after each dispatch of train steps has
      finished (1-based epoch, 0-based chunk of `steps_per_call` steps); the
      epoch's progress is then only in memory.
    checkpoint_write: `fn(step, directory)` inside every checkpoint write
      (`checkpoint.Checkpointer`'s write_hook).
  """
  after_steps: Optional[Callable[[int, int], None]] = None
  checkpoint_write: Optional[checkpoint_lib.WriteHook] = None


# ----------------------------------------------------------------------------
# Pure functions.


def model_loss(params, graph: jraph.GraphsTuple, batch: AnyBatch,
               rng: jax.Array, *, model) -> tuple:
  """Default loss: the model's own `loss` method (BPR + L2 for most models).

  Args:
    params: model parameters.
    graph: the training graph.
    batch: one `batches.Batch` (`batches.RatingBatch` for the rating
      task). # [B]
    rng: PRNG key for stochastic models (edge dropout, noise).
    model: the Flax module.

  Returns:
    (scalar loss, dict of scalar metrics).
  """
  return model.apply({"params": params}, graph, batch, method="loss",
                     rngs={"dropout": rng})


def train_step(state: TrainState, graph: jraph.GraphsTuple, batch: AnyBatch,
               rng: jax.Array, *, model,
               loss_fn: LossFn = model_loss) -> tuple[TrainState, dict]:
  """One optimiser step on one batch. Pure; jit it with donate_argnums=0.

  Args:
    state: current train state.
    graph: the training graph.
    batch: one batch, see `model_loss`.
    rng: base PRNG key; folded with the step so resumed runs draw the same.
    model: the Flax module.
    loss_fn: `loss_fn(params, graph, batch, rng, *, model) -> (loss,
      metrics)`.

  Returns:
    (new state, metrics of this step).
  """
  step_rng = jax.random.fold_in(rng, state.step)
  grad_fn = jax.value_and_grad(
      functools.partial(loss_fn, model=model), has_aux=True)
  (_, metrics), grads = grad_fn(state.params, graph, batch, step_rng)
  return state.apply_gradients(grads=grads), metrics


def train_steps(state: TrainState, graph: jraph.GraphsTuple, rows: AnyBatch,
                rng: jax.Array, *, model, loss_fn: LossFn = model_loss):
  """`train_step` scanned over a leading axis of stacked batches.

  Args:
    state: current train state.
    graph: the training graph (shared by all steps).
    rows: stacked batches, every field [S, B] (or [S, B, k]).
    rng: base PRNG key.
    model, loss_fn: as in `train_step`.

  Returns:
    (new state, metrics stacked over the S steps).
  """
  def body(carry, batch):
    return train_step(carry, graph, batch, rng, model=model, loss_fn=loss_fn)
  return jax.lax.scan(body, state, rows)


def embed(params, graph: jraph.GraphsTuple, *, model):
  """Inference representations (users [U, d], items [I, d])."""
  return model.apply({"params": params}, graph, method="embed")


def make_score_fn(model) -> Callable:
  """Pure `(score_params, users) -> [B, I]` for `metrics.evaluate_ranking`.

  score_params = (params, user_emb, item_emb) so models with a learned
  interaction function (MLP scorers) can use their parameters.
  """
  def score_fn(score_params, users):
    params, user_emb, item_emb = score_params
    return model.apply({"params": params}, user_emb, item_emb, users,
                       method="score")
  return score_fn


# ----------------------------------------------------------------------------
# Set-up helpers.


def dummy_batch(batch_size: int, num_negatives: int = 1, *,
                ratings: bool = False, fields: Sequence[str] = ()) -> AnyBatch:
  """An all-zero batch with the train batches' shapes (for `model.init`).

  Args:
    batch_size: rows B.
    num_negatives: negatives per row k ([B] for 1, else [B, k]).
    ratings: a `RatingBatch` (the rating task) instead of a `Batch`.
    fields: the optional `Batch` fields to fill (the model's
      `batch_fields`, see `input_pipeline.epoch_batches`).

  Returns:
    The batch, mask all ones.
  """
  mask = np.ones(batch_size, np.float32)
  if ratings:
    return RatingBatch(users=np.zeros(batch_size, np.int32),
                       items=np.zeros(batch_size, np.int32),
                       ratings=np.zeros(batch_size, np.float32), mask=mask)
  neg_shape = (batch_size,) if num_negatives == 1 else (batch_size, num_negatives)
  epoch = (np.zeros(batch_size, np.int32)
           if "epoch" in batches.check_fields(fields) else None)
  return Batch(users=np.zeros(batch_size, np.int32),
               pos_items=np.zeros(batch_size, np.int32),
               neg_items=np.zeros(neg_shape, np.int32), mask=mask,
               epoch=epoch)


def init_params(model, graph: jraph.GraphsTuple, batch_size: int,
                rng: jax.Array, num_negatives: int = 1):
  """Initialises all model parameters by tracing the `loss` method.

  The traced batch is the one the model trains on: a `RatingBatch` for
  rating models (`predicts_ratings`), else a `Batch` with the optional
  fields the model declares (`batch_fields`).
  """
  batch = dummy_batch(batch_size, num_negatives,
                      ratings=getattr(model, "predicts_ratings", False),
                      fields=model.batch_fields)
  return model.init({"params": rng, "dropout": rng}, graph, batch,
                    method="loss")["params"]


class Evaluator:
  """Jitted embedding + full-ranking evaluation of one model on one dataset."""

  def __init__(self, model, graph, dataset: Dataset, config):
    self.model = model
    self.graph = graph
    self.dataset = dataset
    self.ks = tuple(config.eval_ks)
    self.memory_budget = config.eval_memory_bytes
    self.train_csr = dataset.csr("train")
    self.valid_csr = dataset.csr("valid")
    self.test_csr = dataset.csr("test")
    self.popularity = np.bincount(dataset.train.items,
                                  minlength=dataset.num_items)
    self._embed = jax.jit(functools.partial(embed, model=model))
    self._score_fn = make_score_fn(model)

  def embeddings(self, params):
    return self._embed(params, self.graph)

  def __call__(self, params, split: str) -> dict:
    """Metrics on 'valid' (train masked) or 'test' (train + valid masked)."""
    user_emb, item_emb = self.embeddings(params)
    if split == "valid":
      target, exclude = self.valid_csr, [self.train_csr]
    elif split == "test":
      target, exclude = self.test_csr, [self.train_csr, self.valid_csr]
    else:
      raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    score_params = (params, user_emb, item_emb)
    # Multi-process jobs: each process ranks its share of the users with its
    # own copy of the parameters and embeddings (docs/distributed.md).
    across = jax.process_count() > 1
    if across:
      score_params = sharding_lib.host_local(score_params)
    return metrics_lib.evaluate_ranking(
        self._score_fn, score_params, target, exclude,
        ks=self.ks, memory_budget_bytes=self.memory_budget,
        item_popularity=self.popularity, across_processes=across)


class RatingEvaluator:
  """Jitted rating prediction + RMSE / MAE of one model on one dataset.

  Predictions are clipped to the train ratings' range (as scikit-surprise
  clips to its rating scale). Rows are scored in fixed-size chunks, so one
  compiled shape serves every split.
  """

  def __init__(self, model, graph, dataset: Dataset, config,
               chunk: int = 8192):
    del config  # same signature as `Evaluator`
    if dataset.train.ratings is None:
      raise DataError(f"{dataset.name}: config.task = 'rating' needs ratings "
                      "in the train split (field 'ratings')")
    self.model, self.graph, self.dataset, self.chunk = (model, graph, dataset,
                                                        chunk)
    self.low = float(np.min(dataset.train.ratings))
    self.high = float(np.max(dataset.train.ratings))
    self._predict = jax.jit(lambda params, graph, users, items: model.apply(
        {"params": params}, graph, users, items, method="predict"))

  def predict(self, params, users: np.ndarray, items: np.ndarray
              ) -> np.ndarray:
    """Clipped predicted ratings of (users [n], items [n]) pairs. # [n]"""
    n = len(users)
    total = max(1, math.ceil(n / self.chunk)) * self.chunk
    pad = lambda a: np.concatenate([a, np.zeros(total - n, np.int32)])
    users, items = pad(np.asarray(users, np.int32)), pad(
        np.asarray(items, np.int32))
    out = [np.asarray(self._predict(params, self.graph,
                                    users[lo:lo + self.chunk],
                                    items[lo:lo + self.chunk]))
           for lo in range(0, total, self.chunk)]
    return np.clip(np.concatenate(out)[:n], self.low, self.high)

  def __call__(self, params, split: str) -> dict:
    """{'rmse', 'mae'} on the 'valid' or 'test' ratings."""
    if split not in ("valid", "test"):
      raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    rows = getattr(self.dataset, split)
    if rows.ratings is None:
      raise DataError(f"{self.dataset.name}: the {split} split has no "
                      "ratings (field 'ratings')")
    pred = self.predict(params, rows.users, rows.items)
    return metrics_lib.rating_metrics(pred, rows.ratings)


def make_evaluator(model, graph, dataset: Dataset, config):
  """`RatingEvaluator` for config.task = 'rating', else `Evaluator`."""
  cls = RatingEvaluator if config.task == "rating" else Evaluator
  return cls(model, graph, dataset, config)


def restore_best_params(workdir: str, config: ml_collections.ConfigDict,
                        model, graph: jraph.GraphsTuple) -> tuple:
  """Validation-selected parameters of the run in `workdir` (read-only).

  Gradient-trained runs checkpoint {'state', 'best_params'}; closed-form
  models (`fit_closed_form`) checkpoint {'best_params'} only.

  Args:
    workdir: a `train_and_evaluate` workdir.
    config: its config (shapes of the parameters and optimiser state).
    model: the model built from it.
    graph: its training graph.

  Returns:
    (checkpoint step, best_params, meta dict of the checkpoint).

  Raises:
    FileNotFoundError: the run saved no checkpoint.
  """
  if is_closed_form(config.model_name):
    def bundle():
      return {"best_params": init_params(model, graph, 1, jax.random.key(0))}
  else:
    def bundle():
      params = init_params(model, graph, config.batch_size, jax.random.key(0),
                           config.num_negatives)
      tx = make_optimizer(config)
      if with_defaults(config).text.finetune_layers:
        tx = text_finetune.wrap_optimizer(tx, with_defaults(config))
      state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
      return {"state": state, "best_params": params}
  return workdir_lib.restore_best_params(workdir, jax.eval_shape(bundle))


def should_stop(config: ml_collections.ConfigDict, meta: dict) -> bool:
  """Early-stopping rule, applied after each validation evaluation.

  A run stops when all three hold: `config.patience` evaluations in a row
  brought no improvement; at least `config.min_epochs` epochs have run; and
  the epochs since the best one are at least `config.relative_patience`
  times the best epoch. The last condition scales the patience with the
  schedule: a run that peaked at epoch 200 waits 100 epochs at 0.5, so an
  early dip (a popularity-like peak at a few epochs, then a slow climb)
  does not end a run that is still improving.

  Args:
    config: experiment configuration.
    meta: the loop's counters: 'epoch' (epochs run), 'best_epoch',
      'bad_evals' (evaluations since the best).

  Returns:
    Whether training should stop.
  """
  since_best = meta["epoch"] - max(meta["best_epoch"], 0)
  return (meta["bad_evals"] >= config.patience
          and meta["epoch"] >= config.min_epochs
          and since_best >= config.relative_patience
          * max(meta["best_epoch"], 0))


def _to_float(tree) -> dict:
  return {k: float(v) for k, v in tree.items()}


# ----------------------------------------------------------------------------
# The loop.


@dataclasses.dataclass
class Experiment:
  """Everything `train_and_evaluate` builds before its first epoch.

  Attributes:
    dataset: the dataset as trained (validation merged into train on refit).
    refit: whether `config.refit_epochs` asked for a refit.
    num_epochs: epochs to train (`refit_epochs` on refit, else `num_epochs`).
    graph: the training graph, placed on the mesh.
    model: the Flax module.
    state: the initial train state (sharded per the config).
    train_rng: PRNG key of the train steps.
    lr_fn: the learning-rate schedule (a float when constant).
    mesh: the device mesh (None on one device).
    step_fn: jitted `train_steps(state, graph, rows, rng)`.
    evaluator: full-ranking evaluation of parameters on 'valid' / 'test'.
    positive_keys: sorted train keys for the negative sampler.
    text_cache: with config.text.finetune_layers > 0, the
      `text_finetune.TextCache` that re-encodes graph.nodes['text'] with the
      current encoder; else None.
  """
  dataset: Dataset
  refit: bool
  num_epochs: int
  graph: jraph.GraphsTuple
  model: Any
  state: TrainState
  train_rng: jax.Array
  lr_fn: Any
  mesh: Any
  step_fn: Callable
  evaluator: "Evaluator"
  positive_keys: np.ndarray
  text_cache: Any = None


def setup_experiment(config: ml_collections.ConfigDict,
                     dataset: Optional[Dataset] = None) -> Experiment:
  """Validates the config and builds data, graph, model, state and steps.

  Shared by `train_and_evaluate` and tools that must train exactly as it
  does (benchmarks/dynamics.py). Writes nothing.

  Args:
    config: experiment configuration.
    dataset: optional pre-loaded dataset (skips `config.dataset`).

  Returns:
    An `Experiment`.

  Raises:
    ConfigError: an invalid config.
    ValueError: no validation split outside a refit.
  """
  config = with_defaults(config)
  sharding_lib.initialize_distributed(config)  # before any JAX computation
  config_utils.validate_config(config)  # before anything is loaded or written
  if dataset is None:
    dataset = load_data(config)
  else:  # a caller's dataset gets the configured node order too (idempotent)
    dataset = order_nodes(config, dataset)
  refit = config.refit_epochs > 0
  if refit:
    dataset = refit_dataset(dataset)
  elif len(dataset.valid) == 0:
    raise ValueError(f"dataset {dataset.name!r} has no validation split: "
                     "early stopping and model selection need one (set "
                     "config.dataset.kwargs.valid_ratio > 0, or train a "
                     "fixed number of epochs with config.refit_epochs)")
  num_epochs = config.refit_epochs if refit else config.num_epochs
  logging.info("%s", dataset.summary())
  # Texts are encoded once, here; the resolved features are what the graph
  # holds and what `workdir.save_artifacts` keeps for inference.
  dataset = with_text_features(config, dataset)
  graph = jax.tree.map(jnp.asarray, build_graph(config, dataset))
  model = get_model(config.model_name, dataset.num_users, dataset.num_items,
                    **config.model.to_dict())
  finetune = None
  if config.text.finetune_layers:  # the text encoder trains with the model
    finetune = text_finetune.setup(config, model, graph, dataset)
    model, graph = finetune.model, jax.tree.map(jnp.asarray, finetune.graph)
  batch_size = config.batch_size
  steps_per_epoch = math.ceil(len(dataset.train) / batch_size)
  lr_fn = learning_rate(config, steps_per_epoch)  # also logged per epoch
  tx = make_optimizer(config, steps_per_epoch, lr=lr_fn)
  if finetune:
    tx = text_finetune.wrap_optimizer(tx, config)
  mesh = sharding_lib.make_mesh(config)
  graph = sharding_lib.place_graph(graph, mesh, config)  # once, not per call

  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  params = init_params(model, graph, batch_size, init_rng,
                       config.num_negatives)
  if finetune:  # the pretrained encoder, not init's random one
    params = dict(params, encoder=finetune.pretrained)
  # config.init_text / init_from: text-PCA ID tables, another run's best
  # parameters (a resumed run restores its own checkpoint over these).
  params = warm_start.initial_params(config, params, dataset, model)
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
  state = sharding_lib.shard_state(state, mesh, config)

  step_fn = sharding_lib.jit_train_steps(
      functools.partial(train_steps, model=model,
                        loss_fn=config.loss_fn or model_loss),
      mesh)
  return Experiment(
      dataset=dataset, refit=refit, num_epochs=num_epochs, graph=graph,
      model=model, state=state, train_rng=train_rng, lr_fn=lr_fn, mesh=mesh,
      step_fn=step_fn, evaluator=make_evaluator(model, graph, dataset, config),
      positive_keys=sampler.positive_keys(dataset.train, dataset.num_items),
      text_cache=finetune.cache if finetune else None)


def fit_closed_form(config: ml_collections.ConfigDict, workdir: str,
                    dataset: Optional[Dataset] = None, *,
                    hooks: Optional[TrainHooks] = None,
                    allow_config_change: bool = False) -> dict:
  """`train_and_evaluate` of a closed-form model (no gradient training).

  For `baselines.ClosedFormRecommender` models (MostPop, ItemKNN, EASE): fits
  the parameters once with the model's NumPy `fit` on the train split (train
  + valid on refit), reports validation (not on refit) and test once with the
  same `Evaluator`, and writes the workdir as the gradient path does:
  config.json + dataset.npz (`workdir.save_artifacts`), an Orbax checkpoint
  at step 1 holding {'best_params': params} (no optimiser state), one
  metrics.jsonl record and results.json with best_epoch = epochs_run = 1 and
  seconds_per_epoch = train_seconds = fit_seconds. A workdir that already
  holds the checkpoint is evaluated from it without refitting.

  Args:
    config: experiment configuration (see configs/ease.py).
    workdir: output directory.
    dataset: optional pre-loaded dataset (skips `config.dataset`).
    hooks: see `train_and_evaluate`.
    allow_config_change: see `train_and_evaluate`.

  Returns:
    The results dict (the keys of `train_and_evaluate`, plus 'fit_seconds').

  Raises:
    ConfigError: an invalid config.
    WorkdirError: see `train_and_evaluate`.
    ValueError: no validation split outside a refit.
  """
  config = with_defaults(config)
  if sharding_lib.initialize_distributed(config) and jax.process_count() > 1:
    raise ConfigError(f"config.sharding.distributed: {config.model_name} is "
                      "fitted in closed form by one process; run it without "
                      "config.sharding.distributed.enabled")
  config_utils.validate_config(config)
  workdir_lib.check_workdir(workdir, config, allow_config_change)
  hooks = hooks or TrainHooks()
  dataset = (load_data(config) if dataset is None
             else order_nodes(config, dataset))
  refit = config.refit_epochs > 0
  if refit:
    dataset = refit_dataset(dataset)
  elif len(dataset.valid) == 0:
    raise ValueError(f"dataset {dataset.name!r} has no validation split: the "
                     "validation report needs one (set config.dataset.kwargs."
                     "valid_ratio > 0, or fit on train + valid with "
                     "config.refit_epochs > 0)")
  logging.info("%s", dataset.summary())
  dataset = with_text_features(config, dataset)  # saved with the artefacts
  graph = jax.tree.map(jnp.asarray, build_graph(config, dataset))
  model = get_model(config.model_name, dataset.num_users, dataset.num_items,
                    **config.model.to_dict())
  with workdir_lib.WorkdirLock(workdir):  # creates the workdir
    return _fit_in_workdir(config, workdir, dataset, graph, model, refit,
                           hooks)


def _fit_in_workdir(config, workdir, dataset, graph, model, refit: bool,
                    hooks: TrainHooks) -> dict:
  """The writing part of `fit_closed_form`, under the workdir lock."""
  workdir_lib.save_artifacts(workdir, config, dataset)  # for inference
  ckpt = checkpoint_lib.Checkpointer(
      os.path.join(workdir, workdir_lib.CHECKPOINT_DIR),
      config.max_checkpoints, write_hook=hooks.checkpoint_write)
  try:
    shapes = jax.eval_shape(functools.partial(
        init_params, model, graph, 1, jax.random.key(0)))
    restored = ckpt.restore({"best_params": shapes})
    if restored is None:
      start = time.perf_counter()
      # Rating baselines fit the train ratings, ranking ones the 0/1 matrix.
      params = model.fit(dataset.train if config.task == "rating"
                         else dataset.csr("train"))
      meta = {"epoch": 1, "best_epoch": 1,
              "fit_seconds": time.perf_counter() - start}
      params = jax.tree.map(jnp.asarray, params)
      ckpt.save(1, {"best_params": params}, meta)
    else:
      _, tree, meta = restored
      params = tree["best_params"]
      logging.info("using the fitted parameters in %s", ckpt.directory)
  finally:
    ckpt.close()
  fit_seconds = float(meta["fit_seconds"])
  evaluator = make_evaluator(model, graph, dataset, config)
  record = {"epoch": 1, "loss": 0.0, "epoch_seconds": fit_seconds}
  valid = {}
  if not refit:
    eval_start = time.perf_counter()
    valid = evaluator(params, "valid")
    record["eval_seconds"] = time.perf_counter() - eval_start
    record.update({f"valid/{k}": v for k, v in valid.items()})
  run_logging.write_history(os.path.join(workdir, workdir_lib.METRICS_FILE),
                            [record])
  eval_start = time.perf_counter()
  test = (evaluator(params, "test") if config.eval_test
          else {})  # see train_and_evaluate
  test_seconds = time.perf_counter() - eval_start
  tb_writer = run_logging.tensorboard_writer(config, workdir, 0)
  run_logging.log_scalars(tb_writer, record, 1)
  run_logging.log_scalars(tb_writer, {f"test/{k}": v for k, v in test.items()},
                          1)
  if tb_writer is not None:
    tb_writer.close()
  results = {
      "model": config.model_name, "dataset": dataset.name, "best_epoch": 1,
      "epochs_run": 1, "selection_metric": config.selection_metric,
      "valid": valid, "test": test, "refit": refit,
      "num_train": len(dataset.train), "train_seconds": fit_seconds,
      "seconds_per_epoch": fit_seconds, "fit_seconds": fit_seconds,
      "test_eval_seconds": test_seconds, "epoch_losses": [0.0]}
  files.write_json(
      os.path.join(workdir, workdir_lib.RESULTS_FILE), results)
  logging.info("%s fitted in %.1f s: valid %s=%s, test %s", config.model_name,
               fit_seconds, config.selection_metric,
               valid.get(config.selection_metric, "n/a"),
               {k: round(v, 4) for k, v in test.items()
                if "@" in k or k in metrics_lib.LOWER_IS_BETTER})
  return results


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       dataset: Optional[Dataset] = None, *,
                       hooks: Optional[TrainHooks] = None,
                       allow_config_change: bool = False) -> dict:
  """Trains `config.model_name` on `config.dataset`, selecting on validation.

  A workdir that already holds a run of the same config resumes it; one
  holding a run of another config is refused unless `allow_config_change`
  (keys in `workdir.HARMLESS_CONFIG_KEYS`, such as num_epochs, may always
  change). The config, the workdir and the data are checked before anything
  is written.

  Args:
    config: experiment configuration (see configs/default.py).
    workdir: output directory: checkpoints/, metrics.jsonl, results.json.
    dataset: optional pre-loaded dataset (skips `config.dataset`).
    hooks: optional `TrainHooks` called at known points of the run.
    allow_config_change: resume a run whose saved config differs.

  Returns:
    dict with 'best_epoch', 'valid' (metrics at the best epoch), 'test'
    (reported once for the selected parameters), timings.

  Raises:
    ConfigError: an invalid config.
    DataError: unreadable data.
    WorkdirError: the workdir is a file, not writable, used by a running
      process, or holds a run of another config.
    CheckpointError: checkpoints that cannot be restored, or a checkpoint
      folder removed during the run.
    FloatingPointError: the training loss became NaN or infinite.
  """
  config = with_defaults(config)  # what is saved and compared on resume
  if is_closed_form(config.model_name):  # fitted, not trained
    return fit_closed_form(config, workdir, dataset, hooks=hooks,
                           allow_config_change=allow_config_change)
  config_utils.validate_config(config)  # config errors first, then the workdir's
  workdir_lib.check_workdir(workdir, config, allow_config_change)
  exp = setup_experiment(config, dataset)
  # Multi-process jobs: process 0 holds the lock for all (workdir.JobLock).
  with workdir_lib.JobLock(workdir):  # creates the workdir
    return _train_in_workdir(config, workdir, exp, hooks or TrainHooks())


def _train_in_workdir(config: ml_collections.ConfigDict, workdir: str,
                      exp: Experiment, hooks: TrainHooks) -> dict:
  """The training loop of `train_and_evaluate`, under the workdir lock."""
  dataset, graph, model, refit = exp.dataset, exp.graph, exp.model, exp.refit
  num_epochs, lr_fn, step_fn, evaluator = (exp.num_epochs, exp.lr_fn,
                                           exp.step_fn, exp.evaluator)
  train_rng, keys = exp.train_rng, exp.positive_keys
  # best_params must not alias state.params: the train step donates state.
  bundle = {"state": exp.state,
            "best_params": jax.tree.map(jnp.copy, exp.state.params)}
  # A restored checkpoint replaces the initial state: drop the experiment's
  # reference (the caller still holds `exp`) so it can be freed.
  exp.state = None
  # In a multi-process job every process trains, evaluates and checkpoints
  # (collectives); process 0 alone writes the other workdir files.
  primary = jax.process_index() == 0

  if primary:
    workdir_lib.save_artifacts(workdir, config, dataset)  # for inference
  ckpt = checkpoint_lib.Checkpointer(
      os.path.join(workdir, workdir_lib.CHECKPOINT_DIR),
      config.max_checkpoints, write_hook=hooks.checkpoint_write)
  meta = {"epoch": 0, "best_epoch": -1, "best_value": -math.inf,
          "bad_evals": 0, "history": [], "train_seconds": 0.0,
          "epoch_times": [], "epoch_losses": []}
  restored = ckpt.restore(bundle)
  if restored is not None:
    _, bundle, meta = restored
    logging.info("resumed from epoch %d", meta["epoch"])
  text_cache = exp.text_cache
  if text_cache is not None:  # text rows of the (restored) parameters
    graph = evaluator.graph = text_cache.refresh(bundle["state"].params, graph)
  history_path = os.path.join(workdir, workdir_lib.METRICS_FILE)
  if primary:
    run_logging.write_history(history_path, meta["history"])
  tb_writer = (run_logging.tensorboard_writer(config, workdir, meta["epoch"])
               if primary else None)

  steps_per_call = max(1, config.steps_per_call)
  select = config.selection_metric
  eval_every = config.eval_every

  epochs = range(meta["epoch"], num_epochs)
  bar = tqdm.tqdm(epochs, desc=f"{config.model_name}/{dataset.name}",
                  disable=not (config.progress and primary),
                  dynamic_ncols=True)
  # A run that already stopped early resumes as finished (re-running is a no-op).
  stopped = should_stop(config, meta)
  # With the counter sampler, each process of a multi-process job samples
  # only the batch columns its devices hold (docs/distributed.md).
  columns = None
  if (exp.mesh is not None and jax.process_count() > 1
      and config.sampler == "counter" and config.task == "ranking"):
    columns = sharding_lib.local_batch_columns(exp.mesh, config.batch_size)
  for epoch in bar:
    if stopped:
      break
    start = time.perf_counter()
    rows = epoch_batches(config, dataset, epoch, keys, model.batch_fields,
                         columns=columns)
    state, losses = bundle["state"], []
    for lo in range(0, batches.num_steps(rows), steps_per_call):
      chunk = batches.take_steps(rows, lo, lo + steps_per_call)
      if columns is not None:
        chunk = sharding_lib.shard_local_batch(chunk, exp.mesh, columns,
                                               config.batch_size)
      state, step_metrics = step_fn(state, graph, chunk, train_rng)
      losses.append(step_metrics["loss"])
      if hooks.after_steps is not None:
        jax.block_until_ready(state)
        hooks.after_steps(epoch + 1, lo // steps_per_call)
    if text_cache is not None:  # cached text rows follow the encoder
      graph = evaluator.graph = text_cache.refresh(state.params, graph)
    epoch_loss = float(jnp.mean(jnp.concatenate(losses)))
    epoch_seconds = time.perf_counter() - start
    if not np.isfinite(epoch_loss):
      raise FloatingPointError(
          f"training loss became {epoch_loss} in epoch {epoch + 1}; stopping. The "
          f"last good checkpoint (epoch {meta['epoch']}) is kept in "
          f"{ckpt.directory}; lower the learning rate or check the inputs.")
    bundle["state"] = state
    meta["train_seconds"] += epoch_seconds
    meta["epoch_times"].append(epoch_seconds)
    meta.setdefault("epoch_losses", []).append(epoch_loss)
    record = {"epoch": epoch + 1, "loss": epoch_loss,
              "epoch_seconds": epoch_seconds}
    if callable(lr_fn):  # the rate of the epoch's last step
      record["learning_rate"] = float(lr_fn(int(state.step) - 1))
    if (epoch + 1) % eval_every and epoch + 1 != num_epochs:
      bar.set_postfix(loss=f"{epoch_loss:.4f}")
    else:
      shown = {}
      if refit:
        # No validation split: the last parameters are the result; checkpoint
        # on the evaluation schedule so a long refit resumes.
        meta["best_epoch"] = epoch + 1
        bundle["best_params"] = jax.tree.map(jnp.copy, state.params)
      else:
        eval_start = time.perf_counter()
        valid = evaluator(state.params, "valid")
        record["eval_seconds"] = time.perf_counter() - eval_start
        record.update({f"valid/{k}": v for k, v in valid.items()})
        value = valid[select]
        # best_value holds the higher-is-better score (-value for RMSE/MAE).
        if metrics_lib.selection_score(select, value) > meta["best_value"]:
          meta.update(best_value=metrics_lib.selection_score(select, value),
                      best_epoch=epoch + 1, bad_evals=0)
          bundle["best_params"] = jax.tree.map(jnp.copy, state.params)
        else:
          meta["bad_evals"] += 1
        meta["epoch"] = epoch + 1
        stopped = should_stop(config, meta)
        shown = {select: f"{value:.4f}"}
      meta["epoch"] = epoch + 1
      meta["history"].append(record)
      ckpt.save(epoch + 1, bundle, meta)
      if primary:
        run_logging.write_history(history_path, meta["history"])
      bar.set_postfix(loss=f"{epoch_loss:.4f}", **shown)
    run_logging.log_scalars(tb_writer, record, epoch + 1)
  bar.close()

  if text_cache is not None:  # the texts as the selected encoder encodes them
    graph = evaluator.graph = text_cache.refresh(bundle["best_params"], graph)
  valid = {} if refit else evaluator(bundle["best_params"], "valid")
  eval_start = time.perf_counter()
  # eval_test=False (hyper-parameter search): the test split is not read;
  # re-running the finished run with eval_test=True reads it once.
  test = (evaluator(bundle["best_params"], "test")
          if config.eval_test else {})
  test_seconds = time.perf_counter() - eval_start
  results = {
      "model": config.model_name, "dataset": dataset.name,
      "best_epoch": meta["best_epoch"], "epochs_run": meta["epoch"],
      # False: the epoch budget ended the run, not the early-stopping rule,
      # so validation may still have been improving (not converged).
      "stopped_early": bool(not refit and should_stop(config, meta)),
      "selection_metric": select, "valid": valid, "test": test,
      "refit": refit, "num_train": len(dataset.train),
      "train_seconds": meta["train_seconds"],
      # The first epoch of a process includes XLA compilation: report the
      # median, which ignores it once a few epochs have run.
      "seconds_per_epoch": float(np.median(meta["epoch_times"]))
                           if meta["epoch_times"] else float("nan"),
      "test_eval_seconds": test_seconds,
      "epoch_losses": meta.get("epoch_losses", []),
  }
  run_logging.log_scalars(tb_writer,
                          {f"test/{k}": v for k, v in test.items()},
                          meta["best_epoch"])
  if tb_writer is not None:
    tb_writer.close()
  if primary:
    files.write_json(
        os.path.join(workdir, workdir_lib.RESULTS_FILE), results)
  ckpt.close()
  logging.info("%s epoch %d: valid %s=%s, test %s",
               "refit" if refit else "best", meta["best_epoch"], select,
               valid.get(select, "n/a"),
               {k: round(v, 4) for k, v in test.items()
                if "@" in k or k in metrics_lib.LOWER_IS_BETTER})
  return results

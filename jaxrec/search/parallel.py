"""Training k same-shape candidates at once with `jax.vmap` over hyperparameters.

Candidates share one architecture (so their parameters have identical
shapes) and differ in learning rate, L2 weight and initialisation seed. Their
parameters and Adam states are stacked on a leading axis [k, ...]; the
learning rate lives in the optimiser state (`optax.inject_hyperparams`), the
L2 weight is a traced per-candidate argument of the loss, so one jitted,
vmapped train step updates all k candidates on the same batch. Every
candidate follows exactly the trajectory of its own sequential run
(`train.train_steps` with `optax.adam(lr)` and `model.l2_reg = l2`), which
tests/search_test.py checks.

Speed-up measurement (CPU, synthetic data):

  python -m jaxrec.search.parallel --dataset synthetic --k 4 --epochs 5
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import jraph
import ml_collections
import numpy as np
import optax

from jaxrec import batches
from jaxrec import train
from jaxrec.batches import Batch
from jaxrec.data import sampler
from jaxrec import input_pipeline
from jaxrec import models


@dataclasses.dataclass(frozen=True)
class Candidate:
  """Hyperparameters of one candidate: Adam learning rate, L2 weight, seed."""
  learning_rate: float
  l2_reg: float
  seed: int


def hyper_loss(params, graph: jraph.GraphsTuple, batch: Batch,
               rng: jax.Array, l2_reg: jnp.ndarray, *, model) -> tuple:
  """BPR + l2_reg * L2(ego) with a TRACED l2_reg (= `model.loss` otherwise).

  Valid for models whose loss is the base `Recommender.loss` (BPR + L2 on
  the batch's ego embeddings), e.g. designgnn, lightgcn, mf, gcn, gat, sage.

  Args:
    params: model parameters.
    graph: the training graph.
    batch: one `batches.Batch`. # [B]
    rng: PRNG key of the step.
    l2_reg: this candidate's L2 weight (a traced scalar).
    model: the Flax module.

  Returns:
    (scalar loss, dict of scalar metrics), as `train.model_loss`.
  """
  def terms(module, graph, batch):
    return module.bpr_terms(module.propagate_all(graph, train=True), batch)

  bpr, reg = model.apply({"params": params}, graph, batch, method=terms,
                         rngs={"dropout": rng})
  loss = bpr + l2_reg * reg
  return loss, {"loss": loss, "bpr": bpr, "reg": reg}


def candidate_optimizer() -> optax.GradientTransformation:
  """Adam whose learning rate is a state entry (one per stacked candidate)."""
  return optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)


def init_states(model, graph, candidates: Sequence[Candidate],
                batch_size: int) -> tuple:
  """Stacked train states, L2 weights and train keys of the candidates.

  Each candidate is initialised like `train_and_evaluate` with
  `config.seed = candidate.seed`: (init_rng, train_rng) =
  split(key(seed)).

  Returns:
    (state with leaves [k, ...], l2 [k], train keys [k]).
  """
  tx = candidate_optimizer()
  states, keys = [], []
  for cand in candidates:
    init_rng, train_rng = jax.random.split(jax.random.key(cand.seed))
    params = train.init_params(model, graph, batch_size, init_rng)
    state = train.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    state.opt_state.hyperparams["learning_rate"] = jnp.asarray(
        cand.learning_rate, jnp.float32)
    states.append(state)
    keys.append(train_rng)
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
  l2 = jnp.asarray([c.l2_reg for c in candidates], jnp.float32)  # [k]
  return stacked, l2, jnp.stack(keys)


def parallel_train_steps(states, l2, graph, rows: Batch, keys, *, model):
  """`train.train_steps` of k candidates at once: scan over steps, vmap over k.

  Args:
    states: stacked train states (leaves [k, ...]).
    l2: per-candidate L2 weights. # [k]
    graph: the shared training graph.
    rows: stacked batches shared by all candidates, every field [S, B].
    keys: per-candidate train PRNG keys. # [k]
    model: the Flax module.

  Returns:
    (new stacked states, metrics [S, k]).
  """
  def one(state, l2_reg, rng, batch):
    return train.train_step(
        state, graph, batch, rng, model=model,
        loss_fn=functools.partial(hyper_loss, l2_reg=l2_reg))

  vstep = jax.vmap(one, in_axes=(0, 0, 0, None))

  def body(carry, batch):
    return vstep(carry, l2, keys, batch)
  return jax.lax.scan(body, states, rows)


def unstack(tree, index: int):
  """Candidate `index` of a stacked pytree."""
  return jax.tree.map(lambda x: x[index], tree)


def train_candidates(config: ml_collections.ConfigDict,
                     candidates: Sequence[Candidate], dataset,
                     num_epochs: Optional[int] = None,
                     evaluate: bool = True) -> dict:
  """Trains the candidates of one architecture together; selects on valid.

  Batches are drawn as in `train_and_evaluate` from `config.seed` (shared by
  all candidates); each candidate keeps its best parameters by
  `config.selection_metric` on the validation split (evaluated every
  `config.eval_every` epochs). The test split is not evaluated.

  Args:
    config: training config (its optimizer learning rate and model l2_reg
      are replaced by the candidates').
    candidates: k candidates.
    dataset: the dataset.
    num_epochs: epochs (default config.num_epochs).
    evaluate: evaluate on validation (False: train only, for timing).

  Returns:
    dict: 'states' (stacked), 'valid' (list of best validation metrics per
    candidate), 'best_epoch' (list), 'train_seconds', 'epoch_times' ([[...]]).
  """
  num_epochs = num_epochs or config.num_epochs
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, dataset))
  model = models.get_model(config.model_name, dataset.num_users,
                          dataset.num_items, **config.model.to_dict())
  states, l2, keys = init_states(model, graph, candidates, config.batch_size)
  step_fn = jax.jit(functools.partial(parallel_train_steps, model=model),
                    donate_argnums=0)
  evaluator = train.Evaluator(model, graph, dataset, config) if evaluate else None
  pos_keys = sampler.positive_keys(dataset.train, dataset.num_items)
  steps_per_call = max(1, config.steps_per_call)
  k = len(candidates)
  best = [{} for _ in range(k)]
  best_epoch = [-1] * k
  epoch_times = []
  for epoch in range(num_epochs):
    start = time.perf_counter()
    rows = input_pipeline.epoch_batches(config, dataset, epoch, pos_keys,
                                        model.batch_fields)  # [S, B]
    for lo in range(0, batches.num_steps(rows), steps_per_call):
      chunk = batches.take_steps(rows, lo, lo + steps_per_call)
      states, _ = step_fn(states, l2, graph, chunk, keys)
    jax.block_until_ready(states)
    epoch_times.append(time.perf_counter() - start)
    if evaluator is not None and ((epoch + 1) % config.eval_every == 0 or
                                  epoch + 1 == num_epochs):
      for i in range(k):
        valid = evaluator(unstack(states.params, i), "valid")
        if valid[config.selection_metric] > best[i].get(
            config.selection_metric, -np.inf):
          best[i], best_epoch[i] = valid, epoch + 1
  return {"states": states, "valid": best, "best_epoch": best_epoch,
          "train_seconds": float(np.sum(epoch_times)),
          "epoch_times": [epoch_times]}


def train_sequential(config: ml_collections.ConfigDict,
                     candidates: Sequence[Candidate], dataset,
                     num_epochs: Optional[int] = None,
                     evaluate: bool = True) -> dict:
  """Reference: each candidate alone with the trainer's own (unvmapped) step.

  Uses `train.train_steps` with `optax.adam(lr)` and `model.l2_reg = l2`,
  i.e. what `train_and_evaluate` runs for that candidate.

  Returns:
    dict: 'params' (list per candidate), 'valid', 'best_epoch',
    'train_seconds' (summed), 'epoch_times' (per candidate).
  """
  num_epochs = num_epochs or config.num_epochs
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, dataset))
  pos_keys = sampler.positive_keys(dataset.train, dataset.num_items)
  steps_per_call = max(1, config.steps_per_call)
  out = {"params": [], "valid": [], "best_epoch": [], "train_seconds": 0.0,
         "epoch_times": []}
  for cand in candidates:
    kwargs = dict(config.model.to_dict(), l2_reg=cand.l2_reg)
    model = models.get_model(config.model_name, dataset.num_users,
                            dataset.num_items, **kwargs)
    init_rng, train_rng = jax.random.split(jax.random.key(cand.seed))
    params = train.init_params(model, graph, config.batch_size, init_rng)
    state = train.TrainState.create(apply_fn=model.apply, params=params,
                                    tx=optax.adam(cand.learning_rate))
    step_fn = jax.jit(functools.partial(train.train_steps, model=model),
                      donate_argnums=0)
    evaluator = train.Evaluator(model, graph, dataset, config) if evaluate else None
    best, best_epoch = {}, -1
    out["epoch_times"].append([])
    for epoch in range(num_epochs):
      start = time.perf_counter()
      rows = input_pipeline.epoch_batches(config, dataset, epoch, pos_keys,
                                          model.batch_fields)  # [S, B]
      for lo in range(0, batches.num_steps(rows), steps_per_call):
        chunk = batches.take_steps(rows, lo, lo + steps_per_call)
        state, _ = step_fn(state, graph, chunk, train_rng)
      jax.block_until_ready(state)
      out["epoch_times"][-1].append(time.perf_counter() - start)
      out["train_seconds"] += out["epoch_times"][-1][-1]
      if evaluator is not None and ((epoch + 1) % config.eval_every == 0 or
                                    epoch + 1 == num_epochs):
        valid = evaluator(state.params, "valid")
        if valid[config.selection_metric] > best.get(config.selection_metric,
                                                     -np.inf):
          best, best_epoch = valid, epoch + 1
    out["params"].append(state.params)
    out["valid"].append(best)
    out["best_epoch"].append(best_epoch)
  return out


def default_candidates(k: int) -> list[Candidate]:
  """k candidates over a small (lr, l2) grid, seeds 0..k-1."""
  grid = [(lr, l2) for lr in (1e-3, 5e-3, 2e-3, 5e-4)
          for l2 in (1e-4, 1e-5, 1e-3, 0.0)]
  return [Candidate(grid[(i * 5) % len(grid)][0], grid[(i * 5) % len(grid)][1],
                    i) for i in range(k)]


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m jaxrec.search.parallel",
      description="Speed of k vmapped candidates vs k sequential runs.")
  parser.add_argument("--dataset", default="synthetic")
  parser.add_argument("--k", type=int, default=4)
  parser.add_argument("--epochs", type=int, default=5)
  parser.add_argument("--model-config", default=None,
                      help="JSON of config.model overrides (designgnn)")
  args = parser.parse_args(argv)
  from jaxrec import config_utils  # pylint: disable=g-import-not-at-top
  config = config_utils.base_config(args.dataset)
  config.model_name = "designgnn"
  config.model = dict(embed_dim=64, l2_reg=1e-4, aggregation="lightgcn",
                      message="identity", num_layers=3, combine="mean",
                      interaction="dot")
  if args.model_config:
    config.model.update(json.loads(args.model_config))
  dataset = input_pipeline.load_data(config)
  cands = default_candidates(args.k)
  rows = []
  for name, fn in (("sequential", train_sequential),
                   ("vmap", train_candidates)):
    start = time.perf_counter()
    result = fn(copy.deepcopy(config), cands, dataset, args.epochs,
                evaluate=False)
    total = time.perf_counter() - start
    # Steady state: all k candidates for one epoch, first (compiling) epoch
    # of each run left out.
    steady = sum(float(np.median(t[1:] if len(t) > 1 else t))
                 for t in result["epoch_times"])
    rows.append((name, total, result["train_seconds"], steady))
  print(f"{dataset.summary()}; model {dict(config.model)}; k={args.k}, "
        f"{args.epochs} epochs each")
  print("| mode | wall s (init+compile+train) | train-loop s | "
        "s per epoch of all k (median, no compile) |")
  print("|---|---|---|---|")
  for name, total, loop, steady in rows:
    print(f"| {name} | {total:.1f} | {loop:.1f} | {steady:.2f} |")
  print(f"speed-up: wall {rows[0][1] / rows[1][1]:.2f}x, train loop "
        f"{rows[0][2] / rows[1][2]:.2f}x, steady epoch "
        f"{rows[0][3] / rows[1][3]:.2f}x")


if __name__ == "__main__":
  main()

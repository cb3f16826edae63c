"""Median seconds per LightGCN training step of one checkout, for A/B runs.

`speed.py`'s timed-call path alone (no epoch loop, evaluation or RSS
phases; the data loading and timed calls `speed.py` uses are defined here):
loads a synthetic size or Gowalla (degree order; batch sized to 32 steps
per epoch, or 2048 on Gowalla),
compiles one call of the jitted `train.train_steps`, then times --calls
calls of --steps steps and prints one line:

  RESULT <repo> <size> <gather_dtype> <median s/step> loss <last loss>

The code measured is the checkout at --repo (default: this one; another
checkout runs its own `benchmarks.step_time` in a child process that imports
only from it), so two worktrees run alternately give an interleaved A/B on a
shared host, e.g.

  for r in 1 2; do for v in /tmp/before /path/to/jaxrec; do
    JAXREC_DATA_ROOT=../shared/data python -m benchmarks.step_time \
        --repo $v --size gowalla --calls 9
  done; done

Usage:
  python -m benchmarks.step_time --size {1e5,1e6,3e6,1e7,gowalla}
      [--repo PATH] [--gather_dtype float32] [--steps 4] [--calls 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

from benchmarks import common
from benchmarks.speed_report import BATCH, DIM, LAYERS

STEPS_PER_CALL = 16
INTERACTIONS_PER_USER, MAX_ITEMS = 30, 40_000


def synthetic_sizes(edges: int) -> dict:
  """make_synthetic arguments giving about `edges` directed train edges."""
  total = int(round(edges / 2 / 0.8))  # train = 80% of the interactions
  users = max(100, total // INTERACTIONS_PER_USER)
  items = int(min(MAX_ITEMS, max(200, users // 2)))
  return dict(num_users=users, num_items=items, num_interactions=total)


def batch_size_for(train_size: int, steps_per_epoch: int) -> int:
  """BATCH, or the batch giving `steps_per_epoch` steps (0 = fixed BATCH)."""
  if steps_per_epoch <= 0:
    return BATCH
  return -(-train_size // steps_per_epoch)


def load(size: str, seed: int = 0, tile_nodes: int = -1,
         node_order: str = "data", gather_dtype: str = "float32"):
  """(config, dataset, seconds) for 'gowalla' or a synthetic edge count.

  The data and LightGCN config `speed.py` and this script time.

  node_order: `config.graph.node_order`, 'data' (as loaded / generated) or
  'degree' (`preprocess.relabel_by_degree`, included in the seconds).
  """
  from jaxrec import config_utils  # pylint: disable=g-import-not-at-top
  from jaxrec import input_pipeline  # pylint: disable=g-import-not-at-top
  from jaxrec.data import synthetic  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  if size == "gowalla":
    config = config_utils.base_config("gowalla")
    dataset = input_pipeline.load_data(config)
  else:
    config = config_utils.base_config("synthetic")
    dataset = synthetic.make_synthetic(
        **synthetic_sizes(int(float(size))), with_texts=False, seed=seed,
        name=f"synthetic_{size}")
  config.graph.node_order = node_order  # what train_and_evaluate would do
  dataset = input_pipeline.order_nodes(config, dataset)
  config.model_name = "lightgcn"
  config.model = dict(embed_dim=DIM, num_layers=LAYERS, l2_reg=1e-4)
  config.batch_size = BATCH
  config.steps_per_call = STEPS_PER_CALL
  config.graph.tile_nodes = tile_nodes
  config.graph.gather_dtype = gather_dtype
  return config, dataset, time.perf_counter() - start


def lightgcn_trainer(config, dataset, graph, batch: int):
  """(model, train state, jitted multi-step function) of LightGCN.

  What `speed.py` and this script time: `train.train_steps` jitted as
  `train_and_evaluate` jits it (`sharding.jit_train_steps`, no mesh), Adam
  from `config`, parameters from `train.init_params`. Only `jaxrec.train`
  and `jaxrec.sharding` APIs that older checkouts also have are used, so
  --repo can point at any of them.

  Args:
    config: experiment config (`load`'s, model and optimizer set).
    dataset: the loaded `Dataset`.
    graph: its training graph, as JAX arrays.
    batch: BPR batch size.

  Returns:
    (model, state, step_fn), step_fn(state, graph, rows, rng).
  """
  # pylint: disable=g-import-not-at-top
  import jax
  from jaxrec import models
  from jaxrec import optimizers
  from jaxrec import sharding
  from jaxrec import train
  model = models.get_model("lightgcn", dataset.num_users, dataset.num_items,
                          **config.model.to_dict())
  params = train.init_params(model, graph, batch, jax.random.key(0))
  state = train.TrainState.create(apply_fn=model.apply, params=params,
                                  tx=optimizers.make_optimizer(config))
  step_fn = sharding.jit_train_steps(
      functools.partial(train.train_steps, model=model), None)
  return model, state, step_fn


def step_windows(rows, steps: int):
  """Windows of `steps` consecutive steps of an epoch's stacked rows.

  Args:
    rows: stacked batches (a `jaxrec.batches.Batch`, or any pytree), every
      leaf [num_steps, ...].
    steps: steps per window; clamped to the epoch's num_steps.

  Returns:
    (steps, window) where window(c) holds steps [lo, lo + steps) with
    lo = (c * steps) mod (num_steps - steps + 1): every window is full
    (one shape, one compilation), wrapping when c * steps runs past the
    epoch.
  """
  import jax  # pylint: disable=g-import-not-at-top
  num_steps = int(jax.tree.leaves(rows)[0].shape[0])
  if num_steps < 1:
    raise ValueError("step_windows: the epoch has no steps")
  steps = max(1, min(steps, num_steps))
  span = num_steps - steps + 1

  def window(c):
    lo = (c * steps) % span
    return jax.tree.map(lambda v: v[lo:lo + steps], rows)

  return steps, window


def time_calls(step_fn, state, graph, chunk, rng, calls: int):
  """Calls `step_fn` on chunk(0) (it compiles), then times chunk(1..calls).

  Args:
    step_fn: step_fn(state, graph, rows, rng) -> (state, metrics).
    state: train state.
    graph: training graph.
    chunk: chunk(c) -> the rows of call c.
    rng: PRNG key.
    calls: timed calls.

  Returns:
    (compile seconds, [seconds of each timed call], state, last metrics).
  """
  # pylint: disable=g-import-not-at-top
  import jax
  start = time.perf_counter()
  state, metrics = step_fn(state, graph, chunk(0), rng)
  jax.block_until_ready(metrics)
  compile_seconds, times = time.perf_counter() - start, []
  for c in range(1, calls + 1):
    start = time.perf_counter()
    state, metrics = step_fn(state, graph, chunk(c), rng)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  return compile_seconds, times, state, metrics


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", required=True,
                      help="synthetic edge count (1e5, ...) or 'gowalla'")
  parser.add_argument("--repo", default=common.REPO,
                      help="checkout whose code is timed")
  parser.add_argument("--gather_dtype", default="float32")
  parser.add_argument("--steps", type=int, default=0,
                      help="steps per call (0: 16 at 1e5, else 4)")
  parser.add_argument("--calls", type=int, default=5)
  args = parser.parse_args(argv)
  status = common.run_in_checkout(args.repo, "step_time", argv)
  if status is not None:
    sys.exit(status)
  repo = os.path.abspath(args.repo)
  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  from jaxrec import input_pipeline
  from jaxrec.data import sampler

  config, ds, _ = load(args.size, node_order="degree",
                       gather_dtype=args.gather_dtype)
  batch = (BATCH if args.size == "gowalla"
           else batch_size_for(len(ds.train), 32))
  config.batch_size = batch
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, ds))
  _, state, step_fn = lightgcn_trainer(config, ds, graph, batch)
  rows = input_pipeline.stack_batches(sampler.epoch_triples(
      ds.train, ds.num_users, ds.num_items, seed=0, epoch=0), batch)
  steps, chunk = step_windows(rows, args.steps or (16 if args.size == "1e5"
                                                   else 4))
  _, times, _, metrics = time_calls(step_fn, state, graph, chunk,
                                    jax.random.key(1), args.calls)
  print(f"RESULT {repo} {args.size} {args.gather_dtype} "
        f"{statistics.median(times) / steps:.5f} loss "
        f"{float(metrics['loss'][-1]):.6f}", flush=True)


if __name__ == "__main__":
  main()

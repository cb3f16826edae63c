"""Median seconds per LightGCN training step of one checkout, for A/B runs.

`speed.py`'s timed-call path alone (no epoch loop, evaluation or RSS
phases): loads a synthetic size or Gowalla exactly as `speed.py` does
(degree order; batch sized to 32 steps per epoch, or 2048 on Gowalla),
compiles one call of the jitted `train.train_steps`, then times --calls
calls of --steps steps and prints one line:

  RESULT <repo> <size> <gather_dtype> <median s/step> loss <last loss>

The code measured is the checkout at --repo (default: this one), so two
worktrees run alternately give an interleaved A/B on a shared host, e.g.

  for r in 1 2; do for v in /tmp/before /path/to/jaxrec; do
    JAXREC_DATA_ROOT=../shared/data python benchmarks/step_time.py \
        --repo $v --size gowalla --calls 9
  done; done

Usage:
  python benchmarks/step_time.py --size {1e5,1e6,3e6,1e7,gowalla}
      [--repo PATH] [--gather_dtype float32] [--steps 4] [--calls 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time


def lightgcn_trainer(config, dataset, graph, batch: int):
  """(model, train state, jitted multi-step function) of LightGCN.

  What `speed.py` and this script time: `train.train_steps` jitted as
  `train_and_evaluate` jits it (`sharding.jit_train_steps`, no mesh), Adam
  from `config`, parameters from `train.init_params`. Only `jaxrec.train`
  and `jaxrec.sharding` APIs that older checkouts also have are used, so
  --repo can point at any of them.

  Args:
    config: experiment config (`speed.load`'s, model and optimizer set).
    dataset: the loaded `Dataset`.
    graph: its training graph, as JAX arrays.
    batch: BPR batch size.

  Returns:
    (model, state, step_fn), step_fn(state, graph, rows, rng).
  """
  # pylint: disable=g-import-not-at-top
  import jax
  from jaxrec import sharding, train
  model = train.get_model("lightgcn", dataset.num_users, dataset.num_items,
                          **config.model.to_dict())
  params = train.init_params(model, graph, batch, jax.random.key(0))
  state = train.TrainState.create(apply_fn=model.apply, params=params,
                                  tx=train.make_optimizer(config))
  step_fn = sharding.jit_train_steps(
      functools.partial(train.train_steps, model=model), None)
  return model, state, step_fn


def step_windows(rows: dict, steps: int):
  """Windows of `steps` consecutive steps of an epoch's stacked rows.

  Args:
    rows: stacked batches, each value [num_steps, ...].
    steps: steps per window; clamped to the epoch's num_steps.

  Returns:
    (steps, window) where window(c) holds steps [lo, lo + steps) with
    lo = (c * steps) mod (num_steps - steps + 1): every window is full
    (one shape, one compilation), wrapping when c * steps runs past the
    epoch.
  """
  num_steps = int(next(iter(rows.values())).shape[0])
  if num_steps < 1:
    raise ValueError("step_windows: the epoch has no steps")
  steps = max(1, min(steps, num_steps))
  span = num_steps - steps + 1

  def window(c):
    lo = (c * steps) % span
    return {k: v[lo:lo + steps] for k, v in rows.items()}

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
  parser.add_argument("--repo", default=os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), help="checkout whose code is timed")
  parser.add_argument("--gather_dtype", default="float32")
  parser.add_argument("--steps", type=int, default=0,
                      help="steps per call (0: 16 at 1e5, else 4)")
  parser.add_argument("--calls", type=int, default=5)
  args = parser.parse_args(argv)
  repo = os.path.abspath(args.repo)
  sys.path[:0] = [os.path.join(repo, "benchmarks"), repo]
  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  import speed
  from jaxrec import train
  from jaxrec.data import sampler

  config, ds, _ = speed.load(args.size, node_order="degree",
                             gather_dtype=args.gather_dtype)
  batch = (speed.BATCH if args.size == "gowalla"
           else speed.batch_size_for(len(ds.train), 32))
  config.batch_size = batch
  graph = jax.tree.map(jnp.asarray, train.build_graph(config, ds))
  _, state, step_fn = lightgcn_trainer(config, ds, graph, batch)
  rows = train.stack_batches(sampler.epoch_triples(
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

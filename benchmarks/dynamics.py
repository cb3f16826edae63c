"""Training dynamics inside epochs: validation and norms every N steps.

`train_and_evaluate` evaluates once per `eval_every` epochs; a model whose
validation moves a lot within one epoch (SimGCL on Gowalla: one epoch is
357 steps, ~3 minutes on a 2-core CPU) needs a finer view. This script
trains a config exactly as the trainer does (`train.setup_experiment`: the
same data, graph, model, initial state and jitted steps; `input_pipeline.epoch_batches`)
and every `--every` steps records:

  step, epoch (fraction), seconds, the mean of each loss term over the
  chunk (bpr, reg, ssl, ...), valid Recall@20 / NDCG@20, and the mean row
  norms of the ranking embeddings (user_norm, item_norm) and of the layer-0
  tables (user_ego_norm, item_ego_norm).

Usage:
  python -m benchmarks.dynamics --config simgcl --dataset gowalla \
      --data_root ../shared/data --set model.ssl_weight=0.2 \
      --set model.init_std=0.008 --every 60 --steps 720 --out dyn.jsonl

`--set key=value` sets any config key, nested with dots (the value is
parsed as JSON when it parses, else kept as a string), including keys a
config file does not declare.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp

from jaxrec import batches
from jaxrec import config_utils
from jaxrec import input_pipeline
from jaxrec import train


def apply_settings(config, settings: list[str]):
  """Applies `key=value` strings (dotted keys; JSON values) to `config`."""
  for item in settings:
    key, sep, raw = item.partition("=")
    if not sep or not key:
      raise ValueError(f"--set expects key=value, got {item!r}")
    try:
      value = json.loads(raw)
    except json.JSONDecodeError:
      value = raw
    node, parts = config, key.split(".")
    for part in parts[:-1]:
      node = node[part]
    node[parts[-1]] = value
  return config


def _norm(x) -> float:
  return float(jnp.mean(jnp.linalg.norm(x, axis=-1)))


def run(config, every: int, total_steps: int, out_path: str = "") -> list:
  """Trains `config` for `total_steps` steps, recording every `every` steps.

  Args:
    config: experiment config (its dataset must have a validation split).
    every: steps between records.
    total_steps: steps to train.
    out_path: optional JSON-lines file, one record per line (rewritten).

  Returns:
    The list of records (module docstring).
  """
  exp = train.setup_experiment(config)  # exactly the trainer's set-up
  dataset, graph, model, state = exp.dataset, exp.graph, exp.model, exp.state
  step_fn, evaluator, train_rng = exp.step_fn, exp.evaluator, exp.train_rng
  keys = exp.positive_keys
  del exp  # the train step donates `state`
  records, step, epoch, start = [], 0, 0, time.perf_counter()
  out = open(out_path, "w") if out_path else None  # pylint: disable=consider-using-with
  try:
    while step < total_steps:
      rows = input_pipeline.epoch_batches(config, dataset, epoch, keys,
                                          model.batch_fields)
      num_steps = batches.num_steps(rows)
      for lo in range(0, num_steps, every):
        take = min(every, total_steps - step)
        chunk = batches.take_steps(rows, lo, lo + take)
        state, metrics = step_fn(state, graph, chunk, train_rng)
        step += take
        valid = evaluator(state.params, "valid")
        user, item = evaluator.embeddings(state.params)
        ego = (model.apply({"params": state.params}, method="ego_embeddings")
               if hasattr(model, "ego_embeddings") else None)
        record = {"step": step, "epoch": round(epoch + (lo + take) /
                                                 num_steps, 3),
                  "seconds": round(time.perf_counter() - start, 1)}
        record.update({k: round(float(jnp.mean(v)), 5)
                       for k, v in metrics.items()})
        record.update({"valid_recall@20": round(valid["recall@20"], 4),
                       "valid_ndcg@20": round(valid["ndcg@20"], 4),
                       "user_norm": round(_norm(user), 4),
                       "item_norm": round(_norm(item), 4)})
        if ego is not None:
          record.update({"user_ego_norm": round(_norm(ego[0]), 4),
                         "item_ego_norm": round(_norm(ego[1]), 4)})
        records.append(record)
        print(json.dumps(record), flush=True)
        if out is not None:
          out.write(json.dumps(record) + "\n")
          out.flush()
        if step >= total_steps:
          break
      epoch += 1
  finally:
    if out is not None:
      out.close()
  return records


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default="simgcl",
                 help="config file or name in configs/")
  p.add_argument("--dataset", default="synthetic", help="get_config argument")
  p.add_argument("--data_root", default=None)
  p.add_argument("--set", action="append", default=[],
                 help="key=value (repeatable)")
  p.add_argument("--every", type=int, default=60)
  p.add_argument("--steps", type=int, default=720)
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  if args.every <= 0 or args.steps <= 0:
    p.error("--every and --steps must be positive")
  config = config_utils.load_config_file(args.config, args.dataset)
  if args.data_root:
    config.dataset.data_root = args.data_root
  apply_settings(config, args.set)
  print(f"config {args.config}:{args.dataset} model {config.model} "
        f"batch {config.batch_size} optimizer {config.optimizer}", flush=True)
  return run(config, args.every, args.steps, args.out)


if __name__ == "__main__":
  main()

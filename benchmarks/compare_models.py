"""Trains several registered models on one dataset and tabulates them vs MF.

  python benchmarks/compare_models.py --dataset lastfm --models mf,lightgcn \
      --workdir workdirs/compare --out docs/results/models_lastfm.md

Each model uses its own paper config (`configs/<model>.py:<dataset>`), on the
same loaded dataset (same seeded validation split carved from train), selects
its epoch on validation Recall@20 with early stopping, and reports test
metrics once for that epoch. Runs live in `<workdir>/<dataset>/<model>/` and
resume from their Orbax checkpoints, so an interrupted comparison continues.
The table: test Recall@20 / NDCG@20, best and last epoch, seconds per training
epoch (median), seconds per full-ranking evaluation (median over the
validation evaluations after the first, i.e. without compilation; all users),
and whether the model beats MF on both metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from jaxrec import config_utils  # pylint: disable=wrong-import-position
from jaxrec import train  # pylint: disable=wrong-import-position


def load_config(model: str, dataset: str):
  """configs/<model>.py:get_config(dataset)."""
  return config_utils.load_config_file(
      os.path.join(_ROOT, "configs", f"{model}.py"), dataset)


def median_eval_seconds(metrics_path: str) -> float:
  """Median wall seconds of the validation evaluations (after the first,
  which includes compilation) read from a run's metrics.jsonl."""
  with open(metrics_path) as f:
    times = [json.loads(line).get("eval_seconds") for line in f if line.strip()]
  times = [t for t in times if t is not None][1:]
  return float(np.median(times)) if times else float("nan")


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="synthetic")
  parser.add_argument("--models", default="mf,lightgcn",
                      help="comma-separated registry names with a config")
  parser.add_argument("--workdir", default="workdirs/compare")
  parser.add_argument("--out", default=None, help="markdown table path")
  parser.add_argument("--epochs", type=int, default=None,
                      help="cap on training epochs (default: the config's)")
  parser.add_argument("--patience", type=int, default=None,
                      help="evaluations without improvement before stopping")
  parser.add_argument("--eval_every", type=int, default=None)
  parser.add_argument("--seed", type=int, default=0)
  return parser.parse_args(argv)


def run(args) -> str:
  """Trains every model; returns the markdown report."""
  models = [m.strip() for m in args.models.split(",") if m.strip()]
  base = load_config("mf", args.dataset)
  base.seed = args.seed
  dataset = train.load_data(base)
  rows = {}
  for name in models:
    config = load_config(name, args.dataset)
    config.seed = args.seed
    config.progress = False
    for key in ("epochs", "patience", "eval_every"):
      value = getattr(args, key)
      if value is not None:
        config["num_epochs" if key == "epochs" else key] = value
    start = time.time()
    result = train.train_and_evaluate(
        config, os.path.join(args.workdir, args.dataset, name), dataset=dataset)
    result["wall_seconds_this_call"] = time.time() - start
    result["valid_eval_seconds"] = median_eval_seconds(
        os.path.join(args.workdir, args.dataset, name, "metrics.jsonl"))
    rows[name] = result
    print(f"{name}: test R@20 {result['test']['recall@20']:.4f} "
          f"N@20 {result['test']['ndcg@20']:.4f}", flush=True)

  mf = rows.get("mf")
  header = ["model", "R@20", "N@20", "best epoch", "epochs run",
            "s/epoch", "s/eval", "beats MF"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name, r in rows.items():
    test = r["test"]
    beats = "-"
    if mf is not None and name != "mf":
      beats = "yes" if (test["recall@20"] > mf["test"]["recall@20"] and
                        test["ndcg@20"] > mf["test"]["ndcg@20"]) else "no"
    epochs_run = len(r.get("epoch_losses", [])) or r.get("epochs_run", "-")
    lines.append("| " + " | ".join([
        name, f"{test['recall@20']:.4f}", f"{test['ndcg@20']:.4f}",
        str(r["best_epoch"]), str(epochs_run),
        f"{r['seconds_per_epoch']:.2f}", f"{r['valid_eval_seconds']:.2f}",
        beats]) + " |")
  cmd = "python " + " ".join([os.path.relpath(__file__, _ROOT)] +
                             sys.argv[1:])
  report = (f"### {args.dataset}\n\n{dataset.summary()}\n\n"
            f"Command: `{cmd}`  \nMachine: {os.cpu_count()} CPU cores "
            f"({platform.processor() or platform.machine()}), load average at "
            f"the end {os.getloadavg()[0]:.1f}\n\n" + "\n".join(lines) + "\n")
  os.makedirs(args.workdir, exist_ok=True)
  with open(os.path.join(args.workdir, f"{args.dataset}.json"), "w") as f:
    json.dump({k: {"test": v["test"], "valid": v["valid"],
                   "best_epoch": v["best_epoch"],
                   "seconds_per_epoch": v["seconds_per_epoch"],
                   "valid_eval_seconds": v["valid_eval_seconds"]}
               for k, v in rows.items()}, f, indent=2)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
      f.write(report)
    os.replace(tmp, args.out)
  return report


if __name__ == "__main__":
  print(run(parse_args()))

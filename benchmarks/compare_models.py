"""Trains several registered models on one dataset and tabulates them vs MF.

  python -m benchmarks.compare_models --dataset lastfm --models mf,lightgcn \
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

Not `python -m jaxrec.compare`: that one trains the entries of one comparison
config; this one gives every model its own paper config for the dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from benchmarks import common
from jaxrec import config_utils
from jaxrec import train
from jaxrec import input_pipeline


def load_config(model: str, dataset: str):
  """configs/<model>.py:get_config(dataset)."""
  return config_utils.load_config_file(
      os.path.join(common.REPO, "configs", f"{model}.py"), dataset)


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


def run(args, argv=None) -> str:
  """Trains every model; returns the markdown report.

  Args:
    args: parsed arguments (`parse_args`).
    argv: the arguments as given, for the page's command line (default:
      sys.argv[1:]).

  Returns:
    The report (also written to --out when given).
  """
  models = [m.strip() for m in args.models.split(",") if m.strip()]
  base = load_config("mf", args.dataset)
  base.seed = args.seed
  dataset = input_pipeline.load_data(base)
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
  cells = []
  for name, r in rows.items():
    test = r["test"]
    beats = "-"
    if mf is not None and name != "mf":
      beats = "yes" if (test["recall@20"] > mf["test"]["recall@20"] and
                        test["ndcg@20"] > mf["test"]["ndcg@20"]) else "no"
    epochs_run = len(r.get("epoch_losses", [])) or r.get("epochs_run", "-")
    cells.append([
        name, f"{test['recall@20']:.4f}", f"{test['ndcg@20']:.4f}",
        str(r["best_epoch"]), str(epochs_run),
        f"{r['seconds_per_epoch']:.2f}", f"{r['valid_eval_seconds']:.2f}",
        beats])
  lines = common.markdown_table(header, cells)
  report = (f"### {args.dataset}\n\n{dataset.summary()}\n\n"
            f"Command: `{common.command('compare_models', argv)}`  \n"
            f"{common.hardware_line()}\n\n" + "\n".join(lines) + "\n")
  common.write_json(os.path.join(args.workdir, f"{args.dataset}.json"),
                    {k: {"test": v["test"], "valid": v["valid"],
                         "best_epoch": v["best_epoch"],
                         "seconds_per_epoch": v["seconds_per_epoch"],
                         "valid_eval_seconds": v["valid_eval_seconds"]}
                     for k, v in rows.items()})
  if args.out:
    common.write_page(args.out, report)
  return report


def main(argv=None) -> str:
  report = run(parse_args(argv), argv)
  print(report)
  return report


if __name__ == "__main__":
  main()

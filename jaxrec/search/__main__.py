"""Command line of the architecture search (argparse; no absl flags here).

  python -m jaxrec.search --config configs/search.py:lastfm --budget-trials 12 \
      [--budget-seconds 1500] [--strategy random|evolution|halving] \
      [--seed 0] [--warm-start base|none|SUMMARY.json,...] \
      [--compile-cache on|off] --workdir DIR

Writes DIR/results.csv (one row per training: trial, rung, epochs,
architecture, validation metric, seconds), DIR/results.md, DIR/summary.json
and DIR/best_config.py, which re-trains the selected architecture with
`python -m jaxrec.main --config DIR/best_config.py --workdir OUT`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
from typing import Optional, Sequence

import ml_collections
import numpy as np

from jaxrec import config_utils
from jaxrec.search import runner as runner_lib
from jaxrec.search import space as space_lib
from jaxrec.search import strategies


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads 'path/to/config.py[:arg]' the way `--config` of jaxrec.main does."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise FileNotFoundError(f"--config: no such file {path!r}")
  return config_utils.load_config_file(path, arg or None)


def search(config: ml_collections.ConfigDict, workdir: str, dataset=None,
           command: str = "") -> dict:
  """Runs `config.search.strategy` and writes the results files.

  Args:
    config: search config (configs/search.py format).
    workdir: output directory.
    dataset: optional pre-loaded dataset.
    command: command line recorded in results.md.

  Returns:
    The summary dict of `runner.write_outputs`.
  """
  cache = (runner_lib.compile_cache(os.path.join(workdir, "xla_cache"))
           if config.search.get("compile_cache", False)
           else contextlib.nullcontext())
  with cache:
    return _search(config, workdir, dataset, command)


def _search(config: ml_collections.ConfigDict, workdir: str, dataset,
            command: str) -> dict:
  s = config.search
  space = space_lib.Space.from_overrides(s.space or {})
  runner = runner_lib.Runner(space, config, workdir, s.budget_trials,
                             s.budget_seconds, dataset=dataset)
  rng = np.random.default_rng(s.seed)
  # Known designs trained before the random samples (configs/search.py).
  initial = strategies.warm_start_architectures(space, config,
                                                s.get("warm_start", ()))
  if s.strategy == "random":
    strategies.random_search(runner, rng, s.epochs, initial)
    final_epochs = s.epochs
  elif s.strategy == "evolution":
    strategies.regularized_evolution(runner, rng, s.epochs,
                                     s.population_size, s.sample_size,
                                     initial)
    final_epochs = s.epochs
  elif s.strategy == "halving":
    strategies.successive_halving(
        runner, rng, s.min_epochs, s.eta, s.max_epochs, initial,
        promote_initial=s.get("promote_warm_start", False))
    final_epochs = None
  else:
    raise ValueError(f"config.search.strategy must be one of "
                     f"{strategies.STRATEGIES}, got {s.strategy!r}")
  best = runner.best()
  return runner_lib.write_outputs(runner, s.strategy,
                                  final_epochs or best.epochs, command)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m jaxrec.search",
      description="Architecture search over the GNN-CF design space.")
  parser.add_argument("--config", required=True,
                      help="config file[:dataset], e.g. configs/search.py:lastfm")
  parser.add_argument("--workdir", required=True, help="output directory")
  parser.add_argument("--budget-trials", type=int, default=None,
                      help="architectures to train (halving: rung-0 ones)")
  parser.add_argument("--budget-seconds", type=float, default=None,
                      help="no training starts after this many seconds")
  parser.add_argument("--strategy", choices=strategies.STRATEGIES,
                      default=None)
  parser.add_argument("--seed", type=int, default=None,
                      help="search sampling seed (config.search.seed)")
  parser.add_argument("--warm-start", default=None,
                      help="architectures trained first, comma-separated: "
                      "'base' (the config's own point) and/or a previous "
                      "search's summary.json; 'none' for none "
                      "(config.search.warm_start)")
  parser.add_argument("--compile-cache", choices=("on", "off"), default=None,
                      help="keep XLA executables in WORKDIR/xla_cache for "
                      "the search (config.search.compile_cache)")
  return parser.parse_args(argv)


class _HideTrialTest(logging.Filter):
  """Drops the trainer's per-run test log line: only the best is reported."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not (record.pathname.endswith(os.path.join("jaxrec", "train.py"))
                and str(record.msg).startswith("best epoch"))


def main(argv: Optional[Sequence[str]] = None) -> None:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO)
  logging.getLogger().setLevel(logging.INFO)
  for handler in logging.getLogger().handlers:
    handler.addFilter(_HideTrialTest())
  config = load_config(args.config)
  if "search" not in config:
    raise ValueError(f"--config {args.config}: no `search` section")
  with config.unlocked():
    if args.budget_trials is not None:
      config.search.budget_trials = args.budget_trials
    if args.budget_seconds is not None:
      config.search.budget_seconds = float(args.budget_seconds)
    if args.strategy is not None:
      config.search.strategy = args.strategy
    if args.seed is not None:
      config.search.seed = args.seed
    if args.compile_cache is not None:
      config.search.compile_cache = args.compile_cache == "on"
    if args.warm_start is not None:
      config.search.warm_start = [
          e for e in args.warm_start.split(",") if e and e != "none"]
  command = "python -m jaxrec.search " + " ".join(
      shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
  summary = search(config, args.workdir, command=command)
  print(f"best trial {summary['best_trial']}: {summary['best_arch']}")
  print(f"valid {config.selection_metric} = "
        f"{summary['best_valid'][config.selection_metric]:.4f}; test "
        + ", ".join(f"{k} = {v:.4f}" for k, v in summary["best_test"].items()
                    if k.startswith(("recall@", "ndcg@"))))
  print(f"wrote {args.workdir}/results.md, results.csv, best_config.py")


if __name__ == "__main__":
  main()

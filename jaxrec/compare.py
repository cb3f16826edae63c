"""Trains the entries of a comparison config on the same data; one table.

  python -m jaxrec.compare --config configs/quickstart.py --workdir workdirs/quickstart

A comparison config is an experiment config with a `compare` list: each
entry is a dict with `name` (the run's sub-folder of the workdir) and
overrides of top-level config fields. Every entry is validated before any
work, the dataset is loaded once, each run trains into workdir/<name>/
(resuming as `python -m jaxrec.main` does), and a table of test metrics
(epoch selected on validation) is printed and written to
workdir/comparison.md. Errors are reported as by `jaxrec.main` (`jaxrec.cli`).
For registered models with their own paper configs, see
benchmarks/compare_models.py.
"""

from __future__ import annotations

if __name__ == "__main__":
  # As in jaxrec.main: transparent huge pages before jax is loaded.
  from jaxrec import hugepages  # pylint: disable=g-import-not-at-top
  hugepages.reexec_with_huge_pages()

import copy  # pylint: disable=g-import-not-at-top,wrong-import-position
import os

from absl import flags
import ml_collections

from jaxrec import cli
from jaxrec import config_utils
from jaxrec import files
from jaxrec import train
from jaxrec.errors import ConfigError
from jaxrec import input_pipeline

COMPARISON_FILE = "comparison.md"


def compare_configs(config: ml_collections.ConfigDict
                    ) -> list[tuple[str, ml_collections.ConfigDict]]:
  """(name, run config) of every `config.compare` entry, all validated.

  Args:
    config: a comparison config.

  Returns:
    One (name, config) per entry, in order; the configs hold no `compare`.

  Raises:
    ConfigError: no `compare` list, an entry without a name, or an entry
      whose config is invalid (named by index and name).
  """
  if "compare" not in config:
    raise ConfigError("config.compare: missing; a comparison config lists "
                      "its runs as dicts with 'name' and config overrides "
                      "(see configs/quickstart.py)")
  base = copy.deepcopy(config)
  entries = list(base.compare)
  del base.compare
  out = []
  for n, entry in enumerate(entries):
    entry = dict(entry)
    if "name" not in entry:
      raise ConfigError(f"config.compare[{n}]: missing 'name' (the run's "
                        "sub-folder of the workdir)")
    name = entry.pop("name")
    run_config = copy.deepcopy(base)
    for key, value in entry.items():
      run_config[key] = value
    try:
      config_utils.validate_config(run_config)
    except ConfigError as err:
      raise ConfigError(f"config.compare[{n}] ({name!r}): {err}") from err
    out.append((name, run_config))
  return out


def run_comparison(config: ml_collections.ConfigDict, workdir: str,
                   allow_config_change: bool = False) -> str:
  """Trains every `config.compare` entry on the same data; returns a table.

  Args:
    config: a comparison config.
    workdir: the comparison's directory (one sub-folder per run).
    allow_config_change: passed to each `train.train_and_evaluate`.

  Returns:
    The Markdown table of test metrics, also written (with the dataset
    summary) to workdir/comparison.md.
  """
  runs = compare_configs(config)
  base = copy.deepcopy(config)
  del base.compare
  dataset = input_pipeline.load_data(base)
  ks = base.eval_ks
  # The rating task reports RMSE / MAE instead of ranking metrics.
  rating = config_utils.with_defaults(base).task == "rating"
  names = (["rmse", "mae"] if rating
           else [f"{m}@{k}" for k in ks for m in ("recall", "ndcg")])
  header = ["model", "best epoch"] + names + ["s/epoch"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name, run_config in runs:
    result = train.train_and_evaluate(
        run_config, os.path.join(workdir, name), dataset=dataset,
        allow_config_change=allow_config_change)
    test = result["test"]
    row = [name, str(result["best_epoch"])]
    row += [f"{test[m]:.4f}" for m in names]
    row += [f"{result['seconds_per_epoch']:.2f}"]
    lines.append("| " + " | ".join(row) + " |")
  table = "\n".join(lines)
  text = (f"{dataset.summary()}\n\nTest metrics (selected on validation):"
          f"\n\n{table}\n")
  os.makedirs(workdir, exist_ok=True)
  files.atomic_write(os.path.join(workdir, COMPARISON_FILE),
                           lambda f: f.write(text.encode()))
  return table


def main(argv):
  del argv  # cli.parse_flags rejects extra arguments
  flag_values = flags.FLAGS
  print(run_comparison(flag_values.config, flag_values.workdir,
                       flag_values.allow_config_change))


if __name__ == "__main__":
  cli.define_run_flags()
  cli.run(main)

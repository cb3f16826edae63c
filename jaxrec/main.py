"""Command-line entry point: the only module with flags.

  python -m jaxrec.main --config configs/lightgcn.py:lastfm --workdir workdirs/x

If the config has a `compare` list, each entry (a dict with `name` and config
overrides) is trained into workdir/<name>/ and a comparison table is printed
and written to workdir/comparison.md.
"""

from __future__ import annotations

import copy
import logging
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from jaxrec import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                lock_config=False)
flags.DEFINE_string("workdir", None, "Output directory (checkpoints, logs).")
flags.mark_flags_as_required(["config", "workdir"])


def run_comparison(config, workdir: str) -> str:
  """Trains every `config.compare` entry on the same data; returns a table."""
  base = copy.deepcopy(config)
  entries = list(base.compare)
  del base.compare
  dataset = train.load_data(base)
  ks = base.eval_ks
  header = ["model", "best epoch"] + [f"{m}@{k}" for k in ks
                                      for m in ("recall", "ndcg")] + ["s/epoch"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for entry in entries:
    entry = dict(entry)
    name = entry.pop("name")
    run_config = copy.deepcopy(base)
    for key, value in entry.items():
      run_config[key] = value
    result = train.train_and_evaluate(run_config, os.path.join(workdir, name),
                                      dataset=dataset)
    test = result["test"]
    row = [name, str(result["best_epoch"])]
    row += [f"{test[f'{m}@{k}']:.4f}" for k in ks for m in ("recall", "ndcg")]
    row += [f"{result['seconds_per_epoch']:.2f}"]
    lines.append("| " + " | ".join(row) + " |")
  table = "\n".join(lines)
  with open(os.path.join(workdir, "comparison.md"), "w") as f:
    f.write(f"{dataset.summary()}\n\nTest metrics (selected on validation):\n\n"
            f"{table}\n")
  return table


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Too many command-line arguments.")
  logging.getLogger().setLevel(logging.INFO)
  config = FLAGS.config
  os.makedirs(FLAGS.workdir, exist_ok=True)
  if "compare" in config:
    print(run_comparison(config, FLAGS.workdir))
  else:
    result = train.train_and_evaluate(config, FLAGS.workdir)
    print({k: round(v, 4) for k, v in result["test"].items() if "@" in k})


if __name__ == "__main__":
  app.run(main)

"""Command-line entry point: the only module with flags.

  python -m jaxrec.main --config configs/lightgcn.py:lastfm --workdir workdirs/x

If the config has a `compare` list, each entry (a dict with `name` and config
overrides) is trained into workdir/<name>/ and a comparison table is printed
and written to workdir/comparison.md.

Bad input (a `DataError`: malformed data file, missing dataset folder; a
`ConfigError`: unknown config key, model name or model kwarg; a
`CheckpointError`: checkpoints of another config in the workdir; a non-finite
training loss) ends the run with `error: <message>` on stderr and exit
status 1 instead of a traceback. Config and data errors are raised before
anything is written to the workdir.

Logs show warnings and errors only; absl's `--verbosity=1` adds the INFO
messages (dataset summary, Orbax checkpointing).

Started as a program, it first re-executes itself once with glibc's
transparent-huge-page tunable for XLA's buffers (`jaxrec.hugepages`;
`JAXREC_HUGE_PAGES=0` turns it off).
"""

from __future__ import annotations

if __name__ == "__main__":
  # Re-executes once with transparent huge pages (jaxrec.hugepages), before
  # the imports below load jax: a second load would cost seconds.
  from jaxrec import hugepages  # pylint: disable=g-import-not-at-top
  hugepages.reexec_with_huge_pages()

import copy  # pylint: disable=g-import-not-at-top,wrong-import-position
import logging
import os
import sys

from absl import app
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from jaxrec import checkpoint
from jaxrec import train
from jaxrec.data.dataset import DataError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                lock_config=False)
flags.DEFINE_string("workdir", None, "Output directory (checkpoints, logs).")
flags.mark_flags_as_required(["config", "workdir"])


def _compare_configs(config) -> list[tuple[str, object]]:
  """(name, config) of every `config.compare` entry, all validated first."""
  base = copy.deepcopy(config)
  entries = list(base.compare)
  del base.compare
  out = []
  for n, entry in enumerate(entries):
    entry = dict(entry)
    if "name" not in entry:
      raise train.ConfigError(f"config.compare[{n}]: missing 'name' (the "
                              "run's sub-folder of the workdir)")
    name = entry.pop("name")
    run_config = copy.deepcopy(base)
    for key, value in entry.items():
      run_config[key] = value
    try:
      train.validate_config(run_config)
    except train.ConfigError as err:
      raise train.ConfigError(f"config.compare[{n}] ({name!r}): {err}"
                              ) from err
    out.append((name, run_config))
  return out


def run_comparison(config, workdir: str) -> str:
  """Trains every `config.compare` entry on the same data; returns a table."""
  runs = _compare_configs(config)
  base = copy.deepcopy(config)
  del base.compare
  dataset = train.load_data(base)
  ks = base.eval_ks
  header = ["model", "best epoch"] + [f"{m}@{k}" for k in ks
                                      for m in ("recall", "ndcg")] + ["s/epoch"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name, run_config in runs:
    result = train.train_and_evaluate(run_config, os.path.join(workdir, name),
                                      dataset=dataset)
    test = result["test"]
    row = [name, str(result["best_epoch"])]
    row += [f"{test[f'{m}@{k}']:.4f}" for k in ks for m in ("recall", "ndcg")]
    row += [f"{result['seconds_per_epoch']:.2f}"]
    lines.append("| " + " | ".join(row) + " |")
  table = "\n".join(lines)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "comparison.md")
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(f"{dataset.summary()}\n\nTest metrics (selected on validation):\n\n"
            f"{table}\n")
  os.replace(tmp, path)
  return table


def quiet_logs():
  """absl / Orbax INFO messages off unless `--verbosity` was passed.

  Progress bars (stderr), the results and `error: ...` lines still show;
  `--verbosity=1` (absl's flag) brings back INFO logs.
  """
  if not FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Too many command-line arguments.")
  quiet_logs()
  config = FLAGS.config
  try:
    if "compare" in config:
      print(run_comparison(config, FLAGS.workdir))
    else:
      result = train.train_and_evaluate(config, FLAGS.workdir)
      print({k: round(v, 4) for k, v in result["test"].items() if "@" in k})
  except (DataError, train.ConfigError, checkpoint.CheckpointError,
          FloatingPointError) as err:
    logging.debug("failed", exc_info=True)
    print(f"error: {err}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)

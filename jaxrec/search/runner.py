"""Trains search trials with `jaxrec.train.train_and_evaluate`; budgets; output.

Selection uses the VALIDATION metric only. `train_and_evaluate` also
evaluates the test split of every run it finishes, but the runner never reads
it: `Trial` holds validation metrics only, and the test metrics of the single
selected trial are read back from its workdir's results.json by
`best_test_metrics`, after the search is over.

Every trial is trained in `workdir/trials/<index>` on the dataset loaded once
(same seed, hence the same train/valid/test split for all trials). A trial
trained again for more epochs (successive halving) resumes from its own
checkpoint, so the extra epochs cost only the difference.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import os
import pprint
import time
from typing import Any, Callable, Iterator, NamedTuple, Optional

import jax
from jax.experimental.compilation_cache import compilation_cache
import ml_collections

from jaxrec import files
from jaxrec import train
from jaxrec.search import space as space_lib
from jaxrec import input_pipeline


# Compilations shorter than this are not worth a disk entry.
_CACHE_MIN_COMPILE_SECONDS = 0.2


@contextlib.contextmanager
def compile_cache(directory: str) -> Iterator[None]:
  """XLA executables persisted under `directory` while the block runs.

  Every trial calls `train.train_and_evaluate`, which jits its train step
  and evaluation anew: without a persistent cache a halving promotion (the
  same architecture resumed for more epochs) and every repeated design
  compile again, seconds per training on a CPU. With it they load the
  executable compiled earlier in the same search. The process's previous
  cache settings are restored on exit.

  Args:
    directory: cache directory (created on the first write).
  """
  previous = (jax.config.jax_compilation_cache_dir,
              jax.config.jax_persistent_cache_min_compile_time_secs)
  compilation_cache.set_cache_dir(directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs",
                    _CACHE_MIN_COMPILE_SECONDS)
  compilation_cache.reset_cache()  # the cache object reads the new directory
  try:
    yield
  finally:
    compilation_cache.set_cache_dir(previous[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      previous[1])
    compilation_cache.reset_cache()


@dataclasses.dataclass
class Trial:
  """One architecture's latest training, validation metrics only.

  Attributes:
    index: trial number (order of first training).
    arch: the architecture dict.
    rung: fidelity level (0 unless successive halving promoted it).
    epochs: epoch budget of the latest training (`config.num_epochs`).
    valid: selection metric on the validation split at the best epoch.
    valid_metrics: all validation metrics at the best epoch.
    best_epoch: epoch selected on validation.
    epochs_run: epochs actually trained (< epochs after early stopping).
    seconds: wall-clock seconds of all trainings of this trial.
    workdir: the trial's training directory.
    rung_valid: rung -> selection metric on validation at that rung's epoch
      budget (the best evaluation up to it: its learning curve read at
      that fidelity), one entry per rung the trial reached.
  """
  index: int
  arch: dict
  rung: int
  epochs: int
  valid: float
  valid_metrics: dict
  best_epoch: int
  epochs_run: int
  seconds: float
  workdir: str
  rung_valid: dict = dataclasses.field(default_factory=dict)

  @property
  def converged(self) -> bool:
    """True if early stopping ended the latest training before its budget."""
    return self.epochs_run < self.epochs


class BudgetExhausted(Exception):
  """Raised by `Runner.check_budget` when no further training may start."""


class Selection(NamedTuple):
  """The final pick and the same-fidelity comparison that chose it.

  Attributes:
    trial: the picked trial (as far as it was trained).
    rung: the rung whose validation scores decided.
    epochs: that rung's epoch budget.
    compared: trials scored at that rung, the pick included.
    valid: the pick's validation score at that rung.
  """
  trial: Trial
  rung: int
  epochs: int
  compared: int
  valid: float


class Runner:
  """Trains architectures under a budget of trials and seconds.

  Args:
    space: the declared search space.
    base_config: training config shared by every trial (dataset, seed,
      batch size, evaluation protocol); its `search` section is ignored.
    workdir: output directory.
    budget_trials: most distinct architectures to train.
    budget_seconds: no training starts after this many seconds (a running
      one is finished); None or <= 0 for no limit.
    dataset: optional pre-loaded dataset (else loaded from base_config once).
    clock: time source (tests may pass a fake one).

  Attributes:
    planned: rung -> indices of the trials promoted to it (`plan_rung`).
    min_compared: trials a rung cut short by the budget needs to decide
      the final pick (`selection`).
  """

  def __init__(self, space: space_lib.Space,
               base_config: ml_collections.ConfigDict, workdir: str,
               budget_trials: int, budget_seconds: Optional[float] = None,
               dataset=None, clock: Callable[[], float] = time.perf_counter):
    if budget_trials < 1:
      raise ValueError(f"budget_trials must be >= 1, got {budget_trials}")
    if base_config.get("task", "ranking") != "ranking":
      # Trials are ranked by a higher-is-better ranking metric.
      raise ValueError(f"config.task: the architecture search selects on "
                       f"ranking metrics; task {base_config.task!r} is not "
                       "supported")
    self.space = space
    self.base_config = base_config
    self.workdir = workdir
    self.budget_trials = budget_trials
    self.budget_seconds = budget_seconds if budget_seconds else None
    self.clock = clock
    os.makedirs(workdir, exist_ok=True)
    self.dataset = dataset if dataset is not None else input_pipeline.load_data(
        base_config)
    self.select = base_config.selection_metric
    self.trials: list[Trial] = []
    self.records: list[dict] = []  # one row per training (trial, rung)
    self.planned: dict[int, set[int]] = {}
    self.rung_epochs: dict[int, int] = {}  # rung -> its epoch budget
    self.min_compared = 3
    self.start = clock()

  # ---------------------------------------------------------------- budget
  @property
  def elapsed(self) -> float:
    return self.clock() - self.start

  def time_left(self) -> bool:
    return self.budget_seconds is None or self.elapsed < self.budget_seconds

  def can_start_new(self) -> bool:
    """A new architecture may be trained (trial and time budgets)."""
    return len(self.trials) < self.budget_trials and self.time_left()

  # -------------------------------------------------------------- training
  def trial_config(self, arch: dict, epochs: int) -> ml_collections.ConfigDict:
    """The training config of one trial."""
    config = self.space.to_config(arch, self.base_config)
    config.num_epochs = int(epochs)
    config.progress = False
    config.max_checkpoints = 1
    return config

  def run(self, arch: dict, epochs: int) -> Trial:
    """Trains a NEW architecture for `epochs` epochs (one trial)."""
    if len(self.trials) >= self.budget_trials:
      raise BudgetExhausted(f"trial budget {self.budget_trials} used up")
    index = len(self.trials)
    trial = Trial(index=index, arch=dict(arch), rung=0, epochs=0,
                  valid=-math.inf, valid_metrics={}, best_epoch=-1,
                  epochs_run=0, seconds=0.0,
                  workdir=os.path.join(self.workdir, "trials", f"{index:04d}"))
    self.trials.append(trial)
    self.rung_epochs.setdefault(0, int(epochs))
    return self._train(trial, epochs)

  def plan_rung(self, rung: int, trials: list[Trial], epochs: int) -> None:
    """Declares the trials promoted to `rung` (before any of them trains).

    A rung all of whose planned trials were trained is complete: its
    comparison decides the final pick however few trials it holds.
    """
    self.planned[rung] = {t.index for t in trials}
    self.rung_epochs[rung] = int(epochs)

  def extend(self, trial: Trial, epochs: int, rung: int) -> Trial:
    """Trains `trial` on to `epochs` epochs (resuming its checkpoint)."""
    trial.rung = rung
    self.rung_epochs.setdefault(rung, int(epochs))
    if trial.converged:  # early-stopped: more epochs would not change it
      self._record(trial, 0.0)
      return trial
    return self._train(trial, epochs)

  def _train(self, trial: Trial, epochs: int) -> Trial:
    config = self.trial_config(trial.arch, epochs)
    start = time.perf_counter()
    result = train.train_and_evaluate(config, trial.workdir,
                                      dataset=self.dataset)
    seconds = time.perf_counter() - start
    valid = result["valid"]  # result["test"] is deliberately not read
    trial.epochs = int(epochs)
    trial.valid = float(valid[self.select])
    trial.valid_metrics = {k: float(v) for k, v in valid.items()}
    trial.best_epoch = int(result["best_epoch"])
    trial.epochs_run = int(result["epochs_run"])
    trial.seconds += seconds
    self._record(trial, seconds)
    logging.info("trial %d rung %d (%d epochs, %.1fs): valid %s=%.4f %s",
                 trial.index, trial.rung, epochs, seconds, self.select,
                 trial.valid, trial.arch)
    return trial

  def _record(self, trial: Trial, seconds: float) -> None:
    trial.rung_valid[trial.rung] = trial.valid
    self.records.append({
        "trial": trial.index, "rung": trial.rung, "epochs": trial.epochs,
        "architecture": space_lib.arch_key(trial.arch),
        f"valid_{self.select}": round(trial.valid, 6),
        "best_epoch": trial.best_epoch, "seconds": round(seconds, 2),
        "elapsed": round(self.elapsed, 1)})

  # ------------------------------------------------------------- selection
  def selection(self) -> Selection:
    """The final pick, compared with the others at one fidelity.

    The deciding rung is the highest one that is complete (every trial
    `plan_rung` promoted to it was trained; rung 0 always is) or, when the
    seconds budget cut it short, that at least `min_compared` trials
    finished. Every trial that reached the deciding rung competes with its
    validation score at that rung's epoch budget (`Trial.rung_valid`), so a
    trial trained further is not compared by its later, longer-trained
    score; ties go to the earlier trial. A rung cut short with fewer
    trials does not decide: its first trial is the best of the rung below
    (survivors train best first), which is compared with every trial there.

    Returns:
      The pick (trained as far as the search took it), the deciding rung,
      its epochs, the number of trials compared there and the pick's score.

    Raises:
      ValueError: no trial finished training.
    """
    done = [t for t in self.trials if t.best_epoch >= 0]
    if not done:
      raise ValueError("no trial finished training")
    for rung in sorted({r for t in done for r in t.rung_valid}, reverse=True):
      pool = [t for t in done if rung in t.rung_valid]
      planned = self.planned.get(rung)
      complete = rung == 0 or (planned is not None
                               and planned <= {t.index for t in pool})
      if complete or len(pool) >= self.min_compared:
        break
    pick = min(pool, key=lambda t: (-t.rung_valid[rung], t.index))
    return Selection(pick, rung, self.rung_epochs.get(rung, pick.epochs),
                     len(pool), pick.rung_valid[rung])

  def best(self) -> Trial:
    """The picked trial of `selection`."""
    return self.selection().trial


def best_test_metrics(trial: Trial) -> dict:
  """Test metrics of the SELECTED trial, read once from its results.json."""
  with open(os.path.join(trial.workdir, "results.json")) as f:
    return json.load(f)["test"]


# ----------------------------------------------------------------------------
# Output files.


def write_csv(path: str, records: list[dict]) -> None:
  """results.csv: one row per training (trial, rung)."""
  buf = io.StringIO()
  if records:
    writer = csv.DictWriter(buf, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
  files.write_text(path, buf.getvalue())


def best_config_source(config: ml_collections.ConfigDict, arch: dict,
                       header: str) -> str:
  """Python source of a `get_config()` file that re-trains `config`."""
  body = pprint.pformat(config.to_dict(), indent=2, width=78, sort_dicts=True)
  return (f'"""{header}\n\nArchitecture: {space_lib.arch_key(arch)}\n"""\n\n'
          "import ml_collections\n\n"
          f"CONFIG = {body}\n\n\n"
          "def get_config(arg=None):\n"
          '  """Args: arg: unused (the dataset is fixed by the search)."""\n'
          "  del arg\n"
          "  return ml_collections.ConfigDict(CONFIG)\n")


def write_outputs(runner: Runner, strategy: str, final_epochs: int,
                  command: str = "") -> dict[str, Any]:
  """Writes results.csv, results.md, best_config.py and summary.json.

  Args:
    runner: the finished runner.
    strategy: strategy name (for the report).
    final_epochs: `num_epochs` written into best_config.py (the best
      trial's own budget reproduces its run exactly).
    command: the command line, for the report.

  Returns:
    The summary dict (best trial, its validation and test metrics).
  """
  workdir, select = runner.workdir, runner.select
  write_csv(os.path.join(workdir, "results.csv"), runner.records)
  chosen = runner.selection()
  best = chosen.trial
  test = best_test_metrics(best)  # the one and only read of a test split
  config = runner.trial_config(best.arch, final_epochs)
  config.progress = True
  config.max_checkpoints = runner.base_config.max_checkpoints
  header = (f"Best architecture of `jaxrec.search` ({strategy}, "
            f"{len(runner.trials)} trials) on {runner.dataset.name}.\n\n"
            f"  python -m jaxrec.main --config {workdir}/best_config.py "
            f"--workdir WORKDIR")
  files.write_text(os.path.join(workdir, "best_config.py"),
                best_config_source(config, best.arch, header))
  ks = [k.split("@")[1] for k in test if k.startswith("recall@")]
  lines = [f"# Architecture search: {strategy} on {runner.dataset.name}", "",
           f"{runner.dataset.summary()}", "",
           f"Command: `{command}`" if command else "",
           f"Trials: {len(runner.trials)} (budget {runner.budget_trials}), "
           f"trainings: {len(runner.records)}, total search time "
           f"{runner.elapsed:.0f} s (budget {runner.budget_seconds or 'none'}"
           f" s). Selection on validation {select} only.", "",
           "| trial | rung | epochs | architecture | valid " + select +
           " | seconds |", "|---|---|---|---|---|---|"]
  for r in runner.records:
    lines.append(f"| {r['trial']} | {r['rung']} | {r['epochs']} | "
                 f"`{r['architecture']}` | {r[f'valid_{select}']:.4f} | "
                 f"{r['seconds']:.1f} |")
  lines += ["", f"## Best (trial {best.index}, selected on validation)", "",
            f"`{space_lib.arch_key(best.arch)}`", "",
            f"Compared at rung {chosen.rung} ({chosen.epochs} epoch"
            f"{'s' if chosen.epochs != 1 else ''}) with "
            f"every trial scored there ({chosen.compared} trials, this one "
            f"included): valid {select} = {chosen.valid:.4f}.", "",
            f"valid {select} = {best.valid:.4f} (epoch {best.best_epoch} of "
            f"{best.epochs})", "",
            "Test, reported once for the selected architecture: " +
            ", ".join(f"recall@{k} = {test[f'recall@{k}']:.4f}, "
                      f"ndcg@{k} = {test[f'ndcg@{k}']:.4f}" for k in ks), "",
            f"Re-train: `python -m jaxrec.main --config "
            f"{workdir}/best_config.py --workdir WORKDIR`", ""]
  files.write_text(os.path.join(workdir, "results.md"), "\n".join(lines))
  summary = {"strategy": strategy, "dataset": runner.dataset.name,
             "trials": len(runner.trials), "trainings": len(runner.records),
             "search_seconds": runner.elapsed, "best_trial": best.index,
             "best_arch": best.arch, "best_valid": best.valid_metrics,
             "best_epochs": best.epochs, "best_test": test,
             "selection": {"rung": chosen.rung, "epochs": chosen.epochs,
                           "compared": chosen.compared,
                           "valid": chosen.valid}}
  files.write_text(os.path.join(workdir, "summary.json"),
                json.dumps(summary, indent=2, sort_keys=True))
  return summary

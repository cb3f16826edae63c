"""Searched design space vs tuned LightGCN, both under the same wall-time budget.

  JAXREC_DATA_ROOT=/work/shared/data nice -n 5 python -m benchmarks.search_budget \
      --datasets lastfm --seeds 0,1,2 --budget-seconds 480
  python -m benchmarks.search_budget --render

Protocol: for each dataset and search seed s, two arms run one after the
other, each as its own `python -m jaxrec.search` process with the same
`--budget-seconds` and `--seed s`:

* searched: `configs/search.py:<dataset>`, the full design space;
* lightgcn: `configs/search.py:<dataset>,lightgcn`, the same search
  restricted to LightGCN's own hyper-parameters (tuned LightGCN).

The order alternates between seeds (searched first for the 1st, 3rd, ...
seed, LightGCN first for the others) so that load drift on a shared machine
does not favour one arm. Both arms select on validation only; the test
metrics of each search's pick are read once, from its summary.json, with
the comparison that chose it (rung, epochs, trials compared). The runner
starts no training after the budget; a training running when the
budget passes is finished, and its time is counted in the wall seconds
reported (the overrun column). Per run: the picked architecture, valid and
test Recall@20 / NDCG@20, wall seconds, trainings and architectures
trained, epochs trained (sum of every trial's epochs_run), trainings and
epochs per hour of wall time, load average at start and end.

Results go to benchmarks/results/search_budget.json after every run
(finished runs are skipped when the script is started again) and the page
docs/results/search.md is rendered from it: mean +- std per arm, paired
differences (same search seed) with a 95% t interval, and whether the target
(searched >= tuned LightGCN on every dataset, better on one by more than the
searched arm's std) holds on what was run.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Mapping, Optional, Sequence

import numpy as np

from benchmarks import common
from benchmarks import real_text_report

NAME = "search_budget"
PAGE = "search"
ARMS = ("searched", "lightgcn")
ARM_TITLE = {"searched": "searched (full design space)",
             "lightgcn": "tuned LightGCN (LightGCN sub-space)"}
# Datasets of the comparison; the page names those not run.
TARGET_DATASETS = ("lastfm", "amazon_beauty", "ml_latest_small")
METRICS = ("recall@20", "ndcg@20")


def config_spec(dataset: str, arm: str) -> str:
  """The `--config` of `jaxrec.search` for one arm."""
  suffix = ",lightgcn" if arm == "lightgcn" else ""
  return f"configs/search.py:{dataset}{suffix}"


# ----------------------------------------------------------------------------
# Pure logic (tests/search_budget_test.py).


def arm_order(seed_position: int) -> tuple[str, str]:
  """Arms in run order for the seed at `seed_position` (0-based): alternating."""
  return ARMS if seed_position % 2 == 0 else ARMS[::-1]


def per_hour(count: float, seconds: float) -> float:
  """`count` per hour of `seconds` wall time (nan for no time)."""
  return count * 3600.0 / seconds if seconds > 0 else float("nan")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof 1; nan for one value)."""
  x = np.asarray(values, dtype=float)
  std = float(x.std(ddof=1)) if len(x) > 1 else float("nan")
  return float(x.mean()), std


def pair_runs(runs: Sequence[Mapping], dataset: str) -> list[tuple[int, Mapping,
                                                                  Mapping]]:
  """(seed, searched run, lightgcn run) for each seed with both arms done."""
  by = {(r["seed"], r["arm"]): r for r in runs if r["dataset"] == dataset}
  seeds = sorted({s for s, _ in by})
  return [(s, by[(s, "searched")], by[(s, "lightgcn")]) for s in seeds
          if (s, "searched") in by and (s, "lightgcn") in by]


def dataset_stats(runs: Sequence[Mapping], dataset: str) -> dict:
  """Per arm mean +- std and the paired differences of the test metrics.

  Args:
    runs: run records (see `collect_run`), any datasets.
    dataset: the dataset to summarise.

  Returns:
    {'n': pairs, 'arms': {arm: {metric: (mean, std)}}, 'paired': {metric:
    {'diffs', 'mean', 'std', 'lo', 'hi', 'n'}} (`common.paired_interval`,
    95%), 'at_least': bool, 'better': bool} on
    test Recall@20 (the selection metric's test value): 'at_least' = mean
    paired difference >= 0, 'better' = searched mean - lightgcn mean > the
    searched arm's std. Only seeds with both arms enter.
  """
  pairs = pair_runs(runs, dataset)
  out = {"n": len(pairs), "seeds": [s for s, _, _ in pairs], "arms": {},
         "paired": {}}
  if not pairs:
    return out
  for i, arm in enumerate(ARMS):
    out["arms"][arm] = {
        m: mean_std([p[1 + i]["test"][m] for p in pairs])
        for m in METRICS}
    out["arms"][arm]["valid_recall@20"] = mean_std(
        [p[1 + i]["valid"]["recall@20"] for p in pairs])
  for m in METRICS:
    diffs = [a["test"][m] - b["test"][m] for _, a, b in pairs]
    _, std = mean_std(diffs)
    out["paired"][m] = dict(common.paired_interval(diffs), diffs=diffs,
                            std=std)
  a_mean, a_std = out["arms"]["searched"]["recall@20"]
  b_mean, _ = out["arms"]["lightgcn"]["recall@20"]
  out["at_least"] = out["paired"]["recall@20"]["mean"] >= 0
  out["better"] = bool(a_mean - b_mean > (a_std if a_std == a_std else 0.0))
  return out


def verdict(runs: Sequence[Mapping],
            datasets: Sequence[str] = TARGET_DATASETS) -> dict:
  """Whether the target holds on what was run.

  Returns:
    {'run': datasets with pairs, 'missing': the others, 'at_least_all':
    searched >= lightgcn on every dataset run, 'better_any': better beyond
    std on one, 'met': both and nothing missing}.
  """
  per = {d: dataset_stats(runs, d) for d in datasets}
  done = [d for d in datasets if per[d]["n"]]
  missing = [d for d in datasets if not per[d]["n"]]
  at_least = bool(done) and all(per[d]["at_least"] for d in done)
  better = any(per[d]["better"] for d in done)
  return {"run": done, "missing": missing, "at_least_all": at_least,
          "better_any": better, "met": at_least and better and not missing}


# ----------------------------------------------------------------------------
# One run: a `jaxrec.search` process and what it wrote.


def collect_run(workdir: str) -> dict:
  """Reads a finished search's workdir into a run record's measured fields.

  Args:
    workdir: the `--workdir` of a `jaxrec.search` run (summary.json,
      results.csv, trials/*/results.json).

  Returns:
    picked architecture and epochs, valid/test metrics of the pick, the
    runner's search seconds, trainings (rows of results.csv that trained,
    i.e. seconds > 0), architectures, epochs trained, the time the last
    training started (runner clock), the highest rung reached and how many
    trials were trained at it, and the rung, epochs and number of trials
    the pick was compared with (`Runner.selection`).
  """
  with open(os.path.join(workdir, "summary.json"), encoding="utf-8") as f:
    summary = json.load(f)
  with open(os.path.join(workdir, "results.csv"), encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  trained = [r for r in rows if float(r["seconds"]) > 0]
  epochs = 0
  for path in glob.glob(os.path.join(workdir, "trials", "*", "results.json")):
    with open(path, encoding="utf-8") as f:
      epochs += int(json.load(f)["epochs_run"])
  top = max((int(r["rung"]) for r in rows), default=0)
  last_start = max((float(r["elapsed"]) - float(r["seconds"])
                    for r in trained), default=0.0)
  return {
      "arch": summary["best_arch"], "best_epochs": summary["best_epochs"],
      "best_trial": summary["best_trial"],
      "valid": {m: summary["best_valid"][m] for m in METRICS},
      "test": {m: summary["best_test"][m] for m in METRICS},
      "search_s": round(float(summary["search_seconds"]), 1),
      "trainings": len(trained), "architectures": int(summary["trials"]),
      "epochs": epochs, "last_start_s": round(last_start, 1),
      "max_rung": top,
      # Trials at the top rung (an early-stopped trial carried up without
      # training counts too).
      "top_rung_trials": len({r["trial"] for r in rows
                              if int(r["rung"]) == top}),
      # The comparison that chose the pick: rung, epochs, trials compared.
      "selection": summary["selection"],
  }


def run_one(dataset: str, seed: int, arm: str, budget_seconds: float,
            budget_trials: Optional[int], workdir: str) -> dict:
  """Runs one arm's search in a child process and returns its record."""
  if os.path.exists(workdir):  # an interrupted run: start it again
    shutil.rmtree(workdir)
  os.makedirs(workdir)
  argv = ["--config", config_spec(dataset, arm), "--workdir", workdir,
          "--seed", str(seed), "--budget-seconds", f"{budget_seconds:g}"]
  if budget_trials:
    argv += ["--budget-trials", str(budget_trials)]
  load_start = os.getloadavg()[0]
  start = time.perf_counter()
  with open(os.path.join(workdir, "log.txt"), "w", encoding="utf-8") as log:
    rc = subprocess.call([sys.executable, "-m", "jaxrec.search", *argv],
                         stdout=log, stderr=subprocess.STDOUT)
  wall = time.perf_counter() - start
  if rc != 0:
    raise RuntimeError(f"{workdir}/log.txt: jaxrec.search exited with {rc}")
  record = {"dataset": dataset, "seed": seed, "arm": arm,
            "command": "python -m jaxrec.search " + " ".join(argv),
            "wall_s": round(wall, 1), "load_start": round(load_start, 2),
            "load_end": round(os.getloadavg()[0], 2)}
  record.update(collect_run(workdir))
  record["overrun_s"] = round(max(0.0, record["search_s"] - budget_seconds), 1)
  record["trainings_per_h"] = round(per_hour(record["trainings"],
                                             record["search_s"]), 1)
  record["epochs_per_h"] = round(per_hour(record["epochs"],
                                          record["search_s"]), 1)
  return record


def describe_search(dataset: str) -> dict:
  """Each arm's search settings and space, as configs/search.py gives them."""
  from jaxrec.search import __main__ as search_main
  from jaxrec.search import space as space_lib
  from jaxrec.search import strategies
  out = {}
  for arm in ARMS:
    config = search_main.load_config(config_spec(dataset, arm))
    s = config.search
    space = space_lib.Space.from_overrides(s.space or {})
    out[arm] = {
        "strategy": s.strategy, "budget_trials": s.budget_trials,
        "min_epochs": s.min_epochs, "max_epochs": s.max_epochs, "eta": s.eta,
        "rungs": strategies.rung_epochs(s.min_epochs, s.eta, s.max_epochs,
                                        config.eval_every),
        "warm_start": list(s.warm_start),
        "promote_warm_start": bool(s.get("promote_warm_start", False)),
        "min_compared": strategies.default_min_compared(s.eta),
        "base_arch": strategies.base_architecture(space, config),
        "space": {c.name: list(c.values) for c in space.choices},
        "space_size": space.size, "patience": config.patience,
        "selection_metric": config.selection_metric,
        "batch_size": config.batch_size, "seed": config.seed}
  return out


# ----------------------------------------------------------------------------
# Page.


def compared_text(run: Mapping, rungs: Sequence[int]) -> str:
  """How many trials a run's pick was compared with, at which rung.

  Args:
    run: a run record; its 'selection' (`Runner.selection`), else its
      'max_rung' / 'top_rung_trials' (a pick among the highest rung's
      trials).
    rungs: the search's epoch budget per rung.

  Returns:
    'k at rung r (E epochs)', or '-' when the record holds neither.
  """
  if "selection" in run:
    sel = run["selection"]
    rung, epochs, k = sel["rung"], sel["epochs"], sel["compared"]
  elif "top_rung_trials" in run:
    rung, k = run["max_rung"], run["top_rung_trials"]
    epochs = rungs[rung]
  else:
    return "-"
  return f"{k} at rung {rung} ({epochs} epochs)"


def selection_text(desc: Mapping, runs: Sequence[Mapping]) -> str:
  """The selection rule the runs of one dataset were picked by.

  Args:
    desc: an arm's `describe_search` entry.
    runs: that dataset's run records.

  Returns:
    The rule in words: at one fidelity (`Runner.selection`) when every run
    records its deciding comparison, else among the highest rung's trials,
    the rule of the code that recorded such runs.
  """
  metric = desc["selection_metric"]
  if runs and all("selection" in r for r in runs):
    k = desc["min_compared"]
    return (f"Selection on validation {metric} only, at one fidelity: the "
            "highest rung that every trial promoted to it finished, or a "
            f"rung the budget cut short that at least {k} trials finished; "
            "every trial that reached that rung competes with its score at "
            "that rung's epochs (a trial trained further too); test read "
            "once, for the pick.")
  return (f"Selection on validation {metric} only, among the trials of the "
          "highest rung reached, the rule of the `jaxrec.search` code that "
          "recorded these runs (the runs carry no `selection` record); "
          "`Runner.selection` (`jaxrec/search/runner.py`) decides at one "
          "fidelity instead: the highest complete rung, or a rung the budget "
          "cut short that at least ceil(eta) trials finished. Test read "
          "once, for the pick.")


def arch_text(arch: Mapping, epochs: Optional[int] = None) -> str:
  """A picked architecture in words."""
  text = (f"{arch['aggregation']} aggregation, {arch['message']} messages, "
          f"{arch['num_layers']} layers, {arch['combine']} combination, "
          f"{arch['interaction']}, d {arch['embed_dim']}, "
          f"lr {arch['learning_rate']:g}, L2 {arch['l2_reg']:g}")
  return text + (f"; {epochs} epochs" if epochs is not None else "")


def _space_text(space: Mapping[str, Sequence]) -> str:
  """'dim {v1, v2}; ...' of a space's value lists."""
  def value(v):
    return f"{v:g}" if isinstance(v, float) else str(v)
  return "; ".join(f"{k} {{{', '.join(value(v) for v in vals)}}}"
                   for k, vals in space.items())


def _pm(pair: Sequence[float]) -> str:
  mean, std = pair
  return f"{mean:.4f} ± {std:.4f}" if std == std else f"{mean:.4f}"


def _signed(x: float) -> str:
  return f"{x:+.4f}"


def render(results: Mapping) -> str:
  """The results page (docs/results/search.md) from the JSON."""
  runs = results["runs"]
  budget = results["budget_seconds"]
  loads = [r[k] for r in runs for k in ("load_start", "load_end")]
  lines = ["# Architecture search: searched design space vs tuned LightGCN at "
           "the same wall-time budget", ""]
  lines += [f"Command: `{results['command']}`", "",
            f"Hardware: {results['machine']}, load average "
            + (f"{min(loads):.1f}-{max(loads):.1f} at the runs' starts "
               "and ends"
               if loads else "-")
            + f" (other jobs ran at the same time); date {results['date']}. "
            "All seconds are wall-clock at that load.", ""]
  # The search as the code runs it.
  for dataset, desc in results["search"].items():
    a, b = desc["searched"], desc["lightgcn"]
    space = _space_text(a["space"])
    lspace = _space_text({k: v for k, v in b["space"].items() if len(v) > 1})
    lines += [
        f"## The search on {dataset}", "",
        "Design space (Wang, Zhao & Shi, WSDM 2022; `jaxrec/search/space.py`, "
        f"restricted by `configs/search.py:{dataset}`), {a['space_size']:,} "
        f"architectures, trained as the `designgnn` model: {space}.", "",
        f"Tuned LightGCN (`configs/search.py:{dataset},lightgcn`): the same "
        f"search over LightGCN's point only, {b['space_size']} settings: "
        f"{lspace}.", "",
        f"Strategy (both arms): {a['strategy']} (successive halving), eta "
        f"{a['eta']:g}, rungs of {' / '.join(map(str, a['rungs']))} epochs, "
        f"{a['budget_trials']} rung-0 architectures; the warm start "
        f"{a['warm_start']} (the config's own point, "
        f"{arch_text(a['base_arch'])}) is trained first"
        + (" and carried to every rung besides the top 1/eta"
           if a["promote_warm_start"] else "")
        + f"; early stopping patience {a['patience']} evaluations; data/"
        f"training seed {a['seed']} (the same split for every trial), the "
        "search seed drives the architecture sampling. "
        + selection_text(a, [r for r in runs if r["dataset"] == dataset]),
        "",
        f"Budget: {budget:g} s of wall time per search (`--budget-seconds`"
        + (f", `--budget-trials {results['budget_trials']}`"
           if results.get("budget_trials") else "")
        + "). The runner checks the budget before each training: none starts "
        "after it; a training running when it passes is finished, its "
        "result competes in the selection and its time counts in the "
        "search's wall seconds (overrun column). Why low-fidelity pruning misranks "
        "architectures, and which design dimensions matter (Kendall tau "
        "table, design-space profile): [search_fidelity.md]"
        "(search_fidelity.md).", ""]
  # Per-run table.
  lines += ["## Runs", ""]
  rows = []
  for r in runs:
    rungs = results["search"][r["dataset"]][r["arm"]]["rungs"]
    rows.append([
        r["dataset"], r["seed"], r["arm"],
        arch_text(r["arch"], r["best_epochs"]), compared_text(r, rungs),
        f"{r['valid']['recall@20']:.4f}", f"{r['test']['recall@20']:.4f}",
        f"{r['test']['ndcg@20']:.4f}", f"{r['search_s']:.0f}",
        f"{r['overrun_s']:.0f}", r["trainings"], r["architectures"],
        r["epochs"], f"{r['trainings_per_h']:.0f}",
        f"{r['epochs_per_h']:.0f}", f"{r['load_start']:.1f} / "
        f"{r['load_end']:.1f}"])
  lines += common.markdown_table(
      ["dataset", "seed", "arm", "picked (on validation)", "compared with",
       "valid R@20", "test R@20", "test N@20", "wall s", "overrun s",
       "trainings", "archs", "epochs", "trainings/h", "epochs/h",
       "load start / end"],
      rows, ["---"] * 5 + ["---:"] * 11)
  lines += ["", "Runs in the order they ran (the arm order alternates "
            "between seeds). wall s: the search's own clock (data loading "
            "excluded), overrun s: wall s past the budget. trainings: "
            "trainings started (a promoted trial's extension counts once "
            "more); archs: distinct architectures; epochs: epochs trained "
            "over all trials. compared with: the trials whose validation "
            "scores the pick was compared with (itself included), at the "
            "rung and epoch budget that decided.", ""]
  # Summary and pairing.
  lines += ["## Mean ± std over search seeds, paired differences", ""]
  srows, prows = [], []
  for dataset in results["search"]:
    st = dataset_stats(runs, dataset)
    if not st["n"]:
      continue
    for arm in ARMS:
      arm_runs = [r for r in runs if r["dataset"] == dataset
                  and r["arm"] == arm and r["seed"] in st["seeds"]]
      srows.append([dataset, ARM_TITLE[arm], st["n"],
                    _pm(st["arms"][arm]["valid_recall@20"]),
                    "**" + _pm(st["arms"][arm]["recall@20"]) + "**",
                    _pm(st["arms"][arm]["ndcg@20"]),
                    f"{np.mean([r['search_s'] for r in arm_runs]):.0f}",
                    f"{np.mean([r['trainings_per_h'] for r in arm_runs]):.0f}",
                    f"{np.mean([r['epochs_per_h'] for r in arm_runs]):.0f}"])
    for m in METRICS:
      p = st["paired"][m]
      prows.append([dataset, m, ", ".join(_signed(d) for d in p["diffs"]),
                    _signed(p["mean"]) + (f" ± {p['std']:.4f}"
                                          if p["std"] == p["std"] else ""),
                    real_text_report.interval(p, mean=False, zero=False)])
  lines += common.markdown_table(
      ["dataset", "arm", "seeds", "valid R@20", "test R@20", "test N@20",
       "mean wall s", "trainings/h", "epochs/h"], srows,
      ["---", "---"] + ["---:"] * 7)
  same = [f"{d} seed {sd}" for d in results["search"]
          for sd, a, b in pair_runs(runs, d)
          if a["arch"] == b["arch"] and a["best_epochs"] == b["best_epochs"]]
  if same:
    lines += ["", "Both arms picked the same architecture at the same epochs "
              f"({', '.join(same)}; compare the trainings column): the "
              "paired difference there is 0 by construction."]
  lines += ["", "Paired differences, searched minus tuned LightGCN, same "
            "search seed (test; 95% t interval of the mean):", ""]
  lines += common.markdown_table(
      ["dataset", "metric", "per seed", "mean ± std", "95% t interval"],
      prows, ["---", "---", "---", "---:", "---:"])
  v = verdict(runs)
  lines += ["", "## Target", "",
            "Target: the searched architecture at least as good as tuned "
            "LightGCN (mean paired test Recall@20 difference >= 0) on "
            "lastfm, amazon_beauty and ml_latest_small, and better on at "
            "least one by more than the searched arm's std.", ""]
  parts = []
  for d in v["run"]:
    st = dataset_stats(runs, d)
    parts.append(
        f"on {d} the searched arm is "
        + ("at least as good as" if st["at_least"] else "below")
        + " tuned LightGCN (mean difference "
        f"{_signed(st['paired']['recall@20']['mean'])} test Recall@20)"
        + (", better by more than its std" if st["better"] else
           ", not better by more than its std"))
  if v["met"]:
    status = "Met: " + "; ".join(parts) + "."
  elif not v["missing"]:
    status = "Not met: " + "; ".join(parts) + "."
  else:
    status = ("Not established: " + (", ".join(v["missing"])) + " not run"
              + (". On what was run, " + "; ".join(parts) + "." if parts
                 else "."))
  lines += [status, ""]
  if v["missing"]:
    seeds = ",".join(str(s) for s in results["seeds"])
    lines += ["Commands for the datasets not run (same budget; the JSON "
              "keeps the finished runs):", "", "```"]
    lines += [f"JAXREC_DATA_ROOT=/work/shared/data nice -n 5 python -m "
              f"benchmarks.search_budget --datasets {d} --seeds {seeds} "
              f"--budget-seconds {budget:g}" for d in v["missing"]]
    lines += ["```", ""]
  lines += [f"Raw results: `{results['json_path']}`; each search's own "
            f"report: `{results['workdir']}/<dataset>/seed<s>_<arm>/"
            "results.md`.", ""]
  return "\n".join(lines)


# ----------------------------------------------------------------------------
# Driver.


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME}",
                              description=__doc__.split("\n")[0])
  p.add_argument("--datasets", default="lastfm",
                 help="comma-separated datasets of configs/search.py")
  p.add_argument("--seeds", default="0,1,2", help="search seeds")
  p.add_argument("--budget-seconds", type=float, default=480.0,
                 help="wall-time budget of EACH search (both arms)")
  p.add_argument("--budget-trials", type=int, default=0,
                 help="rung-0 architectures per search (0: the config's)")
  p.add_argument("--workdir", default=os.path.join("workdirs", NAME))
  common.add_result_args(p, NAME, PAGE)
  return p.parse_args(argv)


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.render:
    return common.render_page(args.json, args.out, render)
  datasets = [d for d in args.datasets.split(",") if d]
  seeds = [int(s) for s in args.seeds.split(",") if s]
  results = {"runs": [], "search": {}}
  if os.path.exists(args.json):
    with open(args.json, encoding="utf-8") as f:
      results = json.load(f)
    if results["budget_seconds"] != args.budget_seconds:
      raise ValueError(f"{args.json}: budget_seconds "
                       f"{results['budget_seconds']:g}, this run "
                       f"{args.budget_seconds:g}; use another --json")
  results.update({
      "command": common.command(NAME, argv), "machine": common.machine(),
      "date": common.today(), "budget_seconds": args.budget_seconds,
      "budget_trials": args.budget_trials or None,
      "seeds": sorted(set(results.get("seeds", [])) | set(seeds)),
      "json_path": args.json, "workdir": args.workdir})
  done = {(r["dataset"], r["seed"], r["arm"]) for r in results["runs"]}
  for dataset in datasets:
    results["search"][dataset] = describe_search(dataset)
    for pos, seed in enumerate(seeds):
      for arm in arm_order(pos):
        if (dataset, seed, arm) in done:
          print(f"[{NAME}] {dataset} seed {seed} {arm}: done, skipped",
                flush=True)
          continue
        print(f"[{NAME}] {time.strftime('%H:%M:%S')} {dataset} seed {seed} "
              f"{arm}: start (budget {args.budget_seconds:g} s, load "
              f"{os.getloadavg()[0]:.1f})", flush=True)
        record = run_one(dataset, seed, arm, args.budget_seconds,
                         args.budget_trials,
                         os.path.join(args.workdir, dataset,
                                      f"seed{seed}_{arm}"))
        results["runs"].append(record)
        common.write_json(args.json, results)
        common.write_page(args.out, render(results))
        print(f"[{NAME}] {time.strftime('%H:%M:%S')} {dataset} seed {seed} "
              f"{arm}: test R@20 {record['test']['recall@20']:.4f}, "
              f"{record['search_s']:.0f} s, {record['trainings']} trainings, "
              f"{record['epochs']} epochs; {arch_text(record['arch'])}",
              flush=True)
  common.write_json(args.json, results)
  common.write_page(args.out, render(results))
  return results


if __name__ == "__main__":
  main()

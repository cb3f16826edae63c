"""Trainings per hour of the architecture search, with and without its compile cache.

  JAXREC_DATA_ROOT=... python -m benchmarks.search_throughput \
      [--dataset lastfm] [--trials 9] [--seed 0] [--repeats 2]
  python -m benchmarks.search_throughput --render

Runs the same successive-halving search (`configs/search.py:<dataset>`, a
fixed number of rung-0 architectures, no time budget, one search seed) with
`--compile-cache off` (every training compiles its train step and
evaluation) and `--compile-cache on` (executables kept in the search's
workdir: a promoted trial and a repeated design load them), each in a fresh
`python -m jaxrec.search` process and a fresh workdir, so neither arm
inherits the other's compilations. The arm order alternates between repeats.
Both arms train the same trials for the same epochs: the page checks that
their validation scores agree row for row, and compares wall seconds of the
search (the runner's clock: data loading excluded) as trainings per hour.
Results: benchmarks/results/search_throughput.json,
docs/results/search_throughput.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys

import numpy as np

from benchmarks import common

NAME = "search_throughput"
ARMS = ("off", "on")


def run_search(dataset: str, trials: int, seed: int, arm: str,
               workdir: str) -> dict:
  """One search in a fresh process; its record (resumes a finished one).

  Args:
    dataset: the `configs/search.py` argument.
    trials: rung-0 architectures (`--budget-trials`).
    seed: search seed.
    arm: 'off' or 'on' (`--compile-cache`).
    workdir: the search's directory (cleared unless it holds a summary).

  Returns:
    {'arm', 'search_seconds', 'cpu_seconds', 'trainings', 'trials', 'rows',
    'load'}; rows are (trial, rung, epochs, validation score) per training;
    cpu_seconds: the search process's user + system CPU time (None for a
    run found finished).
  """
  summary_path = os.path.join(workdir, "summary.json")
  load_start = os.getloadavg()[0]
  cpu_seconds = None
  if not os.path.exists(summary_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(workdir, ignore_errors=True)
    cmd = [sys.executable, "-m", "jaxrec.search",
           "--config", f"configs/search.py:{dataset}", "--workdir", workdir,
           "--budget-trials", str(trials), "--seed", str(seed),
           "--compile-cache", arm]
    subprocess.run(cmd, check=True, cwd=common.REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime - before.ru_utime
                   + after.ru_stime - before.ru_stime)
  with open(summary_path, encoding="utf-8") as f:
    summary = json.load(f)
  with open(os.path.join(workdir, "results.csv"), encoding="utf-8") as f:
    rows = [(int(r["trial"]), int(r["rung"]), int(r["epochs"]),
             float(next(v for k, v in r.items() if k.startswith("valid_"))))
            for r in csv.DictReader(f)]
  return {"arm": arm, "search_seconds": summary["search_seconds"],
          "cpu_seconds": cpu_seconds,
          "trainings": summary["trainings"], "trials": summary["trials"],
          "rows": rows,
          "load": [round(load_start, 1), round(os.getloadavg()[0], 1)]}


def summarise(runs: list[dict]) -> dict:
  """Per arm: trainings/h over runs; the on/off ratio per repeat."""
  per_arm = {a: [r for r in runs if r["arm"] == a] for a in ARMS}
  rate = lambda r: 3600.0 * r["trainings"] / r["search_seconds"]
  out = {a: {"trainings_per_hour": [rate(r) for r in rs],
             "seconds": [r["search_seconds"] for r in rs]}
         for a, rs in per_arm.items()}
  pairs = list(zip(per_arm["off"], per_arm["on"]))
  out["ratio"] = [off["search_seconds"] / on["search_seconds"]
                  for off, on in pairs]
  out["cpu_ratio"] = [off["cpu_seconds"] / on["cpu_seconds"]
                      for off, on in pairs
                      if off.get("cpu_seconds") and on.get("cpu_seconds")]
  out["identical"] = all(off["rows"] == on["rows"] for off, on in pairs)
  return out


def render(results: dict) -> str:
  """The results page."""
  s = summarise(results["runs"])
  lines = [
      "# Architecture search throughput: the compile cache",
      "",
      f"Written by `benchmarks/{NAME}.py` from "
      f"`benchmarks/results/{NAME}.json`.",
      "",
      "```", results["command"], "```", "",
      results["hardware"], "",
      f"The same successive-halving search (`configs/search.py:"
      f"{results['dataset']}`, {results['trials']} rung-0 architectures, "
      f"search seed {results['seed']}, no time budget) run with "
      "`--compile-cache off` and `--compile-cache on`, each in a fresh "
      "process and workdir; the arm order alternates between repeats. "
      "Seconds: the search's own clock (data loading excluded), wall-clock "
      "on the shared machine; CPU s: the search process's user + system CPU "
      "time (data loading and start-up included; less sensitive than wall "
      "time to other jobs).", ""]
  cpu = lambda r: (f"{r['cpu_seconds']:.0f}" if r.get("cpu_seconds")
                   else "-")
  rows = [[i // 2, r["arm"], r["trainings"], r["trials"],
           f"{r['search_seconds']:.0f}", cpu(r),
           f"{3600 * r['trainings'] / r['search_seconds']:.0f}",
           f"{r['load'][0]} / {r['load'][1]}"]
          for i, r in enumerate(results["runs"])]
  lines += common.markdown_table(
      ["repeat", "compile cache", "trainings", "architectures", "seconds",
       "CPU s", "trainings / h", "load start / end"], rows,
      align=["---:", "---", "---:", "---:", "---:", "---:", "---:", "---:"])
  ratio = np.asarray(s["ratio"])
  lines += [
      "",
      f"Seconds without / with the cache, per repeat: "
      + ", ".join(f"{x:.2f}x" for x in ratio)
      + f" (mean {ratio.mean():.2f}x). Trainings per hour: off "
      f"{np.mean(s['off']['trainings_per_hour']):.0f}, on "
      f"{np.mean(s['on']['trainings_per_hour']):.0f}."
      + (" CPU seconds without / with the cache, per repeat: "
         + ", ".join(f"{x:.2f}x" for x in s["cpu_ratio"])
         + f" (mean {np.mean(s['cpu_ratio']):.2f}x)."
         if s["cpu_ratio"] else ""),
      "",
      "Validation scores of every training: "
      + ("identical in both arms (the cache changes no result)."
         if s["identical"] else
         "NOT identical between the arms (see the JSON)."),
      ""]
  return "\n".join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME}")
  parser.add_argument("--dataset", default="lastfm")
  parser.add_argument("--trials", type=int, default=9,
                      help="rung-0 architectures per search")
  parser.add_argument("--seed", type=int, default=0, help="search seed")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--workdir", default=os.path.join("workdirs", NAME))
  common.add_result_args(parser, NAME)
  args = parser.parse_args(argv)
  if args.render:
    common.render_page(args.json, args.out, render)
    return
  runs = []
  for rep in range(args.repeats):
    order = ARMS if rep % 2 == 0 else ARMS[::-1]
    for arm in order:
      wd = os.path.abspath(os.path.join(
          args.workdir, args.dataset, f"seed{args.seed}_rep{rep}_{arm}"))
      runs.append(run_search(args.dataset, args.trials, args.seed, arm, wd))
      print(f"repeat {rep} cache {arm}: {runs[-1]['trainings']} trainings "
            f"in {runs[-1]['search_seconds']:.0f} s", flush=True)
  results = {"command": common.command(NAME, argv),
             "hardware": common.hardware_line(), "dataset": args.dataset,
             "trials": args.trials, "seed": args.seed, "runs": runs}
  common.write_json(args.json, results)
  common.write_page(args.out, render(results))
  print(render(results))


if __name__ == "__main__":
  main()

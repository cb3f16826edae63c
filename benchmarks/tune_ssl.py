"""Tunes lambda / tau (/ rho) of a contrastive recommender on validation.

The SGL / SimGCL / XSimGCL papers tune the InfoNCE weight lambda and the
temperature tau per dataset; their published values cover Yelp2018 and
Amazon-Book only. This script runs one `reproduce_lightgcn.py` validation
run (early stopping on the validation split carved from train) per grid
point (--ssl_weights x --temperatures x SGL's --drop_rates, in the order
given; an empty --drop_rates keeps the config's rho), picks the point
with the best validation Recall@20, and refits it on train + valid for its
validation-selected number of epochs (`reproduce_lightgcn.py --refit`);
the test split is read once, for that refit. Test metrics of the other grid
points are never shown.

--deadline_seconds bounds the whole search: a grid point is started only if
the time left covers the slowest run so far plus the refit of the best point
so far (its selected epochs x seconds per epoch, x 1.25 for the 11% larger
train+valid set and compilation), so the refit always runs.

Writes --out (a table of every grid point; default WORKDIR/tune_<model>.md)
after every run. Other reproduce_lightgcn.py flags (--batch_size,
--learning_rate, --contrast_rows, --sampling, ...) pass through unchanged.

Usage:
  python -m benchmarks.tune_ssl --model sgl --dataset gowalla
      --ssl_weights 0.5,1.0,0.2,0.1 --temperatures 0.2 --epochs 80
      --eval_every 2 --patience 4 --data_root ../shared/data
"""

from __future__ import annotations

import argparse
import logging
import os
import time

from benchmarks import common
from benchmarks import reproduce_lightgcn as reproduce


def _floats(text: str, flag: str) -> list[float]:
  try:
    values = [float(v) for v in text.split(",") if v.strip()]
  except ValueError as e:
    raise SystemExit(f"{flag}: expected comma-separated numbers, got "
                     f"{text!r}") from e
  if not values or min(values) <= 0:
    raise SystemExit(f"{flag}: expected positive numbers, got {text!r}")
  return values


def refit_estimate(row: dict) -> float:
  """Seconds a refit of `row`'s selected epochs is expected to take."""
  return 1.25 * row["best_epoch"] * row["seconds_per_epoch"] + 60.0


def _rho(value: float | None) -> str:
  return "config" if value is None else f"{value:g}"


def markdown(model: str, dataset: str, rows: list[dict], skipped: list,
             refit: dict | None, command: str) -> str:
  """The grid (validation only) and the selected point's refit."""
  lines = [f"# {model} on {dataset}: lambda / tau / rho on validation", "",
           f"Command: `{command}`", "", common.hardware_line(), ""]
  lines += common.markdown_table(
      ["lambda", "tau", "rho", "best epoch", "epochs run", "valid R@20",
       "valid N@20", "s/epoch", "wall s"],
      [[f"{r['ssl_weight']:g}", f"{r['temperature']:g}", _rho(r["drop_rate"]),
        r["best_epoch"], r["epochs_run"], f"{r['valid_recall@20']:.4f}",
        f"{r['valid_ndcg@20']:.4f}", f"{r['seconds_per_epoch']:.2f}",
        f"{r['wall_seconds_this_call']:.0f}"] for r in rows]
      + [[f"{lam:g}", f"{tau:g}", _rho(rho), "not run (deadline)"]
         + ["-"] * 5 for lam, tau, rho in skipped])
  if refit:
    lines += ["", f"Selected lambda {refit['ssl_weight']:g}, tau "
              f"{refit['temperature']:g}, rho {_rho(refit['drop_rate'])} "
              "(best validation Recall@20); refit "
              f"on train + valid for {refit['epochs_run']} epochs "
              f"({refit['seconds_per_epoch']:.2f} s/epoch): test Recall@20 "
              f"**{refit['test_recall@20']:.4f}**, NDCG@20 "
              f"**{refit['test_ndcg@20']:.4f}**."]
  return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="sgl",
                      choices=reproduce.CONTRASTIVE)
  parser.add_argument("--dataset", default="gowalla",
                      choices=reproduce.DATASETS)
  parser.add_argument("--ssl_weights", default="0.1")
  parser.add_argument("--temperatures", default="0.2")
  parser.add_argument("--drop_rates", default="",
                      help="SGL only: rho values; '' = the config's")
  parser.add_argument("--deadline_seconds", type=float, default=0.0,
                      help="0 = no limit")
  parser.add_argument("--out", default="")
  args, rest = parser.parse_known_args(argv)
  logging.getLogger().setLevel(logging.INFO)
  weights = _floats(args.ssl_weights, "--ssl_weights")
  temperatures = _floats(args.temperatures, "--temperatures")
  drop_rates = ([None] if not args.drop_rates.strip() else
                _floats(args.drop_rates, "--drop_rates"))
  if drop_rates != [None] and args.model != "sgl":
    raise SystemExit("--drop_rates: only SGL has a dropout ratio rho")
  base = ["--models", args.model, "--datasets", args.dataset] + rest
  start = time.perf_counter()
  rows, skipped, refit = [], [], None
  workdir = None

  def write():
    out = args.out or os.path.join(workdir, f"tune_{args.model}.md")
    common.write_page(out, markdown(args.model, args.dataset, rows, skipped,
                                    refit, common.command("tune_ssl", argv)))

  grid = [(lam, tau, rho) for rho in drop_rates for tau in temperatures
          for lam in weights]
  for lam, tau, rho in grid:
    point = base + ["--ssl_weight", str(lam), "--temperature", str(tau)]
    if rho is not None:
      point += ["--drop_rate", str(rho)]
    if args.deadline_seconds and rows:
      best = max(rows, key=lambda r: r["valid_recall@20"])
      slowest = max(r["wall_seconds_this_call"] for r in rows)
      left = args.deadline_seconds - (time.perf_counter() - start)
      if left < slowest + refit_estimate(best):
        skipped.append((lam, tau, rho))
        continue
    run_args = reproduce.parse_args(point)
    workdir = run_args.workdir
    os.makedirs(workdir, exist_ok=True)
    row = reproduce.run_one(args.model, args.dataset, run_args)
    row.update(ssl_weight=lam, temperature=tau, drop_rate=rho, argv=point)
    rows.append(row)
    print(f"lambda {lam:g} tau {tau:g} rho {_rho(rho)}: best epoch "
          f"{row['best_epoch']}, valid R@20 {row['valid_recall@20']:.4f}",
          flush=True)
    write()
  best = max(rows, key=lambda r: r["valid_recall@20"])
  refit = reproduce.run_one(args.model, args.dataset,
                            reproduce.parse_args(best["argv"] + ["--refit"]))
  refit.update(ssl_weight=best["ssl_weight"], temperature=best["temperature"],
                drop_rate=best["drop_rate"])
  write()
  print(f"refit lambda {refit['ssl_weight']:g} tau {refit['temperature']:g} "
        f"rho {_rho(refit['drop_rate'])}: "
        f"test R@20 {refit['test_recall@20']:.4f} N@20 "
        f"{refit['test_ndcg@20']:.4f}", flush=True)
  return {"grid": rows, "skipped": skipped, "refit": refit}


if __name__ == "__main__":
  main()

"""Rating prediction on ml-latest-small: RMSE / MAE of jaxrec's rating models.

  JAXREC_DATA_ROOT=/work/shared/data python -m benchmarks.rating \
      --seeds 0,1,2,3,4 --workdir workdirs/rating

Protocol (declared here, before any run):
* Data: `ml_latest_small` with every rating kept (0.5 - 5 stars in steps of
  0.5; `min_rating=0`), split per user at random 80/10/10
  (`splits.random_split`), drawn with the run's seed: seed s = split s and
  initialisation s.
* Models: global mean, user/item bias (regularised ALS), biased MF, GC-MC
  (rating-typed message passing) and a rating head on LightGCN with
  rating-weighted edges (configs/<model>.py), plus scikit-surprise SVD and
  SVD++ with their default settings, fitted on the same train split as the
  peer reference (`--surprise`).
* Tuning: every jaxrec model with settings gets the same budget, the four
  grid points of `GRID`, trained on the seed-0 split and compared on
  VALIDATION RMSE only (`config.eval_test = False` in the search). Surprise's
  defaults are used as published (no tuning).
* Training: Adam, evaluation every epoch, early stopping on validation RMSE
  (stop after `--patience` evaluations without improvement, `--max_epochs`
  cap); the test split is read once per (model, seed), at the selected epoch.
* Report: mean +- std over the seeds of test RMSE / MAE, and the paired
  difference (same split) of each graph model vs biased MF with a 95% t
  interval. Predictions of every model are clipped to [0.5, 5].

Every run lives in `<workdir>/<model>/<run>` and resumes from its
checkpoints; finished runs are read back from results.json. `--json`
(benchmarks/results/rating.json) is written after every model, and the page
(`--out`, docs/results/rating.md) is rendered from it; `--render` only
re-renders the page from the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from benchmarks import common
from benchmarks import real_text_report
from jaxrec import config_utils
from jaxrec import input_pipeline
from jaxrec import metrics as metrics_lib
from jaxrec import train

DATASET = "ml_latest_small"
# Four grid points per model (model kwargs and optimizer learning rate).
GRID = {
    "user_item_bias": [dict(reg_user=15.0, reg_item=10.0),
                       dict(reg_user=5.0, reg_item=5.0),
                       dict(reg_user=25.0, reg_item=25.0),
                       dict(reg_user=10.0, reg_item=25.0)],
    "biased_mf": [dict(l2_reg=l2, lr=lr) for l2 in (0.3, 1.0)
                  for lr in (3e-3, 1e-2)],
    # Smaller than configs/gcmc.py (embed 32, hidden 64, out 32, batch 8192):
    # the per-level products cost L x N x d x h per step.
    "gcmc": [dict(embed_dim=32, hidden_dim=64, out_dim=32, loss_type=loss,
                  dropout=0.5, lr=lr, batch_size=8192)
             for loss in ("mse", "nll") for lr in (3e-3, 1e-2)],
    "rating_head": [dict(l2_reg=l2, lr=lr) for l2 in (0.3, 1.0)
                    for lr in (3e-3, 1e-2)],
}
MODELS = ("global_mean", "user_item_bias", "biased_mf", "gcmc",
          "rating_head")
LABELS = {"global_mean": "Global mean", "user_item_bias": "User/item bias",
          "biased_mf": "Biased MF", "gcmc": "GC-MC",
          "rating_head": "Rating head on LightGCN (rating-weighted edges)",
          "surprise_svd": "scikit-surprise SVD",
          "surprise_svdpp": "scikit-surprise SVD++"}
GRAPH_MODELS = ("gcmc", "rating_head")


def make_config(model: str, seed: int, point: dict, args) -> tuple:
  """(config, description) of one grid point on one seed."""
  config = config_utils.load_config_file(model, DATASET)
  config.seed = seed
  config.progress = False
  config.num_epochs = args.max_epochs
  config.patience = args.patience
  point = dict(point)
  if "lr" in point:
    config.optimizer.learning_rate = point.pop("lr")
  if "batch_size" in point:
    config.batch_size = point.pop("batch_size")
  kwargs = config.model.to_dict()
  kwargs.update(point)
  config.model = kwargs
  return config


def run_name(point: dict) -> str:
  return "_".join(f"{k}{v}" for k, v in sorted(point.items())) or "default"


def train_run(model: str, seed: int, point: dict, args, dataset,
              eval_test: bool) -> dict:
  """Trains (or reads back) one run; returns its results dict."""
  config = make_config(model, seed, point, args)
  config.eval_test = eval_test
  # The search run of the selected point on seed 0 is also its test run:
  # re-run with eval_test=True, the finished run only reads the test split.
  workdir = os.path.join(args.workdir, model, f"seed{seed}_{run_name(point)}")
  path = os.path.join(workdir, "results.json")
  if os.path.isfile(path):
    with open(path) as f:
      done = json.load(f)
    if done["test"] or not eval_test:
      return done
  start = time.perf_counter()
  result = train.train_and_evaluate(config, workdir, dataset=dataset,
                                    allow_config_change=True)
  result["wall_seconds"] = time.perf_counter() - start
  print(f"{model} seed {seed} {run_name(point)}: valid {result['valid']} "
        f"test {result['test']} best epoch {result['best_epoch']} "
        f"({result['wall_seconds']:.0f} s)", flush=True)
  return result


def load(seed: int):
  config = config_utils.load_config_file("biased_mf", DATASET)
  config.seed = seed
  return input_pipeline.load_data(config)


def surprise_runs(seeds, datasets) -> dict:
  """scikit-surprise SVD and SVD++ (defaults) on the same splits."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  import surprise  # pylint: disable=g-import-not-at-top
  out = {"surprise_svd": [], "surprise_svdpp": []}
  for seed in seeds:
    data = datasets[seed]
    frame = pd.DataFrame({"u": data.train.users, "i": data.train.items,
                          "r": data.train.ratings})
    trainset = surprise.Dataset.load_from_df(
        frame, surprise.Reader(rating_scale=(0.5, 5.0))).build_full_trainset()
    for name, algo in (("surprise_svd", surprise.SVD(random_state=seed)),
                       ("surprise_svdpp", surprise.SVDpp(random_state=seed))):
      start = time.perf_counter()
      algo.fit(trainset)
      fit = time.perf_counter() - start
      row = {"seed": seed, "fit_seconds": fit}
      for split in ("valid", "test"):
        rows = getattr(data, split)
        pred = np.array([algo.predict(int(u), int(i)).est
                         for u, i in zip(rows.users, rows.items)])
        row[split] = metrics_lib.rating_metrics(pred, rows.ratings)
      out[name].append(row)
      print(f"{name} seed {seed}: {row}", flush=True)
  return out


def summary(runs: list, key: str = "test") -> dict:
  out = {}
  for metric in ("rmse", "mae"):
    values = np.array([r[key][metric] for r in runs])
    out[metric] = {"mean": float(values.mean()),
                   "std": float(values.std(ddof=1)) if len(values) > 1
                   else 0.0}
  return out


def _ordered(models: dict) -> list:
  """(name, entry) in the order of `LABELS` (the JSON keeps keys sorted)."""
  return sorted(models.items(), key=lambda kv: list(LABELS).index(kv[0])
                if kv[0] in LABELS else len(LABELS))


def _setting(name: str, point: str, results: dict) -> str:
  """A grid point's name without the settings every point of its grid shares."""
  grid = results.get("grid", {}).get(name) or []
  fixed = {k for k in (grid[0] if grid else {})
           if len({str(p.get(k)) for p in grid}) == 1 and len(grid) > 1}
  parts = [f"{k}{v}" for k, v in sorted((grid[0] if grid else {}).items())
           if k in fixed]
  for part in parts:
    point = point.replace(part + "_", "").replace("_" + part, "")
  return point


def render(results: dict) -> str:
  """The Markdown page of the results JSON."""
  lines = ["# Rating prediction on ml-latest-small (RMSE / MAE)", "",
           f"Command: `{common.as_module_command(results['command'])}` "
           "(with JAXREC_DATA_ROOT "
           "naming the folder that holds movielens/ml-latest-small)  ",
           f"Hardware: {results['hardware']}; date {results['date']}", "",
           "Data: MovieLens ml-latest-small, every rating kept (0.5 - 5 "
           "stars), split per user at random 80/10/10 with the run's seed "
           f"(seeds {results['seeds']}: split s and initialisation s). "
           "Each jaxrec model got the same tuning budget, the four grid "
           "points below, trained on the seed-0 split and compared on "
           "validation RMSE; the selected point then ran on every seed, "
           "with early stopping on validation RMSE (every epoch, patience "
           f"{results['patience']}, cap {results['max_epochs']} epochs) and "
           "the test split read once at the selected epoch. scikit-surprise "
           "SVD and SVD++ ran with their default settings on the same train "
           "splits. Predictions are clipped to [0.5, 5].", "",
           "| model | test RMSE | test MAE | seeds | selected setting | "
           "median best epoch | s/epoch |", "|---|---|---|---|---|---|---|"]
  for name, entry in _ordered(results["models"]):
    s = entry["summary"]
    runs = entry["runs"]
    epochs = [r["best_epoch"] for r in runs if "best_epoch" in r]
    per_epoch = [r["seconds_per_epoch"] for r in runs
                 if "seconds_per_epoch" in r]
    lines.append(
        f"| {LABELS.get(name, name)} | {s['rmse']['mean']:.4f} ± "
        f"{s['rmse']['std']:.4f} | {s['mae']['mean']:.4f} ± "
        f"{s['mae']['std']:.4f} | {len(runs)} | "
        f"{_setting(name, entry.get('selected', 'defaults'), results)} | "
        + (f"{int(np.median(epochs))}" if epochs else "-") + " | "
        + (f"{np.median(per_epoch):.2f}" if per_epoch else
           f"fit {np.median([r['fit_seconds'] for r in runs]):.1f} s")
        + " |")
  lines += ["", "Mean ± standard deviation over the seeds.", "",
            "Test RMSE per seed (best epoch in parentheses):", "",
            "| model | " + " | ".join(f"seed {s}" for s in results["seeds"])
            + " |", "|---|" + "---|" * len(results["seeds"])]
  for name, entry in _ordered(results["models"]):
    by_seed = {r["seed"]: r for r in entry["runs"]}
    cells = [f"{by_seed[s]['test']['rmse']:.4f}"
             + (f" ({by_seed[s]['best_epoch']})" if "best_epoch" in by_seed[s]
                and by_seed[s].get("epochs_run", 1) > 1 else "")
             if s in by_seed else "-" for s in results["seeds"]]
    lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
  lines.append("")
  if results.get("paired"):
    lines += ["## Graph models vs biased MF (paired by seed)", "",
              "Difference of test RMSE / MAE (graph model minus biased MF; "
              "negative = the graph model is better), mean over the seeds "
              "with a 95% t interval.", "",
              "| comparison | ΔRMSE [95% CI] | ΔMAE [95% CI] | seeds |",
              "|---|---|---|---|"]
    for name, diff in results["paired"].items():
      cells = [real_text_report.interval(diff[m], zero=False)
               for m in ("rmse", "mae")]
      lines.append(f"| {LABELS.get(name, name)} - Biased MF | {cells[0]} | "
                   f"{cells[1]} | {diff['rmse']['n']} |")
    lines.append("")
    verdicts = []
    for name, diff in results["paired"].items():
      d = diff["rmse"]
      if d["hi"] < 0:
        verdicts.append(f"{LABELS[name]} has a lower test RMSE than biased MF "
                        "(the interval excludes 0).")
      elif d["lo"] > 0:
        verdicts.append(f"{LABELS[name]} does not beat biased MF: its test "
                        "RMSE is higher (the interval excludes 0).")
      else:
        verdicts.append(f"{LABELS[name]} does not beat biased MF: its mean "
                        f"test RMSE differs by {d['mean']:+.4f}, and the "
                        "interval of the difference includes 0.")
    lines += verdicts + [""]
  lines += ["## Tuning (seed-0 validation RMSE)", ""]
  for name, grid in _ordered(results.get("search", {})):
    fixed = [f"{k}={v}" for k, v in sorted(results["grid"][name][0].items())
             if len({str(p.get(k)) for p in results["grid"][name]}) == 1]
    lines.append(f"- {LABELS.get(name, name)}"
                 + (f" ({', '.join(fixed)} throughout)" if fixed else "")
                 + ": " + "; ".join(
                     f"`{_setting(name, p['point'], results)}` "
                     f"{p['valid_rmse']:.4f}" for p in grid))
  if results.get("not_run"):
    lines += ["", "Not run: " + "; ".join(results["not_run"])]
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", default="0,1,2,3,4")
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--max_epochs", type=int, default=100)
  parser.add_argument("--patience", type=int, default=5)
  parser.add_argument("--workdir", default="workdirs/rating")
  parser.add_argument("--surprise", type=int, default=1,
                      help="also run scikit-surprise SVD / SVD++ (1) or not")
  common.add_result_args(parser, "rating")
  args = parser.parse_args(argv)
  if args.render:
    common.render_page(args.json, args.out, render)
    return
  seeds = [int(s) for s in args.seeds.split(",")]
  models = [m for m in args.models.split(",") if m]
  results = {"command": common.command("rating", argv),
             "hardware": common.machine(), "date": common.today(),
             "seeds": seeds,
             "max_epochs": args.max_epochs, "patience": args.patience,
             "grid": {m: GRID.get(m, []) for m in models}, "models": {},
             "search": {}, "paired": {}, "not_run": []}
  datasets = {s: load(s) for s in seeds}

  def save():
    common.write_json(args.json, results)
    common.write_page(args.out, render(results))

  for model in models:
    grid = GRID.get(model, [{}])
    search = []
    if len(grid) > 1:
      for point in grid:
        res = train_run(model, seeds[0], point, args, datasets[seeds[0]],
                        eval_test=False)
        search.append({"point": run_name(point),
                       "valid_rmse": res["valid"]["rmse"]})
      best = grid[int(np.argmin([p["valid_rmse"] for p in search]))]
      results["search"][model] = search
    else:
      best = grid[0]
    runs = []
    for seed in seeds:
      res = train_run(model, seed, best, args, datasets[seed], eval_test=True)
      runs.append(dict(res, seed=seed))
    results["models"][model] = {"selected": run_name(best), "runs": runs,
                                "summary": summary(runs)}
    save()
  for name in GRAPH_MODELS:
    if name in results["models"] and "biased_mf" in results["models"]:
      results["paired"][name] = {
          m: real_text_report.paired_runs(results["models"], name,
                                          "biased_mf", m)
          for m in ("rmse", "mae")}
  save()
  if args.surprise:
    try:
      peer = surprise_runs(seeds, datasets)
    except ImportError as err:
      results["not_run"].append(f"scikit-surprise ({err})")
    else:
      for name, runs in peer.items():
        results["models"][name] = {"selected": "defaults", "runs": runs,
                                   "summary": summary(runs)}
  save()


if __name__ == "__main__":
  main()

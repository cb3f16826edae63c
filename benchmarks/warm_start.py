"""Two-stage pre-train -> fine-tune vs training from scratch, same total epochs.

  python -m benchmarks.warm_start --dataset ml_latest_small --seeds 0,1,2,3,4 \
      --total_epochs 200 --pretrain_epochs 50 --workdir workdirs/warm_start
  python -m benchmarks.warm_start --render

Protocol (declared here, before any run), per seed s (split s and
initialisation s of the per-user 80/10/10 split):
* scratch: BPR LightGCN (configs/finetune_lightgcn.py without its warm
  start) for `--total_epochs` epochs;
* two-stage: LightGCN + RLMRec-Con (configs/pretrain_rlmrec_con.py: BPR +
  contrastive alignment to the language embeddings) for
  `--pretrain_epochs`, then BPR LightGCN warm-started from its best
  (validation-selected) backbone tables (`config.init_from`) for the
  remaining `total - pretrain` epochs.
Both arms run exactly their epoch budget (no early stopping), evaluate on
validation every `--eval_every` epochs and read the test split once, for the
validation-selected epoch of the final stage. Reported: test Recall@20 /
NDCG@20 mean +- std over seeds and the paired difference (two-stage -
scratch, same split) with a 95% t interval. Runs live in
`<workdir>/<dataset>/<arm>/seed<s>` and are read back when finished.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from benchmarks import common
from benchmarks import real_text_report
from jaxrec import config_utils
from jaxrec import train

METRICS = ("recall@20", "ndcg@20")


def arm_config(name: str, dataset: str, seed: int, epochs: int, args,
               init_from: str = ""):
  """The config of one stage: its recipe config plus the protocol."""
  config = config_utils.load_config_file(name, dataset)
  config.seed = seed
  config.num_epochs = epochs
  config.eval_every = args.eval_every
  config.patience = epochs  # the whole budget runs: no early stopping
  config.eval_ks = (20,)
  config.selection_metric = "recall@20"
  config.progress = False
  config.init_from = init_from
  if not init_from:
    config.init_map = ""
  return config


def run(config, workdir: str) -> dict:
  """train_and_evaluate, or the results.json of a finished run."""
  path = os.path.join(workdir, "results.json")
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return train.train_and_evaluate(config, workdir)


def summary(res: dict) -> dict:
  return {"test": {m: res["test"][m] for m in METRICS},
          "valid": {m: res["valid"][m] for m in METRICS},
          "best_epoch": res["best_epoch"], "epochs_run": res["epochs_run"],
          "seconds_per_epoch": res["seconds_per_epoch"]}


def mean_std(values) -> str:
  v = np.asarray(values, np.float64)
  return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"


def render(results: dict) -> str:
  """The Markdown page of the JSON results."""
  p = results["protocol"]
  runs = results["runs"]
  seeds = sorted(runs, key=int)
  lines = [
      "# Pre-train, then fine-tune (warm start) vs training from scratch", "",
      f"LightGCN on {p['dataset']}, the same total budget of "
      f"{p['total_epochs']} epochs per arm. Scratch: BPR LightGCN for "
      f"{p['total_epochs']} epochs. Two-stage: LightGCN + RLMRec-Con (BPR + "
      "contrastive alignment of the ID embeddings to the language "
      f"embeddings) for {p['pretrain_epochs']} epochs, then BPR LightGCN "
      "warm-started from its validation-selected backbone tables "
      f"(`config.init_from`, docs/warm_start.md) for "
      f"{p['total_epochs'] - p['pretrain_epochs']} epochs. No early "
      f"stopping; validation every {p['eval_every']} epochs; the test split "
      "is read once, at the validation-selected epoch of the final stage. "
      "Per-user random 80/10/10 split drawn with each seed.", "",
      "```", results["command"], "```", "",
      results["hardware"] + f". Seeds: {', '.join(seeds)}.", "",
      "| arm | Recall@20 | NDCG@20 | selected epoch (median) | s/epoch "
      "(median) |", "|---|---|---|---|---|"]
  for arm, label in (("scratch", "scratch"), ("finetune", "two-stage"),
                     ("pretrain", "stage 1 alone (RLMRec-Con)")):
    rows = [runs[s][arm] for s in seeds]
    lines.append(
        f"| {label} | {mean_std([r['test']['recall@20'] for r in rows])} | "
        f"{mean_std([r['test']['ndcg@20'] for r in rows])} | "
        f"{np.median([r['best_epoch'] for r in rows]):g} / "
        f"{np.median([r['epochs_run'] for r in rows]):g} | "
        f"{np.median([r['seconds_per_epoch'] for r in rows]):.3g} |")
  last = {arm: sum(runs[s][arm]["best_epoch"]
                  >= 0.9 * runs[s][arm]["epochs_run"] for s in seeds)
          for arm in ("scratch", "finetune")}
  lines += ["", f"Selected epoch within the last 10% of the budget "
            f"(validation still rising there): scratch "
            f"{last['scratch']}/{len(seeds)} seeds, "
            f"two-stage {last['finetune']}/{len(seeds)}. The budget is a "
            "fixed short schedule, not training to convergence (LightGCN "
            "trained to convergence on these splits: "
            "[real_text.md](real_text.md)). s/epoch: medians on a shared "
            "machine, not a speed comparison."]
  lines += ["", "Paired difference, two-stage - scratch (same split and "
            "seed; mean and 95% t interval over seeds):", "",
            "| metric | difference |", "|---|---|"]
  for m in METRICS:
    lines.append(f"| {m} | {real_text_report.interval(results['paired'][m])} |")
  lines += ["", "Per seed (test Recall@20): " + "; ".join(
      f"seed {s}: scratch {runs[s]['scratch']['test']['recall@20']:.4f}, "
      f"two-stage {runs[s]['finetune']['test']['recall@20']:.4f}"
      for s in seeds) + ".", ""]
  return "\n".join(lines)


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.render:
    return common.render_page(args.json, args.out, render)
  if not 0 < args.pretrain_epochs < args.total_epochs:
    raise SystemExit("--pretrain_epochs must lie in (0, --total_epochs)")
  results = {"protocol": {k: v for k, v in vars(args).items()
                          if k not in ("json", "out", "render")},
             "command": common.command("warm_start", argv),
             "hardware": common.hardware_line(), "runs": {}}
  root = os.path.join(args.workdir, args.dataset)
  for seed in [int(s) for s in args.seeds.split(",")]:
    out = {}
    wd = lambda arm, s=seed: os.path.join(root, arm, f"seed{s}")
    out["scratch"] = summary(run(arm_config(
        "finetune_lightgcn", args.dataset, seed, args.total_epochs, args),
                                 wd("scratch")))
    out["pretrain"] = summary(run(arm_config(
        "pretrain_rlmrec_con", args.dataset, seed, args.pretrain_epochs,
        args), wd("pretrain")))
    out["finetune"] = summary(run(arm_config(
        "finetune_lightgcn", args.dataset, seed,
        args.total_epochs - args.pretrain_epochs, args,
        init_from=wd("pretrain")), wd("finetune")))
    results["runs"][str(seed)] = out
    print(f"seed {seed}: scratch R@20 {out['scratch']['test']['recall@20']:.4f}"
          f", two-stage {out['finetune']['test']['recall@20']:.4f}",
          flush=True)
  seeds = sorted(results["runs"], key=int)
  results["paired"] = {m: real_text_report.paired(
      [results["runs"][s]["finetune"]["test"][m] for s in seeds],
      [results["runs"][s]["scratch"]["test"][m] for s in seeds])
                       for m in METRICS}
  common.write_json(args.json, results)
  common.write_page(args.out, render(results))
  return results


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--dataset", default="ml_latest_small")
  p.add_argument("--seeds", default="0,1,2,3,4")
  p.add_argument("--total_epochs", type=int, default=200)
  p.add_argument("--pretrain_epochs", type=int, default=50)
  p.add_argument("--eval_every", type=int, default=5)
  p.add_argument("--workdir", default="workdirs/warm_start")
  common.add_result_args(p, "warm_start")
  return p.parse_args(argv)


if __name__ == "__main__":
  main()

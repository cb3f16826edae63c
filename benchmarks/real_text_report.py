"""Markdown page of `benchmarks/real_text.py`, rendered from its JSON.

  python -m benchmarks.real_text_report --json benchmarks/results/real_text.json \
      --out docs/results/real_text.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np

from benchmarks import common

LABELS = {
    "mostpop": "MostPop", "itemknn": "ItemKNN", "ease": "EASE", "mf": "MF",
    "lightgcn": "LightGCN", "simgcl": "SimGCL",
    "lightgcn+rlmrec_con": "LightGCN + RLMRec-Con",
    "lightgcn+rlmrec_gen": "LightGCN + RLMRec-Gen",
    "simgcl+rlmrec_con": "SimGCL + RLMRec-Con",
    "alpharec": "AlphaRec", "textgnn": "TextGNN",
    "fusion": "Attention fusion",
}
DATASETS = ("ml_latest_small", "hetrec_lastfm")
COMMAND = ("python -m benchmarks.real_text --datasets {datasets} --seeds {seeds} "
           "--max_epochs {max_epochs} --workdir {workdir} --json {json} "
           "--out {out} --cold {cold}")


def paired(a: list, b: list) -> dict:
  """Mean paired difference a - b with a 95% t interval.

  Args:
    a, b: one value per seed, in the same seed order.

  Returns:
    `common.paired_interval` of the differences: {'mean', 'lo', 'hi', 'n'};
    lo and hi are NaN for fewer than 2 pairs.
  """
  return common.paired_interval(np.asarray(a) - np.asarray(b))


def paired_runs(out: dict, a: str, b: str, metric: str) -> dict:
  """`paired` of two models' test `metric` over the seeds both ran."""
  tests = {n: {r["seed"]: r["test"][metric] for r in out[n]["runs"]}
           for n in (a, b)}
  seeds = sorted(set(tests[a]) & set(tests[b]))
  return paired([tests[a][s] for s in seeds], [tests[b][s] for s in seeds])


def interval(g: dict, mean: bool = True, zero: bool = True) -> str:
  """'+0.0123 [+0.0010, +0.0236] (> 0)' of a `paired` result.

  Args:
    g: {'mean', 'lo', 'hi'} (`common.paired_interval`).
    mean: lead with the mean difference.
    zero: end with where 0 lies: '(> 0)', '(< 0)' or '(includes 0)'.

  Returns:
    The text; '[+0.0010, +0.0236]' with neither.
  """
  text = f"[{g['lo']:+.4f}, {g['hi']:+.4f}]"
  if mean:
    text = f"{g['mean']:+.4f} {text}"
  if zero:
    text += (" (includes 0)" if g["lo"] <= 0 <= g["hi"] else
             " (> 0)" if g["lo"] > 0 else " (< 0)")
  return text


def baseline_section(out: dict) -> list[str]:
  """Paired test differences of EASE / ItemKNN against every trained model."""
  bases = [b for b in ("ease", "itemknn") if b in out]
  others = [k for k in LABELS if k in out and k not in
            ("mostpop", "itemknn", "ease")]
  if not bases or not others:
    return []
  rows = []
  for base in bases:
    for key in others:
      rows.append([f"{LABELS[base]} - {LABELS[key]}",
                   interval(paired_runs(out, base, key, "recall@20")),
                   interval(paired_runs(out, base, key, "ndcg@20"))])
  return ["", "Non-neural baselines against the trained models (test, "
          "paired by seed; > 0: the baseline is better):", ""] + _table(
              ["difference", "ΔRecall@20", "ΔNDCG@20"], rows)


def machine() -> str:
  """One line naming the CPU, its cores and the JAX version."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(l.split(":", 1)[1].strip() for l in f
                 if l.startswith("model name"))
  except (OSError, StopIteration):
    pass
  import jax  # pylint: disable=g-import-not-at-top
  return (f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} "
          f"({jax.default_backend()})")


def _ms(values) -> str:
  v = np.asarray([x for x in values if x is not None], np.float64)
  if not len(v):
    return "-"
  return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"


def _table(header, rows) -> list[str]:
  return (["| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
          + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def _epochs(runs: list) -> str:
  """'best / run' epochs, medians over seeds, with the best epochs' range
  where the seeds disagree (an early plateau ends some runs sooner)."""
  best = [r["best_epoch"] for r in runs]
  text = (f"{np.median(best):.0f} / "
          f"{np.median([r['epochs_run'] for r in runs]):.0f}")
  if min(best) != max(best):
    text += f" (best {min(best)}-{max(best)})"
  return text


def _ordered(entries: dict) -> list:
  """(key, value) pairs in a fixed order whatever the JSON's key order:
  baselines (keys without a model label) by name, then models in table
  order."""
  models = list(LABELS)
  rank = lambda k: (1, models.index(k), "") if k in LABELS else (0, 0, k)
  return sorted(entries.items(), key=lambda kv: rank(kv[0]))


def dataset_section(name: str, out: dict, grids: dict = None) -> list[str]:
  """Tables of one dataset: main results, paired gains, cold start.

  Args:
    name: dataset name.
    out: the dataset's results (model key -> selected point and runs; '_'
      keys: diagnostics, paired gains, follow-ups, cold start, commands).
    grids: the declared grid labels per model; a model whose grid on this
      dataset differs is named under the table.

  Returns:
    The section's Markdown lines.
  """
  lines = [f"## {name}", ""]
  commands = [out["_command"]] if out.get("_command") else []
  for key in LABELS:
    command = out.get(key, {}).get("command")
    if command and command not in commands:
      commands.append(command)
  if commands:
    lines += ["Commands:" if len(commands) > 1 else "Command:", ""]
    lines += [f"    {common.as_module_command(c)}" for c in commands] + [""]
  for key, label in LABELS.items():
    grid = out.get(key, {}).get("grid")
    if grid and grids and grid != grids.get(key):
      lines += [f"Grid of {label} on this dataset: {', '.join(grid)} "
                "(a smaller grid than declared above, for CPU time; the "
                "script's GRID_BY_DATASET says what was cut and why).", ""]
  if out.get("_learning_rate"):
    lines += [f"Adam learning rate of every gradient-trained model: "
              f"{out['_learning_rate']:g} (the configs' own rates on the "
              "other dataset).", ""]
  check = out.get("_lr_check")
  if check:
    lines += [f"Learning-rate check (seed-0 VALIDATION Recall@20, the test "
              f"split is not read): LightGCN's selected point reaches "
              f"{check['valid']:.4f} at learning rate "
              f"{check['learning_rate']:g} (best epoch {check['best_epoch']} "
              f"of {check['epochs_run']}, "
              f"{'stopped by the rule' if check.get('stopped_early') else 'cap'}"
              f") against {check['protocol_valid']:.4f} at "
              f"{check['protocol_learning_rate']:g}.", ""]
  missing = [label for key, label in LABELS.items() if key not in out]
  if missing:
    lines += [f"Not run on this dataset: {', '.join(missing)}.", ""]
  rows = []
  for key, label in LABELS.items():
    if key not in out:
      continue
    runs = out[key]["runs"]
    get = lambda m: [r["test"].get(m) for r in runs]
    converged = (f"{sum(bool(r.get('stopped_early')) for r in runs)}"
                 f"/{len(runs)}" if runs[0].get("fit_seconds") is None
                 else "closed form")
    rows.append([
        label, out[key]["selected"], _ms(get("recall@20")),
        _ms(get("ndcg@20")), _ms(get("coverage@20")),
        _epochs(runs),
        converged,
        f"{np.median([r['seconds_per_epoch'] for r in runs]):.3g}"])
  lines += _table(["model", "selected (validation)", "Recall@20", "NDCG@20",
                   "coverage@20", "best / run epochs (median over seeds)",
                   "stopped by the rule", "s/epoch"], rows)
  text = out.get("_text")
  if text:
    lines += ["", "How much the item texts say about co-interaction (seed-0 "
              "split): the probability that two TRAIN items of one user are "
              "closer in text space than the first and a random item is "
              f"**{text['pair_auc']:.3f}** (0.5 = no signal); ranking every "
              "item by the cosine between the user's mean train-item text "
              "embedding and the item's, with no training, gives test "
              f"Recall@20 {text['text_cosine']['recall@20']:.4f} / NDCG@20 "
              f"{text['text_cosine']['ndcg@20']:.4f}."]
  paired = out.get("_paired", {})
  if paired:
    lines += ["", "Paired gain over the ID-only backbone (same split and "
              "seed; mean and 95% t interval over seeds):", ""]
    rows = []
    for key, gains in _ordered(paired):
      cells = [interval(gains[m]) for m in ("recall@20", "ndcg@20")]
      rows.append([LABELS[key], *cells])
    lines += _table(["text model vs backbone", "ΔRecall@20", "ΔNDCG@20"], rows)
  lines += baseline_section(out)
  for key, fu in out.get("_followup", {}).items():
    lines += ["", f"{LABELS.get(key, key)}: what the RLMRec paper suggests "
              f"trying (alignment temperature, user-profile quality), one "
              f"setting changed from the selected point ({fu['selected']}); "
              f"seed-0 VALIDATION Recall@20, the test split is not read:", ""]
    rows = [["selected point", f"{fu['selected_valid']:.4f}", "", "", ""]]
    rows += [[v["label"], f"{v['valid']:.4f}",
              f"{v['valid'] - fu['selected_valid']:+.4f}",
              f"{v['best_epoch']} / {v['epochs_run']}",
              "yes" if v.get("stopped_early") else "no (cap)"]
             for v in fu["variants"]]
    lines += _table(["variant", "valid Recall@20", "vs selected",
                     "best / run epochs", "stopped by the rule"], rows)
    if fu.get("command") and fu["command"] not in commands:
      lines += ["", f"Command: `{common.as_module_command(fu['command'])}`"]
  cold = out.get("_cold")
  if cold:
    lines += ["", "Cold items (20% of the items held out of training; warm "
              "users rank the cold-test items only):", ""]
    rows = [[LABELS.get(k, k), _ms([m["recall@20"] for m in v]),
             _ms([m["ndcg@20"] for m in v])] for k, v in _ordered(cold)]
    lines += _table(["ranking", "cold Recall@20", "cold NDCG@20"], rows)
    if any(k.endswith("rlmrec_con") or k.endswith("rlmrec_gen") for k in cold):
      lines += ["", "RLMRec scores an item by its ID embedding, which the "
                "alignment only shapes for items seen in training: a cold "
                "item's embedding is untrained, so RLMRec ranks cold items "
                "near random. AlphaRec and the text cosine score items from "
                "their text."]
    if out.get("_cold_command") and out["_cold_command"] not in commands:
      lines += ["", f"Command: "
                f"`{common.as_module_command(out['_cold_command'])}`"]
  return lines + [""]


def render(results: dict) -> str:
  """The whole page."""
  p = results["protocol"]
  lines = [
      "# Language-model text on real data", "",
      "Text models (TextGNN, AlphaRec, RLMRec-Con/Gen) against their ID-only "
      "backbones and non-neural baselines on two text-attributed datasets: "
      "MovieLens ml-latest-small (Harper & Konstan, ACM TiiS 2015; ratings "
      ">= 4 are positives; item text: title, genres, tags) and HetRec 2011 "
      "Last.fm 2K (every listened artist; item text: artist name and user "
      "tags). Per-user random 80/10/10 split per seed; the grid of every "
      "model is searched on the seed-0 validation split without reading the "
      "test split; each model then trains to convergence on each seed "
      "(early stopping on validation Recall@20) and the test split is read "
      "once for the selected epoch.", "",
      "```", COMMAND.format(**dict(p, datasets=",".join(DATASETS)))
      + " --followup 1", "```", "",
      "Each dataset's section names the command (model subset, stages) "
      "that produced it.", "",
      f"Hardware: {results['machine']}. Seeds: {p['seeds']}. Early "
      f"stopping: evaluation every {p['eval_every']} epochs, patience "
      f"{p['patience']} evaluations, at least {p['min_epochs']} epochs and "
      f"{p['relative_patience']} x the best epoch since the best; cap "
      f"{p['max_epochs']} epochs. 'stopped by the rule' counts the seeds "
      "whose run ended by the early-stopping rule (validation flat since "
      "the selected epoch) rather than by the cap.", "",
      "Hyper-parameter grids (declared before running):", ""]
  lines += [f"- {LABELS.get(k, k)}: {', '.join(v)}"
            for k, v in results["grid"].items()]
  lines.append("")
  missing = [d for d in DATASETS if d not in results["datasets"]]
  if missing:
    lines += [f"Not run yet: {', '.join(missing)} (the same command with "
              f"`--datasets {','.join(missing)}`).", ""]
  order = [d for d in DATASETS if d in results["datasets"]]
  order += [d for d in results["datasets"] if d not in DATASETS]
  for name in order:
    lines += dataset_section(name, results["datasets"][name],
                             results.get("grid"))
  return "\n".join(lines)


def write(results: dict, path: str) -> None:
  """Renders the page to `path` atomically."""
  common.write_page(path, render(results))


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--json", default="benchmarks/results/real_text.json")
  p.add_argument("--out", default="docs/results/real_text.md")
  args = p.parse_args(argv)
  with open(args.json) as f:
    write(json.load(f), args.out)


if __name__ == "__main__":
  sys.exit(main())

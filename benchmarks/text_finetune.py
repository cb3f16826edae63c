"""Frozen vs fine-tuned text encoder (top 1 / 2 MiniLM layers), AlphaRec, ml-latest-small.

  nice -n 5 python -m benchmarks.text_finetune --seeds 0,1,2
  python -m benchmarks.text_finetune --render

Protocol (declared here, before any run), per seed s:
* start: the converged frozen-encoder AlphaRec run of seed s (`--source`,
  docs/results/real_text.md: temperature 0.15, early stopping on validation
  Recall@20), its config and its per-user 80/10/10 split;
* three arms continue from its validation-selected parameters
  (`config.init_from`) with the same batches (the continuation's epoch-0
  sampler, `--batch_size` rows, the run's other settings unchanged): the
  encoder frozen (precomputed text features, as trained), or its top 1 / top
  2 layers trained jointly (`config.text.finetune_layers`, Adam at
  `config.text.learning_rate`, jaxrec/text_finetune.py);
* each arm trains `--steps` steps through the trainer's own step function
  (`train.setup_experiment`) and is evaluated on validation every
  `--eval_steps` steps (the fine-tuned arms' text cache re-encoded with the
  current encoder first); the test split is read once, at the
  validation-selected point (Recall@20), the same rule for every arm;
* paired differences (fine-tuned - frozen, same seed and split): mean and
  95% t interval over seeds;
* the fine-tuned arms' frozen encoder layers are compared with the
  pretrained weights after training (bit-identical expected) and the trained
  layers' largest change is recorded.
Timing (seed 0's config, one process): after one compiling step per arm,
`--timing_rounds` rounds each time one train step of every arm in turn
(interleaved), then the text-cache refresh; seconds per epoch = steps per
epoch x the median step + the median refresh. The source runs' batch of
4096 is tried once for the top-1 arm (`--try_batch`) and its outcome
recorded (the re-encoded batch texts' activations may not fit in memory).

Resumable: each run writes `<workdir>/seed<s>/layers<n>/results.json` (the
timing `<workdir>/timing/results.json`) and is read back when present; the
JSON and the page are rewritten after every run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from benchmarks import common
from benchmarks import real_text_report
from jaxrec import config_utils
from jaxrec import input_pipeline
from jaxrec import text_finetune
from jaxrec import train
from jaxrec import warm_start

METRICS = ("recall@20", "ndcg@20")
SELECT = "recall@20"


def log(msg: str) -> None:
  """A progress line with the time and the load average."""
  print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}",
        flush=True)


def source_dir(args, seed: int) -> str:
  return args.source.format(seed=seed)


def arm_config(args, seed: int, layers: int,
               batch_size: int | None = None) -> ml_collections.ConfigDict:
  """The source run's config, warm-started from it, with `layers` trained."""
  src = source_dir(args, seed)
  with open(os.path.join(src, "config.json")) as f:
    config = config_utils.with_defaults(json.load(f))
  config.batch_size = batch_size or args.batch_size
  config.progress = False
  config.init_from = src
  config.text.finetune_layers = layers
  config.text.dtype = args.dtype
  # The fine-tuned runs hold {'model': AlphaRec, 'encoder': ...}: the source's
  # AlphaRec parameters go under 'model/'.
  config.init_map = ",".join(f"{k}:model/{k}" for k in sorted(
      warm_start.source_params(src))) if layers else ""
  return config


def _copy(tree):
  return jax.tree.map(jnp.copy, tree)


def encoder_check(pretrained, trained, layers: int) -> dict:
  """Frozen encoder leaves bit-identical? Largest change of the trained ones."""
  mask = jax.tree.leaves(text_finetune.trainable_mask(pretrained, layers))
  before = [np.asarray(x) for x in jax.tree.leaves(pretrained)]
  after = [np.asarray(x) for x in jax.tree.leaves(trained)]
  frozen = [(a, b) for a, b, m in zip(before, after, mask) if not m]
  trained_pairs = [(a, b) for a, b, m in zip(before, after, mask) if m]
  return {
      "frozen_bit_identical": all(np.array_equal(a, b) for a, b in frozen),
      "frozen_params": int(sum(a.size for a, _ in frozen)),
      "trained_params": int(sum(a.size for a, _ in trained_pairs)),
      "trained_max_abs_change": float(max(
          (np.max(np.abs(a - b)) for a, b in trained_pairs), default=0.0)),
  }


def run_arm(args, seed: int, layers: int) -> dict:
  """Continues seed `seed`'s source run with `layers` encoder layers trained."""
  config = arm_config(args, seed, layers)
  t_setup = time.perf_counter()
  exp = train.setup_experiment(config)
  setup_s = time.perf_counter() - t_setup
  state, graph, evaluator, cache = (exp.state, exp.graph, exp.evaluator,
                                    exp.text_cache)
  exp.state = None  # the step donates the state
  pretrained = (jax.tree.map(np.array, state.params["encoder"]) if cache
                else None)
  if cache is not None:
    graph = evaluator.graph = cache.refresh(state.params, graph)
  start_valid = evaluator(state.params, "valid")
  rows = input_pipeline.epoch_batches(config, exp.dataset, 0,
                                      exp.positive_keys)
  steps_per_epoch = int(jax.tree.leaves(rows)[0].shape[0])
  history, best = [], (-math.inf, 0, None)
  train_s = refresh_s = 0.0
  for lo in range(0, args.steps, args.eval_steps):
    chunk = jax.tree.map(lambda v, lo=lo: v[lo:lo + args.eval_steps], rows)
    t0 = time.perf_counter()
    state, metrics = exp.step_fn(state, graph, chunk, exp.train_rng)
    jax.block_until_ready(state)
    train_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    if cache is not None:  # the other rows follow the encoder
      graph = evaluator.graph = cache.refresh(state.params, graph)
    refresh_s += time.perf_counter() - t0
    valid = evaluator(state.params, "valid")
    step = lo + args.eval_steps
    history.append({"step": step,
                    "loss": float(np.mean(np.asarray(metrics["loss"]))),
                    **{f"valid/{m}": valid[m] for m in METRICS}})
    if valid[SELECT] > best[0]:
      best = (valid[SELECT], step, _copy(state.params))
    log(f"seed {seed} layers {layers}: step {step}/{args.steps} valid "
        f"{SELECT} {valid[SELECT]:.4f} (train {train_s:.0f} s)")
  _, best_step, best_params = best
  if cache is not None:  # the texts as the selected encoder encodes them
    graph = evaluator.graph = cache.refresh(best_params, graph)
  valid = evaluator(best_params, "valid")
  test = evaluator(best_params, "test")
  out = {"seed": seed, "layers": layers, "best_step": best_step,
         "steps": args.steps, "steps_per_epoch": steps_per_epoch,
         "valid": {m: valid[m] for m in METRICS},
         "test": {m: test[m] for m in METRICS},
         "start_valid": {m: start_valid[m] for m in METRICS},
         "history": history, "setup_seconds": setup_s,
         "train_seconds": train_s, "refresh_seconds": refresh_s,
         "load_average": os.getloadavg()[0]}
  if cache is not None:
    out["encoder"] = encoder_check(pretrained, best_params["encoder"], layers)
    final = encoder_check(pretrained, state.params["encoder"], layers)
    out["encoder"]["frozen_bit_identical_last_step"] = final[
        "frozen_bit_identical"]
  return out


def try_batch(args) -> dict:
  """One top-1 fine-tuning step at `--try_batch` rows: its outcome."""
  config = arm_config(args, 0, 1, batch_size=args.try_batch)
  exp = train.setup_experiment(config)
  rows = input_pipeline.epoch_batches(config, exp.dataset, 0,
                                      exp.positive_keys)
  texts = int(sum(np.size(getattr(rows, k)[0])
                  for k in ("users", "pos_items", "neg_items")))
  t0 = time.perf_counter()
  try:
    state, _ = exp.step_fn(exp.state, exp.graph,
                           jax.tree.map(lambda v: v[:1], rows), exp.train_rng)
    jax.block_until_ready(state)
    outcome = "ran"
  except jax.errors.JaxRuntimeError as err:  # out of memory, most likely
    outcome = str(err).splitlines()[0][:200]
  return {"batch_size": args.try_batch, "texts_per_step": texts,
          "outcome": outcome, "seconds": time.perf_counter() - t0}


def timing(args) -> dict:
  """Seconds per step / refresh / epoch of every arm, interleaved."""
  arms = {n: train.setup_experiment(arm_config(args, 0, n))
          for n in args.layers}
  states = {n: e.state for n, e in arms.items()}
  graphs = {n: e.graph for n, e in arms.items()}
  for e in arms.values():
    e.state = None
  e0 = arms[args.layers[0]]
  rows = input_pipeline.epoch_batches(arm_config(args, 0, args.layers[0]),
                                      e0.dataset, 0, e0.positive_keys)
  steps_per_epoch = int(jax.tree.leaves(rows)[0].shape[0])
  one = lambda i: jax.tree.map(lambda v: v[i:i + 1], rows)
  compile_s, step_s, refresh_s = {}, {n: [] for n in arms}, {n: [] for n in arms}
  for n, e in arms.items():  # compile
    t0 = time.perf_counter()
    states[n], _ = e.step_fn(states[n], graphs[n], one(0), e.train_rng)
    jax.block_until_ready(states[n])
    if e.text_cache is not None:
      graphs[n] = e.text_cache.refresh(states[n].params, graphs[n])
    compile_s[n] = time.perf_counter() - t0
    log(f"timing: layers {n} compiled ({compile_s[n]:.0f} s)")
  for r in range(args.timing_rounds):
    for n, e in arms.items():
      t0 = time.perf_counter()
      states[n], _ = e.step_fn(states[n], graphs[n], one(1 + r), e.train_rng)
      jax.block_until_ready(states[n])
      step_s[n].append(time.perf_counter() - t0)
      if e.text_cache is not None:
        t0 = time.perf_counter()
        graphs[n] = e.text_cache.refresh(states[n].params, graphs[n])
        refresh_s[n].append(time.perf_counter() - t0)
    log(f"timing round {r + 1}/{args.timing_rounds}: " + ", ".join(
        f"layers {n} step {step_s[n][-1]:.2f} s" for n in arms))
  out = {"batch_size": args.batch_size, "steps_per_epoch": steps_per_epoch,
         "rounds": args.timing_rounds, "compile_seconds": compile_s,
         "step_seconds": step_s, "refresh_seconds": refresh_s,
         "load_average": os.getloadavg()[0], "arms": {}}
  for n in arms:
    step = float(np.median(step_s[n]))
    refresh = float(np.median(refresh_s[n])) if refresh_s[n] else 0.0
    out["arms"][str(n)] = {"step_s": step, "refresh_s": refresh,
                           "epoch_s": steps_per_epoch * step + refresh}
  base = out["arms"][str(args.layers[0])]["epoch_s"]
  for n in arms:
    out["arms"][str(n)]["ratio"] = out["arms"][str(n)]["epoch_s"] / base
  return out


def cached(path: str, fn, *fn_args) -> dict:
  """The JSON at `path`, else `fn(*fn_args)` written there."""
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  out = fn(*fn_args)
  common.write_json(path, out)
  return out


def _fmt_ms(values) -> str:
  v = np.asarray(values, np.float64)
  return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"


def summarise(results: dict) -> None:
  """Adds the paired differences over the seeds every arm finished."""
  runs, layers = results["runs"], results["protocol"]["layers"]
  seeds = sorted((s for s in runs
                  if all(str(n) in runs[s] for n in layers)), key=int)
  results["complete_seeds"] = seeds
  base = str(layers[0])
  results["paired"] = {
      str(n): {m: real_text_report.paired(
          [runs[s][str(n)]["test"][m] for s in seeds],
          [runs[s][base]["test"][m] for s in seeds]) for m in METRICS}
      for n in layers[1:]} if seeds else {}


def arm_label(n) -> str:
  return "frozen encoder" if int(n) == 0 else f"top {n} layer{'s' * (int(n) > 1)} fine-tuned"


def render(results: dict) -> str:
  """The Markdown page of the JSON results."""
  p = results["protocol"]
  lines = [
      "# Frozen vs fine-tuned text encoder (AlphaRec, ml-latest-small)", "",
      "AlphaRec reads MiniLM sentence embeddings of the item texts. Three "
      "arms continue each seed's converged frozen-encoder run "
      "([real_text.md](real_text.md), temperature 0.15) from its "
      "validation-selected parameters (`config.init_from`): the encoder "
      "frozen, or its top 1 / top 2 layers trained jointly with AlphaRec "
      "(`config.text.finetune_layers`, [../text.md](../text.md): each step "
      "re-encodes the batch's texts, the other rows come from a cache "
      "re-encoded before every evaluation). Same batches for every arm "
      f"({p['batch_size']} rows, the continuation's first epoch), "
      f"{p['steps']} train steps, validation Recall@20 every "
      f"{p['eval_steps']} steps; the test split is read once, at the "
      "validation-selected point. Encoder: float32 matmuls "
      f"(`text.dtype={p['dtype']}`), Adam at `text.learning_rate` 1e-4, "
      "texts at most 64 tokens.", "",
      "```", results["command"], "```", "", results["hardware"] + ".", ""]
  t = results.get("timing")
  if t:
    lines += [f"## Seconds per epoch (batch {t['batch_size']}, "
              f"{t['steps_per_epoch']} steps per epoch)", "",
              f"One process, the arms timed in turn ({t['rounds']} rounds of "
              "one train step each, after a compiling step); an epoch = steps "
              "per epoch x the median step + the median text-cache refresh "
              f"(load average {t['load_average']:.1f} at the end).", ""]
    rows = [[arm_label(n), f"{a['step_s']:.3g}", f"{a['refresh_s']:.3g}",
             f"{a['epoch_s']:.4g}", f"{a['ratio']:.0f}x" if a["ratio"] >= 10
             else f"{a['ratio']:.2f}x"] for n, a in t["arms"].items()]
    lines += common.markdown_table(
        ["arm", "s / step", "s / refresh", "s / epoch", "vs frozen"], rows,
        ["---", "---:", "---:", "---:", "---:"]) + [""]
  tb = results.get("try_batch")
  if tb:
    lines += [f"At the source runs' batch of {tb['batch_size']} rows "
              f"({tb['texts_per_step']} texts re-encoded per step: users, "
              "positives, negatives) one top-1 step: "
              f"`{tb['outcome']}`.", ""]
  runs = results["runs"]
  seeds = results.get("complete_seeds", [])
  if seeds:
    lines += [f"## Recall@20 / NDCG@20 (test, {len(seeds)} seeds: "
              f"{', '.join(seeds)})", ""]
    rows = []
    for n in p["layers"]:
      rs = [runs[s][str(n)] for s in seeds]
      rows.append([arm_label(n),
                   _fmt_ms([r["test"]["recall@20"] for r in rs]),
                   _fmt_ms([r["test"]["ndcg@20"] for r in rs]),
                   _fmt_ms([r["start_valid"]["recall@20"] for r in rs]),
                   _fmt_ms([r["valid"]["recall@20"] for r in rs]),
                   f"{np.median([r['best_step'] for r in rs]):g}",
                   f"{np.median([r['train_seconds'] for r in rs]):.4g}"])
    lines += common.markdown_table(
        ["arm", "test Recall@20", "test NDCG@20", "valid R@20 at start",
         "valid R@20 selected", "selected step (median)",
         f"train s for {p['steps']} steps (median)"], rows,
        ["---"] + ["---:"] * 6) + [""]
    lines += ["Paired difference, fine-tuned - frozen (same seed and split; "
              "mean and 95% t interval over seeds):", ""]
    rows = [[arm_label(n), real_text_report._interval(g["recall@20"]),  # pylint: disable=protected-access
             real_text_report._interval(g["ndcg@20"])]  # pylint: disable=protected-access
            for n, g in results["paired"].items()]
    lines += common.markdown_table(["arm", "Recall@20", "NDCG@20"], rows) + [""]
    checks = [(s, n, runs[s][str(n)]["encoder"]) for s in seeds
              for n in p["layers"] if int(n) > 0]
    ok = all(c["frozen_bit_identical"] and c["frozen_bit_identical_last_step"]
             for _, _, c in checks)
    lines += [
        "Frozen encoder layers after training, compared with the pretrained "
        "weights (selected and last parameters): "
        + ("bit-identical in every fine-tuned run" if ok else
           "NOT bit-identical in " + ", ".join(
               f"seed {s} layers {n}" for s, n, c in checks
               if not (c["frozen_bit_identical"]
                       and c["frozen_bit_identical_last_step"])))
        + "; trained encoder parameters "
        + ", ".join(sorted({f"{c['trained_params']:,} (top {n})"
                            for _, n, c in checks}))
        + ", largest change of a trained weight "
        + f"{max(c['trained_max_abs_change'] for _, _, c in checks):.2g}.",
        ""]
    lines += ["Per seed (test Recall@20): " + "; ".join(
        f"seed {s}: " + ", ".join(
            f"{arm_label(n)} {runs[s][str(n)]['test']['recall@20']:.4f}"
            for n in p["layers"]) for s in seeds) + ".", ""]
  return "\n".join(lines)


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.render:
    with open(args.json) as f:
      results = json.load(f)
    common.write_page(args.out, render(results))
    return results
  if args.steps % args.eval_steps:
    raise SystemExit("--steps must be a multiple of --eval_steps")
  args.layers = [int(n) for n in args.layers.split(",")]
  protocol = {k: v for k, v in vars(args).items()
              if k not in ("json", "out", "render")}
  results = {"protocol": protocol,
             "command": common.command("text_finetune", argv),
             "hardware": common.hardware_line(), "runs": {}}

  def save():
    summarise(results)
    results["hardware"] = common.hardware_line()
    common.write_json(args.json, results)
    common.write_page(args.out, render(results))

  log("timing (interleaved)")
  results["timing"] = cached(os.path.join(args.workdir, "timing",
                                          "results.json"), timing, args)
  save()
  if args.try_batch:
    log(f"one step at batch {args.try_batch}")
    results["try_batch"] = cached(os.path.join(
        args.workdir, f"batch{args.try_batch}", "results.json"), try_batch,
                                  args)
    save()
  for seed in [int(s) for s in args.seeds.split(",")]:
    for n in args.layers:
      log(f"seed {seed} layers {n}: start")
      res = cached(os.path.join(args.workdir, f"seed{seed}", f"layers{n}",
                                "results.json"), run_arm, args, seed, n)
      results["runs"].setdefault(str(seed), {})[str(n)] = res
      log(f"seed {seed} layers {n}: test recall@20 "
          f"{res['test']['recall@20']:.4f} (selected step {res['best_step']})")
      save()
  return results


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--layers", default="0,1,2",
                 help="encoder layers trained per arm (0: frozen, first)")
  p.add_argument("--source",
                 default="workdirs/real_text/ml_latest_small/alpharec/"
                 "grid1_seed{seed}")
  p.add_argument("--batch_size", type=int, default=512)
  p.add_argument("--steps", type=int, default=4)
  p.add_argument("--eval_steps", type=int, default=2)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--timing_rounds", type=int, default=2)
  p.add_argument("--try_batch", type=int, default=4096)
  p.add_argument("--workdir", default="workdirs/text_finetune")
  common.add_result_args(p, "text_finetune")
  return p.parse_args(argv)


if __name__ == "__main__":
  main()

"""Frozen vs fine-tuned text encoder (top 1 / 2 MiniLM layers), AlphaRec, ml-latest-small.

  nice -n 5 python -m benchmarks.text_finetune --seeds 0,1,2
  python -m benchmarks.text_finetune --render

Protocol (declared here, before any run), per seed s:
* start: the converged frozen-encoder AlphaRec run of seed s (`--source`,
  docs/results/real_text.md: temperature 0.15, batch 4096, early stopping
  on validation Recall@20), its config and its per-user 80/10/10 split;
* three arms continue from its validation-selected parameters
  (`config.init_from`): the encoder frozen (the precomputed text features
  it trained on), or its top 1 / top 2 layers trained jointly with AlphaRec
  (`config.text.finetune_layers`, Adam at `config.text.learning_rate`,
  jaxrec/text_finetune.py: the frozen layers' output is cached once per
  process, a step runs the trained layers on the batch's unique item
  texts); the run's other settings unchanged, its batch included
  (`--batch_size` 0: the source's);
* every arm trains the same `--steps` batches (the start of the
  continuation's epoch-0 sampler) with the trainer's step function
  (`train.setup_experiment`), one step of each arm in turn in one process;
  then the fine-tuned arms' text cache is re-encoded with their final
  encoder, and validation and test are read once. A fixed budget, the same
  for every arm, no early stopping;
* paired differences (fine-tuned - frozen, same seed, split and batches):
  mean and 95% t interval over seeds;
* the fine-tuned arms' frozen encoder layers are compared with the
  pretrained weights after training (bit-identical expected), and the
  trained layers' largest change is recorded.
Timing: the arms' interleaved step times (each seed's first step, which
compiles, left out) and the cache refresh; seconds per epoch = steps per epoch x
the median step + the median refresh. Memory: the process's peak resident
set (all three arms in one process) and the size of the cached states.

Resumable: each seed's runs write `<workdir>/seed<s>/layers<n>/results.json`
and are read back when all are present; the JSON and the page are rewritten
after every seed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import jax
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
  config.batch_size = batch_size or args.batch_size or config.batch_size
  config.progress = False
  config.init_from = src
  config.text.finetune_layers = layers
  config.text.dtype = args.dtype
  # The fine-tuned runs hold {'model': AlphaRec, 'encoder': ...}: the source's
  # AlphaRec parameters go under 'model/'.
  config.init_map = ",".join(f"{k}:model/{k}" for k in sorted(
      warm_start.source_params(src))) if layers else ""
  return config


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


def run_seed(args, seed: int) -> dict:
  """Continues seed `seed`'s source run in every arm, the arms interleaved.

  One step of every arm in turn (the same batch), so the step times of the
  arms are measured side by side; the first step of each arm compiles and
  is left out of the timing. Then each arm's text cache is re-encoded with
  its final encoder (timed), and validation and test are read once.

  Returns:
    {str(layers): result dict} for every arm.
  """
  configs = {n: arm_config(args, seed, n) for n in args.layers}
  exps, setup_s = {}, {}
  for n, config in configs.items():
    t0 = time.perf_counter()
    exps[n] = train.setup_experiment(config)
    setup_s[n] = time.perf_counter() - t0
  states = {n: e.state for n, e in exps.items()}
  for e in exps.values():
    e.state = None  # the step donates the state
  pretrained = {n: jax.tree.map(np.array, states[n].params["encoder"])
                for n, e in exps.items() if e.text_cache is not None}
  e0 = exps[args.layers[0]]
  rows = input_pipeline.epoch_batches(configs[args.layers[0]], e0.dataset, 0,
                                      e0.positive_keys)
  steps_per_epoch = int(jax.tree.leaves(rows)[0].shape[0])
  batch_size = int(rows.users.shape[1])
  step_s = {n: [] for n in exps}
  losses = {n: [] for n in exps}
  for i in range(args.steps):
    batch = jax.tree.map(lambda v, i=i: v[i:i + 1], rows)  # [1, B]
    for n, e in exps.items():
      t0 = time.perf_counter()
      states[n], metrics = e.step_fn(states[n], e.graph, batch, e.train_rng)
      jax.block_until_ready(states[n])
      step_s[n].append(time.perf_counter() - t0)
      losses[n].append(float(np.asarray(metrics["loss"])[0]))
    log(f"seed {seed} step {i + 1}/{args.steps}: " + ", ".join(
        f"layers {n} {step_s[n][-1]:.1f} s" for n in exps))
  out = {}
  for n, e in exps.items():
    graph, refresh_s = e.graph, 0.0
    if e.text_cache is not None:  # the other rows follow the final encoder
      t0 = time.perf_counter()
      graph = e.evaluator.graph = e.text_cache.refresh(states[n].params, graph)
      refresh_s = time.perf_counter() - t0
    valid = e.evaluator(states[n].params, "valid")
    test = e.evaluator(states[n].params, "test")
    res = {"seed": seed, "layers": n, "steps": args.steps,
           "batch_size": batch_size, "steps_per_epoch": steps_per_epoch,
           "valid": {m: valid[m] for m in METRICS},
           "test": {m: test[m] for m in METRICS}, "losses": losses[n],
           "setup_seconds": setup_s[n], "step_seconds": step_s[n],
           "refresh_seconds": refresh_s, "load_average": os.getloadavg()[0]}
    if n in pretrained:
      res["encoder"] = encoder_check(pretrained[n],
                                     states[n].params["encoder"], n)
      res["step_texts"] = step_texts(e, rows, args.steps)
    out[str(n)] = res
    log(f"seed {seed} layers {n}: refresh {refresh_s:.0f} s, valid "
        f"{SELECT} {valid[SELECT]:.4f}")
  # ru_maxrss is in KiB on Linux: the process's peak, all arms together.
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  for res in out.values():
    res["peak_rss_gib"] = peak
  return out


def step_texts(exp, rows, steps: int) -> dict:
  """The cached states' size and the texts a fine-tuning step re-encodes."""
  nodes = exp.graph.nodes
  row_of = np.asarray(nodes["text_row"])
  num_texts = int(nodes["text_hidden"].shape[0]) - 1
  model = exp.model
  unique = []
  for i in range(steps):
    ids = np.asarray(text_finetune.batch_text_nodes(
        model.model, model.num_users, model.users_have_text,
        jax.tree.map(lambda v, i=i: v[i], rows)))
    unique.append(int(np.sum(np.unique(row_of[ids]) < num_texts)))
  # The step's static unique-set size (FinetunedText.batch_rows): the same
  # for every step, since a batch's node count is static.
  slots = (-(-min(len(ids), num_texts) // text_finetune.STEP_CHUNK)
           * text_finetune.STEP_CHUNK)
  return {"num_texts": num_texts,
          "length": int(nodes["text_hidden"].shape[1]),
          "states_gib": float(nodes["text_hidden"].nbytes) / 2**30,
          "slots": slots, "unique_per_step": unique}


def _fmt_ms(values) -> str:
  v = np.asarray(values, np.float64)
  return f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v[0]:.4f}"


def summarise(results: dict) -> None:
  """Adds the timing and the paired differences over the finished seeds."""
  runs, layers = results["runs"], results["protocol"]["layers"]
  seeds = sorted((s for s in runs
                  if all(str(n) in runs[s] for n in layers)), key=int)
  results["complete_seeds"] = seeds
  if not seeds:
    return
  base = str(layers[0])
  results["paired"] = {
      str(n): {m: real_text_report.paired(
          [runs[s][str(n)]["test"][m] for s in seeds],
          [runs[s][base]["test"][m] for s in seeds]) for m in METRICS}
      for n in layers[1:]}
  steps_per_epoch = runs[seeds[0]][base]["steps_per_epoch"]
  timing = {"steps_per_epoch": steps_per_epoch, "arms": {}}
  for n in layers:
    rs = [runs[s][str(n)] for s in seeds]
    # Each seed's first step of an arm compiles: left out.
    steps = [t for r in rs for t in r["step_seconds"][1:]]
    step = float(np.median(steps))
    refresh = float(np.median([r["refresh_seconds"] for r in rs]))
    timing["arms"][str(n)] = {"step_s": step, "refresh_s": refresh,
                              "timed_steps": len(steps),
                              # the process's first seed computes the
                              # frozen layers' states; later ones reuse them
                              "setup_s": rs[0]["setup_seconds"],
                              "epoch_s": steps_per_epoch * step + refresh}
  for a in timing["arms"].values():
    a["ratio"] = a["epoch_s"] / timing["arms"][base]["epoch_s"]
  results["timing"] = timing


def arm_label(n) -> str:
  return ("frozen encoder" if int(n) == 0 else
          f"top {n} layer{'s' * (int(n) > 1)} fine-tuned")


def _ratio(r: float) -> str:
  return f"{r:,.0f}x" if r >= 10 else f"{r:.2f}x"


def render(results: dict) -> str:
  """The Markdown page of the JSON results."""
  p = results["protocol"]
  runs, seeds = results["runs"], results.get("complete_seeds", [])
  first = next(iter(runs.values()), {}).get("0", {})
  batch = first.get("batch_size", p["batch_size"])
  lines = [
      "# Frozen vs fine-tuned text encoder (AlphaRec, ml-latest-small)", "",
      "AlphaRec reads MiniLM sentence embeddings of the item texts. Three "
      "arms continue each seed's converged frozen-encoder run "
      "([real_text.md](real_text.md), temperature 0.15, batch 4096) from its "
      "validation-selected parameters (`config.init_from`): the encoder "
      "frozen (the precomputed features), or its top 1 / top 2 layers "
      "trained jointly with AlphaRec (`config.text.finetune_layers`, "
      "[../text.md](../text.md)). The frozen layers' output (the hidden "
      "states at the first trained layer's input) is computed once per "
      "process for every text; a step runs only the trained layers on the "
      "unique texts of the batch's positives and of the negatives its loss "
      "scores (AlphaRec's shared pool: the batch's first 256; users have no "
      "text here: their rows are the mean of their train items' rows, not "
      "re-encoded), in rematerialised chunks of 128 texts; the other rows "
      "come from a cache re-encoded before the evaluation. Every arm trains "
      f"the same {p['steps']} batches of {batch} rows (the start of the "
      "continuation's first epoch) with the trainer's step function, the "
      "arms one step each in turn in one process; then validation and test "
      "are read once. A fixed budget, the same for every arm: no early "
      "stopping. The warm start copies parameters only: Adam's moments "
      "start at zero in every arm. Encoder: float32 matmuls, Adam at "
      "`text.learning_rate` 1e-4, texts cut at 64 tokens (15 of 6,298 items "
      "are longer).", "",
      "```", results["command"], "```", "", results["hardware"] + ".", ""]
  t = results.get("timing")
  if t:
    lines += [f"## Seconds per epoch (batch {batch}, "
              f"{t['steps_per_epoch']} steps per epoch)", "",
              "Median train step over the arms' interleaved steps (each "
              "seed's first step, which compiles, left out), and the "
              "median re-encoding of the whole text cache (the trained "
              "layers over 6,298 item texts, its compilation included); an "
              "epoch = steps per epoch x step + one refresh, extrapolated "
              f"from the {p['steps']} steps run. Setup, first seed of the "
              "process: data, model and the embeddings and frozen layers over "
              "every text (later seeds in the process reuse those states). "
              "Load average when the arms finished: {:.1f} to {:.1f}.".format(
                  *(f([runs[s][str(n)]["load_average"] for s in seeds
                       for n in p["layers"]]) for f in (min, max))), ""]
    rows = [[arm_label(n), f"{a['step_s']:.3g}", str(a["timed_steps"]),
             f"{a['refresh_s']:.3g}", f"{a['epoch_s']:,.4g}",
             _ratio(a["ratio"]), f"{a['setup_s']:.0f}"]
            for n, a in t["arms"].items()]
    lines += common.markdown_table(
        ["arm", "s / step", "steps timed", "s / refresh", "s / epoch",
         "vs frozen", "s setup (first seed)"], rows, ["---"] + ["---:"] * 6) + [""]
    mem = [runs[s][str(n)] for s in seeds for n in p["layers"] if int(n) > 0]
    if mem:
      # 'step_texts' (the texts a step re-encodes); runs that predate it
      # recorded only the cached states' size.
      tx = mem[0].get("step_texts") or mem[0]["texts"]
      steps = ""
      if all("step_texts" in r for r in mem):
        unique = [u for r in mem for u in r["step_texts"]["unique_per_step"]]
        steps = (f"a step encodes a static set of {tx['slots']:,} text slots "
                 f"(chunks of fill rows skipped), of which {min(unique):,} to "
                 f"{max(unique):,} were distinct texts in the steps run; ")
      lines += [
          f"Memory: the cached states hold {tx['num_texts']:,} texts x "
          f"{tx['length']} tokens x 384 float32 = {tx['states_gib']:.2f} GiB "
          f"per fine-tuned arm; {steps}peak resident memory of the process "
          "(frozen, top-1 and top-2 arms together, after the seed's runs): "
          + ", ".join(f"{runs[s]['0']['peak_rss_gib']:.1f} GiB (seed {s})"
                      for s in seeds if "peak_rss_gib" in runs[s]["0"]) + ".",
          ""]
  if seeds:
    src = results.get("source", {})
    lines += [f"## Recall@20 / NDCG@20 after {p['steps']} steps (test, "
              f"{len(seeds)} seed{'s' * (len(seeds) > 1)}: "
              f"{', '.join(seeds)})", ""]
    rows = []
    if all(s in src for s in seeds):
      rows.append(["start (the source runs)",
                   _fmt_ms([src[s]["test"]["recall@20"] for s in seeds]),
                   _fmt_ms([src[s]["test"]["ndcg@20"] for s in seeds]),
                   _fmt_ms([src[s]["valid"]["recall@20"] for s in seeds])])
    for n in p["layers"]:
      rs = [runs[s][str(n)] for s in seeds]
      rows.append([arm_label(n),
                   _fmt_ms([r["test"]["recall@20"] for r in rs]),
                   _fmt_ms([r["test"]["ndcg@20"] for r in rs]),
                   _fmt_ms([r["valid"]["recall@20"] for r in rs])])
    lines += common.markdown_table(
        ["arm", "test Recall@20", "test NDCG@20", "valid Recall@20"], rows,
        ["---"] + ["---:"] * 3) + [""]
    lines += ["Paired difference, fine-tuned - frozen (same seed, split and "
              "batches; mean and 95% t interval over seeds, none with one "
              "seed):", ""]
    def diff(g):  # no interval from one seed
      return (real_text_report.interval(g) if g["n"] > 1 else
              f"{g['mean']:+.4f} (one seed)")
    rows = [[arm_label(n), diff(g["recall@20"]), diff(g["ndcg@20"])]
            for n, g in results["paired"].items()]
    lines += common.markdown_table(["arm", "Recall@20", "NDCG@20"], rows)
    lines += [""]
    checks = [(s, n, runs[s][str(n)]["encoder"]) for s in seeds
              for n in p["layers"] if int(n) > 0]
    bad = [f"seed {s} top {n}" for s, n, c in checks
           if not c["frozen_bit_identical"]]
    lines += [] if not checks else [
        "Frozen encoder layers after training vs the pretrained weights: "
        + ("bit-identical in every fine-tuned run" if not bad else
           "NOT bit-identical in " + ", ".join(bad))
        + "; trained encoder parameters "
        + ", ".join(f"{c['trained_params']:,} of "
                    f"{c['trained_params'] + c['frozen_params']:,} (top {n})"
                    for _, n, c in checks[:len(p['layers']) - 1])
        + "; largest change of a trained weight "
        + f"{max(c['trained_max_abs_change'] for _, _, c in checks):.2g}.",
        ""]
    lines += ["Per seed (test Recall@20): " + "; ".join(
        f"seed {s}: " + ", ".join(
            f"{arm_label(n)} {runs[s][str(n)]['test']['recall@20']:.4f}"
            for n in p["layers"]) for s in seeds) + ".", ""]
  return "\n".join(lines)


def _source_results(args, seed: int) -> dict:
  with open(os.path.join(source_dir(args, seed), "results.json")) as f:
    res = json.load(f)
  return {k: {m: res[k][m] for m in METRICS} for k in ("valid", "test")}


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.render:
    return common.render_page(args.json, args.out, render)
  args.layers = [int(n) for n in args.layers.split(",")]
  if args.layers[0] != 0:
    raise SystemExit("--layers: the first arm must be 0 (the frozen encoder)")
  protocol = {k: v for k, v in vars(args).items()
              if k not in ("json", "out", "render")}
  results = {"protocol": protocol,
             "command": common.command("text_finetune", argv),
             "hardware": common.hardware_line(), "runs": {}, "source": {}}

  def save():
    summarise(results)
    results["hardware"] = common.hardware_line()
    common.write_json(args.json, results)
    common.write_page(args.out, render(results))

  for seed in [int(s) for s in args.seeds.split(",")]:
    paths = {n: os.path.join(args.workdir, f"seed{seed}", f"layers{n}",
                             "results.json") for n in args.layers}
    if all(os.path.exists(path) for path in paths.values()):
      runs = {}
      for n, path in paths.items():
        with open(path) as f:
          runs[str(n)] = json.load(f)
        texts = runs[str(n)].get("texts")
        if texts:  # an older record: its per-step counts took every sampled
          # negative, not the texts re-encoded (`step_texts`); its sizes stand
          runs[str(n)]["texts"] = {k: texts[k] for k in
                                   ("num_texts", "length", "states_gib")}
      log(f"seed {seed}: read back")
    else:
      log(f"seed {seed}: start")
      runs = run_seed(args, seed)
      for n, path in paths.items():
        common.write_json(path, runs[str(n)])
    results["runs"][str(seed)] = runs
    results["source"][str(seed)] = _source_results(args, seed)
    log(f"seed {seed}: test recall@20 " + ", ".join(
        f"layers {n} {runs[str(n)]['test']['recall@20']:.4f}"
        for n in args.layers))
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
  p.add_argument("--batch_size", type=int, default=0,
                 help="rows per step (0: the source run's)")
  p.add_argument("--steps", type=int, default=4)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--workdir", default="workdirs/text_finetune")
  common.add_result_args(p, "text_finetune")
  return p.parse_args(argv)


if __name__ == "__main__":
  main()

"""Does low-fidelity validation rank architectures like full training does?

  JAXREC_DATA_ROOT=/work/shared/data python -m benchmarks.search_fidelity \
      --dataset lastfm --num 14 --rungs 10,30,90 --budget-seconds 3000
  python -m benchmarks.search_fidelity --render

Protocol: `--num` architectures of the search's declared space
(`configs/search.py:<dataset>`, `jaxrec.search.space`), sampled with
`--seed`; the first two are fixed: LightGCN's point and an NGCF-like point
(GCN aggregation with Hadamard messages, concatenated layers). Each is
trained ALONE with the search's training config (same split, seed, batch
size, optimiser) for the last rung's epochs, without early stopping; the
validation split is evaluated at every `--eval-every` epochs and at every
rung, and the curve is kept. The test split is never evaluated.

Reported from the curves: Kendall tau (scipy.stats.kendalltau, tau-b, with
its p-value) between each rung's score (best validation Recall@20 up to the
rung, as the search's trials report it) and the final score (best up to the
last rung); which of the final top 3 each rung's cut to the top 1/eta keeps,
and what successive halving over the sample would have picked; per design
dimension, the final ranks of each value (the design-space profile of Wang,
Zhao & Shi, WSDM 2022); seconds per epoch by aggregation. No new training
starts after `--budget-seconds`; the page states how many finished.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from benchmarks import common

NAME = "search_fidelity"
# The two known designs always in the sample.
LIGHTGCN = dict(message="identity", aggregation="lightgcn", num_layers=3,
                combine="mean", interaction="dot", embed_dim=64,
                learning_rate=1e-3, l2_reg=1e-4)
NGCF_LIKE = dict(message="hadamard", aggregation="gcn", num_layers=3,
                 combine="concat", interaction="dot", embed_dim=64,
                 learning_rate=1e-3, l2_reg=1e-5)


# ----------------------------------------------------------------------------
# Analysis (pure; tests/search_fidelity_test.py).


def rung_scores(curve: Mapping[int, float], rungs: Sequence[int]
                ) -> list[float]:
  """Best validation score up to each rung's epoch.

  Args:
    curve: {epoch: validation metric} of one candidate.
    rungs: rung epochs, increasing.

  Returns:
    One score per rung: the maximum over evaluated epochs <= the rung.
  """
  return [max(v for e, v in curve.items() if e <= r) for r in rungs]


def final_ranks(final: Sequence[float]) -> np.ndarray:
  """Rank of each candidate by final score, 1 = best; ties share the mean."""
  return stats.rankdata(-np.asarray(final, float), method="average")


def tau_table(scores: np.ndarray) -> list[dict]:
  """Kendall tau of every rung's score against the last rung's.

  Args:
    scores: [num_candidates, num_rungs] rung scores; the last column is the
      final score.

  Returns:
    One dict per rung: {'rung', 'tau', 'p'} (tau-b and its two-sided p).
  """
  scores = np.asarray(scores, float)
  out = []
  for r in range(scores.shape[1]):
    res = stats.kendalltau(scores[:, r], scores[:, -1])
    out.append({"rung": r, "tau": float(res.statistic),
                "p": float(res.pvalue)})
  return out


def top_by(score: Sequence[float], keep: int,
           among: Sequence[int] | None = None) -> list[int]:
  """Indices of the `keep` best scores (ties: lower index first)."""
  among = range(len(score)) if among is None else among
  return sorted(among, key=lambda i: (-score[i], i))[:keep]


def halving_table(scores: np.ndarray, eta: float, top: int = 3,
                  protected: Sequence[int] = ()) -> dict:
  """What a cut to the top 1/eta at each rung keeps of the final top `top`.

  Args:
    scores: [num_candidates, num_rungs] rung scores (last = final).
    eta: halving factor; a cut keeps ceil(n / eta) of n.
    top: size of the final top set.
    protected: candidates the chain carries to every rung besides the top
      1/eta (`successive_halving(promote_initial=True)`).

  Returns:
    {'final_top': indices of the final top, 'per_rung': [{'rung', 'keep',
    'kept_of_top'}] for a single cut of all candidates at each rung,
    'chain': [{'rung', 'survivors'}] of successive halving over the sample
    (rung r cuts the survivors of rung r - 1), 'pick': the chain's last
    survivor (best final-rung score among the last survivors)}.
  """
  scores = np.asarray(scores, float)
  n, num_rungs = scores.shape
  final_top = top_by(scores[:, -1], top)
  keep = max(1, math.ceil(n / eta - 1e-9))
  per_rung = []
  for r in range(num_rungs):
    kept = top_by(scores[:, r], keep)
    per_rung.append({"rung": r, "keep": keep,
                     "kept_of_top": len(set(kept) & set(final_top))})
  chain, alive = [], list(range(n))
  for r in range(num_rungs - 1):
    if len(alive) <= 1:
      break
    kept = top_by(scores[:, r], max(1, math.ceil(len(alive) / eta - 1e-9)),
                  alive)
    alive = kept + [i for i in protected if i in alive and i not in kept]
    chain.append({"rung": r, "survivors": alive})
  pick = top_by(scores[:, -1], 1, alive)[0]
  return {"final_top": final_top, "per_rung": per_rung, "chain": chain,
          "pick": pick}


def profile(archs: Sequence[Mapping], ranks: Sequence[float],
            dims: Sequence[str]) -> list[dict]:
  """Design-space profile: the ranks each value of each dimension got.

  Args:
    archs: the candidates' architectures.
    ranks: one rank per candidate (1 = best).
    dims: dimensions to profile.

  Returns:
    One dict per (dimension, value present in the sample), in `dims` order
    then value order of first appearance sorted by repr: {'dimension',
    'value', 'n', 'median_rank', 'mean_rank', 'ranks'}.
  """
  out = []
  for dim in dims:
    values = sorted({a[dim] for a in archs}, key=repr)
    for v in values:
      rs = sorted(float(r) for a, r in zip(archs, ranks) if a[dim] == v)
      out.append({"dimension": dim, "value": v, "n": len(rs),
                  "median_rank": float(np.median(rs)),
                  "mean_rank": float(np.mean(rs)), "ranks": rs})
  return out


def cost_by(archs: Sequence[Mapping], epoch_seconds: Sequence[float],
            dim: str = "aggregation") -> list[dict]:
  """Median seconds per epoch (steady state) per value of `dim`."""
  out = []
  for v in sorted({a[dim] for a in archs}, key=repr):
    xs = [s for a, s in zip(archs, epoch_seconds) if a[dim] == v]
    out.append({dim: v, "n": len(xs), "median_s_per_epoch":
                float(np.median(xs)), "min": float(min(xs)),
                "max": float(max(xs))})
  return out


def analyse(results: dict) -> dict:
  """Every table of the page from the measured candidates."""
  cands = results["candidates"]
  rungs = results["rungs"]
  archs = [c["arch"] for c in cands]
  curves = [{int(e): v for e, v in c["curve"].items()} for c in cands]
  scores = np.array([rung_scores(c, rungs) for c in curves])  # [n, rungs]
  ranks = final_ranks(scores[:, -1])
  rung0_ranks = final_ranks(scores[:, 0])
  dims = [d for d in results["dimensions"]
          if len({repr(a[d]) for a in archs}) > 1]
  prof = profile(archs, ranks, dims)
  prof0 = profile(archs, rung0_ranks, dims)
  for row, row0 in zip(prof, prof0):
    row["median_rank_rung0"] = row0["median_rank"]
  # Epoch of each curve's maximum (the earliest on ties).
  best_epochs = [max(c, key=lambda e, c=c: (c[e], -e)) for c in curves]
  return {"scores": scores.tolist(), "final_ranks": ranks.tolist(),
          "best_epochs": best_epochs,
          "rung0_ranks": rung0_ranks.tolist(),
          "tau": tau_table(scores) if len(cands) >= 3 else [],
          "halving": halving_table(scores, results["eta"]),
          "halving_warm": halving_table(
              scores, results["eta"],
              protected=[i for i, x in enumerate(archs) if x == LIGHTGCN]),
          "profile": prof,
          "cost": cost_by(archs, [c["s_per_epoch"] for c in cands])}


# ----------------------------------------------------------------------------
# Measurement.


def arch_label(arch: Mapping) -> str:
  return (f"{arch['aggregation']}, {arch['message']}, {arch['num_layers']} "
          f"layers, {arch['combine']}, {arch['interaction']}, d "
          f"{arch['embed_dim']}, lr {arch['learning_rate']:g}, L2 "
          f"{arch['l2_reg']:g}")


def sample_archs(space, num: int, seed: int) -> list[dict]:
  """LightGCN's point, the NGCF-like point, then distinct random samples."""
  from jaxrec.search import space as space_lib  # pylint: disable=g-import-not-at-top
  from jaxrec.search import strategies  # pylint: disable=g-import-not-at-top
  fixed = [dict(LIGHTGCN), dict(NGCF_LIKE)]
  for a in fixed:
    space.validate(a)
  seen = {space_lib.arch_key(a) for a in fixed}
  rng = np.random.default_rng(seed)
  out = list(fixed)
  while len(out) < num:
    arch = strategies.sample_new(space, rng, seen)
    if arch is None:
      break
    seen.add(space_lib.arch_key(arch))
    out.append(arch)
  return out[:num]


def train_candidate(config, dataset, eval_epochs: Sequence[int]) -> dict:
  """Trains one config for max(eval_epochs) epochs; validation curve only.

  Same steps as `train.train_and_evaluate` (init, optimiser, batches,
  scanned jitted steps), no early stopping, no checkpoints, no test split.

  Returns:
    {'curve': {epoch: valid metric}, 'epoch_seconds': [...], 'seconds'}.
  """
  import functools  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jaxrec import input_pipeline  # pylint: disable=g-import-not-at-top
  from jaxrec import models  # pylint: disable=g-import-not-at-top
  from jaxrec import optimizers  # pylint: disable=g-import-not-at-top
  from jaxrec import train  # pylint: disable=g-import-not-at-top
  from jaxrec.data import sampler  # pylint: disable=g-import-not-at-top

  start = time.perf_counter()
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, dataset))
  model = models.get_model(config.model_name, dataset.num_users,
                           dataset.num_items, **config.model.to_dict())
  steps_per_epoch = math.ceil(len(dataset.train) / config.batch_size)
  tx = optimizers.make_optimizer(config, steps_per_epoch)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  params = train.init_params(model, graph, config.batch_size, init_rng,
                             config.num_negatives)
  state = train.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
  step_fn = jax.jit(functools.partial(train.train_steps, model=model),
                    donate_argnums=0)
  evaluator = train.Evaluator(model, graph, dataset, config)
  pos_keys = sampler.positive_keys(dataset.train, dataset.num_items)
  spc = max(1, config.steps_per_call)
  curve, epoch_seconds = {}, []
  wanted = set(eval_epochs)
  for epoch in range(max(eval_epochs)):
    t0 = time.perf_counter()
    rows = input_pipeline.epoch_batches(config, dataset, epoch, pos_keys,
                                        model.batch_fields)
    for lo in range(0, int(rows.mask.shape[0]), spc):
      chunk = jax.tree.map(lambda v, lo=lo: v[lo:lo + spc], rows)
      state, _ = step_fn(state, graph, chunk, train_rng)
    jax.block_until_ready(state)
    epoch_seconds.append(time.perf_counter() - t0)
    if epoch + 1 in wanted:
      valid = evaluator(state.params, "valid")  # never 'test'
      curve[epoch + 1] = float(valid[config.selection_metric])
  return {"curve": curve, "epoch_seconds": epoch_seconds,
          "seconds": time.perf_counter() - start}


def measure(args) -> dict:
  """Trains the sample; writes the JSON after every candidate."""
  from jaxrec import config_utils  # pylint: disable=g-import-not-at-top
  from jaxrec import input_pipeline  # pylint: disable=g-import-not-at-top
  from jaxrec.search import space as space_lib  # pylint: disable=g-import-not-at-top

  base = config_utils.load_config_file(
      os.path.join(common.REPO, "configs", "search.py"), args.dataset)
  space = space_lib.Space.from_overrides(base.search.space.to_dict())
  rungs = [int(r) for r in args.rungs.split(",")]
  eval_epochs = sorted(set(range(args.eval_every, rungs[-1] + 1,
                                 args.eval_every)) | set(rungs))
  dataset = input_pipeline.order_nodes(base, input_pipeline.load_data(base))
  archs = sample_archs(space, args.num, args.seed)
  results = {"command": common.command(NAME, args.argv),
             "hardware": common.hardware_line(), "dataset": args.dataset,
             "dataset_summary": dataset.summary(), "seed": args.seed,
             "rungs": rungs, "eta": args.eta, "eval_epochs": eval_epochs,
             "metric": base.selection_metric, "sampled": len(archs),
             "budget_seconds": args.budget_seconds,
             "dimensions": [c.name for c in space.choices],
             "space": {c.name: list(c.values) for c in space.choices},
             "candidates": [], "load": [], "elapsed_s": 0.0}
  done = {}
  if args.resume and os.path.exists(args.json):
    import json  # pylint: disable=g-import-not-at-top
    with open(args.json, encoding="utf-8") as f:
      old = json.load(f)
    same = ("dataset", "seed", "rungs", "eval_epochs", "metric")
    if any(old[k] != results[k] for k in same):
      raise ValueError(f"--resume: {args.json} holds another protocol "
                       f"({ {k: old[k] for k in same} })")
    done = {c["index"]: (c, load) for c, load in zip(old["candidates"],
                                                       old["load"])}
    results["command"] = old["command"] + "\n" + results["command"]
    results["elapsed_s"] = old["elapsed_s"]
  start = time.perf_counter() - results["elapsed_s"]
  for i, arch in enumerate(archs):
    if i in done and done[i][0]["arch"] == arch:  # trained by an earlier run
      results["candidates"].append(done[i][0])
      results["load"].append(done[i][1])
      continue
    if args.budget_seconds and time.perf_counter() - start > args.budget_seconds:
      break
    config = space.to_config(arch, base)
    config.progress = False
    res = train_candidate(config, dataset, eval_epochs)
    steady = res["epoch_seconds"][1:] or res["epoch_seconds"]
    results["candidates"].append({
        "index": i, "arch": arch, "curve": res["curve"],
        "seconds": round(res["seconds"], 2),
        "s_per_epoch": round(float(np.median(steady)), 4)})
    results["load"].append(round(os.getloadavg()[0], 1))
    print(f"[{i}] {res['seconds']:.0f}s {arch_label(arch)}: "
          f"{ {e: round(v, 4) for e, v in res['curve'].items()} }", flush=True)
    results["elapsed_s"] = round(time.perf_counter() - start, 1)
    common.write_json(args.json, results)
  return results


# ----------------------------------------------------------------------------
# Page.


def _fmt(x, digits=3):
  return f"{x:.{digits}f}"


def render(results: dict) -> str:
  """The results page, from the JSON alone."""
  a = analyse(results)
  cands, rungs = results["candidates"], results["rungs"]
  n = len(cands)
  metric = results["metric"]
  lines = [f"# Search fidelity on {results['dataset']}: do short runs rank "
           "architectures like long ones?", "",
           "Written by `benchmarks/search_fidelity.py` from "
           f"`benchmarks/results/{NAME}.json`.", "",
           "```"] + [common.as_module_command(c) for c in
                     results["command"].split("\n")] + ["```", "",
           results["hardware"] + f" (load average after each candidate "
           f"{min(results['load'])}-{max(results['load'])}).", "",
           results["dataset_summary"], "",
           f"Candidates: {n} trained of {results['sampled']} sampled "
           f"(seed {results['seed']}, no training starts after "
           f"{results['budget_seconds']:g} s of measurement; "
           f"{results['elapsed_s']:.0f} s in all). The first two are fixed: "
           "LightGCN's point and an NGCF-like point; the rest are uniform "
           "samples of the search's space (`configs/search.py:"
           f"{results['dataset']}`). Each trains alone for {rungs[-1]} "
           "epochs with the search's training config and no early "
           f"stopping; validation {metric} is evaluated at epochs "
           f"{', '.join(map(str, results['eval_epochs']))}. A rung's score "
           f"is the best validation {metric} up to its epoch (as the "
           f"search's trials report it); the final score is the best up to "
           f"epoch {rungs[-1]}. The test split is never evaluated.", ""]
  search_rungs = _search_rungs(results["dataset"])
  if search_rungs[-1] > rungs[-1]:
    lines += [f"The search's own halving rungs on {results['dataset']} are "
              f"{' / '.join(map(str, search_rungs))} epochs; this "
              f"measurement stops at {rungs[-1]} (the CPU time for "
              f"{search_rungs[-1]} epochs per candidate would have allowed "
              "only a few candidates).", ""]
  # Candidates.
  rows = []
  for c, s, r, load in zip(cands, a["scores"], a["final_ranks"],
                           results["load"]):
    rows.append([c["index"], arch_label(c["arch"])] +
                [_fmt(x, 4) for x in s] + [f"{r:g}", _fmt(c["s_per_epoch"], 2),
                                           f"{c['seconds']:.0f}", load])
  lines += ["## Candidates", "",
            "Seconds are wall-clock on the shared machine; 'load' is the "
            "1-minute load average when the candidate finished.",
            ""] + common.markdown_table(
      ["#", "architecture"] + [f"valid {metric} @{e}" for e in rungs] +
      ["final rank", "s / epoch", "s total", "load"], rows) + [""]
  # Tau.
  lines += ["## Rank correlation with the final score", ""]
  if a["tau"]:
    h = a["halving"]
    rows = [[f"{rungs[t['rung']]}", f"{t['tau']:+.3f}", f"{t['p']:.3g}",
             f"{p['kept_of_top']} of {len(h['final_top'])} "
             f"(top {p['keep']} of {n})"]
            for t, p in zip(a["tau"], h["per_rung"])]
    lines += common.markdown_table(
        ["rung epochs", "Kendall tau vs final", "p", "final top 3 kept by a "
         f"cut to 1/{results['eta']:g} here"], rows)
    pick = h["pick"]
    chain = "; ".join(f"after the {rungs[c['rung']]}-epoch rung: "
                      f"{', '.join('#' + str(cands[i]['index']) for i in c['survivors'])}"
                      for c in h["chain"])
    lines += ["", f"Final top 3: "
              f"{', '.join('#' + str(cands[i]['index']) for i in h['final_top'])}."
              f" Successive halving over this sample (eta "
              f"{results['eta']:g}) keeps {chain}, and picks "
              f"#{cands[pick]['index']}, final rank "
              f"{a['final_ranks'][pick]:g} of {n}."]
    hw = a["halving_warm"]
    if hw["chain"] != h["chain"]:
      lines += ["", "With LightGCN's point carried to every rung "
                "(`config.search.promote_warm_start`), it picks "
                f"#{cands[hw['pick']]['index']}, final rank "
                f"{a['final_ranks'][hw['pick']]:g} of {n}."]
    lines += [""]
  # Profile.
  rows = [[p["dimension"], p["value"], p["n"], f"{p['median_rank']:g}",
           f"{p['median_rank_rung0']:g}",
           ", ".join(f"{r:g}" for r in p["ranks"])] for p in a["profile"]]
  lines += ["## Design-space profile (final ranks per value)", "",
            f"Rank 1 = best final validation {metric} among the {n}. "
            f"'median rank @{rungs[0]}' ranks the same candidates by their "
            f"{rungs[0]}-epoch score instead.", ""] + common.markdown_table(
                ["dimension", "value", "n", "median final rank",
                 f"median rank @{rungs[0]}", "final ranks"], rows) + [""]
  # Cost.
  rows = [[c["aggregation"], c["n"], _fmt(c["median_s_per_epoch"], 2),
           f"{_fmt(c['min'], 2)}-{_fmt(c['max'], 2)}"] for c in a["cost"]]
  lines += ["## Cost by aggregation", "",
            "Training seconds per epoch (median over epochs after the first, "
            "which compiles), per candidate; the column gives the median over "
            "candidates and their range. Wall-clock on the shared machine.",
            ""] + common.markdown_table(
                ["aggregation", "n", "median s / epoch", "range"], rows) + [""]
  lines += ["## What the numbers say", ""] + conclusions(results, a) + [""]
  lines += ["## Not measured here", "",
            "The searched best against LightGCN tuned by the same search "
            "with the same wall-time budget (on lastfm, amazon_beauty and "
            "ml_latest_small, 3 search seeds, test Recall@20 / NDCG@20), and "
            "candidates per hour of a changed search.", ""]
  return "\n".join(lines)


def _search_rungs(dataset: str) -> list[int]:
  """The halving rungs `configs/search.py:<dataset>` trains."""
  from jaxrec import config_utils  # pylint: disable=g-import-not-at-top
  from jaxrec.search import strategies  # pylint: disable=g-import-not-at-top
  s = config_utils.load_config_file(
      os.path.join(common.REPO, "configs", "search.py"), dataset)
  return strategies.rung_epochs(s.search.min_epochs, s.search.eta,
                                s.search.max_epochs, s.eval_every)


def conclusions(results: dict, a: dict) -> list[str]:
  """Plain statements that follow from the tables."""
  cands, rungs = results["candidates"], results["rungs"]
  n = len(cands)
  out = []
  if a["tau"]:
    t0 = a["tau"][0]
    middle = "".join(f"; the {rungs[t['rung']]}-epoch score {t['tau']:+.2f}"
                     f" (p {t['p']:.2g})" for t in a["tau"][1:-1])
    out.append(f"* Over {n} candidates, the {rungs[0]}-epoch score ranks "
               f"them with Kendall tau {t0['tau']:+.2f} (p {t0['p']:.2g}) "
               f"against the {rungs[-1]}-epoch score{middle}.")
    h = a["halving"]
    p0 = h["per_rung"][0]
    out.append(f"* A cut at the first rung to the top {p0['keep']} keeps "
               f"{p0['kept_of_top']} of the final top 3. Halving over this "
               f"sample picks the candidate of final rank "
               f"{a['final_ranks'][h['pick']]:g}.")
  best = int(np.argmin(a["final_ranks"]))
  out.append(f"* The final best, #{cands[best]['index']} "
             f"({arch_label(cands[best]['arch'])}), ranks "
             f"{a['rung0_ranks'][best]:g} of {n} after {rungs[0]} epochs.")
  lgcn = [i for i, c in enumerate(cands) if c["arch"] == LIGHTGCN]
  if lgcn:
    i = lgcn[0]
    out.append(f"* LightGCN's point (lr 1e-3) ranks "
               f"{a['rung0_ranks'][i]:g} of {n} after {rungs[0]} epochs and "
               f"{a['final_ranks'][i]:g} of {n} after {rungs[-1]}.")
  lr_rows = [p for p in a["profile"] if p["dimension"] == "learning_rate"]
  if lr_rows:
    out.append("* Learning rate, median rank at the first rung -> final: "
               + "; ".join(f"{p['value']:g}: {p['median_rank_rung0']:g} -> "
                           f"{p['median_rank']:g} (n {p['n']})"
                           for p in lr_rows) + ".")
  by_dim = {}
  for p in a["profile"]:
    by_dim.setdefault(p["dimension"], []).append(p)
  out.append("* Design-space profile, best and worst median final rank per "
             "dimension: " + "; ".join(
                 f"{d} {min(ps, key=lambda p: p['median_rank'])['value']} "
                 f"({min(p['median_rank'] for p in ps):g}) vs "
                 f"{max(ps, key=lambda p: p['median_rank'])['value']} "
                 f"({max(p['median_rank'] for p in ps):g})"
                 for d, ps in by_dim.items()) + ".")
  rising = sum(e == rungs[-1] for e in a["best_epochs"])
  out.append(f"* {rising} of {n} candidates score best at epoch "
             f"{rungs[-1]}, the last one evaluated: the final score is "
             "itself a fixed-budget score, not a converged one.")
  total = sum(c["seconds"] for c in cands)
  by_agg = {}
  for c in cands:
    agg = c["arch"]["aggregation"]
    by_agg[agg] = by_agg.get(agg, 0.0) + c["seconds"]
  out.append("* Share of the training seconds: " + ", ".join(
      f"{k} {100 * v / total:.0f}%" for k, v in
      sorted(by_agg.items(), key=lambda kv: -kv[1])) + ".")
  cost = sorted(a["cost"], key=lambda c: c["median_s_per_epoch"])
  if len(cost) > 1:
    out.append(f"* Cost: {cost[-1]['aggregation']} candidates take "
               f"{cost[-1]['median_s_per_epoch'] / cost[0]['median_s_per_epoch']:.1f}x "
               f"the seconds per epoch of {cost[0]['aggregation']} ones "
               "(median).")
  out.append(f"* With {n} candidates these are rough: one sample, one "
             "training seed per candidate.")
  return out


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.render:
    return common.render_page(args.json, args.out, render)
  results = measure(args)
  common.write_page(args.out, render(results))
  return results


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--dataset", default="lastfm")
  p.add_argument("--num", type=int, default=14,
                 help="candidates (the first two fixed)")
  p.add_argument("--seed", type=int, default=0, help="sampling seed")
  p.add_argument("--rungs", default="10,30,90",
                 help="rung epochs; the last is the final fidelity")
  p.add_argument("--eta", type=float, default=3.0)
  p.add_argument("--eval-every", type=int, default=10)
  p.add_argument("--budget-seconds", type=float, default=0.0,
                 help="no new candidate starts after this many seconds of "
                 "measurement, --resume runs included (0: none)")
  p.add_argument("--resume", action="store_true",
                 help="keep the candidates --json already holds (same "
                 "protocol) and train the rest of the sample")
  common.add_result_args(p, NAME)
  args = p.parse_args(argv)
  import sys  # pylint: disable=g-import-not-at-top
  args.argv = sys.argv[1:] if argv is None else list(argv)
  return args


if __name__ == "__main__":
  main()

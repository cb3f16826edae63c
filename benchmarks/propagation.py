"""Propagation kernels on the Gowalla training graph: 3 LightGCN layers, d=64.

Times every kernel of `jaxrec.graphs.propagation.METHODS` ('segment_sum'
gather/scatter, its sorted-segment variant 'segment_sum_sorted',
`jax.experimental.sparse` 'bcoo' and 'bcsr', and the symmetric-only
'symmetric', 'bcsr_symmetric' and 'tiled_symmetric' custom VJPs and their
native-kernel versions 'native_symmetric' and 'native_tiled_symmetric'; the
tiled ones use the column tiles `input_pipeline.build_graph` attaches to this graph,
see benchmarks/tiling.py) on the real Gowalla training graph of the 'gowalla'
preset (LightGCN-PyTorch split, 10% of train carved off for validation, so
the graph holds 2 x 729k directed edges). Two programs per kernel, each jitted:
  fwd      e^K = layer-mean of [e^0, A e^0, A^2 e^0, A^3 e^0]   # [N, 64]
  fwd+bwd  (<e^K, c>, d <e^K, c> / d e^0) for a fixed random c  # [], [N, 64]
After one warm-up call (compilation), the kernels are timed in interleaved
rounds (so load from other jobs biases all kernels alike); each figure is the
median over the rounds. Every kernel's output is checked against
'segment_sum' (max abs difference printed).

With --train_steps N it also times N scanned LightGCN training steps (BPR +
L2, Adam, batch 2048: `train.train_steps`) per general kernel and for
the symmetric kernels LightGCN runs on the symmetric ('sym'-normalised)
training graph ('tiled_symmetric' when it has tiles, or its native version).

Usage:
  python -m benchmarks.propagation [--repeats 7] [--methods a,b] [--train_steps 4]
      [--dim 64] [--layers 3] [--out docs/results/propagation.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxrec import batches
from jaxrec import config_utils
from jaxrec import input_pipeline
from jaxrec import models
from jaxrec import optimizers
from jaxrec import train
from jaxrec.graphs import propagation
from jaxrec.graphs import tiling
from jaxrec.models.lightgcn import light_propagate


def gowalla_graph():
  """(training graph with JAX arrays, dataset) of the 'gowalla' preset.

  The graph always carries column tiles (explicit block size): automatic
  tiling drops them on Gowalla when the native kernel runs, and the tiled
  methods need them; every other method ignores them.
  """
  config = config_utils.base_config("gowalla")
  config.graph.tile_nodes = tiling.DEFAULT_BLOCK_NODES
  dataset = input_pipeline.load_data(config)
  graph = input_pipeline.build_graph(config, dataset)
  return jax.tree.map(jnp.asarray, graph), dataset


def make_programs(method: str, num_layers: int):
  """Jitted (fwd(graph, x) -> [N, d], fwd_bwd(graph, x, c)) for one kernel.

  The graph is an argument (as in training), not a closed-over constant that
  XLA would constant-fold (e.g. BCSR row pointers at compile time).
  """
  def forward(graph, x):
    layers = light_propagate(graph, x, num_layers, method=method)
    return jnp.mean(jnp.stack(layers), axis=0)  # [N, d]

  def forward_backward(graph, x, cotangent):
    # value_and_grad: the loss is linear in x, so a bare grad would let XLA
    # drop the forward pass; returning the value keeps it, as in training.
    return jax.value_and_grad(
        lambda e: jnp.vdot(forward(graph, e), cotangent))(x)
  return jax.jit(forward), jax.jit(forward_backward)


def train_step_programs(graph, dataset, methods, steps: int, dim: int,
                        num_layers: int):
  """Per method: (jitted `train.train_steps`, initial state, [steps, B] rows).

  LightGCN with BPR + L2 and Adam, batch 2048, exactly the training step of
  `train.train_and_evaluate`, with the propagation kernel set per model.
  """
  import functools  # pylint: disable=g-import-not-at-top
  from jaxrec.data import sampler  # pylint: disable=g-import-not-at-top
  config = config_utils.base_config("gowalla")
  rows = input_pipeline.stack_batches(sampler.epoch_triples(
      dataset.train, dataset.num_users, dataset.num_items, 0, 0), 2048)
  rows = batches.take_steps(rows, 0, steps)
  out = {}
  for m in methods:
    model = models.get_model("lightgcn", dataset.num_users, dataset.num_items,
                            embed_dim=dim, num_layers=num_layers, l2_reg=1e-4,
                            propagation=m)
    params = train.init_params(model, graph, 2048, jax.random.key(0))
    state = train.TrainState.create(apply_fn=model.apply, params=params,
                                    tx=optimizers.make_optimizer(config))
    fn = jax.jit(functools.partial(train.train_steps, model=model))
    out[m] = (fn, state, rows)
  return out


def time_call(fn, *args) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - start


def run(methods, repeats: int, dim: int, num_layers: int,
        train_steps: int = 0) -> dict:
  """Times the kernels; returns a dict of results for `to_markdown`."""
  graph, dataset = gowalla_graph()
  num_nodes = int(graph.nodes["mask"].shape[0])
  num_edges = int(graph.senders.shape[0])
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(num_nodes, dim)).astype(np.float32))
  c = jnp.asarray(rng.normal(size=(num_nodes, dim)).astype(np.float32))
  programs = {m: make_programs(m, num_layers) for m in methods}
  compile_s, outputs = {}, {}
  for m in methods:  # first call compiles
    fwd, fwd_bwd = programs[m]
    compile_s[m] = (time_call(fwd, graph, x), time_call(fwd_bwd, graph, x, c))
    outputs[m] = (np.asarray(fwd(graph, x)),
                  jax.tree.map(np.asarray, fwd_bwd(graph, x, c)))
  ref = outputs.get("segment_sum", outputs[methods[0]])
  times = {m: ([], []) for m in methods}
  loads = []
  for _ in range(repeats):  # interleaved rounds
    loads.append(os.getloadavg()[0])
    for m in methods:
      fwd, fwd_bwd = programs[m]
      times[m][0].append(time_call(fwd, graph, x))
      times[m][1].append(time_call(fwd_bwd, graph, x, c))
  loads.append(os.getloadavg()[0])
  step_times = {}
  if train_steps:
    general = [m for m in methods if m in propagation.GENERAL_METHODS
               or m in (propagation.SYMMETRIC_METHOD, propagation.TILED_METHOD,
                        *propagation.NATIVE_METHODS)]
    progs = train_step_programs(graph, dataset, general, train_steps, dim,
                                num_layers)
    rng = jax.random.key(1)
    for m in general:  # compile
      jax.block_until_ready(progs[m][0](progs[m][1], graph, progs[m][2], rng))
    for _ in range(max(3, repeats // 2)):
      for m in general:
        fn, state, rows = progs[m]
        step_times.setdefault(m, []).append(
            time_call(fn, state, graph, rows, rng) / train_steps)
    loads.append(os.getloadavg()[0])
  rows = []
  for m in methods:
    fwd_t, bwd_t = (statistics.median(t) for t in times[m])
    err = max(float(np.max(np.abs(outputs[m][0] - ref[0]))),
              float(np.max(np.abs(outputs[m][1][1] - ref[1][1]))))
    rows.append(dict(method=m, fwd=fwd_t, fwd_bwd=bwd_t,
                     fwd_min=min(times[m][0]), fwd_bwd_min=min(times[m][1]),
                     compile_fwd=compile_s[m][0], compile_fwd_bwd=compile_s[m][1],
                     max_abs_diff=err,
                     train_step=(statistics.median(step_times[m])
                                 if m in step_times else float("nan")),
                     general=m in propagation.GENERAL_METHODS))
  return dict(rows=rows, num_nodes=num_nodes, num_edges=num_edges, dim=dim,
              train_steps=train_steps,
              num_layers=num_layers, repeats=repeats, loads=loads,
              device=str(jax.devices()[0]), cpus=os.cpu_count(),
              machine=common.machine(), date=common.today())


def to_markdown(res: dict, command: str) -> str:
  """Markdown report of `run`'s results."""
  general = [r for r in res["rows"] if r["general"]]
  best = min(general, key=lambda r: r["fwd_bwd"]) if general else None
  edges_layers = res["num_edges"] * res["num_layers"]
  lines = [
      "# Propagation kernels: 3-layer LightGCN on the Gowalla training graph",
      "",
      f"Command: `{command}`",
      "",
      f"Graph: {res['num_nodes']:,} nodes, {res['num_edges']:,} directed edges "
      f"(preset 'gowalla': LightGCN-PyTorch train minus a 10% validation "
      f"carve-out), d={res['dim']}, {res['num_layers']} layers, float32, "
      f"{res['device']} ({res['cpus']} cores). Median of {res['repeats']} "
      "interleaved rounds after one warm-up (compiling) call.",
      f"Load average (1 min) during the rounds: "
      f"{min(res['loads']):.2f}-{max(res['loads']):.2f} "
      f"({res.get('machine', 'machine shared with other jobs')}"
      + (f", {res['date']}" if res.get("date") else "") + ").",
      "",
      "| method | general | fwd median s | fwd+bwd median s | fwd min s | "
      "fwd+bwd min s | fwd edges/s | first call fwd / fwd+bwd s | "
      "max abs diff vs segment_sum | LightGCN train step median s |",
      "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in res["rows"]:
    lines.append(
        f"| {r['method']} | {'yes' if r['general'] else 'no (symmetric A only)'}"
        f" | {r['fwd']:.3f} | {r['fwd_bwd']:.3f} | {r['fwd_min']:.3f} | "
        f"{r['fwd_bwd_min']:.3f} | {edges_layers / r['fwd']:.3g} | "
        f"{r['compile_fwd']:.2f} / {r['compile_fwd_bwd']:.2f} | "
        f"{r['max_abs_diff']:.2e} | {r['train_step']:.3f} |")
  if res["train_steps"]:
    lines += ["", "Train step = one jitted `train.train_steps` call (LightGCN "
              "BPR + L2, Adam, batch 2048) over "
              f"{res['train_steps']} scanned steps, divided by the step count; "
              "median of interleaved rounds (general kernels and "
              f"'{propagation.SYMMETRIC_METHOD}')."]
  fastest = (f"**{best['method']}**" if best else
             "(no general kernel in --methods)")
  lines += [
      "",
      f"Fastest general kernel (fwd+bwd median, what a training step runs): "
      f"{fastest}; `DEFAULT_METHOD` in "
      "jaxrec/graphs/propagation.py is "
      f"'{propagation.DEFAULT_METHOD}'; on graphs with symmetric weights "
      f"(the 'sym' training graph) `propagate` uses "
      f"'{propagation.SYMMETRIC_METHOD}' by default.",
  ]
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--methods", default=",".join(propagation.METHODS))
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--layers", type=int, default=3)
  parser.add_argument("--train_steps", type=int, default=0,
                      help="also time N scanned LightGCN train steps")
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)
  methods = [m for m in args.methods.split(",") if m]
  res = run(methods, args.repeats, args.dim, args.layers, args.train_steps)
  report = to_markdown(res, common.command("propagation", argv))
  print(report, flush=True)
  if args.out:
    common.write_page(args.out, report)


if __name__ == "__main__":
  main()

"""LightGCN training and evaluation speed vs graph size, with a roofline.

Sizes are counted in DIRECTED graph edges E = 2 x (unique train
interactions), the edges one propagation layer gathers and scatters. For
each synthetic size (`jaxrec.data.synthetic.make_synthetic`, ~30
interactions per user, I = min(U / 2, 40,000) items, 80/10/10 split, so
train interactions = E / 2) and for the real Gowalla graph (preset 'gowalla':
LightGCN-PyTorch train minus a 10% validation carve-out), a SEPARATE
subprocess (so peak RSS figures do not mix) measures:
  * seconds per training epoch of LightGCN (3 layers, d=64, batch 2048, BPR +
    L2, Adam): sampling + the jitted `train.train_steps` scanned over
    `steps_per_call`=16 steps, exactly as `train.train_and_evaluate` runs an
    epoch, after compiling every chunk shape. Sizes with more than
    --max_epoch_steps steps per epoch instead time --timed_calls calls of
    --timed_steps steps each and extrapolate: epoch = sampling + steps per
    epoch x median seconds per step (marked 'extrapolated').
  * propagation throughput: directed edges x layers / s of the jitted 3-layer
    forward (and of the training steps, counting forward layers only);
  * full-ranking evaluation of every user with a test item
    (`metrics.evaluate_ranking`, 1 GiB memory budget, train + valid masked,
    K=20): first call (with compilation) and compiled call;
  * peak RSS (VmHWM of /proc/self/status; `getrusage` ru_maxrss would
    include the parent's peak, since it survives execve) after data
    generation, after training and at the end.
The parent process measures this machine's limits: memory bandwidth (NumPy
copy of a 512 MiB array, 1 and 2 threads, bytes read + written) and peak
float32 FLOP/s (jitted 4096 x 4096 jnp matmul), and derives the roofline:
  propagation, per layer, two bounds (b = 4 bytes per gathered value, 2
    with --gather_dtype bfloat16; t = bytes / bandwidth):
    - no reuse: every gathered row comes from memory. CSR kernels (native,
      bcsr: one pass over receiver-sorted rows, each output row written
      once): E*(d*b + 8) (rows, columns, weights) + N*(d*4 + 4) (output,
      row pointers); other kernels (scatter-add into receivers):
      E*d*(b + 4) + E*12. The bandwidth limit of a kernel whose gathers
      miss the cache, as they do once the node table outgrows it;
      'achieved' is this bound's time over the measured one, above 100% only when
      the cache serves gathers (small graphs).
    - floor: each node row read once (perfect reuse): N*d*b + E*8 +
      N*(d*4 + 4) for CSR kernels. The distance between the two is what
      any node order or blocking could at most recover;
  evaluation: FLOPs = 2 * U_eval * I * d; t_min = FLOPs / peak FLOP/s.
It fits the growth exponent of epoch time (and of step time) vs edges over
the synthetic sizes by log-log least squares, checks the largest size's peak
RSS against --rss_limit_gb and writes a markdown report (the roofline, the
fit and the tables are `benchmarks/speed_report.py`; data loading and the
timed calls are `benchmarks/step_time.py`'s).

Propagation uses the kernel `input_pipeline.build_graph` picks (column tiles for
large graphs on CPU, `jaxrec.graphs.tiling`; --tile_nodes 0 turns them off),
named in the table's 'kernel' column. --gather_dtype bfloat16 sets
`config.graph.gather_dtype` (the native kernel gathers bfloat16 rows, sums in
float32; the kernel column then says 'bf16 gather').

With --steps_per_epoch S the batch grows with the data instead (batch =
ceil(train interactions / S), so every epoch is S full-graph steps): the
scaling of an epoch when the batch is sized to the data, as large-graph runs
do, rather than fixed at LightGCN's 2048 (with which an epoch has E/4096
full-graph steps, so epoch time grows as E^2 by construction).

Workers run with transparent huge pages for XLA's buffers, as
`jaxrec.main` does (`jaxrec.hugepages`; `JAXREC_HUGE_PAGES=0` turns them
off for both).

With --rounds R every size is measured R times, round by round (1e5, 1e6,
..., then again), and each size reports its median-step round: on a shared
host a slow spell then hits every size alike instead of one size's whole
measurement. The report lists each round's step times and exponent.

Usage:
  python -m benchmarks.speed [--sizes 1e5,1e6,1e7] [--gowalla]
      [--steps_per_epoch 0] [--rounds 1] [--out docs/results/speed.md]
      [--json /tmp/speed.json]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

from benchmarks import common
from benchmarks import step_time
from benchmarks.speed_report import DIM, K, LAYERS
from benchmarks.speed_report import median_round, report
from benchmarks.step_time import STEPS_PER_CALL, batch_size_for, load

EVAL_BUDGET = 1 << 30


def _rss_bytes() -> int:
  """Peak RSS of this process image: VmHWM (Linux), else ru_maxrss.

  ru_maxrss survives execve on Linux, so a worker started by the parent
  would report at least the parent's own peak; VmHWM belongs to the new
  address space and does not.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) * 1024  # kB
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB


def _load() -> float:
  return round(os.getloadavg()[0], 2)


# ----------------------------------------------------------------------------
# Machine limits (parent process).


def memory_bandwidth(size_bytes: int = 512 << 20, repeats: int = 5) -> dict:
  """Best NumPy copy bandwidth (read + write bytes / s), 1 and 2 threads."""
  src = np.ones(size_bytes // 8, np.float64)
  dst = np.empty_like(src)
  np.copyto(dst, src)  # fault the pages in
  out = {}
  for threads in (1, 2):
    parts = np.array_split(np.arange(len(src)), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]

    def copy(lo, hi):
      np.copyto(dst[lo:hi], src[lo:hi])
    best = math.inf
    for _ in range(repeats):
      workers = [threading.Thread(target=copy, args=b) for b in bounds]
      start = time.perf_counter()
      for w in workers:
        w.start()
      for w in workers:
        w.join()
      best = min(best, time.perf_counter() - start)
    out[threads] = 2 * size_bytes / best
  return {"copy_1thread": out[1], "copy_2threads": out[2],
          "bandwidth": max(out.values()), "load": _load()}


def peak_flops(n: int = 4096, repeats: int = 5) -> dict:
  """Best float32 FLOP/s of a jitted n x n matmul (2 n^3 FLOPs)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
  mm = jax.jit(lambda x, y: x @ y)
  jax.block_until_ready(mm(a, a))
  best = math.inf
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(mm(a, a))
    best = min(best, time.perf_counter() - start)
  return {"peak_flops": 2 * n ** 3 / best, "matmul_n": n, "load": _load()}


# ----------------------------------------------------------------------------
# One size (worker subprocess).


def _timed(fn, *args):
  import jax  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return time.perf_counter() - start, out


def measure(size: str, max_epoch_steps: int, timed_steps: int,
            timed_calls: int, steps_per_epoch: int = 0,
            tile_nodes: int = -1, min_epoch_seconds: float = 0.0,
            node_order: str = "data", gather_dtype: str = "float32") -> dict:
  """All measurements of one size (run in its own process).

  An epoch of at most `max_epoch_steps` steps is timed whole, repeated until
  `min_epoch_seconds` have been timed (at least once); the medians are
  reported. Longer epochs are extrapolated from `timed_calls` calls of
  `timed_steps` steps (median).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jaxrec import input_pipeline  # pylint: disable=g-import-not-at-top
  from jaxrec import metrics  # pylint: disable=g-import-not-at-top
  from jaxrec import train  # pylint: disable=g-import-not-at-top
  from jaxrec.graphs import native  # pylint: disable=g-import-not-at-top
  from jaxrec.graphs import tiling  # pylint: disable=g-import-not-at-top
  from jaxrec.data import sampler  # pylint: disable=g-import-not-at-top
  from jaxrec.models.lightgcn import light_propagate  # pylint: disable=g-import-not-at-top

  res = {"size": size}
  config, ds, res["data_seconds"] = load(size, tile_nodes=tile_nodes,
                                         node_order=node_order,
                                         gather_dtype=gather_dtype)
  res["node_order"] = node_order
  res["gather_dtype"] = gather_dtype
  res.update(dataset=ds.summary(), users=ds.num_users, items=ds.num_items,
             train=len(ds.train), rss_after_data=_rss_bytes())
  batch = res["batch"] = batch_size_for(len(ds.train), steps_per_epoch)
  config.batch_size = batch
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, ds))
  res["edges"] = int(graph.senders.shape[0])
  res["nodes"] = int(graph.nodes["mask"].shape[0])
  # What propagation.propagate picks for LightGCN's float32 tables.
  res["kernel"] = "native_symmetric" if native.enabled() else "bcsr_symmetric"
  if tiling.has_tiles(graph):
    tiles = graph.globals[tiling.TILES_KEY]
    res["kernel"] = (f"tiled ({input_pipeline.tile_block_nodes(tile_nodes, res['nodes'], res['edges'])}"
                     f"-node blocks, V={tiles['virtual_rows'].shape[0]:,})")
    if native.enabled():
      res["kernel"] = "native " + res["kernel"]
  if native.enabled() and gather_dtype == "bfloat16":
    res["kernel"] += ", bf16 gather"
  model, state, step_fn = step_time.lightgcn_trainer(config, ds, graph, batch)
  rng = jax.random.key(1)
  keys = sampler.positive_keys(ds.train, ds.num_items)

  def epoch_rows(epoch):
    triples = sampler.epoch_triples(ds.train, ds.num_users, ds.num_items,
                                    seed=0, epoch=epoch, keys=keys)
    return input_pipeline.stack_batches(triples, batch)

  start = time.perf_counter()
  rows = epoch_rows(0)
  res["sample_seconds"] = time.perf_counter() - start
  # Stacked batches are a pytree whose every leaf is [S, B, ...].
  num_steps = int(jax.tree.leaves(rows)[0].shape[0])
  res["steps_per_epoch"] = num_steps
  res["load_before_train"] = _load()
  if num_steps <= max_epoch_steps:  # the full epoch, as train_and_evaluate
    for s in sorted({min(STEPS_PER_CALL, num_steps), num_steps % STEPS_PER_CALL} - {0}):
      start = time.perf_counter()  # compile every chunk shape first
      state, m = step_fn(state, graph, jax.tree.map(lambda v: v[:s], rows), rng)
      jax.block_until_ready(m)
      res.setdefault("compile_seconds", []).append(time.perf_counter() - start)
    # Whole epochs, repeated until min_epoch_seconds have been timed: one
    # epoch of a small graph lasts well under a second, and a single such
    # reading swung by 30% between identical runs (docs/results/speed.md).
    epoch_times, sample_times = [], []
    while not epoch_times or sum(epoch_times) < min_epoch_seconds:
      start = time.perf_counter()
      rows, losses = epoch_rows(1 + len(epoch_times)), []
      sampled = time.perf_counter()
      for lo in range(0, num_steps, STEPS_PER_CALL):
        chunk = jax.tree.map(lambda v: v[lo:lo + STEPS_PER_CALL], rows)
        state, m = step_fn(state, graph, chunk, rng)
        losses.append(m["loss"])
      jax.block_until_ready(losses)
      epoch_times.append(time.perf_counter() - start)
      sample_times.append(sampled - start)
    res["epoch_loss"] = float(jnp.mean(jnp.concatenate(losses)))
    res["epoch_repeats"] = len(epoch_times)
    res["epoch_seconds_all"] = epoch_times
    res["epoch_seconds"] = statistics.median(epoch_times)
    res["step_seconds"] = statistics.median(
        (e - s) / num_steps for e, s in zip(epoch_times, sample_times))
    res["extrapolated"] = False
  else:  # fixed number of steps, extrapolated to the epoch
    s, chunk = step_time.step_windows(rows, timed_steps)
    compile_seconds, times, state, _ = step_time.time_calls(
        step_fn, state, graph, chunk, rng, timed_calls)
    res["compile_seconds"] = [compile_seconds]
    res["timed_steps"] = s * timed_calls
    res["step_seconds"] = statistics.median(times) / s
    res["epoch_seconds"] = res["sample_seconds"] + num_steps * res["step_seconds"]
    res["extrapolated"] = True
  res["load_after_train"] = _load()
  res["rss_after_train"] = _rss_bytes()

  # Forward propagation alone (3 layers, default kernel).
  fwd = jax.jit(lambda g, x: light_propagate(g, x, LAYERS)[-1])
  x = jnp.asarray(np.random.default_rng(0).normal(
      size=(res["nodes"], DIM)).astype(np.float32))
  _timed(fwd, graph, x)
  res["propagate_seconds"] = statistics.median(
      _timed(fwd, graph, x)[0] for _ in range(3))
  del x

  # Full-ranking evaluation of every user with a test item.
  user_emb, item_emb = jax.jit(functools.partial(train.embed, model=model))(
      state.params, graph)
  score_fn = train.make_score_fn(model)
  target, exclude = ds.csr("test"), [ds.csr("train"), ds.csr("valid")]
  evaluate = lambda: metrics.evaluate_ranking(
      score_fn, (state.params, user_emb, item_emb), target, exclude, ks=(K,),
      memory_budget_bytes=EVAL_BUDGET)
  res["load_before_eval"] = _load()
  start = time.perf_counter()
  out = evaluate()
  res["eval_first_seconds"] = time.perf_counter() - start
  start = time.perf_counter()
  out = evaluate()
  res["eval_seconds"] = time.perf_counter() - start
  res["eval_users"] = int(out["num_users_evaluated"])
  res["eval_recall"] = out[f"recall@{K}"]
  res["eval_batch"] = metrics.user_batch_size_for(ds.num_items, res["eval_users"],
                                                  EVAL_BUDGET)
  res["load_after_eval"] = _load()
  res["peak_rss"] = _rss_bytes()
  return res


def run_worker(size: str, args) -> dict:
  """Runs `measure(size)` in a fresh Python process; returns its results."""
  cmd = [sys.executable, "-m", "benchmarks.speed", "--worker", size,
         "--max_epoch_steps", str(args.max_epoch_steps),
         "--timed_steps", str(args.timed_steps),
         "--timed_calls", str(args.timed_calls),
         "--steps_per_epoch", str(args.steps_per_epoch),
         "--tile_nodes", str(args.tile_nodes),
         "--min_epoch_seconds", str(args.min_epoch_seconds),
         "--node_order", args.node_order,
         "--gather_dtype", args.gather_dtype]
  from jaxrec import hugepages  # pylint: disable=g-import-not-at-top
  proc = subprocess.run(cmd, capture_output=True, text=True,
                        timeout=args.worker_timeout, check=False,
                        cwd=common.REPO,
                        env=hugepages.huge_pages_env())  # as jaxrec.main runs
  sys.stderr.write(proc.stderr[-3000:])
  if proc.returncode != 0:
    raise RuntimeError(f"worker for size {size} failed ({proc.returncode})")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="1e5,1e6,1e7")
  parser.add_argument("--gowalla", action="store_true")
  parser.add_argument("--max_epoch_steps", type=int, default=800)
  parser.add_argument("--timed_steps", type=int, default=4)
  parser.add_argument("--timed_calls", type=int, default=2)
  parser.add_argument("--steps_per_epoch", type=int, default=0,
                      help="size the batch to give this many steps per "
                           "epoch (0 = fixed batch 2048)")
  parser.add_argument("--tile_nodes", type=int, default=-1,
                      help="config.graph.tile_nodes: -1 auto (column tiles "
                           "for large graphs on CPU), 0 off, > 0 block size")
  parser.add_argument("--min_epoch_seconds", type=float, default=0.0,
                      help="repeat whole timed epochs until this many seconds "
                           "are timed; the median is reported (0 = one epoch)")
  from jaxrec.config_utils import NODE_ORDERS  # pylint: disable=g-import-not-at-top
  parser.add_argument("--node_order", choices=NODE_ORDERS,
                      default="data",
                      help="'degree': relabel users / items by decreasing "
                           "train degree first (preprocess.relabel_by_degree)")
  from jaxrec.config_utils import GATHER_DTYPES  # pylint: disable=g-import-not-at-top
  parser.add_argument("--gather_dtype", choices=GATHER_DTYPES,
                      default="float32",
                      help="config.graph.gather_dtype: 'bfloat16' = the "
                           "native kernel gathers bfloat16 rows (float32 sums)")
  parser.add_argument("--rounds", type=int, default=1,
                      help="measure every size this many times, sizes "
                           "interleaved round by round (a slow spell of a "
                           "shared host then hits every size alike); each "
                           "size reports its median-step round")
  parser.add_argument("--rss_limit_gb", type=float, default=8.0)
  parser.add_argument("--worker_timeout", type=int, default=3000)
  parser.add_argument("--out", default="")
  parser.add_argument("--json", default="")
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.rounds < 1:
    parser.error(f"--rounds must be >= 1, got {args.rounds}")
  if args.worker:
    res = measure(args.worker, args.max_epoch_steps, args.timed_steps,
                  args.timed_calls, args.steps_per_epoch, args.tile_nodes,
                  args.min_epoch_seconds, args.node_order, args.gather_dtype)
    print(json.dumps(res), flush=True)
    return
  import jax  # pylint: disable=g-import-not-at-top
  machine = {"cpus": os.cpu_count(), "device": str(jax.devices()[0]),
             "description": common.machine(), "date": common.today()}
  bw = memory_bandwidth()
  machine.update(bw, bw_load=bw["load"])
  fl = peak_flops()
  machine.update(fl, flops_load=fl["load"])
  print(json.dumps(machine), flush=True)
  sizes = [s for s in args.sizes.split(",") if s] + (["gowalla"] if args.gowalla else [])
  command = common.command("speed", argv)
  runs, failed, results = {size: [] for size in sizes}, {}, []
  for round_, size in itertools.product(range(args.rounds), sizes):
    if size in failed:  # a failed size is not retried in later rounds
      continue
    try:  # the report is rewritten after every measurement
      runs[size].append(run_worker(size, args))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
      failed[size] = f"{size}: {e}"
      print(f"size {size} failed: {e}", flush=True)
      continue
    print(json.dumps(dict(runs[size][-1], round=round_)), flush=True)
    results = [median_round(runs[s]) for s in sizes if runs[s]]
    text = report(results, machine, command.strip(), args.rss_limit_gb)
    if failed:
      text += "\nFailed sizes: " + "; ".join(failed.values()) + "\n"
    record = {"machine": machine, "results": results,
              "failed": list(failed.values())}
    if args.out:
      common.write_page(args.out, text)
    if args.json:
      common.write_json(args.json, record)
  if results:
    print(report(results, machine, command.strip(), args.rss_limit_gb), flush=True)
  syn = [r for r in results if r["size"] != "gowalla"]
  if syn and max(syn, key=lambda r: r["edges"])["peak_rss"] >= args.rss_limit_gb * 1e9:
    sys.exit(f"peak RSS of the largest size exceeds {args.rss_limit_gb} GB")


if __name__ == "__main__":
  main()

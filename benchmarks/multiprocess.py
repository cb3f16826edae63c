"""Seconds per LightGCN train step with 1, 2 and 4 JAX processes on one host.

  JAXREC_DATA_ROOT=/work/shared/data python -m benchmarks.multiprocess \\
      --datasets lastfm --processes 1,2,4

For each dataset and process count P the script starts one job through
`python -m jaxrec.launch --processes P --devices_per_process 1` whose
processes run this module's worker: `train.setup_experiment` (the
data-parallel mesh over all P devices, parameters replicated, the graph
replicated, as `python -m jaxrec.main` trains with data_devices=-1), then
--calls timed calls of --steps train steps on epoch-0 batches, alternating
with the same number of calls of a no-collective variant: each process runs
the same `train.train_steps` on its own B/P rows with a plain one-device
`jax.jit` and its own copy of the state, so nothing crosses processes.
The data-parallel step time minus the no-collective step time is the cost
of the collectives (the gradient all-reduce over gloo) and of the SPMD
program around them.

Results: benchmarks/results/multiprocess.json, rendered to
docs/results/multiprocess.md (`--render` re-renders only).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

NAME = "multiprocess"


# ----------------------------------------------------------------------------
# Worker (one process of a launched job).


def _worker_main(argv) -> None:
  """Times the data-parallel and the no-collective step in this process."""
  del argv
  # pylint: disable=g-import-not-at-top
  from absl import flags
  import jax
  import jax.numpy as jnp
  from jax.experimental import multihost_utils
  import numpy as np
  from benchmarks import common
  from jaxrec import input_pipeline
  from jaxrec import sharding
  from jaxrec import train
  # pylint: enable=g-import-not-at-top
  opts = flags.FLAGS
  config = opts.config
  config.steps_per_call = opts.bench_steps
  config.progress = False
  exp = train.setup_experiment(config)
  procs, index = jax.process_count(), jax.process_index()
  devices = jax.device_count()
  rows = input_pipeline.epoch_batches(config, exp.dataset, 0,
                                      exp.positive_keys, exp.model.batch_fields)
  # Stacked batches are a pytree whose every leaf is [S, B, ...].
  num_steps, batch = (int(n) for n in jax.tree.leaves(rows)[0].shape[:2])
  # The no-collective variant: one device's share, B / (all devices).
  local_batch = -(-batch // devices)
  steps, calls = opts.bench_steps, opts.bench_calls

  def window(c):
    lo = (c * steps) % max(1, num_steps - steps + 1)
    return jax.tree.map(lambda v: v[lo:lo + steps], rows)

  def local_rows(chunk):
    """This process's first device's rows of a chunk (padded as shard_batch)."""
    first = index * (devices // procs)  # this process's first device

    def local(v):  # [steps, B, ...] -> [steps, local_batch, ...]
      pad = local_batch * devices - batch
      if pad:
        v = np.concatenate([v, np.zeros((v.shape[0], pad) + v.shape[2:],
                                        v.dtype)], axis=1)
      return v[:, first * local_batch:(first + 1) * local_batch]
    return jax.tree.map(local, chunk)

  device = jax.local_devices()[0]
  # A copy (np.array): the data-parallel step donates exp.state's buffers.
  local_state = jax.device_put(
      jax.tree.map(np.array, sharding.host_local(exp.state)), device)
  local_graph = jax.device_put(jax.tree.map(
      jnp.asarray, input_pipeline.build_graph(config, exp.dataset)), device)
  local_fn = jax.jit(functools.partial(
      train.train_steps, model=exp.model,
      loss_fn=config.loss_fn or train.model_loss), donate_argnums=0)
  rng = exp.train_rng
  state = exp.state
  exp.state = None
  times = {"data_parallel": [], "no_collectives": []}
  compile_seconds = {}
  for c in range(calls + 1):
    chunk = window(c)
    order = ("data_parallel", "no_collectives")
    for name in (order if c % 2 == 0 else order[::-1]):
      start = time.perf_counter()
      if name == "data_parallel":
        state, metrics = exp.step_fn(state, exp.graph, chunk, rng)
        jax.block_until_ready((state, metrics))
      else:
        local_state, metrics = local_fn(local_state, local_graph,
                                        local_rows(chunk), rng)
        jax.block_until_ready((local_state, metrics))
      seconds = (time.perf_counter() - start) / steps
      if c == 0:  # the first call compiles
        compile_seconds[name] = seconds * steps
      else:
        times[name].append(seconds)
  medians = np.asarray([statistics.median(times["data_parallel"]),
                        statistics.median(times["no_collectives"])],
                       np.float32)
  every = np.asarray(multihost_utils.process_allgather(medians)
                     if procs > 1 else medians[None])  # [P, 2]
  if index == 0:
    result = {
        "processes": procs, "devices": jax.device_count(),
        "dataset": exp.dataset.name, "num_users": exp.dataset.num_users,
        "num_items": exp.dataset.num_items,
        "num_train": len(exp.dataset.train), "batch_size": batch,
        "steps_per_call": steps, "calls": calls,
        "data_parallel_s_per_step": float(medians[0]),
        "no_collectives_s_per_step": float(medians[1]),
        "per_process_s_per_step": every.tolist(),
        "first_call_seconds": compile_seconds,
        "mesh": sharding.describe(exp.mesh),
    }
    common.write_json(opts.bench_out, result)


def worker() -> None:
  """Entry point of each launched process (`--module benchmarks.multiprocess`)."""
  # pylint: disable=g-import-not-at-top
  from absl import flags
  from jaxrec import cli
  # pylint: enable=g-import-not-at-top
  cli.define_run_flags()
  flags.DEFINE_string("bench_out", None, "JSON file process 0 writes.")
  flags.DEFINE_integer("bench_steps", 4, "train steps per timed call")
  flags.DEFINE_integer("bench_calls", 5, "timed calls per variant")
  cli.run(_worker_main)


# ----------------------------------------------------------------------------
# Driver.


def run_job(dataset: str, processes: int, steps: int, calls: int,
            timeout: int, devices_per_process: int = 1) -> dict:
  """Launches one job and returns process 0's measurements."""
  with tempfile.TemporaryDirectory(prefix="jaxrec_mp_bench") as tmp:
    out = os.path.join(tmp, "result.json")
    cmd = [sys.executable, "-m", "jaxrec.launch", "--processes",
           str(processes), "--devices_per_process", str(devices_per_process),
           "--module",
           f"benchmarks.{NAME}", "--", "--config",
           f"configs/lightgcn.py:{dataset}", f"--workdir={tmp}/w",
           f"--bench_out={out}", f"--bench_steps={steps}",
           f"--bench_calls={calls}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout,
                          env=dict(os.environ, JAXREC_HUGE_PAGES="0"))
    if proc.returncode != 0:
      raise RuntimeError(f"{dataset} with {processes} x {devices_per_process} "
                         "devices failed:\n"
                         + proc.stdout[-2000:] + proc.stderr[-2000:])
    with open(out) as f:
      result = json.load(f)
    result["job_wall_seconds"] = time.perf_counter() - start
    return result


def render(payload: dict) -> str:
  """The results page from the JSON payload."""
  # pylint: disable=g-import-not-at-top
  from benchmarks import common
  lines = [
      "# Multi-process training on one host: 1 vs 2 vs 4 JAX processes",
      "",
      "LightGCN (3 layers, d=64, batch 2048) data-parallel over P CPU "
      "processes with one device each (`python -m jaxrec.launch`, gloo "
      "collectives), against the same step with no collectives: each "
      "process trains its own B/P rows with a one-device `jax.jit` "
      "(benchmarks/multiprocess.py explains the protocol). Median seconds "
      "per train step of process 0; the two variants alternate call by "
      "call inside one job. Rows `1 x P` run the same P-device mesh in one "
      "process (XLA's in-process all-reduce instead of gloo); their "
      "no-collective column is one device's B/P rows run alone.",
      "",
      f"Command: `{payload['command']}`",
      "",
      payload["hardware"],
      "",
  ]
  header = ["dataset", "processes x devices", "all-reduced gradient",
            "data-parallel s/step", "no-collective s/step",
            "difference s/step", "share of the step", "s/step vs 1 x 1"]
  rows = []
  for res in payload["results"]:
    base = next(r for r in payload["results"]
                if r["dataset"] == res["dataset"] and r["devices"] == 1)
    dp, local = res["data_parallel_s_per_step"], res["no_collectives_s_per_step"]
    per = res["devices"] // res["processes"]
    # LightGCN's trainable parameters are the two d=64 float32 tables; their
    # gradient is dense and is what the data-parallel step sums over devices.
    grad_mb = (res["num_users"] + res["num_items"]) * 64 * 4 / 2**20
    rows.append([res["dataset"], f"{res['processes']} x {per}",
                 f"{grad_mb:.1f} MiB", f"{dp:.4f}", f"{local:.4f}",
                 f"{dp - local:+.4f}", f"{(dp - local) / dp:.0%}",
                 f"{dp / base['data_parallel_s_per_step']:.2f}x"])
  lines += common.markdown_table(header, rows, ["---"] + ["---:"] * 7)
  lines += [
      "",
      "Reading the table: the machine has 2 cores, so P processes share them "
      "and more processes cannot be faster. Each data-parallel process "
      "propagates the whole (replicated) graph and only splits the BPR "
      "batch, so the propagation work grows with P while the batch work is "
      "divided; the no-collective column of the `P x 1` rows rises with P "
      "for that reason (P processes propagating at once on 2 cores). In "
      "those rows the difference column is the cost of the gradient "
      "all-reduce over gloo and of the partitioned program around it. In "
      "the `1 x P` rows the no-collective step runs one device alone, so "
      "the difference also holds the other P - 1 devices' propagation, "
      "which the one process runs on the same cores. With one process and "
      "one device both variants are the same program (the difference is "
      "noise). The load average in the hardware line is that of the whole "
      "machine, other jobs included: the figures are comparable within a "
      "row (the variants alternate call by call), less so across rows.",
      "",
      "Correctness, not speed, is what multi-process runs here establish: "
      "tests/multiprocess_test.py checks that 2 processes reproduce the "
      "per-step losses, the final parameters and the metrics of one "
      "process with 2 devices.",
      "",
  ]
  return "\n".join(lines)


def main(argv=None) -> None:
  # pylint: disable=g-import-not-at-top
  from benchmarks import common
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--datasets", default="lastfm",
                      help="comma-separated dataset presets")
  parser.add_argument("--processes", default="1,2,4",
                      help="comma-separated process counts")
  parser.add_argument("--steps", type=int, default=4,
                      help="train steps per timed call")
  parser.add_argument("--calls", type=int, default=5,
                      help="timed calls per variant (after one compiling)")
  parser.add_argument("--timeout", type=int, default=1800,
                      help="seconds per job")
  common.add_result_args(parser, NAME)
  args = parser.parse_args(argv)
  if args.render:
    common.render_page(args.json, args.out, render)
    return
  results = []
  counts = [int(p) for p in args.processes.split(",")]
  # P processes x 1 device, then 1 process x P devices (same mesh size, the
  # all-reduce inside one XLA process instead of over gloo).
  jobs = [(p, 1) for p in counts] + [(1, p) for p in counts if p > 1]
  for dataset in args.datasets.split(","):
    for processes, per_process in jobs:
      res = run_job(dataset, processes, args.steps, args.calls, args.timeout,
                    per_process)
      print(json.dumps({k: res[k] for k in (
          "dataset", "processes", "devices", "data_parallel_s_per_step",
          "no_collectives_s_per_step")}), flush=True)
      results.append(res)
  payload = {"command": common.command(NAME, argv),
             "hardware": common.hardware_line(), "results": results}
  common.write_json(args.json, payload)
  common.write_page(args.out, render(payload))


if __name__ == "__main__":
  if "--bench_out" in " ".join(sys.argv):
    worker()
  else:
    main()

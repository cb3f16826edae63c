"""What one process pays to sample its share of a training epoch.

  python -m benchmarks.sampler_cost [--repeats 7] [--datasets synthetic,lastfm,gowalla]
  python -m benchmarks.sampler_cost --render

One epoch of (user, positive, negative) batches, as `input_pipeline.
epoch_batches` builds it for training (B = 2048, one negative), timed for:
  sequential        the default sampler, the whole epoch (every process of a
                    multi-process job samples all of it);
  counter           config.sampler='counter', the whole epoch;
  counter 1/2, 1/4  the counter sampler, only the batch columns of one of 2
                    (4) processes (`columns=`, contiguous blocks of B/2
                    (B/4) columns, as `sharding.local_batch_columns` gives
                    with one device per process).
for `sampling='interaction'` (each train interaction once, in the order of
`sampler.epoch_order`) and `sampling='user'`. Datasets: `synthetic`, about
10^6 interactions made here (log-normal user activity, Zipf item
popularity, stored grouped by user like the loaders' output), and the train
splits of lastfm and gowalla from JAXREC_DATA_ROOT (left out when absent).
Arms are interleaved within each repeat (repeat r samples epoch r in every
arm); the page gives median process CPU seconds (less sensitive than wall
time to other jobs on a shared machine), median wall seconds, and each arm's
CPU-time ratio to the sequential epoch and to the whole counter epoch.
Results: benchmarks/results/sampler_cost.json, docs/results/sampler_cost.md.
"""

from __future__ import annotations

import argparse
import time

import ml_collections
import numpy as np

from benchmarks import common
from jaxrec import input_pipeline
from jaxrec.data import registry
from jaxrec.data import sampler
from jaxrec.data.dataset import Interactions

BATCH_SIZE = 2048
# (arm name, sampler, processes): the arm samples process 0's columns.
ARMS = (("sequential", "sequential", 1), ("counter", "counter", 1),
        ("counter 1/2", "counter", 2), ("counter 1/4", "counter", 4))


class _Train:
  """The fields of a Dataset that `epoch_batches` reads."""

  def __init__(self, train: Interactions, num_users: int, num_items: int):
    self.train, self.num_users, self.num_items = train, num_users, num_items


def synthetic_train(target: int = 1_000_000, num_users: int = 50_000,
                    num_items: int = 40_000, seed: int = 0) -> _Train:
  """About `target` distinct (user, item) pairs, grouped by user.

  Args:
    target: interactions to draw before duplicates are dropped.
    num_users: users; activity log-normal (sigma 1), at least 1 each.
    num_items: items; popularity Zipf-like (weight rank**-0.8).
    seed: generator seed.

  Returns:
    The train interactions with their id ranges.
  """
  rng = np.random.default_rng(seed)
  activity = rng.lognormal(0.0, 1.0, num_users)
  degree = np.maximum(1, np.round(activity / activity.sum() * target))
  users = np.repeat(np.arange(num_users), degree.astype(np.int64))
  weight = np.arange(1, num_items + 1, dtype=np.float64) ** -0.8
  items = rng.choice(num_items, size=len(users), p=weight / weight.sum())
  keys = np.unique(users * num_items + items)  # sorted: grouped by user
  return _Train(Interactions((keys // num_items).astype(np.int32),
                             (keys % num_items).astype(np.int32)),
                num_users, num_items)


def load_trains(names: list[str]) -> dict[str, _Train]:
  """The named train splits; real datasets absent from the data root are
  left out with a printed note."""
  out = {}
  for name in names:
    if name == "synthetic":
      out[name] = synthetic_train()
      continue
    try:
      ds = registry.load_dataset(name)
    except (OSError, ValueError) as e:  # DataError is a ValueError
      print(f"{name}: not loaded ({e}); left out", flush=True)
      continue
    out[name] = _Train(ds.train, ds.num_users, ds.num_items)
  return out


def _config(sampler_name: str, sampling: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      task="ranking", seed=0, num_negatives=1, sampling=sampling,
      sampler=sampler_name, batch_size=BATCH_SIZE))


def _columns(processes: int) -> np.ndarray | None:
  """Process 0's batch columns among `processes` (None: all columns)."""
  if processes == 1:
    return None
  return np.arange(BATCH_SIZE // processes, dtype=np.int64)


def measure(trains: dict[str, _Train], repeats: int) -> list[dict]:
  """Times every arm on every dataset and sampling, interleaved.

  Args:
    trains: train splits by dataset name.
    repeats: epochs timed per arm (repeat r samples epoch r).

  Returns:
    One row per (dataset, sampling, arm) with the per-repeat times.
  """
  rows = []
  for name, data in trains.items():
    keys = sampler.positive_keys(data.train, data.num_items)
    for sampling in sampler.SAMPLINGS:
      cpu = {arm: [] for arm, _, _ in ARMS}
      wall = {arm: [] for arm, _, _ in ARMS}
      sampled = {}
      for epoch in range(repeats):
        for arm, sampler_name, processes in ARMS:
          config = _config(sampler_name, sampling)
          start_cpu, start_wall = time.process_time(), time.perf_counter()
          batch = input_pipeline.epoch_batches(
              config, data, epoch, keys, columns=_columns(processes))
          wall[arm].append(time.perf_counter() - start_wall)
          cpu[arm].append(time.process_time() - start_cpu)
          sampled[arm] = int(batch.mask.sum())
      for arm, _, processes in ARMS:
        rows.append(dict(
            dataset=name, interactions=len(data.train),
            num_users=data.num_users, num_items=data.num_items,
            sampling=sampling, arm=arm, processes=processes,
            rows_sampled=sampled[arm], cpu_s=cpu[arm], wall_s=wall[arm]))
        print(f"{name} {sampling:11s} {arm:12s} cpu median "
              f"{np.median(cpu[arm]):.4f} s  wall median "
              f"{np.median(wall[arm]):.4f} s", flush=True)
  return rows


def _ratio_range(rows: list[dict], sampling: str, arm: str) -> str:
  """'lo-hi' of an arm's CPU-median ratio to the sequential epoch over the
  datasets (one value when they agree to two decimals)."""
  ratios = []
  for dataset in dict.fromkeys(x["dataset"] for x in rows):
    cpu = {x["arm"]: float(np.median(x["cpu_s"])) for x in rows
           if x["dataset"] == dataset and x["sampling"] == sampling}
    ratios.append(cpu[arm] / cpu["sequential"])
  lo, hi = f"{min(ratios):.2f}", f"{max(ratios):.2f}"
  return lo if lo == hi else f"{lo}-{hi}"


def _summary(rows: list[dict]) -> list[str]:
  """One line per sampling: the arms' CPU ratios to the sequential epoch."""
  lines = []
  for sampling in dict.fromkeys(x["sampling"] for x in rows):
    parts = [f"{arm} {_ratio_range(rows, sampling, arm)}x"
             for arm, _, _ in ARMS[1:]]
    lines.append(f"* `sampling='{sampling}'`, CPU time relative to the "
                 f"sequential whole epoch (range over the datasets): "
                 + ", ".join(parts) + ".")
  return lines


def render_markdown(r: dict) -> str:
  """The results page of one saved run."""
  lines = [
      "# Sampling cost per process: sequential vs counter sampler", "",
      f"Command: `{r['command']}`", "",
      r["hardware"], "",
      "One epoch of training batches (`input_pipeline.epoch_batches`, "
      f"B = {r['batch_size']}, one negative per triple). `sequential`: the "
      "default sampler; every process of a multi-process job samples the "
      "whole epoch. `counter`: `config.sampler='counter'`, the whole epoch; "
      "`counter 1/P`: the batch columns of one of P processes only, which "
      "is what each process samples in a P-process job. With "
      "`sampling='interaction'` the counter sampler orders the train "
      "interactions with `sampler.epoch_order`, a keyed Feistel permutation "
      "evaluated for the sampled rows alone; with `'user'` every draw is "
      "per row. The whole-epoch arms stack the sampled triples into "
      "batches (`input_pipeline.stack_batches`); the column arms fill "
      "their [steps, columns] arrays directly. "
      "`synthetic`: about 10^6 interactions made by the script "
      "(log-normal user activity, Zipf item popularity, grouped by user); "
      "lastfm and gowalla: their train splits (validation carved out, "
      "seed 0).", "",
      f"Arms interleaved within each of {r['repeats']} repeats (repeat r "
      "samples epoch r in every arm). Medians of process CPU time and of "
      "wall time; the ratios are of the CPU medians. Wall times on this "
      "shared machine include waiting for the CPU and are far above the CPU "
      "times; compare the CPU columns.", ""]
  lines += _summary(r["rows"]) + [""]
  table = []
  for row in r["rows"]:
    same = [x for x in r["rows"] if x["dataset"] == row["dataset"]
            and x["sampling"] == row["sampling"]]
    base = {x["arm"]: float(np.median(x["cpu_s"])) for x in same}
    cpu = float(np.median(row["cpu_s"]))
    table.append([
        row["dataset"], f"{row['interactions']:,}", row["sampling"],
        row["arm"], f"{row['rows_sampled']:,}", f"{cpu:.4f}",
        f"{float(np.median(row['wall_s'])):.4f}",
        f"{cpu / base['sequential']:.2f}",
        f"{cpu / base['counter']:.2f}"])
  lines += common.markdown_table(
      ["dataset", "interactions", "sampling", "arm", "rows sampled",
       "CPU s (median)", "wall s (median)", "/ sequential", "/ counter"],
      table, ["---", "---:", "---", "---", "---:", "---:", "---:", "---:",
              "---:"])
  return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--datasets", default="synthetic,lastfm,gowalla",
                      help="comma-separated: synthetic and registry names")
  common.add_result_args(parser, "sampler_cost")
  args = parser.parse_args(argv)
  if args.render:
    result = common.render_page(args.json, args.out, render_markdown)
  else:
    trains = load_trains(args.datasets.split(","))
    rows = measure(trains, args.repeats)
    result = dict(
        command=common.command("sampler_cost", argv),
        hardware=common.hardware_line(), machine=common.machine(),
        cpu_model=common.cpu_model(), date=common.today(),
        batch_size=BATCH_SIZE, repeats=args.repeats, rows=rows)
    common.write_json(args.json, result)
    common.write_page(args.out, render_markdown(result))
  print(render_markdown(result))
  return result


if __name__ == "__main__":
  main()

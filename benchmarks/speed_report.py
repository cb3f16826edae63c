"""The report of benchmarks/speed.py: roofline, growth exponent, tables.

Pure functions of the measurements `speed.measure` returns (one dict per
size) and of the machine's measured limits; `speed.py`'s module docstring
defines the roofline these functions compute.
"""

from __future__ import annotations

import numpy as np

from benchmarks import common

# The measured workload: LightGCN width, layers, default batch, ranking K.
DIM, LAYERS, BATCH, K = 64, 3, 2048, 20



def fit_exponent(edges, seconds) -> float:
  """Least-squares slope of log(seconds) vs log(edges)."""
  if len(edges) < 2:
    return float("nan")
  return float(np.polyfit(np.log(edges), np.log(seconds), 1)[0])


def prop_bytes(edges: int, dim: int = DIM, gather_bytes: int = 4,
               nodes: int = 0, csr: bool = False, reuse: bool = False) -> int:
  """Bytes one propagation layer moves (see the module doc).

  Args:
    edges: directed edges E.
    dim: feature width d.
    gather_bytes: bytes per gathered value (4 float32, 2 bfloat16).
    nodes: nodes N (rows of the output; CSR kernels only).
    csr: a CSR (pull) kernel: each output row written once, no scatter.
    reuse: the floor, each node row gathered from memory once (CSR only);
      False = every gathered row from memory.

  Returns:
    Bytes read + written.
  """
  if not csr:
    return edges * dim * (gather_bytes + 4) + edges * 12
  rows_read = nodes if reuse else edges
  return rows_read * dim * gather_bytes + edges * 8 + nodes * (dim * 4 + 4)


def _gather_bytes(result: dict) -> int:
  return 2 if result.get("gather_dtype") == "bfloat16" else 4


def _is_csr(result: dict) -> bool:
  """Whether the result's kernel is an untiled CSR product."""
  kernel = result.get("kernel", "bcsr_symmetric")
  return "tiled" not in kernel and ("native" in kernel or "bcsr" in kernel)


def _layer_bytes(result: dict, reuse: bool = False) -> int:
  return prop_bytes(result["edges"], gather_bytes=_gather_bytes(result),
                    nodes=result.get("nodes", 0), csr=_is_csr(result),
                    reuse=reuse and _is_csr(result))


def report(results: list[dict], machine: dict, command: str,
           rss_limit: float) -> str:
  """The markdown report of a speed run.

  Args:
    results: one `speed.measure` dict per size (synthetic sizes, and
      'gowalla' if measured), merged over rounds by `median_round`.
    machine: the parent's measurements: 'bandwidth' (bytes/s), 'peak_flops',
      'cpus', 'device', 'copy_1thread', 'copy_2threads', 'bw_load',
      'matmul_n', 'flops_load'.
    command: the command line, quoted at the top.
    rss_limit: GB the largest synthetic size's peak RSS must stay under.

  Returns:
    Markdown: training table with the roofline, growth exponents, rounds,
    evaluation table, RSS table and the PASS/FAIL checks.
  """
  bw, peak = machine["bandwidth"], machine["peak_flops"]
  gb = lambda b: f"{b / 1e9:.2f}"
  lines = [
      "# LightGCN speed vs graph size (3 layers, d=64, batch "
      + ("2048)" if all(r.get("batch", BATCH) == BATCH for r in results)
         else "sized to the data)"), "",
      f"Command: `{command}`", "",
      "Machine: "
      + (f"{machine['description']}, {machine['device']}, {machine['date']}"
         if "description" in machine else
         f"{machine['cpus']} CPU cores, {machine['device']}, shared")
      + " (1-min load average recorded per phase). "
      f"Memory bandwidth (NumPy copy, 512 MiB, read+write bytes): "
      f"{gb(machine['copy_1thread'])} GB/s 1 thread, "
      f"{gb(machine['copy_2threads'])} GB/s 2 threads -> {gb(bw)} GB/s used "
      f"(load {machine['bw_load']}); peak float32 matmul "
      f"({machine['matmul_n']}^2, jitted): {peak / 1e9:.1f} GFLOP/s "
      f"(load {machine['flops_load']}).", "",
      "## Training", "",
  ]
  cells = []
  for r in results:
    per_layer = r["propagate_seconds"] / LAYERS
    t_min = _layer_bytes(r) / bw
    floor = (f"{_layer_bytes(r, reuse=True) / bw:.4f}" if _is_csr(r)
             else "-")
    epoch = f"{r['epoch_seconds']:.1f}" + (
        f" (extrapolated from {r['timed_steps']} steps)" if r["extrapolated"]
        else f" (median of {r['epoch_repeats']})"
        if r.get("epoch_repeats", 1) > 1 else "")
    cells.append([
        r["size"], f"{r['users']:,}", f"{r['items']:,}", f"{r['train']:,}",
        f"{r['edges']:,}", r.get("kernel", "bcsr_symmetric"),
        r.get("batch", BATCH), r["steps_per_epoch"],
        f"{r['step_seconds']:.3f}", epoch, f"{r['sample_seconds']:.2f}",
        f"{r['load_before_train']}-{r['load_after_train']}",
        f"{r['edges'] * LAYERS / r['propagate_seconds']:.3g}",
        f"{r['edges'] * LAYERS / r['step_seconds']:.3g}",
        gb(_layer_bytes(r)), f"{t_min:.4f}", floor, f"{per_layer:.4f}",
        f"{100 * t_min / per_layer:.0f}%", gb(r["peak_rss"])])
  lines += common.markdown_table(
      ["data", "users", "items", "train inter.", "directed edges E", "kernel",
       "batch", "steps/epoch", "s/step", "s/epoch", "sampling s",
       "load (train)", "fwd propagation edges*layers/s",
       "training fwd edges*layers/s", "layer bytes, no reuse (GB)",
       "roofline s/layer, no reuse", "floor s/layer, each row once",
       "measured fwd s/layer", "achieved (no-reuse roofline)", "peak RSS GB"],
      cells)
  syn = [r for r in results if r["size"] != "gowalla"]
  exp_epoch = fit_exponent([r["edges"] for r in syn], [r["epoch_seconds"] for r in syn])
  exp_step = fit_exponent([r["edges"] for r in syn], [r["step_seconds"] for r in syn])
  lines += [
      "",
      f"Growth exponent (log-log least squares over the synthetic sizes): "
      f"seconds per STEP ~ E^{exp_step:.2f}; seconds per EPOCH ~ "
      f"E^{exp_epoch:.2f}. "
      + ("LightGCN propagates the whole graph in every step and with a fixed "
         "batch an epoch has train/2048 = E/4096 steps, so epoch time is ~E^2 "
         "for full-graph propagation by construction (run with "
         "--steps_per_epoch to size the batch to the data)."
         if all(r.get("batch", BATCH) == BATCH for r in syn) else
         "The batch is sized to the data (a fixed number of full-graph steps "
         "per epoch), so epoch time scales like step time."), "",
  ]
  per_round = round_exponents(results)
  if len(per_round) > 1:
    lines += [
        f"{len(per_round)} interleaved rounds (each size reports its "
        "median-step round). Step seconds per round: " + "; ".join(
            f"{r['size']} " + " / ".join(f"{t:.4g}" for t in
                                         r["rounds_step_seconds"])
            for r in syn) + ". Step-time exponent per round: " +
        ", ".join(f"{e:.2f}" for e in per_round) + ".", ""]
  lines += [

      "## Full-ranking evaluation (all users with a test item, K=20, train + "
      "valid masked, 1 GiB budget)", "",
  ]
  cells = []
  for r in results:
    flops = 2 * r["eval_users"] * r["items"] * DIM
    t_min = flops / peak
    cells.append([
        r["size"], f"{r['eval_users']:,}", f"{r['items']:,}", r["eval_batch"],
        f"{r['eval_first_seconds']:.2f}", f"{r['eval_seconds']:.2f}",
        f"{r['load_before_eval']}-{r['load_after_eval']}", f"{flops:.3g}",
        f"{t_min:.3f}", f"{100 * t_min / r['eval_seconds']:.1f}%"])
  lines += common.markdown_table(
      ["data", "users evaluated", "items", "user batch",
       "first call s (compile)", "compiled s", "load", "FLOPs 2*U*I*d",
       "roofline s (peak FLOP/s)", "achieved"], cells)
  lines += ["", "## Peak RSS (separate process per size)", ""]
  lines += common.markdown_table(
      ["data", "after data GB", "after training GB", "peak GB"],
      [[r["size"], gb(r["rss_after_data"]), gb(r["rss_after_train"]),
        gb(r["peak_rss"])] for r in results])
  largest = max(syn, key=lambda r: r["edges"], default=None)
  if largest is not None:
    ok = largest["peak_rss"] < rss_limit * 1e9
    lines += ["", f"RSS check: largest synthetic size ({largest['size']}) peak "
              f"{gb(largest['peak_rss'])} GB {'<' if ok else '>='} "
              f"{rss_limit} GB: {'PASS' if ok else 'FAIL'}."]
  gow = [r for r in results if r["size"] == "gowalla"]
  if gow:
    lines += [f"Gowalla full-ranking evaluation {gow[0]['eval_seconds']:.2f} s; "
              f"LightGCN epoch {gow[0]['epoch_seconds']:.1f} s."]
  return "\n".join(lines) + "\n"


def median_round(runs: list[dict]) -> dict:
  """One size's result over interleaved rounds: the run with the median step
  time (so every field comes from one consistent run), plus every round's
  step and epoch seconds."""
  ordered = sorted(runs, key=lambda r: r["step_seconds"])
  res = dict(ordered[(len(ordered) - 1) // 2])  # lower median for even counts
  res["rounds_step_seconds"] = [r["step_seconds"] for r in runs]
  res["rounds_epoch_seconds"] = [r["epoch_seconds"] for r in runs]
  return res


def round_exponents(results: list[dict]) -> list[float]:
  """Step-time exponent of each interleaved round (synthetic sizes)."""
  syn = [r for r in results if r["size"] != "gowalla"]
  rounds = min((len(r.get("rounds_step_seconds", [])) for r in syn), default=0)
  return [fit_exponent([r["edges"] for r in syn],
                       [r["rounds_step_seconds"][k] for r in syn])
          for k in range(rounds)]

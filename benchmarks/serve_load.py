"""Load test of `python -m jaxrec.serve`: QPS and latency under concurrency.

  python -m benchmarks.serve_load --small_bundle DIR [--seconds 5]
      [--compression DIR,DIR,...]
  python -m benchmarks.serve_load --render   # page from the saved JSON

For each model (a small trained bundle and a Gowalla-sized one, 29,858
users x 40,981 items, d = 64, with RANDOM vectors and random seen items of
Gowalla's train size: latency depends on the shapes, not on the values) the
server runs in a subprocess, with micro-batching (batches up to 64 requests,
2 ms wait; one process, and two with --workers 2) and without (one request
per scoring call), and 1 / 16 / 64
concurrent keep-alive clients send `GET /recommend?user=U&k=20` for random
users for `--seconds` each. The baseline, in the same run, is a naive
per-request NumPy scorer in-process (u @ V.T, seen items masked,
argpartition + sort of the top 20) driven by the same number of threads, with
no HTTP in between.

`--compression` adds the size and test-metric table of exported bundles
(their metadata.json 'evaluation'). Results go to
benchmarks/results/serve_load.json and docs/results/serving.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from benchmarks import common
from jaxrec import bundle as bundle_lib

CLIENTS = (1, 16, 64)
K = 20
# Result key -> table label, in table order.
MODES = {"batched": "batched", "batched_2_workers": "batched, 2 workers",
         "unbatched": "unbatched", "numpy": "numpy"}
# Gowalla (LightGCN split): users, items, train interactions.
GOWALLA = (29_858, 40_981, 810_128)


def random_bundle(out: str, num_users: int, num_items: int, nnz: int,
                  dim: int = 64, seed: int = 0) -> str:
  """A float32 bundle of random vectors and random seen items."""
  rng = np.random.default_rng(seed)
  users = rng.normal(0, 0.1, (num_users, dim)).astype(np.float32)
  items = rng.normal(0, 0.1, (num_items, dim)).astype(np.float32)
  counts = rng.multinomial(nnz - num_users, np.ones(num_users) / num_users) + 1
  indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
  indices = np.concatenate([np.sort(rng.choice(num_items, c, replace=False))
                            for c in counts]).astype(np.int32)
  files = {"user_vectors.npy": users, "item_vectors.npy": items,
           "user_ids.npy": np.arange(num_users),
           "item_ids.npy": np.arange(num_items),
           "seen_indptr.npy": indptr, "seen_indices.npy": indices}
  bundle_lib.write(out, files, {
      "model": "random", "dataset": f"random_{num_users}x{num_items}",
      "num_users": num_users, "num_items": num_items, "dim": dim,
      "dtype": "float32", "fold_in": {"mode": "mean"}})
  return out


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


async def _get(reader, writer, path: str) -> int:
  writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
  await writer.drain()
  head = await reader.readuntil(b"\r\n\r\n")
  status = int(head.split(b" ", 2)[1])
  length = 0
  for line in head.split(b"\r\n"):
    if line.lower().startswith(b"content-length:"):
      length = int(line.split(b":")[1])
  await reader.readexactly(length)
  return status


async def _load(port: int, clients: int, seconds: float, user_ids: list
                ) -> dict:
  """`clients` keep-alive connections sending requests for `seconds`."""
  latencies, errors = [], [0]
  stop = time.perf_counter() + seconds

  async def client(seed):
    rng = np.random.default_rng(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.perf_counter() < stop:
      user = user_ids[int(rng.integers(len(user_ids)))]
      t0 = time.perf_counter()
      status = await _get(reader, writer, f"/recommend?user={user}&k={K}")
      latencies.append(time.perf_counter() - t0)
      errors[0] += status != 200
    writer.close()

  start = time.perf_counter()
  await asyncio.gather(*(client(s) for s in range(clients)))
  return _summary(latencies, time.perf_counter() - start, errors[0])


def _summary(latencies, elapsed, errors) -> dict:
  ms = np.asarray(latencies) * 1000.0
  return {"requests": len(ms), "errors": int(errors),
          "qps": len(ms) / elapsed,
          "p50_ms": float(np.percentile(ms, 50)),
          "p95_ms": float(np.percentile(ms, 95)),
          "p99_ms": float(np.percentile(ms, 99))}


async def _health(port: int) -> int:
  reader, writer = await asyncio.open_connection("127.0.0.1", port)
  try:
    return await _get(reader, writer, "/health")
  finally:
    writer.close()


def run_server(bundle: str, max_batch: int, seconds: float,
               workers: int = 1) -> list[dict]:
  """Starts the server on `bundle` and measures every client count."""
  port = _free_port()
  log = tempfile.TemporaryFile()
  proc = subprocess.Popen(
      [sys.executable, "-m", "jaxrec.serve", "--bundle", bundle, "--port",
       str(port), "--max_batch", str(max_batch), "--reload_interval", "0",
       "--workers", str(workers)],
      cwd=common.REPO, stdout=log, stderr=subprocess.STDOUT)
  try:
    deadline = time.monotonic() + 300
    while True:
      try:
        if asyncio.run(_health(port)) == 200:
          break
      except (OSError, asyncio.IncompleteReadError):
        if proc.poll() is not None or time.monotonic() > deadline:
          log.seek(0)
          raise RuntimeError(f"server failed: {log.read().decode()[-2000:]}")
        time.sleep(0.3)
    user_ids = np.load(os.path.join(bundle, "user_ids.npy")).tolist()
    # Warm connections and every worker (each loads its own copy).
    asyncio.run(_load(port, 4, 3.0 * workers, user_ids))
    out = []
    for clients in CLIENTS:
      result = asyncio.run(_load(port, clients, seconds, user_ids))
      out.append({"clients": clients, **result})
      print(f"  {'batched' if max_batch > 1 else 'unbatched'} x{workers} "
            f"{clients:3d} clients: {result['qps']:8.1f} req/s  p50 "
            f"{result['p50_ms']:.1f} p99 {result['p99_ms']:.1f} ms",
            file=sys.stderr)
    return out
  finally:
    proc.terminate()
    proc.wait(30)


def naive_numpy(bundle: str, seconds: float) -> list[dict]:
  """Per-request NumPy scoring in-process, `clients` threads."""
  b = bundle_lib.read(bundle)
  out = []
  for clients in CLIENTS:
    latencies, stop = [], time.perf_counter() + seconds
    lock = threading.Lock()

    def worker(seed):
      rng = np.random.default_rng(seed)
      mine = []
      while time.perf_counter() < stop:
        user = int(rng.integers(len(b.user_vectors)))
        t0 = time.perf_counter()
        scores = b.item_vectors @ b.user_vectors[user]  # [I]
        scores[b.seen_indices[b.seen_indptr[user]:
                              b.seen_indptr[user + 1]]] = -np.inf
        top = np.argpartition(-scores, K)[:K]
        top = top[np.argsort(-scores[top], kind="stable")]
        mine.append(time.perf_counter() - t0)
      with lock:
        latencies.extend(mine)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
      list(pool.map(worker, range(clients)))
    result = _summary(latencies, time.perf_counter() - start, 0)
    out.append({"clients": clients, **result})
    print(f"  numpy   {clients:3d} clients: {result['qps']:8.1f} req/s  "
          f"p50 {result['p50_ms']:.2f} p99 {result['p99_ms']:.2f} ms",
          file=sys.stderr)
  return out


def compression_rows(bundles: list[str]) -> list[dict]:
  """Size and test metrics of exported bundles (their metadata)."""
  rows = []
  for path in bundles:
    meta = bundle_lib.read_metadata(path)
    evaluation = meta.get("evaluation", {})
    rows.append({"bundle": os.path.basename(os.path.normpath(path)),
                 "model": meta["model"], "dataset": meta["dataset"],
                 "dtype": meta["dtype"], "bytes": bundle_lib.size_bytes(path),
                 "vector_bytes": sum(
                     c["bytes"] for n, c in meta["files"].items()
                     if n.startswith(("user_vectors", "item_vectors",
                                      "item_fold"))),
                 "float32": evaluation.get("float32", {}),
                 "stored": evaluation.get(meta["dtype"], {})})
  return rows


def render_markdown(results: dict) -> str:
  """docs/results/serving.md from the saved results."""
  lines = [
      "# Serving: throughput, latency and export compression", "",
      f"Command: `{results['command']}`", "",
      f"Host: {results['host']}. The host is a shared 2-core machine and "
      "other processes (training benchmarks) were running during the "
      f"measurement (load average {results['load_average']} at the start), "
      "so absolute numbers are pessimistic and noisy; the comparison "
      "between modes within one run is the point.", "",
      "Each row: `GET /recommend?user=U&k=20` (random users, seen items "
      f"excluded) from N concurrent keep-alive clients for "
      f"{results['seconds']} s, server and clients on the same 2 cores. "
      "Batched = micro-batching (up to 64 requests per jitted top-K call, "
      "2 ms wait) in one server process; batched, 2 workers = the same in "
      "two processes (`--workers 2`), each with its own model copy and "
      "batcher; unbatched = one request per call. NumPy = a naive "
      "per-request scorer in-process (no HTTP), N threads; each of its "
      "calls uses NumPy's multi-threaded BLAS, so at 16 / 64 threads on 2 "
      "shared cores its Gowalla-size rows measure that oversubscription "
      "as much as the scoring.", "",
      "Service-level targets (Gowalla size, 16 clients): >= 1,000 "
      "recommendations/s and p99 < 50 ms; compare with the Gowalla-sized "
      "batched rows at 16 clients below. Quality of the new-user fold-in "
      "against retraining: [fold_in.md](fold_in.md).", ""]
  for model in results["models"]:
    lines += [f"## {model['name']}", "", model["description"], ""]
    lines += common.markdown_table(
        ["clients", "mode", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"],
        [[row["clients"], label, f"{row['qps']:.0f}", f"{row['p50_ms']:.1f}",
          f"{row['p95_ms']:.1f}", f"{row['p99_ms']:.1f}", row["errors"]]
         for mode, label in MODES.items() for row in model.get(mode, [])],
        ["---:", "---"] + ["---:"] * 5)
    lines.append("")
  if results.get("compression"):
    lines += ["## Export compression", "",
              "`python -m jaxrec.export --workdir W --out DIR --dtype D`; "
              "test split, train + valid items masked, full ranking.", ""]
    nan = float("nan")
    lines += common.markdown_table(
        ["bundle", "dtype", "bundle bytes", "vector bytes",
         "Recall@20 (float32)", "NDCG@20 (float32)"],
        [[f"{row['model']} {row['dataset']}", row["dtype"],
          f"{row['bytes']:,}", f"{row['vector_bytes']:,}",
          f"{row['stored'].get('recall@20', nan):.4f} "
          f"({row['float32'].get('recall@20', nan):.4f})",
          f"{row['stored'].get('ndcg@20', nan):.4f} "
          f"({row['float32'].get('ndcg@20', nan):.4f})"]
         for row in results["compression"]],
        ["---", "---"] + ["---:"] * 4)
    lines.append("")
  return "\n".join(lines)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--small_bundle", help="bundle of a small trained model")
  parser.add_argument("--seconds", type=float, default=5.0)
  parser.add_argument("--compression", default="",
                      help="comma-separated bundles for the size table")
  common.add_result_args(parser, "serve_load", page="serving")
  args = parser.parse_args(argv)
  if args.render:
    return common.render_page(args.json, args.out, render_markdown)
  if not args.small_bundle:
    parser.error("give --small_bundle (or --render)")
  results = {
      "command": common.command("serve_load", argv),
      "date": common.today(),
      "host": common.machine(),
      "load_average": round(os.getloadavg()[0], 2),
      "seconds": args.seconds, "k": K, "models": []}
  with tempfile.TemporaryDirectory() as tmp:
    small_meta = bundle_lib.read_metadata(args.small_bundle)
    gowalla = random_bundle(os.path.join(tmp, "gowalla"), *GOWALLA)
    for name, path, description in (
        (f"small: {small_meta['model']} {small_meta['dataset']}",
         args.small_bundle,
         f"Trained model, {small_meta['num_users']:,} users x "
         f"{small_meta['num_items']:,} items, d = {small_meta['dim']}."),
        ("Gowalla-sized", gowalla,
         f"{GOWALLA[0]:,} users x {GOWALLA[1]:,} items, d = 64, random "
         f"vectors, {GOWALLA[2]:,} random seen items (latency depends on "
         "the shapes only).")):
      print(name, file=sys.stderr)
      results["models"].append({
          "name": name, "description": description,
          "batched": run_server(path, 64, args.seconds),
          "batched_2_workers": run_server(path, 64, args.seconds, 2),
          "unbatched": run_server(path, 1, args.seconds),
          "numpy": naive_numpy(path, args.seconds)})
  if args.compression:
    results["compression"] = compression_rows(args.compression.split(","))
  common.write_json(args.json, results)
  common.write_page(args.out, render_markdown(results))
  print(f"wrote {args.json} and {args.out}", file=sys.stderr)
  return results


if __name__ == "__main__":
  main()

"""Approximate top-k (HNSW) vs exact scoring: recall@20 and speed-up.

  python -m benchmarks.ann_search \
      --workdir workdirs/real_text/ml_latest_small/lightgcn/grid2_seed0 \
      --sizes 40981,1000000

Three measurements, all in one process on the same vectors:

* A trained model (`--workdir`, any dot-product run): test Recall@20 /
  NDCG@20 of the service's HNSW index vs exact scoring, train + valid items
  excluded, for each `ef_search`.
* Synthetic catalogues of `--sizes` items (40,981 = Gowalla's item count;
  10^6): clustered item vectors with log-normal norms (popularity), queries
  from the same mixture. Recall@20 = overlap of the approximate and the
  exact top-20; queries/s of the exact jitted device top-k
  (`serve.engine.batched_top_k`, what `--index exact` runs) and of the
  index, both on batches of `--batch` queries; the index's build time.
* Both HNSW graphs: inner-product ('ip') and the L2 reduction ('l2').

Writes the JSON (`--json`) and the Markdown page (`--out`).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from benchmarks import common
from jaxrec import export
from jaxrec import recommend
from jaxrec.serve import ann
from jaxrec.serve import engine

K = 20


def clustered(n: int, dim: int, seed: int, clusters: int = 256) -> np.ndarray:
  """Mixture-of-Gaussians vectors with log-normal norms. # [n, dim]"""
  rng = np.random.default_rng(seed)
  centres = rng.normal(0, 1, (clusters, dim)).astype(np.float32)
  out = np.empty((n, dim), np.float32)
  for lo in range(0, n, 100_000):  # bounded temporaries at 10^6 rows
    m = min(100_000, n - lo)
    out[lo:lo + m] = (centres[rng.integers(0, clusters, m)]
                      + 0.5 * rng.normal(0, 1, (m, dim)).astype(np.float32))
    out[lo:lo + m] *= rng.lognormal(0, 0.3, (m, 1)).astype(np.float32)
  return out


def exact_top_k(queries: np.ndarray, items_device, batch: int,
                exclude=None) -> tuple[np.ndarray, float]:
  """Exact top-K rows through the service's jitted kernel; (rows, seconds)."""
  num_items = items_device.shape[0]
  rows = np.empty((len(queries), K), np.int64)
  no_mask = np.zeros((batch, num_items), bool)
  # Compile outside the timing.
  jax.block_until_ready(engine.batched_top_k(queries[:batch], items_device,
                                             no_mask, K))
  start = time.perf_counter()
  for lo in range(0, len(queries), batch):
    q = queries[lo:lo + batch]
    mask = no_mask
    if exclude is not None:
      mask = np.zeros((batch, num_items), bool)
      for b, rows_b in enumerate(exclude[lo:lo + batch]):
        mask[b, rows_b] = True
    padded = np.zeros((batch, q.shape[1]), np.float32)
    padded[:len(q)] = q
    _, idx = engine.batched_top_k(padded, items_device, mask, K)
    rows[lo:lo + len(q)] = np.asarray(idx)[:len(q)]
  return rows, time.perf_counter() - start


def approx_top_k(index: ann.HnswIndex, queries: np.ndarray, batch: int,
                 exclude=None) -> tuple[np.ndarray, float]:
  """Index top-K rows in batches of `batch`; (rows, seconds)."""
  rows = np.empty((len(queries), K), np.int64)
  start = time.perf_counter()
  for lo in range(0, len(queries), batch):
    ex = () if exclude is None else exclude[lo:lo + batch]
    rows[lo:lo + batch], _ = index.search(queries[lo:lo + batch], K, ex)
  return rows, time.perf_counter() - start


def overlap(a: np.ndarray, b: np.ndarray) -> float:
  """Mean |a_q & b_q| / K over queries."""
  return float(np.mean([len(np.intersect1d(x, y)) / K for x, y in zip(a, b)]))


def ranking_metrics(rows: np.ndarray, targets: list) -> dict:
  """Recall@K / NDCG@K of top-K rows against per-user target sets."""
  discounts = 1.0 / np.log2(np.arange(2, K + 2))
  recall, ndcg = [], []
  for r, t in zip(rows, targets):
    hit = np.isin(r, t)
    recall.append(hit.sum() / len(t))  # the library's (LightGCN's) recall
    ndcg.append((hit * discounts).sum() / discounts[:min(len(t), K)].sum())
  return {"recall@20": float(np.mean(recall)), "ndcg@20": float(np.mean(ndcg))}


def trained_model(workdir: str, efs, batch: int, log) -> dict:
  """Test metrics of a trained run: exact vs HNSW at each ef_search."""
  trained = recommend.TrainedModel.load(workdir)
  bundle = export.bundle_from_trained(trained)
  ds = trained.dataset
  test, seen = ds.csr("test"), ds.csr("train") + ds.csr("valid")
  users = np.flatnonzero(np.diff(test.indptr))
  targets = [test.indices[test.indptr[u]:test.indptr[u + 1]] for u in users]
  exclude = [seen.indices[seen.indptr[u]:seen.indptr[u + 1]] for u in users]
  queries = np.asarray(bundle.user_vectors, np.float32)[users]
  items = np.asarray(bundle.item_vectors, np.float32)
  exact_rows, exact_s = exact_top_k(queries, jax.device_put(items), batch,
                                    exclude)
  out = {"workdir": workdir, "model": bundle.metadata.get("model"),
         "dataset": bundle.metadata.get("dataset"), "num_items": len(items),
         "test_users": len(users), "dim": items.shape[1],
         "exact": dict(ranking_metrics(exact_rows, targets),
                       queries_per_s=len(users) / exact_s),
         "library_exact": export.evaluate_vectors(
             bundle.user_vectors, bundle.item_vectors, trained, (K,)),
         "hnsw": []}
  for metric in ("ip", "l2"):
    start = time.perf_counter()
    index = ann.HnswIndex(items, ann.HnswOptions(metric=metric))
    build = time.perf_counter() - start
    for ef in efs:
      index.options = index.options._replace(ef_search=ef)
      rows, secs = approx_top_k(index, queries, batch, exclude)
      row = dict(ranking_metrics(rows, targets), metric=metric, ef_search=ef,
                 overlap=overlap(rows, exact_rows),
                 queries_per_s=len(users) / secs, build_s=build)
      out["hnsw"].append(row)
      log(f"trained {metric} ef={ef}: R@20 {row['recall@20']:.4f} vs exact "
          f"{out['exact']['recall@20']:.4f}, overlap {row['overlap']:.3f}")
  return out


def synthetic(size: int, dim: int, num_queries: int, efs, batch: int,
              seed: int, log, metrics=("ip", "l2")) -> dict:
  """Recall and queries/s on a synthetic catalogue of `size` items."""
  items = clustered(size, dim, seed)
  queries = clustered(num_queries, dim, seed + 1)
  exact_rows, exact_s = exact_top_k(queries, jax.device_put(items), batch)
  out = {"num_items": size, "dim": dim, "queries": num_queries,
         "exact_queries_per_s": num_queries / exact_s, "hnsw": []}
  log(f"{size} items exact: {out['exact_queries_per_s']:.0f} queries/s")
  for metric in metrics:
    start = time.perf_counter()
    index = ann.HnswIndex(items, ann.HnswOptions(metric=metric))
    build = time.perf_counter() - start
    for ef in efs:
      index.options = index.options._replace(ef_search=ef)
      rows, secs = approx_top_k(index, queries, batch)
      row = {"metric": metric, "ef_search": ef,
             "recall@20": overlap(rows, exact_rows),
             "queries_per_s": num_queries / secs, "build_s": build}
      row["speedup"] = row["queries_per_s"] / out["exact_queries_per_s"]
      out["hnsw"].append(row)
      log(f"{size} items {metric} ef={ef}: recall@20 {row['recall@20']:.3f}, "
          f"{row['queries_per_s']:.0f} q/s ({row['speedup']:.1f}x), "
          f"build {build:.0f} s")
    del index
  return out


def render(results: dict) -> str:
  """The Markdown page of a results JSON."""
  lines = [
      "# Approximate top-k in the service (HNSW) vs exact scoring", "",
      f"Command: `{common.as_module_command(results['command'])}`", "",
      f"Machine: {results['machine']}; {results['date']}. Exact = the "
      "service's jitted device top-k over every item (`--index exact`); "
      "HNSW = `python -m jaxrec.serve --index hnsw` (faiss, M=32, "
      "efConstruction=200; 'ip' = inner-product graph, 'l2' = graph over "
      "the MIPS-to-L2 reduction). Queries in batches of "
      f"{results['batch']}, one process, same vectors for every row.", ""]
  tm = results.get("trained")
  if tm:
    ex = tm["exact"]
    lines += [
        f"## Trained model: {tm['model']} on {tm['dataset']} "
        f"({tm['num_items']:,} items, d={tm['dim']}, {tm['test_users']:,} "
        "test users)", "",
        "Test metrics with train + valid items excluded. The library's own "
        f"evaluation of the same vectors: Recall@20 "
        f"{tm['library_exact']['recall@20']:.4f}, NDCG@20 "
        f"{tm['library_exact']['ndcg@20']:.4f}.", ""]
    lines += common.markdown_table(
        ["search", "ef_search", "Recall@20", "NDCG@20",
         "top-20 overlap with exact", "queries/s"],
        [["exact", "-", f"{ex['recall@20']:.4f}", f"{ex['ndcg@20']:.4f}",
          "1.000", f"{ex['queries_per_s']:,.0f}"]]
        + [[f"hnsw {r['metric']}", r["ef_search"], f"{r['recall@20']:.4f}",
            f"{r['ndcg@20']:.4f}", f"{r['overlap']:.3f}",
            f"{r['queries_per_s']:,.0f}"] for r in tm["hnsw"]],
        ["---"] + ["---:"] * 5)
    lines.append("")
  for syn in results["synthetic"]:
    lines += [
        f"## Synthetic catalogue: {syn['num_items']:,} items, d={syn['dim']}",
        "", f"{syn['queries']:,} queries; 256-component Gaussian mixture with "
        "log-normal norms. Exact: "
        f"{syn['exact_queries_per_s']:,.0f} queries/s.", ""]
    lines += common.markdown_table(
        ["graph", "ef_search", "recall@20 vs exact", "queries/s", "speed-up",
         "build (s)"],
        [[r["metric"], r["ef_search"], f"{r['recall@20']:.3f}",
          f"{r['queries_per_s']:,.0f}", f"{r['speedup']:.1f}x",
          f"{r['build_s']:.0f}"] for r in syn["hnsw"]],
        ["---"] + ["---:"] * 5)
    lines.append("")
  return "\n".join(lines)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", default="",
                 help="a trained dot-product run ('' = skip)")
  p.add_argument("--sizes", default="40981,1000000")
  p.add_argument("--dim", type=int, default=64)
  p.add_argument("--queries", type=int, default=1024)
  p.add_argument("--ef", default="32,64,128,256")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--l2_max_items", type=int, default=100_000,
                 help="build the L2-reduction graph only for synthetic "
                      "catalogues up to this size (its build doubles the cost)")
  common.add_result_args(p, "ann_search")
  args = p.parse_args(argv)

  if args.render:
    common.render_page(args.json, args.out, lambda r: render(r) + "\n")
    return
  start = time.perf_counter()

  def log(msg: str) -> None:
    print(f"[{time.perf_counter() - start:7.0f}s] {msg}", flush=True)

  efs = [int(v) for v in args.ef.split(",")]
  results = {
      "command": common.command("ann_search", argv),
      "machine": common.machine(), "date": common.today(),
      "batch": args.batch,
      "synthetic": []}
  if args.workdir:
    results["trained"] = trained_model(args.workdir, efs, args.batch, log)
  for size in (int(v) for v in args.sizes.split(",") if v):
    metrics = ("ip", "l2") if size <= args.l2_max_items else ("ip",)
    results["synthetic"].append(synthetic(size, args.dim, args.queries, efs,
                                          args.batch, args.seed, log, metrics))
    common.write_json(args.json, results)
  common.write_json(args.json, results)
  common.write_page(args.out, render(results) + "\n")


if __name__ == "__main__":
  main()

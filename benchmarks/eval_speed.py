"""Wall time of full-ranking evaluation at Gowalla scale (29,858 x 40,981, d=64).

Uses the real LightGCN Gowalla split from `$JAXREC_DATA_ROOT/lightgcn/gowalla`
(default /work/shared/data) when present: train = the user x item block of
`s_adj_mat.npz`, test = `test.txt` (`user item item ...` per line). Otherwise
(or with --synthetic) random train/test CSR matrices with Gowalla's sizes
(810,128 train, 217,242 test interactions). Embeddings are random either way.

Usage:
  python -m benchmarks.eval_speed [--synthetic] [--batch_sizes 0,512]
      [--block_users 0,64] [--chunk_sizes auto,0,32] [--repeats 2]

Batch size 0 = derived from the default 1 GiB memory budget; block 0 =
`score_block_users` (~16 MiB of scores per block); chunk size 'auto' =
`default_chunk_size`, 0 = plain `jax.lax.top_k`. Prints, per configuration,
the first call's wall time (including compilation) and the best wall (and
process CPU) time of the following calls, which run in interleaved rounds so
that load from other jobs biases all configurations alike.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.sparse as sp

from benchmarks import common
from jaxrec import metrics

NUM_USERS, NUM_ITEMS, DIM = 29858, 40981, 64
NUM_TRAIN, NUM_TEST = 810128, 217242


def load_gowalla(root: str):
  """(train, test) CSR matrices of the LightGCN Gowalla split, or None if absent."""
  folder = os.path.join(root, "lightgcn", "gowalla")
  adj_path, test_path = (os.path.join(folder, f) for f in ("s_adj_mat.npz", "test.txt"))
  if not (os.path.exists(adj_path) and os.path.exists(test_path)):
    return None
  adj = sp.load_npz(adj_path).tocsr()
  train = adj[:NUM_USERS, NUM_USERS:].tocsr()  # [U, I]
  train.data[:] = 1.0
  with open(test_path) as f:
    rows = [np.array(line.split(), np.int64) for line in f if line.strip()]
  lens = np.array([len(r) - 1 for r in rows])
  users = np.repeat(np.array([r[0] for r in rows]), lens)
  items = np.concatenate([r[1:] for r in rows])
  test = sp.csr_matrix((np.ones(len(items), np.float32), (users, items)),
                       shape=train.shape)
  test.sum_duplicates()
  test.data[:] = 1.0
  return train, test


def synthetic(seed: int = 0):
  """Random disjoint train/test CSR matrices with Gowalla's sizes."""
  rng = np.random.default_rng(seed)
  keys = rng.choice(NUM_USERS * NUM_ITEMS, NUM_TRAIN + NUM_TEST, replace=False)
  users, items = np.divmod(keys, NUM_ITEMS)
  def csr(sl):
    return sp.csr_matrix((np.ones(len(users[sl]), np.float32), (users[sl], items[sl])),
                         shape=(NUM_USERS, NUM_ITEMS))
  return csr(slice(0, NUM_TRAIN)), csr(slice(NUM_TRAIN, None))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--synthetic", action="store_true")
  parser.add_argument("--batch_sizes", default="0")
  parser.add_argument("--chunk_sizes", default="auto")
  parser.add_argument("--block_users", default="0")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--k", type=int, default=20)
  args = parser.parse_args()

  root = os.environ.get("JAXREC_DATA_ROOT", "/work/shared/data")
  data = None if args.synthetic else load_gowalla(root)
  source = "real Gowalla" if data is not None else "synthetic Gowalla-size"
  train, test = data if data is not None else synthetic()
  print(f"{source}: {train.shape[0]} users x {train.shape[1]} items, "
        f"train {train.nnz}, test {test.nnz}, d={DIM}, K={args.k}")
  rng = np.random.default_rng(1)
  user_emb = rng.normal(size=(train.shape[0], DIM)).astype(np.float32)
  item_emb = rng.normal(size=(train.shape[1], DIM)).astype(np.float32)
  popularity = np.asarray(train.sum(axis=0)).ravel()

  configs = [(int(b), int(blk), None if c == "auto" else int(c))
             for b in args.batch_sizes.split(",")
             for blk in args.block_users.split(",")
             for c in args.chunk_sizes.split(",")]
  def run(batch, block, chunk, **extra):
    start, cpu = time.perf_counter(), time.process_time()
    result = metrics.evaluate_embeddings(
        user_emb, item_emb, test, [train], ks=(args.k,), user_batch_size=batch or None,
        block_users=block or None, chunk_size=chunk, **extra)
    return time.perf_counter() - start, time.process_time() - cpu, result

  first, best, results = {}, {}, {}
  for cfg in configs:  # first call of each configuration compiles
    first[cfg] = run(*cfg)[0]
  for _ in range(args.repeats):  # interleaved rounds: robust to other load
    for cfg in configs:
      wall, cpu, results[cfg] = run(*cfg)
      best[cfg] = min(best.get(cfg, (np.inf, np.inf)), (wall, cpu))
  print(common.hardware_line())
  num_items, num_eval = train.shape[1], results[configs[0]]["num_users_evaluated"]
  for cfg in configs:
    batch, block, chunk = cfg
    batch = batch or metrics.user_batch_size_for(num_items, num_eval)
    block = min(block or metrics.score_block_users(num_items, batch), batch)
    chunk = metrics.default_chunk_size(num_items, args.k) if chunk is None else chunk
    res = results[cfg]
    print(f"batch={batch:5d} block={block:4d} chunk={chunk:3d}: incl. compile "
          f"{first[cfg]:6.2f} s, compiled {best[cfg][0]:6.2f} s wall "
          f"({best[cfg][1]:6.2f} s cpu)  recall@{args.k}={res[f'recall@{args.k}']:.5f} "
          f"ndcg@{args.k}={res[f'ndcg@{args.k}']:.5f}", flush=True)
  wall0 = run(*configs[0], item_popularity=popularity)[0]
  wall1 = run(*configs[0], item_popularity=popularity)[0]
  print(f"first config + item_popularity (coverage/novelty/avg_popularity): "
        f"incl. compile {wall0:6.2f} s, compiled {wall1:6.2f} s wall")


if __name__ == "__main__":
  main()

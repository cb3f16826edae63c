"""Does a degree-sorted node order speed up column-tiled propagation?

The tiled product (`jaxrec/graphs/tiling.py`) materialises one virtual row
per (column block, row) pair with an edge, V in all. Relabelling users and
items by decreasing train degree packs the popular columns into the first
blocks, so a row touches fewer blocks (smaller V) and its gathers hit fewer
cache lines. This script builds the synthetic graph of `benchmarks/speed.py`
at each size, in the generator's order and in degree order, and times one
jitted forward `A_hat @ x` (d = 64, 8192-node blocks) for each, interleaved,
`--rounds` times; prints V/E and min / median seconds. It also times the
second product as a scatter (`segment_sum` over the virtual rows) instead
of the BCSR gather. The library's relabelling is
`jaxrec.data.preprocess.relabel_by_degree` (`speed.py --node_order degree`).

  python -m benchmarks.node_order --sizes 3e6,1e7 --rounds 7
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from jax.experimental import sparse as jsparse
import numpy as np

from benchmarks import common
from benchmarks import step_time
from jaxrec.data import preprocess
from jaxrec.graphs import bipartite, tiling


def gather_product(x, weights, tiles):
  """The library's tiled product (P @ Z as a BCSR gather of Z's rows)."""
  return tiling._tiled_product(x, weights, tiles)  # pylint: disable=protected-access


def scatter_product(x, weights, tiles):
  """Same result with P @ Z as a scatter of Z's rows (segment_sum)."""
  num_nodes, num_virtual = x.shape[0], tiles["real_rows"].shape[0]
  z = jsparse.BCSR((weights, tiles["columns"], tiles["row_pointers"]),
                   shape=(num_virtual, num_nodes)) @ x  # [V, d]
  return jax.ops.segment_sum(z, tiles["real_rows"], num_segments=num_nodes)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="3e6,1e7")
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--block_nodes", type=int, default=8192)
  args = parser.parse_args(argv)
  print(common.hardware_line(), flush=True)
  products = {"gather": jax.jit(gather_product),
              "scatter": jax.jit(scatter_product)}
  for size in args.sizes.split(","):
    _, ds, _ = step_time.load(size)
    trains = {"generator": ds.train,
              "degree": preprocess.relabel_by_degree(ds).train}
    setups = {}
    for name, train in trains.items():
      graph = tiling.tile_graph(
          bipartite.bipartite_graph(train, ds.num_users, ds.num_items),
          args.block_nodes)
      if not tiling.has_tiles(graph):
        raise SystemExit(f"size {size}: {int(graph.n_node[0]):,} nodes fit in "
                         f"one {args.block_nodes}-node block, nothing to tile "
                         f"(use a larger size or a smaller --block_nodes)")
      tiles = jax.tree.map(jnp.asarray, graph.globals[tiling.TILES_KEY])
      x = jax.random.normal(jax.random.key(0), (int(graph.n_node[0]), 64))
      setups[name] = (x, tiles["weights"], tiles)
      ratio = tiles["real_rows"].shape[0] / tiles["columns"].shape[0]
      print(f"{size} {name}: E={tiles['columns'].shape[0]:,} V/E={ratio:.3f}",
            flush=True)
      want = jax.block_until_ready(products["gather"](*setups[name]))
      got = jax.block_until_ready(products["scatter"](*setups[name]))
      np.testing.assert_allclose(np.asarray(got), np.asarray(want),
                                 rtol=1e-4, atol=1e-5)
    times = {}
    for _ in range(args.rounds):  # interleaved: slow phases hit all alike
      for name, setup in setups.items():
        for kind, fn in products.items():
          start = time.perf_counter()
          jax.block_until_ready(fn(*setup))
          times.setdefault((name, kind), []).append(time.perf_counter() - start)
    for (name, kind), ts in times.items():
      print(f"{size} {name:9s} {kind:7s} min {min(ts):.4f} s  median "
            f"{np.median(ts):.4f} s", flush=True)


if __name__ == "__main__":
  main()

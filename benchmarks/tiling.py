"""Column-tiled vs plain symmetric propagation, by graph size and block size.

Times the jitted forward and forward + backward (gradient of a scalar of the
last layer) of 3 LightGCN layers (d = 64) with the plain 'bcsr_symmetric'
kernel and with 'tiled_symmetric' (`jaxrec.graphs.tiling`) at several column
block sizes, on synthetic graphs (`benchmarks/speed.py` sizes) and real ones
('gowalla', 'lastfm', 'amazon-beauty' presets when their data is present).
Each size runs in this process in turn; rounds of all kernels are interleaved
and the median of the rounds is reported, so load drifts hit every kernel
alike. Also reports V (virtual rows of the tiling) and checks that every tiled
result equals the plain one.

Usage:
  python -m benchmarks.tiling [--sizes 1e5,1e6,3e6,1e7,gowalla]
      [--blocks 4096,8192,16384,32768] [--rounds 5]
      [--out docs/results/tiling.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from benchmarks import common
from benchmarks import step_time

LAYERS, DIM = 3, 64


def load_graph(size: str):
  """(graph with NumPy arrays, description) for a preset name or edge count."""
  # pylint: disable=g-import-not-at-top
  from jaxrec import config_utils
  from jaxrec import input_pipeline
  from jaxrec.data import synthetic
  from jaxrec.graphs import bipartite_graph
  if size[0].isdigit():
    ds = synthetic.make_synthetic(
        **step_time.synthetic_sizes(int(float(size))), with_texts=False, seed=0,
        name=f"synthetic_{size}")
  else:
    ds = input_pipeline.load_data(config_utils.base_config(size))
  graph = bipartite_graph(ds.train, ds.num_users, ds.num_items)
  return graph, f"{ds.num_users:,} users x {ds.num_items:,} items"


def time_size(size: str, blocks: list, rounds: int) -> list:
  """Rows (kernel, block, V, fwd s, fwd+bwd s, max |diff|) for one graph."""
  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  from jaxrec.graphs import tiling
  from jaxrec.models.lightgcn import light_propagate
  graph, desc = load_graph(size)
  num_nodes = int(np.sum(graph.n_node))
  variants = {"bcsr_symmetric": (jax.tree.map(jnp.asarray, graph), 0)}
  for block in blocks:
    if block < num_nodes:
      start = time.perf_counter()
      tiled = tiling.tile_graph(graph, block)
      build = time.perf_counter() - start
      variants[f"tiled {block}"] = (jax.tree.map(jnp.asarray, tiled), build)
  x = jax.random.normal(jax.random.key(0), (num_nodes, DIM)) * 0.1
  fns = {}
  for name, (g, _) in variants.items():
    fwd = jax.jit(lambda v, gr: light_propagate(gr, v, LAYERS)[-1])
    grad = jax.jit(jax.grad(
        lambda v, gr: jnp.sum(light_propagate(gr, v, LAYERS)[-1] ** 2)))
    jax.block_until_ready((fwd(x, g), grad(x, g)))  # compile
    fns[name] = (fwd, grad, g)
  times = {name: ([], []) for name in fns}
  for _ in range(rounds):
    for name, (fwd, grad, g) in fns.items():
      for fn, out in zip((fwd, grad), times[name]):
        start = time.perf_counter()
        jax.block_until_ready(fn(x, g))
        out.append(time.perf_counter() - start)
  ref = np.asarray(fns["bcsr_symmetric"][0](x, fns["bcsr_symmetric"][2]))
  rows = []
  for name, (fwd, grad, g) in fns.items():
    tiles = g.globals.get(tiling.TILES_KEY) if isinstance(g.globals, dict) else None
    virtual = int(tiles["virtual_rows"].shape[0]) if tiles else num_nodes
    diff = float(np.max(np.abs(np.asarray(fwd(x, g)) - ref)))
    rows.append(dict(size=size, desc=desc, nodes=num_nodes,
                     edges=int(graph.senders.shape[0]), kernel=name,
                     virtual=virtual, build=variants[name][1],
                     fwd=statistics.median(times[name][0]),
                     fwd_bwd=statistics.median(times[name][1]), diff=diff,
                     load=round(os.getloadavg()[0], 1)))
    print(rows[-1], flush=True)
  return rows


def report(rows: list, command: str) -> str:
  lines = [
      "# Column-tiled propagation (3 LightGCN layers, d = 64)", "",
      f"Command: `{command}`", "", common.hardware_line(), "",
      "Median of interleaved rounds; fwd+bwd = gradient of a scalar of the "
      "last layer. V = virtual rows (one per column block and row with an "
      "edge there). Speed-up vs 'bcsr_symmetric' on fwd+bwd.", ""]
  base = {r["size"]: r["fwd_bwd"] for r in rows
          if r["kernel"] == "bcsr_symmetric"}
  lines += common.markdown_table(
      ["graph", "nodes", "directed edges", "kernel", "V", "tile build s",
       "fwd s", "fwd+bwd s", "speed-up", "max abs diff", "load"],
      [[f"{r['size']} ({r['desc']})", f"{r['nodes']:,}", f"{r['edges']:,}",
        r["kernel"], f"{r['virtual']:,}", f"{r['build']:.2f}",
        f"{r['fwd']:.3f}", f"{r['fwd_bwd']:.3f}",
        f"{base[r['size']] / r['fwd_bwd']:.2f}x", f"{r['diff']:.1e}",
        r["load"]] for r in rows])
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="1e5,1e6,3e6,1e7,gowalla")
  parser.add_argument("--blocks", default="4096,8192,16384,32768")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)
  blocks = [int(b) for b in args.blocks.split(",") if b]
  rows = []
  for size in args.sizes.split(","):
    rows += time_size(size.strip(), blocks, args.rounds)
  text = report(rows, common.command("tiling", argv))
  print(text)
  if args.out:
    common.write_page(args.out, text)


if __name__ == "__main__":
  main()

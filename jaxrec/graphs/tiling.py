"""Column-tiled propagation: cache-sized gathers for graphs beyond the CPU cache.

A CSR product out = A_hat @ x visits rows in order and gathers the rows
x[col] of their neighbours. Once the node table x ([N, d] float32) outgrows
the last-level cache, those gathers are random DRAM reads and the per-edge
cost roughly doubles (docs/results/speed.md: 1.0e-7 s/edge while the
table fits the 8 MiB L3 of the benchmark CPU, 2.2e-7 beyond it).

Tiling splits the columns into blocks of `block_nodes` consecutive nodes and
runs the product block by block, so that each block's gathers hit a
cache-resident slice of x. With static shapes and one native CSR kernel
call, it is two sparse products:

  1. Z = T @ x, where T is a CSR matrix with one VIRTUAL row per (column
     block b, row r) pair that has an edge: its entries are row r's edges
     whose sender lies in block b. Virtual rows are ordered by block, then
     row, so the kernel sweeps block 0's columns, then block 1's, ...  # [V, d]
  2. out = P @ Z, where P (N x V, all ones) sums each real row's virtual
     rows. V <= min(E, N * num_blocks), and Z costs V x d floats of memory
     traffic, far fewer than the E random gathers it saves.

Tiles hold an edge permutation (and the graph's own weights already
permuted), so any weights in the graph's edge order can be used: the graph's
own or SGL's dropout views. The backward
pass needs symmetric weights (A_hat^T g = A_hat g, as 'bcsr_symmetric').
`tile_graph` attaches the tiles to `graph.globals`; `propagation.propagate`
uses them for symmetric weights (kernel 'tiled_symmetric', or
'native_tiled_symmetric': both products with `jaxrec.graphs.native`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
import numpy as np
from jax.experimental import sparse as jsparse

from jaxrec.graphs import native

# Key of the tiles in `graph.globals` (a dict of int32 arrays, see tile_graph).
TILES_KEY = "column_tiles"
# 2 MiB of float32 rows at d = 64: a block's gathers stay in L2/L3.
DEFAULT_BLOCK_NODES = 8192
# Automatic tiling (input_pipeline.build_graph): graphs with more nodes than this
# (4 MiB of d=64 rows) and at least this mean degree (directed edges per
# node; sparser graphs pay more for the V virtual rows than the cache-resident
# gathers save). Measured on the benchmark CPU: docs/results/tiling.md.
AUTO_MIN_NODES = 16384
AUTO_MIN_DEGREE = 16
# Whether automatic tiling tiles graphs when the native CSR kernel
# (graphs/native.py) runs. No: since its rows run on XLA's thread pool the
# untiled kernel is faster at every measured size. Whole LightGCN steps,
# degree order, float32 (docs/results/speed.md): untiled
# 0.0357 / 0.145 / 0.516 s at 1e6 / 3e6 / 1e7 edges vs 0.0372 / 0.176 /
# 0.590 s with 8192-node tiles (V/E 0.065-0.134); Gowalla (V/E 0.18) and
# bfloat16 gathers were already faster untiled.
AUTO_TILES_WITH_NATIVE = False


def column_tiles(senders: np.ndarray, receivers: np.ndarray, num_nodes: int,
                 block_nodes: int) -> dict:
  """Index arrays of the two-product tiled CSR (module docstring).

  Args:
    senders: source node of each edge. # [E]
    receivers: target node of each edge. # [E]
    num_nodes: N, rows and columns of A_hat.
    block_nodes: nodes per column block (> 0).

  Returns:
    dict of int32 NumPy arrays:
      'edge_order': edge indices in tiled order (block, receiver, sender). # [E]
      'columns': senders in that order. # [E]
      'row_pointers': CSR row pointers of the virtual rows. # [V + 1]
      'real_rows': real row of each virtual row. # [V]
      'virtual_rows': virtual row ids grouped by real row (P's columns). # [V]
      'real_row_pointers': P's row pointers. # [N + 1]
  """
  if block_nodes <= 0:
    raise ValueError(f"column_tiles: block_nodes must be > 0, got {block_nodes}")
  senders = np.asarray(senders, np.int64)
  receivers = np.asarray(receivers, np.int64)
  block = senders // block_nodes  # [E]
  order = np.lexsort((senders, receivers, block))  # [E]
  virtual_key = block[order] * num_nodes + receivers[order]  # [E], ascending
  keys, virtual = np.unique(virtual_key, return_inverse=True)
  num_virtual = len(keys)
  row_pointers = np.searchsorted(virtual, np.arange(num_virtual + 1))
  real_row = keys % num_nodes  # [V]
  by_real_row = np.argsort(real_row, kind="stable")  # [V]
  real_row_pointers = np.searchsorted(real_row[by_real_row],
                                      np.arange(num_nodes + 1))
  as_int32 = lambda a: np.asarray(a, np.int32)
  return {"edge_order": as_int32(order),
          "columns": as_int32(senders[order]),
          "row_pointers": as_int32(row_pointers),
          "real_rows": as_int32(real_row),
          "virtual_rows": as_int32(by_real_row),
          "real_row_pointers": as_int32(real_row_pointers)}


def tile_graph(graph: jraph.GraphsTuple,
               block_nodes: int = DEFAULT_BLOCK_NODES) -> jraph.GraphsTuple:
  """Attaches column tiles to `graph.globals` (a no-op for a single block).

  Args:
    graph: graph with NumPy arrays; `globals` None or a dict. Padding nodes
      and edges may be present (zero-weight edges are tiled like any other).
    block_nodes: nodes per column block.

  Returns:
    The graph with `globals[TILES_KEY]` (the `column_tiles` arrays plus
    'weights', the graph's edge weights in tiled order), or unchanged when all
    nodes fit one block (tiling would only add the second product). A graph
    whose `edges` are replaced later must be re-tiled (`untile`, then
    `tile_graph`): the default kernel reads the stored copy.
  """
  if graph.globals is not None and not isinstance(graph.globals, dict):
    raise ValueError("tile_graph: graph.globals must be None or a dict")
  num_nodes = int(np.sum(graph.n_node))
  if num_nodes <= block_nodes:
    return graph
  extra = dict(graph.globals or {})
  tiles = column_tiles(np.asarray(graph.senders), np.asarray(graph.receivers),
                       num_nodes, block_nodes)
  tiles["weights"] = np.asarray(graph.edges)[tiles["edge_order"]]
  extra[TILES_KEY] = tiles
  return graph._replace(globals=extra)


def untile(graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
  """The graph without tiles (e.g. before re-padding or sharding its edges)."""
  if not has_tiles(graph):
    return graph
  extra = {k: v for k, v in graph.globals.items() if k != TILES_KEY}
  return graph._replace(globals=extra or None)


def has_tiles(graph: jraph.GraphsTuple) -> bool:
  """Whether `graph` carries column tiles (static: pytree structure)."""
  return isinstance(graph.globals, dict) and TILES_KEY in graph.globals


def bcsr_matmul(x: jnp.ndarray, weights: jnp.ndarray, columns: jnp.ndarray,
                row_pointers: jnp.ndarray) -> jnp.ndarray:
  """XLA's BCSR product A @ x for the CSR matrix (weights, columns, row_pointers).

  The same signature as `native.csr_matmul`, so either can be the `product`
  of the tiled and symmetric kernels.

  Args:
    x: dense rows. # [N, d]
    weights: A's entries. # [E]
    columns: column of each entry, in [0, N). # [E]
    row_pointers: CSR row pointers of A. # [R + 1]

  Returns:
    A @ x. # [R, d]
  """
  shape = (row_pointers.shape[0] - 1, x.shape[0])
  return jsparse.BCSR((weights, columns, row_pointers), shape=shape) @ x


def _tiled_product(x: jnp.ndarray, tiled_weights: jnp.ndarray, tiles: dict,
                   product=bcsr_matmul, gather_product=None):
  """A_hat @ x through the tiles: per-tile partial rows, then their sums.

  `gather_product` (default `product`) computes the partial rows, the only
  product that gathers rows of x; the float32 partial rows are summed with
  `product`.
  """
  num_nodes = x.shape[0]
  num_virtual = tiles["virtual_rows"].shape[0]
  tiled_rows = tiles["real_row_pointers"].shape[0] - 1
  virtual = (gather_product or product)(
      x, tiled_weights, tiles["columns"], tiles["row_pointers"])  # [V, d]
  ones = jnp.ones((num_virtual,), x.dtype)
  out = product(virtual, ones, tiles["virtual_rows"],
                tiles["real_row_pointers"])  # [N', d]
  if tiled_rows < num_nodes:  # nodes padded after tiling have no edges
    out = jnp.pad(out, ((0, num_nodes - tiled_rows), (0, 0)))
  return out


def tiled_weights_of(tiles: dict, weights: jnp.ndarray | None) -> jnp.ndarray:
  """Edge weights in tiled order: the stored graph weights, or `weights[order]`.

  Args:
    tiles: `column_tiles` arrays (with 'weights' when built by `tile_graph`).
    weights: weights in the graph's edge order, or None for the graph's own
      (stored pre-permuted: no per-call random gather). # [E]

  Returns:
    Weights in tiled order. # [E]
  """
  if weights is None:
    return tiles["weights"]
  return weights[tiles["edge_order"]]


def _symmetric_tiled(product, gather_product=None):
  """`tiled_symmetric_propagate` with the CSR `product` it is built on (and
  `gather_product` for the products that gather rows of x or g)."""

  @jax.custom_vjp
  def propagate_tiled(x: jnp.ndarray, tiled_weights: jnp.ndarray,
                      tiles: dict) -> jnp.ndarray:
    """A_hat @ x through column tiles, for SYMMETRIC weights.

    Args:
      x: node features. # [N, d]
      tiled_weights: symmetric edge weights in TILED order
        (`tiled_weights_of`); gradients flow back through that permutation.
        # [E]
      tiles: `column_tiles` arrays of this graph.

    Returns:
      A_hat @ x. # [N, d]
    """
    return _tiled_product(x, tiled_weights, tiles, product, gather_product)

  def fwd(x, tiled_weights, tiles):
    return (_tiled_product(x, tiled_weights, tiles, product, gather_product),
            (x, tiled_weights, tiles))

  def bwd(res, g):
    x, tiled_weights, tiles = res
    dx = _tiled_product(g, tiled_weights, tiles, product,
                        gather_product)  # A^T g = A g
    # d<g, A x>/dw_e = <g[r_e], x[s_e]> in tiled order; dead code (removed
    # by XLA) unless the weights are differentiated.
    receivers = jnp.repeat(tiles["real_rows"],
                           jnp.diff(tiles["row_pointers"]),
                           total_repeat_length=tiles["columns"].shape[0])
    dw = jnp.sum(g[receivers] * x[tiles["columns"]], axis=-1)
    return dx, dw.astype(tiled_weights.dtype), None

  propagate_tiled.defvjp(fwd, bwd)
  return propagate_tiled


# XLA's BCSR products, and the native CPU kernel (`jaxrec.graphs.native`).
tiled_symmetric_propagate = _symmetric_tiled(bcsr_matmul)
native_tiled_symmetric_propagate = _symmetric_tiled(native.csr_matmul)
# The native kernel gathering bfloat16 rows (float32 sums and partial rows).
native_tiled_bf16_propagate = _symmetric_tiled(
    native.csr_matmul, gather_product=native.csr_matmul_bf16_gather)

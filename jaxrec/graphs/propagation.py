"""Message passing over the normalised adjacency: out = A_hat @ x.

These kernels compute the same product:
  * 'segment_sum': gather x[senders] * w, scatter-add into receivers.
  * 'segment_sum_sorted': the same with `indices_are_sorted=True`; needs the
    edges sorted by receiver (`bipartite_graph` sorts them and `pad_graph`
    keeps the order: padding edges point at the first padding node, after
    every real node).
  * 'bcoo': `jax.experimental.sparse` BCOO matrix times dense matrix.
  * 'bcsr': `jax.experimental.sparse` BCSR (row pointers from the sorted
    receivers) times dense matrix; needs edges sorted by receiver.
  * 'symmetric': sorted segment_sum with a `jax.custom_vjp` whose backward
    pass reuses the forward kernel, since A_hat^T g = A_hat g when A_hat is
    symmetric (w(s->r) == w(r->s) for every edge, true for the 'sym'
    normalisation, SGL's renormalised dropout views and any symmetric edge
    mask). It returns WRONG input gradients for non-symmetric weights
    ('left'/'right' normalisation, attention), so it is opt-in and never the
    default.
  * 'bcsr_symmetric': 'bcsr' forward with the same `jax.custom_vjp` trick:
    the backward pass is one more BCSR product A_hat g instead of JAX's
    transposed-BCSR rule (an unsorted scatter, ~2x the forward's cost on
    CPU). Needs symmetric weights, like 'symmetric'.
  * 'tiled_symmetric': the symmetric product through cache-sized column
    tiles (`jaxrec.graphs.tiling`), for graphs whose node table outgrows the
    CPU cache; needs a graph with tiles (`tiling.tile_graph`) and symmetric
    weights.
  * 'native_symmetric' and 'native_tiled_symmetric': 'bcsr_symmetric' and
    'tiled_symmetric' with jaxrec's own CPU kernel for the CSR products
    (`jaxrec.graphs.native`: vectorised over features, prefetching, compiled
    on first use). CPU and float32 only.
  * 'native_symmetric_bf16' and 'native_tiled_symmetric_bf16': the native
    kernels with the gathered rows of x (and, backward, of the cotangent)
    rounded to bfloat16; sums, outputs and gradients stay float32. Half the
    gather traffic, which is what bounds propagation once the node table
    outgrows the cache (docs/results/speed.md). Picked instead of the
    native kernels for graphs marked by `bipartite.mark_bfloat16_gather`
    (`config.graph.gather_dtype = 'bfloat16'`).
`benchmarks/propagation.py` times them (forward + backward of 3 LightGCN
layers on Gowalla); DEFAULT_METHOD is the fastest general kernel and every
propagation model uses `propagate`. With `method=None`, `propagate` picks
SYMMETRIC_METHOD instead when the weights are known to be symmetric: the
graph's own weights of a graph marked by `bipartite.mark_symmetric` (what
`bipartite_graph` does for the 'sym' and 'none' norms), or a caller's
`symmetric=True` (SGL's renormalised dropout views), and 'tiled_symmetric'
for such weights on a graph that carries tiles (`input_pipeline.build_graph` tiles
large graphs on CPU, `config.graph.tile_nodes`); and their native versions
when `native.enabled()` (CPU backend, kernel built) and x is float32, or
their bfloat16-gather versions (BFLOAT16_FOR) on a marked graph.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
from jax.experimental import sparse as jsparse

from jaxrec.graphs import native
from jaxrec.graphs import tiling
from jaxrec.graphs.bipartite import gathers_bfloat16
from jaxrec.graphs.bipartite import is_symmetric

METHODS = ("segment_sum", "segment_sum_sorted", "bcoo", "bcsr", "symmetric",
           "bcsr_symmetric", "tiled_symmetric", "native_symmetric",
           "native_tiled_symmetric", "native_symmetric_bf16",
           "native_tiled_symmetric_bf16")
# Kernels that are correct for any edge weights (eligible as the default).
GENERAL_METHODS = ("segment_sum", "segment_sum_sorted", "bcoo", "bcsr")
DEFAULT_METHOD = "bcsr"
# Default for weights known to be symmetric (see the module docstring).
SYMMETRIC_METHOD = "bcsr_symmetric"
# Default for symmetric weights on a graph with column tiles.
TILED_METHOD = "tiled_symmetric"
# Their replacements when the native kernel is enabled (`native.enabled`).
NATIVE_FOR = {SYMMETRIC_METHOD: "native_symmetric",
              TILED_METHOD: "native_tiled_symmetric"}
# Their bfloat16-gather versions, for graphs marked `mark_bfloat16_gather`.
BFLOAT16_FOR = {"native_symmetric": "native_symmetric_bf16",
                "native_tiled_symmetric": "native_tiled_symmetric_bf16"}
# Kernels that call `jaxrec.graphs.native` (CPU, float32 x).
NATIVE_METHODS = tuple(NATIVE_FOR.values()) + tuple(BFLOAT16_FOR.values())


def _segment_sum(x, weights, senders, receivers, sorted_: bool):
  messages = x[senders] * weights[:, None].astype(x.dtype)  # [E, d]
  return jax.ops.segment_sum(messages, receivers, num_segments=x.shape[0],
                             indices_are_sorted=sorted_)


@jax.custom_vjp
def symmetric_propagate(x: jnp.ndarray, weights: jnp.ndarray,
                        senders: jnp.ndarray,
                        receivers: jnp.ndarray) -> jnp.ndarray:
  """A_hat @ x for a SYMMETRIC A_hat; the backward reuses the forward kernel.

  Args:
    x: node features. # [N, d]
    weights: edge weights, symmetric (w(s->r) == w(r->s)). # [E]
    senders: int32 source nodes. # [E]
    receivers: int32 target nodes, sorted ascending. # [E]

  Returns:
    A_hat @ x. # [N, d]
  """
  return _segment_sum(x, weights, senders, receivers, True)


def _symmetric_fwd(x, weights, senders, receivers):
  out = _segment_sum(x, weights, senders, receivers, True)
  return out, (x, weights, senders, receivers)


def _edge_weight_grad(g, x, weights, senders, receivers):
  """d<g, A x>/dw_e = <g[r_e], x[s_e]>; dead code (removed by XLA) if unused."""
  return jnp.sum(g[receivers] * x[senders], axis=-1).astype(weights.dtype)


def _symmetric_bwd(res, g):
  x, weights, senders, receivers = res
  # d/dx: A_hat^T g = A_hat g (symmetry), again a sorted scatter-add.
  dx = _segment_sum(g, weights, senders, receivers, True)  # [N, d]
  return dx, _edge_weight_grad(g, x, weights, senders, receivers), None, None


symmetric_propagate.defvjp(_symmetric_fwd, _symmetric_bwd)


def _row_pointers(receivers: jnp.ndarray, num_nodes: int) -> jnp.ndarray:
  """CSR row pointers of receiver-sorted edges. # [N + 1]"""
  return jnp.searchsorted(receivers, jnp.arange(num_nodes + 1,
                                                dtype=receivers.dtype),
                          side="left").astype(jnp.int32)


def _symmetric_csr(product):
  """A custom-VJP CSR propagation built on `product`: backward = A_hat @ g."""

  @jax.custom_vjp
  def propagate_csr(x: jnp.ndarray, weights: jnp.ndarray,
                    senders: jnp.ndarray, receivers: jnp.ndarray,
                    indptr: jnp.ndarray) -> jnp.ndarray:
    """CSR A_hat @ x for a SYMMETRIC A_hat; the backward is A_hat @ g.

    Args:
      x: node features. # [N, d]
      weights: symmetric edge weights, receiver-sorted. # [E]
      senders: int32 column (source) of each edge. # [E]
      receivers: int32 row (target) of each edge, sorted. # [E]
      indptr: CSR row pointers of the receiver-sorted edges. # [N + 1]

    Returns:
      A_hat @ x. # [N, d]
    """
    del receivers  # only the backward's weight gradient needs them
    return product(x, weights, senders, indptr)

  def fwd(x, weights, senders, receivers, indptr):
    out = product(x, weights, senders, indptr)
    return out, (x, weights, senders, receivers, indptr)

  def bwd(res, g):
    x, weights, senders, receivers, indptr = res
    dx = product(g, weights, senders, indptr)  # A_hat^T g = A_hat g
    dw = _edge_weight_grad(g, x, weights, senders, receivers)
    return dx, dw, None, None, None

  propagate_csr.defvjp(fwd, bwd)
  return propagate_csr


# XLA's BCSR product, and the native CPU kernel (`jaxrec.graphs.native`).
bcsr_symmetric_propagate = _symmetric_csr(tiling.bcsr_matmul)
native_symmetric_propagate = _symmetric_csr(native.csr_matmul)
native_bf16_propagate = _symmetric_csr(native.csr_matmul_bf16_gather)
# The symmetric kernels by method name: plain CSR and column-tiled.
_CSR_KERNELS = {"bcsr_symmetric": bcsr_symmetric_propagate,
                "native_symmetric": native_symmetric_propagate,
                "native_symmetric_bf16": native_bf16_propagate}
_TILED_KERNELS = {"tiled_symmetric": tiling.tiled_symmetric_propagate,
                  "native_tiled_symmetric":
                      tiling.native_tiled_symmetric_propagate,
                  "native_tiled_symmetric_bf16":
                      tiling.native_tiled_bf16_propagate}


def propagate(graph: jraph.GraphsTuple, x: jnp.ndarray,
              edge_weights: jnp.ndarray | None = None,
              method: str | None = None,
              symmetric: bool | None = None) -> jnp.ndarray:
  """Aggregates neighbour features: out[r] = sum_{(s->r)} w_sr * x[s].

  Args:
    graph: graph whose `edges` hold the normalised weights. # [E]
    x: node features. # [N, d]
    edge_weights: optional weights overriding `graph.edges` (edge dropout,
      attention). # [E]
    method: one of METHODS, or None: for symmetric weights TILED_METHOD on
      a graph with tiles, else SYMMETRIC_METHOD (their NATIVE_FOR versions
      for float32 x when `native.enabled()`, and those kernels' BFLOAT16_FOR
      versions on a graph marked by `mark_bfloat16_gather`); DEFAULT_METHOD
      otherwise.
      'segment_sum_sorted', 'bcsr' and the symmetric kernels need edges
      sorted by receiver; the symmetric kernels also need symmetric weights
      (module docstring).
    symmetric: whether the weights used are symmetric (only steers the
      default kernel); None = the graph's own weights of a graph marked by
      `mark_symmetric`, and False whenever `edge_weights` are given.

  Returns:
    Aggregated node features. # [N, d]
  """
  weights = graph.edges if edge_weights is None else edge_weights  # [E]
  if symmetric is None:
    symmetric = edge_weights is None and is_symmetric(graph)
  if method is None:
    if symmetric:
      method = TILED_METHOD if tiling.has_tiles(graph) else SYMMETRIC_METHOD
      if x.dtype == jnp.float32 and native.enabled():
        method = NATIVE_FOR[method]
        if gathers_bfloat16(graph):
          method = BFLOAT16_FOR[method]
    else:
      method = DEFAULT_METHOD
  num_nodes = x.shape[0]
  if method == "segment_sum":
    return _segment_sum(x, weights, graph.senders, graph.receivers, False)
  if method == "segment_sum_sorted":
    return _segment_sum(x, weights, graph.senders, graph.receivers, True)
  if method == "symmetric":
    return symmetric_propagate(x, weights.astype(x.dtype), graph.senders,
                               graph.receivers)
  if method == "bcoo":
    indices = jnp.stack([graph.receivers, graph.senders], axis=1)  # [E, 2]
    adj = jsparse.BCOO((weights.astype(x.dtype), indices),
                       shape=(num_nodes, num_nodes))
    return adj @ x
  if method == "bcsr":
    indptr = _row_pointers(graph.receivers, num_nodes)  # [N + 1]
    return tiling.bcsr_matmul(x, weights.astype(x.dtype), graph.senders,
                              indptr)
  if method in _CSR_KERNELS:
    indptr = _row_pointers(graph.receivers, num_nodes)  # [N + 1]
    return _CSR_KERNELS[method](x, weights.astype(x.dtype), graph.senders,
                                graph.receivers, indptr)
  if method in _TILED_KERNELS:
    if not tiling.has_tiles(graph):
      raise ValueError(f"propagate: method {method!r} needs a graph with "
                       "column tiles (jaxrec.graphs.tiling.tile_graph)")
    tiles = graph.globals[tiling.TILES_KEY]
    tiled_weights = tiling.tiled_weights_of(tiles, edge_weights)  # [E]
    return _TILED_KERNELS[method](x, tiled_weights.astype(x.dtype), tiles)
  raise ValueError(f"propagation method must be one of {METHODS}, "
                   f"got {method!r}")


def general_method(method: Optional[str]) -> Optional[str]:
  """Kernel for non-symmetric weights: 'symmetric' is swapped for a safe one."""
  return {"symmetric": "segment_sum_sorted",
          "bcsr_symmetric": "bcsr",
          "tiled_symmetric": "bcsr"}.get(method, method)


def split_nodes(x: jnp.ndarray, num_users: int, num_items: int):
  """Splits node rows into (users [U, d], items [I, d]), dropping padding."""
  return x[:num_users], x[num_users:num_users + num_items]

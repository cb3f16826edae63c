"""Tests of column-tiled propagation (jaxrec.graphs.tiling)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.config_utils import with_defaults
from jaxrec.data import synthetic
from jaxrec.graphs import native
from jaxrec.graphs import propagate
from jaxrec.graphs import propagation
from jaxrec.graphs import subgraph
from jaxrec.graphs import tiling
from jaxrec.models.lightgcn import light_propagate
from jaxrec import input_pipeline
from tests.graph_fixtures import dense_adjacency
from tests.graph_fixtures import tiny_graph


def tiled(graph, block):
  return jax.tree.map(jnp.asarray, tiling.tile_graph(
      jax.tree.map(np.asarray, graph), block))


@pytest.mark.parametrize("block", [1, 3, 8])
def test_column_tiles_cover_every_edge_once_block_by_block(block):
  graph = jax.tree.map(np.asarray, tiny_graph(pad=True))
  n = int(np.sum(graph.n_node))
  t = tiling.column_tiles(graph.senders, graph.receivers, n, block)
  order, cols, ptr = t["edge_order"], t["columns"], t["row_pointers"]
  np.testing.assert_array_equal(np.sort(order), np.arange(len(graph.senders)))
  np.testing.assert_array_equal(cols, graph.senders[order])
  num_virtual = len(ptr) - 1
  assert ptr[0] == 0 and ptr[-1] == len(order) and np.all(np.diff(ptr) > 0)
  virtual_of_edge = np.repeat(np.arange(num_virtual), np.diff(ptr))
  real_of_virtual = np.empty(num_virtual, np.int64)
  for v in range(num_virtual):  # one real row and one column block each
    rows = graph.receivers[order][virtual_of_edge == v]
    blocks = cols[virtual_of_edge == v] // block
    assert len(set(rows)) == 1 and len(set(blocks)) == 1
    real_of_virtual[v] = rows[0]
  block_of_virtual = [cols[ptr[v]] // block for v in range(num_virtual)]
  assert np.all(np.diff(block_of_virtual) >= 0)  # block-major sweep
  # P gathers each real row's virtual rows, every virtual row exactly once.
  rptr, vrows = t["real_row_pointers"], t["virtual_rows"]
  assert len(rptr) == n + 1
  np.testing.assert_array_equal(np.sort(vrows), np.arange(num_virtual))
  for r in range(n):
    assert np.all(real_of_virtual[vrows[rptr[r]:rptr[r + 1]]] == r)


@pytest.mark.parametrize("block", [1, 2, 5, 11, 23])
def test_tiled_matches_dense_with_jit_and_padding(block):
  graph = tiled(tiny_graph(pad=True), block)
  assert tiling.has_tiles(graph)
  a = dense_adjacency(graph)
  x = jax.random.normal(jax.random.key(0), (a.shape[0], 6))
  g = jax.random.normal(jax.random.key(1), (a.shape[0], 6))
  out, vjp = jax.vjp(jax.jit(lambda v: propagate(graph, v)), x)
  chex.assert_trees_all_close(out, a @ np.asarray(x), atol=1e-5)
  chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-5)


def test_single_block_graph_is_left_untiled():
  graph = jax.tree.map(np.asarray, tiny_graph(pad=True))
  assert not tiling.has_tiles(tiling.tile_graph(graph, 10_000))
  assert not tiling.has_tiles(tiling.untile(tiled(graph, 4)))
  with pytest.raises(ValueError, match="block_nodes"):
    tiling.column_tiles(graph.senders, graph.receivers, 24, 0)


def test_default_uses_tiles_only_for_symmetric_weights():
  graph = tiled(tiny_graph(pad=True), 4)
  x = jnp.ones((24, 2))
  count = lambda fn: str(jax.make_jaxpr(fn)(x)).count("bcsr_dot_general")
  # The symmetric defaults call the native kernel when it is enabled.
  count_sym = lambda fn: str(jax.make_jaxpr(fn)(x)).count(
      native.TARGET if native.enabled() else "bcsr_dot_general")
  assert count_sym(lambda v: propagate(graph, v)) == 2  # tiled: two products
  assert count_sym(lambda v: propagate(tiny_graph(pad=True), v)) == 1
  # Weights not declared symmetric never take the (symmetric-only) tiles.
  assert count(lambda v: propagate(graph, v, graph.edges)) == 1
  with pytest.raises(ValueError, match="column tiles"):
    propagate(tiny_graph(pad=True), x, method="tiled_symmetric")


def test_tiled_sgl_dropout_view_gives_exact_gradients():
  graph = tiled(tiny_graph("sym", pad=True), 4)
  keep = subgraph.edge_dropout_keep(jax.random.key(3), graph, 0.3)
  w = subgraph.sym_renormalise(graph, keep)  # SGL-ED view weights
  x = jax.random.normal(jax.random.key(0), (24, 3))
  g = jax.random.normal(jax.random.key(1), (24, 3))
  a = dense_adjacency(graph, w)
  out, vjp = jax.vjp(lambda v: propagate(graph, v, w, symmetric=True), x)
  chex.assert_trees_all_close(out, a @ np.asarray(x), atol=1e-5)
  chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-5)


def test_build_graph_tiles_large_graphs_and_lightgcn_is_unchanged():
  ds = synthetic.make_synthetic(num_users=300, num_items=200,
                                num_interactions=3000, with_texts=False)
  config = with_defaults({"graph": {"tile_nodes": 64}})
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, ds))
  config.graph.tile_nodes = 0
  plain = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, ds))
  assert tiling.has_tiles(graph) and not tiling.has_tiles(plain)
  assert input_pipeline.tile_block_nodes(-1, 1000, 10 ** 5) == 0  # auto: small graph
  assert input_pipeline.tile_block_nodes(-1, 10 ** 6, 10 ** 6) == 0  # auto: sparse
  assert input_pipeline.tile_block_nodes(-1, 10 ** 6, 10 ** 8) == (
      tiling.DEFAULT_BLOCK_NODES
      if jax.default_backend() == "cpu" and not native.enabled() else 0)
  with pytest.raises(ValueError, match="tile_nodes"):
    input_pipeline.tile_block_nodes(-2, 1000)
  x = jax.random.normal(jax.random.key(0), (500, 8))
  loss = lambda v, gr: jnp.sum(jnp.mean(jnp.stack(
      light_propagate(gr, v, 3)), 0) ** 2)
  chex.assert_trees_all_close(jax.jit(loss)(x, graph), jax.jit(loss)(x, plain),
                              rtol=1e-5)
  chex.assert_trees_all_close(jax.grad(loss)(x, graph),
                              jax.grad(loss)(x, plain), atol=1e-5)


@pytest.mark.parametrize("native_on", [False, True])
@pytest.mark.parametrize("gather_dtype", ["float32", "bfloat16"])
def test_automatic_tiles_only_with_xla_kernels(monkeypatch, native_on,
                                               gather_dtype):
  """Auto tiling (-1) tiles large dense-enough graphs for XLA's kernels and
  not when the native kernel runs (its untiled product is faster); an
  explicit block size always tiles."""
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  monkeypatch.setattr(tiling, "DEFAULT_BLOCK_NODES", 64)
  monkeypatch.setattr(tiling, "AUTO_MIN_NODES", 100)
  monkeypatch.setattr(tiling, "AUTO_MIN_DEGREE", 1)
  monkeypatch.setattr(native, "enabled", lambda: native_on)
  ds = synthetic.make_synthetic(num_users=300, num_items=200,
                                num_interactions=3000, with_texts=False)
  config = with_defaults(
      {"graph": {"tile_nodes": -1, "gather_dtype": gather_dtype}})
  graph = input_pipeline.build_graph(config, ds)
  assert tiling.has_tiles(graph) == (not native_on)
  assert propagation.gathers_bfloat16(graph) == (gather_dtype == "bfloat16")
  config.graph.tile_nodes = 64
  assert tiling.has_tiles(input_pipeline.build_graph(config, ds))

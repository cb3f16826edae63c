"""Tests of the propagation kernels: values and gradients vs dense algebra."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.graphs import native
from jaxrec.graphs import propagate
from jaxrec.graphs import propagation
from jaxrec.graphs import tiling
from tests.graph_fixtures import dense_adjacency
from tests.graph_fixtures import I
from tests.graph_fixtures import U
from tests.graph_fixtures import tiny_graph


def graph_for(method, **kwargs):
  """`tiny_graph`, with 4-node column tiles for the tiled kernels."""
  if method in propagation.NATIVE_METHODS and not native.available():
    pytest.skip("native CSR kernel unavailable (no C++ compiler?)")
  graph = tiny_graph(**kwargs)
  if method in ("tiled_symmetric", "native_tiled_symmetric",
                "native_tiled_symmetric_bf16"):
    graph = jax.tree.map(jnp.asarray, tiling.tile_graph(
        jax.tree.map(np.asarray, graph), block_nodes=4))
  return graph


def gathered(method, v):
  """The rows a kernel multiplies: bfloat16-rounded for the bf16 kernels."""
  if method in propagation.BFLOAT16_FOR.values():
    v = jnp.asarray(v, jnp.bfloat16)
  return np.asarray(v, np.float64)


@pytest.mark.parametrize("pad", [False, True])
@pytest.mark.parametrize("method", propagation.METHODS)
def test_forward_and_input_gradient_match_dense(method, pad):
  graph = graph_for(method, pad=pad)
  a = dense_adjacency(graph)
  x = jax.random.normal(jax.random.key(0), (a.shape[0], 5))
  g = jax.random.normal(jax.random.key(1), (a.shape[0], 5))
  out, vjp = jax.vjp(lambda v: propagate(graph, v, method=method), x)
  chex.assert_trees_all_close(out, a @ gathered(method, x), atol=1e-5)
  chex.assert_trees_all_close(vjp(g)[0], a.T @ gathered(method, g), atol=1e-5)


@pytest.mark.parametrize("method", propagation.METHODS)
def test_weight_gradient_matches_dense(method):
  graph = graph_for(method, pad=False)
  x = jax.random.normal(jax.random.key(0), (U + I, 4))
  g = jax.random.normal(jax.random.key(1), (U + I, 4))
  loss = lambda w: jnp.sum(propagate(graph, x, w, method=method) * g)
  got = jax.grad(loss)(graph.edges)
  # d/dw_e <g, A x> = g[r_e] . x[s_e]
  want = np.sum(np.asarray(g)[graph.receivers] * np.asarray(x)[graph.senders],
                axis=1)
  chex.assert_trees_all_close(got, want, atol=1e-5)


@pytest.mark.parametrize("method", propagation.GENERAL_METHODS)
def test_general_kernels_handle_asymmetric_weights(method):
  graph = tiny_graph(norm="left", pad=False)
  a = dense_adjacency(graph)
  assert not np.allclose(a, a.T)
  x = jax.random.normal(jax.random.key(0), (U + I, 3))
  g = jax.random.normal(jax.random.key(1), (U + I, 3))
  _, vjp = jax.vjp(lambda v: propagate(graph, v, method=method), x)
  chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-5)


def test_jit_and_default():
  graph = tiny_graph(pad=True)
  x = jnp.ones((24, 2))
  assert propagation.DEFAULT_METHOD in propagation.GENERAL_METHODS
  fn = jax.jit(lambda gr, v: propagate(gr, v))
  chex.assert_trees_all_close(fn(graph, x), dense_adjacency(graph) @ np.ones((24, 2)),
                              atol=1e-5)
  with pytest.raises(ValueError, match="propagation method"):
    propagate(graph, x, method="dense")


def test_padded_graph_stays_receiver_sorted():
  graph = tiny_graph(pad=True)
  assert np.all(np.diff(np.asarray(graph.receivers)) >= 0)


def test_marker_selects_the_symmetric_kernel_only_when_safe():
  sym, left = tiny_graph("sym", pad=True), tiny_graph("left", pad=True)
  assert propagation.is_symmetric(sym) and not propagation.is_symmetric(left)
  x = jax.random.normal(jax.random.key(0), (24, 3))
  g = jax.random.normal(jax.random.key(1), (24, 3))
  for graph in (sym, left):  # default kernel: right gradients either way
    a = dense_adjacency(graph)
    _, vjp = jax.vjp(jax.jit(lambda v, gr=graph: propagate(gr, v)), x)
    chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-5)
  # Given (non-graph) weights are not assumed symmetric unless declared so.
  w = jnp.asarray(np.random.default_rng(2).uniform(size=sym.edges.shape),
                  jnp.float32)
  a = dense_adjacency(sym, w)
  _, vjp = jax.vjp(lambda v: propagate(sym, v, w), x)
  chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-5)
  # The marker is static pytree structure: it survives jit, padding, tree.map.
  assert propagation.is_symmetric(jax.tree.map(jnp.asarray, sym))


def test_symmetric_default_traces_the_bcsr_symmetric_kernel():
  graph = tiny_graph("sym", pad=False)
  x = jnp.ones((U + I, 2))
  assert "custom_vjp" in str(jax.make_jaxpr(lambda v: propagate(graph, v))(x))
  assert "custom_vjp" not in str(jax.make_jaxpr(
      lambda v: propagate(graph, v, graph.edges))(x))


def test_declared_symmetric_dropout_weights_give_exact_gradients():
  from jaxrec.graphs import subgraph  # pylint: disable=g-import-not-at-top
  graph = tiny_graph("sym", pad=True)
  keep = subgraph.edge_dropout_keep(jax.random.key(3), graph, 0.3)
  w = subgraph.sym_renormalise(graph, keep)  # SGL-ED view weights
  x = jax.random.normal(jax.random.key(0), (24, 3))
  g = jax.random.normal(jax.random.key(1), (24, 3))
  _, vjp = jax.vjp(lambda v: propagate(graph, v, w, symmetric=True), x)
  a = dense_adjacency(graph, w)
  chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-5)

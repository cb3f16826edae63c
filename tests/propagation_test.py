"""Tests of the propagation kernels: values and gradients vs dense algebra."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.data.dataset import Interactions
from jaxrec.graphs import bipartite_graph
from jaxrec.graphs import pad_graph
from jaxrec.graphs import propagate
from jaxrec.graphs import propagation

U, I = 7, 9


def _graph(norm="sym", pad=False):
  rng = np.random.default_rng(0)
  inter = Interactions(rng.integers(0, U, 30), rng.integers(0, I, 30))
  graph = bipartite_graph(inter, U, I, norm=norm)
  if pad:
    graph = pad_graph(graph, 24, int(graph.n_edge[0]) + 10)
  return jax.tree.map(jnp.asarray, graph)


def _dense(graph, weights=None):
  n = graph.nodes["mask"].shape[0]
  a = np.zeros((n, n), np.float32)
  w = graph.edges if weights is None else weights
  np.add.at(a, (np.asarray(graph.receivers), np.asarray(graph.senders)),
            np.asarray(w))
  return a


@pytest.mark.parametrize("pad", [False, True])
@pytest.mark.parametrize("method", propagation.METHODS)
def test_forward_and_input_gradient_match_dense(method, pad):
  graph = _graph(pad=pad)
  a = _dense(graph)
  x = jax.random.normal(jax.random.key(0), (a.shape[0], 5))
  g = jax.random.normal(jax.random.key(1), (a.shape[0], 5))
  out, vjp = jax.vjp(lambda v: propagate(graph, v, method=method), x)
  chex.assert_trees_all_close(out, a @ np.asarray(x), atol=1e-5)
  chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-5)


@pytest.mark.parametrize("method", propagation.METHODS)
def test_weight_gradient_matches_dense(method):
  graph = _graph()
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
  graph = _graph(norm="left")
  a = _dense(graph)
  assert not np.allclose(a, a.T)
  x = jax.random.normal(jax.random.key(0), (U + I, 3))
  g = jax.random.normal(jax.random.key(1), (U + I, 3))
  _, vjp = jax.vjp(lambda v: propagate(graph, v, method=method), x)
  chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-5)


def test_jit_and_default():
  graph = _graph(pad=True)
  x = jnp.ones((24, 2))
  assert propagation.DEFAULT_METHOD in propagation.GENERAL_METHODS
  fn = jax.jit(lambda gr, v: propagate(gr, v))
  chex.assert_trees_all_close(fn(graph, x), _dense(graph) @ np.ones((24, 2)),
                              atol=1e-5)
  with pytest.raises(ValueError, match="propagation method"):
    propagate(graph, x, method="dense")


def test_padded_graph_stays_receiver_sorted():
  graph = _graph(pad=True)
  assert np.all(np.diff(np.asarray(graph.receivers)) >= 0)


def test_marker_selects_the_symmetric_kernel_only_when_safe():
  sym, left = _graph("sym", pad=True), _graph("left", pad=True)
  assert propagation.is_symmetric(sym) and not propagation.is_symmetric(left)
  x = jax.random.normal(jax.random.key(0), (24, 3))
  g = jax.random.normal(jax.random.key(1), (24, 3))
  for graph in (sym, left):  # default kernel: right gradients either way
    a = _dense(graph)
    _, vjp = jax.vjp(jax.jit(lambda v, gr=graph: propagate(gr, v)), x)
    chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-5)
  # Given (non-graph) weights are not assumed symmetric unless declared so.
  w = jnp.asarray(np.random.default_rng(2).uniform(size=sym.edges.shape),
                  jnp.float32)
  a = _dense(sym, w)
  _, vjp = jax.vjp(lambda v: propagate(sym, v, w), x)
  chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-5)
  # The marker is static pytree structure: it survives jit, padding, tree.map.
  assert propagation.is_symmetric(jax.tree.map(jnp.asarray, sym))


def test_symmetric_default_traces_the_bcsr_symmetric_kernel():
  graph = _graph("sym")
  x = jnp.ones((U + I, 2))
  assert "custom_vjp" in str(jax.make_jaxpr(lambda v: propagate(graph, v))(x))
  assert "custom_vjp" not in str(jax.make_jaxpr(
      lambda v: propagate(graph, v, graph.edges))(x))


def test_declared_symmetric_dropout_weights_give_exact_gradients():
  from jaxrec.models import layers as layers_lib  # pylint: disable=g-import-not-at-top
  graph = _graph("sym", pad=True)
  keep = layers_lib.edge_dropout_keep(jax.random.key(3), graph, 0.3)
  w = layers_lib.sym_renormalise(graph, keep)  # SGL-ED view weights
  x = jax.random.normal(jax.random.key(0), (24, 3))
  g = jax.random.normal(jax.random.key(1), (24, 3))
  _, vjp = jax.vjp(lambda v: propagate(graph, v, w, symmetric=True), x)
  a = _dense(graph, w)
  chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-5)

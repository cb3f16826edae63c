"""Tests of bipartite graph construction, normalisation, padding, propagation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.data.dataset import DataError
from jaxrec.data.dataset import Interactions
from jaxrec.graphs import bipartite_graph
from jaxrec.graphs import node_mask
from jaxrec.graphs import pad_graph
from jaxrec.graphs import propagate
from jaxrec.graphs import round_up
from jaxrec.models import get_model


def _random_interactions(num_users=7, num_items=9, n=30, seed=0):
  rng = np.random.default_rng(seed)
  return Interactions(rng.integers(0, num_users, n), rng.integers(0, num_items, n))


def _dense_adjacency(inter, num_users, num_items):
  r = np.zeros((num_users, num_items))
  r[inter.users, inter.items] = 1.0
  n = num_users + num_items
  a = np.zeros((n, n))
  a[:num_users, num_users:] = r
  a[num_users:, :num_users] = r.T
  return a


@pytest.mark.parametrize("norm", ["sym", "left", "right", "none"])
def test_normalised_adjacency_matches_dense_reference(norm):
  inter = _random_interactions()
  graph = bipartite_graph(inter, 7, 9, norm=norm)
  a = _dense_adjacency(inter, 7, 9)
  deg = a.sum(1)
  inv = np.where(deg > 0, 1 / np.maximum(deg, 1), 0)
  expected = {"sym": np.sqrt(inv)[:, None] * a * np.sqrt(inv)[None, :],
              "left": inv[:, None] * a, "right": a * inv[None, :],
              "none": a}[norm]
  got = np.zeros_like(a)
  got[graph.receivers, graph.senders] = graph.edges
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  # Duplicates collapse; both directions present.
  assert graph.n_edge[0] == 2 * np.count_nonzero(a[:7, 7:])


@pytest.mark.parametrize("method", ["segment_sum", "bcoo"])
def test_propagate_equals_dense_matmul(method):
  inter = _random_interactions()
  graph = jax.tree.map(jnp.asarray, bipartite_graph(inter, 7, 9))
  x = jax.random.normal(jax.random.key(0), (16, 5))
  dense = np.zeros((16, 16))
  dense[np.asarray(graph.receivers), np.asarray(graph.senders)] = graph.edges
  chex.assert_trees_all_close(propagate(graph, x, method=method), dense @ x,
                              atol=1e-5)


def test_padding_keeps_embeddings_identical():
  inter = _random_interactions(20, 30, 150)
  graph = bipartite_graph(inter, 20, 30)
  padded = pad_graph(graph, round_up(51, 64), round_up(int(graph.n_edge[0]), 128))
  chex.assert_shape(padded.nodes["mask"], (64,))
  assert padded.senders.shape[0] % 128 == 0
  mask = np.asarray(node_mask(jax.tree.map(jnp.asarray, padded)))
  assert mask[:50].all() and not mask[50:].any()
  model = get_model("lightgcn", 20, 30, embed_dim=8, num_layers=3)
  g0 = jax.tree.map(jnp.asarray, graph)
  g1 = jax.tree.map(jnp.asarray, padded)
  params = model.init(jax.random.key(0), g0, method="embed")
  out0 = jax.jit(lambda p, g: model.apply(p, g, method="embed"))(params, g0)
  out1 = jax.jit(lambda p, g: model.apply(p, g, method="embed"))(params, g1)
  chex.assert_trees_all_close(out0, out1, atol=1e-6)


def test_round_up():
  assert round_up(10, 8) == 16 and round_up(16, 8) == 16
  assert round_up(17, power_of_two=True) == 32 and round_up(1, power_of_two=True) == 1


def test_bad_inputs():
  inter = _random_interactions()
  with pytest.raises(DataError, match="empty"):
    bipartite_graph(inter.subset(np.zeros(len(inter), bool)), 7, 9)
  with pytest.raises(DataError, match="node feature 'text'"):
    bipartite_graph(inter, 7, 9, node_features={"text": np.zeros((3, 2))})
  graph = bipartite_graph(inter, 7, 9)
  with pytest.raises(ValueError, match="num_nodes"):
    pad_graph(graph, 16, int(graph.n_edge[0]))

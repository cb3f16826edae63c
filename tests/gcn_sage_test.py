"""GCN / GraphSAGE layers vs dense NumPy algebra; per-dataset config overrides."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.graphs import subgraph
from jaxrec.models import layers as layers_lib
from tests import config_loader
from tests.graph_fixtures import I
from tests.graph_fixtures import U
from tests.graph_fixtures import tiny_graph

D = 6


def _adjacency(graph):
  """0/1 adjacency of the real edges, [N, N] (rows = receivers)."""
  n = graph.nodes["mask"].shape[0]
  a = np.zeros((n, n), np.float32)
  real = np.asarray(subgraph.real_edges(graph))
  np.add.at(a, (np.asarray(graph.receivers), np.asarray(graph.senders)), real)
  return a


def _x(graph):
  x = jax.random.normal(jax.random.key(0), (graph.nodes["mask"].shape[0], D))
  return x * graph.nodes["mask"][:, None]


@pytest.mark.parametrize("activation", ["tanh", "none"])
def test_gcn_layer_matches_dense(activation):
  graph, x = tiny_graph(), _x(tiny_graph())
  layer = layers_lib.GCNLayer(D, activation)
  params = layer.init(jax.random.key(1), graph, x)
  out = np.asarray(layer.apply(params, graph, x))
  mask = np.asarray(graph.nodes["mask"])
  a = _adjacency(graph) + np.diag(mask)  # A + I on real nodes
  deg = a.sum(axis=1)
  inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1e-12)), 0)
  w = np.asarray(params["params"]["kernel"]["kernel"])
  b = np.asarray(params["params"]["bias"])
  pre = (inv[:, None] * a * inv[None, :]) @ (np.asarray(x) @ w) + b
  want = (np.tanh(pre) if activation == "tanh" else pre) * mask[:, None]
  np.testing.assert_allclose(out, want, atol=1e-5)


def test_sage_layer_matches_dense_mean():
  graph, x = tiny_graph(), _x(tiny_graph())
  layer = layers_lib.SAGELayer(D, "tanh")
  params = layer.init(jax.random.key(1), graph, x)
  out = np.asarray(layer.apply(params, graph, x))
  a = _adjacency(graph)
  neigh = (a / np.maximum(a.sum(axis=1, keepdims=True), 1)) @ np.asarray(x)
  p = params["params"]
  pre = (np.asarray(x) @ np.asarray(p["self"]["kernel"]) + p["self"]["bias"]
         + neigh @ np.asarray(p["neigh"]["kernel"]))
  want = np.tanh(pre) * np.asarray(graph.nodes["mask"])[:, None]
  np.testing.assert_allclose(out, want, atol=1e-5)


@pytest.mark.parametrize("dataset", ["lastfm", "gowalla", "amazon_beauty"])
def test_defaults_outside_synthetic(dataset):
  gcn = config_loader.load("gcn.py", dataset).model
  expected = (("none", 0.2) if dataset in ("lastfm", "amazon_beauty")
              else ("tanh", 0.0))
  assert (gcn.activation, gcn.dropout) == expected
  sage = config_loader.load("sage.py", dataset).model
  assert (sage.activation, sage.dropout) == (
      ("tanh", 0.6) if dataset == "amazon_beauty" else ("tanh", 0.0))


def test_synthetic_overrides():
  gcn = config_loader.load("gcn.py", "synthetic").model
  assert (gcn.activation, gcn.dropout, gcn.num_layers) == ("none", 0.2, 2)
  sage = config_loader.load("sage.py", "synthetic").model
  assert (sage.activation, sage.dropout, sage.num_layers) == ("tanh", 0.6, 2)


def test_gat_overrides():
  assert config_loader.load("gat.py", "lastfm").model.activation == "none"
  assert config_loader.load("gat.py", "synthetic").model.activation == "tanh"
  assert config_loader.load("gat.py", "amazon_beauty").model.activation == "tanh"


@pytest.mark.parametrize("heads,concat", [(1, True), (2, True), (2, False)])
def test_gat_layer_matches_numpy_attention(heads, concat):
  """Multi-head GAT (sparse real edges + self-loop scaling) vs a per-edge loop."""
  graph, x = tiny_graph(), _x(tiny_graph())
  layer = layers_lib.GATLayer(D, heads, concat, 0.2, 0.0, "tanh")
  params = layer.init(jax.random.key(1), graph, x)
  out = np.asarray(layer.apply(params, graph, x))
  p = jax.tree.map(np.asarray, params["params"])
  n = x.shape[0]
  f = D // heads if concat else D
  h = (np.asarray(x) @ p["kernel"]["kernel"]).reshape(n, heads, f)
  senders = np.concatenate([np.asarray(graph.senders), np.arange(n)])
  receivers = np.concatenate([np.asarray(graph.receivers), np.arange(n)])
  want = np.zeros((n, heads, f), np.float64)
  for k in range(heads):
    logit = (h[senders, k] @ p["att_src"][k] + h[receivers, k] @ p["att_dst"][k])
    logit = np.where(logit > 0, logit, 0.2 * logit)
    for i in range(n):
      into = receivers == i
      w = np.exp(logit[into] - logit[into].max())
      want[i, k] = (w / w.sum()) @ h[senders[into], k]
  want = want.reshape(n, heads * f) if concat else want.mean(axis=1)
  want = np.tanh(want + p["bias"]) * np.asarray(graph.nodes["mask"])[:, None]
  np.testing.assert_allclose(out, want, atol=1e-5)


def test_gat_layer_gradient_matches_segment_sum_form():
  """The sparse-matmul aggregation has the gradient of gather + segment_sum."""
  graph, x = tiny_graph(), _x(tiny_graph())
  layer = layers_lib.GATLayer(D, 2, True, 0.2, 0.0, "none")
  params = layer.init(jax.random.key(1), graph, x)
  n = x.shape[0]

  def reference(params, x):
    p = params["params"]
    h = (x @ p["kernel"]["kernel"]).reshape(n, 2, D // 2)
    s, r = layers_lib.with_self_loops(graph)
    logits = jax.nn.leaky_relu(jnp.sum(h * p["att_src"], -1)[s] +
                               jnp.sum(h * p["att_dst"], -1)[r], 0.2)
    alpha = jax.ops.segment_sum(jnp.exp(logits), r, num_segments=n)[r]
    alpha = jnp.exp(logits) / alpha
    out = jax.ops.segment_sum(h[s] * alpha[..., None], r, num_segments=n)
    out = out.reshape(n, D) + p["bias"]
    return out * graph.nodes["mask"][:, None]

  loss = lambda fn: lambda p, x: jnp.sum(jnp.sin(fn(p, x)))
  apply = lambda p, x: layer.apply(p, graph, x)
  got = jax.grad(loss(apply), argnums=(0, 1))(params, x)
  want = jax.grad(loss(reference), argnums=(0, 1))(params, x)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, atol=1e-5)

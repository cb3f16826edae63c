"""DesignGNN: layers vs the zoo's layers and dense algebra, scoring vs NumPy."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.batches import Batch
from jaxrec.graphs import subgraph
from jaxrec.models import MODELS
from jaxrec.models import designgnn
from jaxrec.models import layers as layers_lib
from jaxrec.models.lightgcn import LightGCN
from tests.graph_fixtures import dense_adjacency
from tests.graph_fixtures import I
from tests.graph_fixtures import U
from tests.graph_fixtures import tiny_graph

D = 6


def _x(graph):
  x = jax.random.normal(jax.random.key(0), (graph.nodes["mask"].shape[0], D))
  return x * graph.nodes["mask"][:, None]


def test_registered():
  assert MODELS["designgnn"] is designgnn.DesignGNN


@pytest.mark.parametrize("message", designgnn.MESSAGES)
def test_lightgcn_layer_matches_dense_closed_form(message):
  graph = tiny_graph()
  x = _x(graph)
  layer = designgnn.DesignLayer("lightgcn", message, D)
  out = layer.apply(layer.init(jax.random.key(1), graph, x), graph, x)
  px = dense_adjacency(graph) @ np.asarray(x)  # sum_j w_ij x_j
  want = px + np.asarray(x) * px if message == "hadamard" else px
  chex.assert_trees_all_close(out, want, atol=1e-5)


@pytest.mark.parametrize("aggregation,reference", [
    ("gcn", lambda: layers_lib.GCNLayer(D, "tanh")),
    ("sage", lambda: layers_lib.SAGELayer(D, "tanh")),
    ("gat", lambda: layers_lib.GATLayer(D, 1, True, 0.2, 0.0, "tanh")),
])
def test_identity_layers_equal_zoo_layers(aggregation, reference):
  """With identity messages each aggregator IS the zoo's layer."""
  graph = tiny_graph()
  x = _x(graph)
  layer = designgnn.DesignLayer(aggregation, "identity", D, "tanh")
  params = layer.init(jax.random.key(1), graph, x)
  ref = reference()
  ref_params = ref.init(jax.random.key(2), graph, x)
  chex.assert_trees_all_equal_shapes(params, ref_params)
  chex.assert_trees_all_close(layer.apply(params, graph, x),
                              ref.apply(params, graph, x), atol=1e-5)


def test_gcn_hadamard_closed_form():
  """out = tanh(A~ h + h * A~ h + b), h = x W, A~ with self loops."""
  graph = tiny_graph()
  x = _x(graph)
  layer = designgnn.DesignLayer("gcn", "hadamard", D, "tanh")
  params = layer.init(jax.random.key(1), graph, x)
  params = jax.tree.map(lambda p: p + 0.1, params)  # nonzero bias
  edge_w, self_w = subgraph.gcn_normalisation(graph)
  n = x.shape[0]
  a = np.zeros((n, n), np.float32)
  np.add.at(a, (np.asarray(graph.receivers), np.asarray(graph.senders)),
            np.asarray(edge_w))
  a += np.diag(np.asarray(self_w))
  h = np.asarray(x) @ np.asarray(params["params"]["kernel"]["kernel"])
  agg = a @ h
  want = np.tanh(agg + h * agg + np.asarray(params["params"]["bias"]))
  want *= np.asarray(graph.nodes["mask"])[:, None]
  chex.assert_trees_all_close(layer.apply(params, graph, x), want, atol=1e-5)


def test_gin_closed_form():
  """out = W2 tanh(W1((1 + eps) x + A01 x) + b1) + b2 (sum of neighbours)."""
  graph = tiny_graph()
  x = _x(graph)
  layer = designgnn.DesignLayer("gin", "identity", D, "tanh")
  params = layer.init(jax.random.key(1), graph, x)
  params["params"]["eps"] = jnp.asarray(0.3)
  p = jax.tree.map(np.asarray, params["params"])
  n = x.shape[0]
  a01 = np.zeros((n, n), np.float32)
  real = np.asarray(subgraph.real_edges(graph))
  np.add.at(a01, (np.asarray(graph.receivers), np.asarray(graph.senders)), real)
  h = 1.3 * np.asarray(x) + a01 @ np.asarray(x)
  h = np.tanh(h @ p["mlp_0"]["kernel"] + p["mlp_0"]["bias"])
  want = (h @ p["mlp_1"]["kernel"] + p["mlp_1"]["bias"]) * np.asarray(
      graph.nodes["mask"])[:, None]
  chex.assert_trees_all_close(layer.apply(params, graph, x), want, atol=1e-5)


def _model(**kw):
  return designgnn.DesignGNN(num_users=U, num_items=I, embed_dim=D, **kw)


def _batch():
  return Batch(users=jnp.array([0, 3, 6, 1]), pos_items=jnp.array([1, 2, 8, 0]),
               neg_items=jnp.array([4, 5, 0, 7]), mask=jnp.ones(4))


def test_lightgcn_point_equals_lightgcn_model():
  graph = tiny_graph()
  model = _model(aggregation="lightgcn", num_layers=3, combine="mean")
  params = model.init(jax.random.key(0), graph, _batch(), method="loss")
  ref = LightGCN(num_users=U, num_items=I, embed_dim=D, num_layers=3)
  chex.assert_trees_all_close(model.apply(params, graph, method="embed"),
                              ref.apply(params, graph, method="embed"),
                              atol=1e-6)
  chex.assert_trees_all_close(
      model.apply(params, graph, _batch(), method="loss")[0],
      ref.apply(params, graph, _batch(), method="loss")[0], atol=1e-6)


def test_none_is_matrix_factorisation_and_concat_widens():
  graph = tiny_graph()
  model = _model(aggregation="none", num_layers=4, combine="concat")
  params = model.init(jax.random.key(0), graph, _batch(), method="loss")
  u, v = model.apply(params, graph, method="embed")
  chex.assert_trees_all_close(u, params["params"]["user_embedding"])
  chex.assert_trees_all_close(v, params["params"]["item_embedding"])
  model = _model(aggregation="sage", num_layers=2, combine="concat")
  params = model.init(jax.random.key(0), graph, _batch(), method="loss")
  u, v = model.apply(params, graph, method="embed")
  chex.assert_shape((u, v), [(U, 3 * D), (I, 3 * D)])


def test_attention_combine_is_convex_per_node():
  rng = np.random.default_rng(0)
  layers = [rng.normal(size=(5, D)).astype(np.float32) for _ in range(3)]
  q = rng.normal(size=D).astype(np.float32)
  logits = np.stack([h @ q for h in layers], 1)  # [N, L]
  w = np.exp(logits - logits.max(1, keepdims=True))
  w /= w.sum(1, keepdims=True)
  want = sum(w[:, l:l + 1] * layers[l] for l in range(3))
  chex.assert_trees_all_close(
      designgnn.attention_combine([jnp.asarray(h) for h in layers],
                                  jnp.asarray(q)), want, atol=1e-5)


@pytest.mark.parametrize("chunk_bytes", [4 * 3 * 5 * 2, 1 << 26])
def test_concat_mlp_scores_all_items_like_numpy(chunk_bytes):
  """score() = MLP([u; v]) for every item (chunked or not), = pair scores."""
  graph = tiny_graph()
  model = _model(aggregation="gat", message="hadamard", num_layers=2,
                 combine="attention", interaction="concat_mlp", mlp_hidden=5,
                 score_chunk_bytes=chunk_bytes)
  params = model.init(jax.random.key(0), graph, _batch(), method="loss")
  u, v = model.apply(params, graph, method="embed")
  users = jnp.array([0, 2, 6])
  got = model.apply(params, u, v, users, method="score")
  p = jax.tree.map(np.asarray, params["params"])
  w1 = np.concatenate([p["mlp_user"]["kernel"], p["mlp_item"]["kernel"]])
  pair = np.concatenate([np.repeat(np.asarray(u)[users][:, None], I, 1),
                         np.repeat(np.asarray(v)[None], 3, 0)], -1)  # [3, I, 2D]
  hidden = np.maximum(pair @ w1 + p["mlp_user"]["bias"], 0.0)
  want = (hidden @ p["mlp_out"]["kernel"])[..., 0] + p["mlp_out"]["bias"][0]
  chex.assert_shape(got, (3, I))
  chex.assert_trees_all_close(got, want, atol=1e-5)
  # The training scores are the same function.
  b = _batch()
  pos, neg = model.apply(
      params, graph, b, method=lambda m, g, bb: m.pair_scores(
          m.propagate_all(g), bb))
  full = model.apply(params, u, v, b.users, method="score")
  chex.assert_trees_all_close(pos, full[jnp.arange(4), b.pos_items],
                              atol=1e-5)
  chex.assert_trees_all_close(neg, full[jnp.arange(4), b.neg_items],
                              atol=1e-5)


def test_bad_choice_raises():
  graph = tiny_graph()
  with pytest.raises(ValueError, match="aggregation"):
    _model(aggregation="gatv2").init(jax.random.key(0), graph, _batch(),
                                     method="loss")

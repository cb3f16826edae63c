"""The shared BPR path of `Recommender`: node-table gathers vs a reference."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.batches import Batch
from jaxrec.models.lightgcn import LightGCN
from jaxrec.models.simgcl import SimGCL
from tests.graph_fixtures import I
from tests.graph_fixtures import U
from tests.graph_fixtures import dense_adjacency
from tests.graph_fixtures import tiny_batch
from tests.graph_fixtures import tiny_graph

D, LAYERS, L2 = 5, 3, 0.01


def _batch(num_negatives: int) -> Batch:
  batch = tiny_batch()
  if num_negatives > 1:  # [B, k]: the row's negative and shifted copies
    batch = batch._replace(neg_items=jnp.stack(
        [(batch.neg_items + j) % I for j in range(num_negatives)], axis=1))
  return batch


def _reference_loss(params: dict, graph, batch: Batch) -> float:
  """BPR + L2 * L2(ego) of LightGCN in float64 NumPy, dense adjacency."""
  users = np.asarray(params["user_embedding"], np.float64)
  items = np.asarray(params["item_embedding"], np.float64)
  a = dense_adjacency(graph).astype(np.float64)
  n = a.shape[0]
  x = np.zeros((n, D))
  x[:U], x[U:U + I] = users, items
  layers = [x]
  for _ in range(LAYERS):
    layers.append(a @ layers[-1])
  final = np.mean(layers, axis=0)
  u_ids = np.asarray(batch.users)
  p_ids = np.asarray(batch.pos_items)
  n_ids = np.asarray(batch.neg_items).reshape(len(u_ids), -1)
  mask = np.asarray(batch.mask, np.float64)
  u = final[u_ids]
  pos = np.sum(u * final[U + p_ids], axis=-1)
  neg = np.einsum("bd,bkd->bk", u, final[U + n_ids])
  bpr = np.mean(np.log1p(np.exp(-(pos[:, None] - neg))), axis=1)
  sq = (np.sum(users[u_ids] ** 2, -1) + np.sum(items[p_ids] ** 2, -1)
        + np.sum(items[n_ids] ** 2, axis=(-1, -2)))
  mean = lambda v: np.sum(v * mask) / np.sum(mask)
  return mean(bpr) + L2 * mean(0.5 * sq)


@pytest.mark.parametrize("num_negatives", [1, 3])
def test_lightgcn_loss_and_gradients_match_numpy_reference(num_negatives):
  graph, batch = tiny_graph(), _batch(num_negatives)
  model = LightGCN(num_users=U, num_items=I, embed_dim=D, num_layers=LAYERS,
                   l2_reg=L2)
  params = model.init(jax.random.key(0), graph, batch, method="loss")
  loss_fn = lambda p: model.apply(p, graph, batch, method="loss")[0]
  loss, grads = jax.value_and_grad(loss_fn)(params)
  np.testing.assert_allclose(
      loss, _reference_loss(params["params"], graph, batch), rtol=1e-5)
  # Central differences of the float64 reference along the gradient.
  ref = lambda p: _reference_loss(p, graph, batch)
  host = jax.tree.map(lambda v: np.asarray(v, np.float64), params["params"])
  g = jax.tree.map(lambda v: np.asarray(v, np.float64), grads["params"])
  eps = 1e-4
  plus = jax.tree.map(lambda p, d: p + eps * d, host, g)
  minus = jax.tree.map(lambda p, d: p - eps * d, host, g)
  directional = (ref(plus) - ref(minus)) / (2 * eps)
  squared_norm = sum(np.sum(v * v) for v in jax.tree.leaves(g))
  np.testing.assert_allclose(directional, squared_norm, rtol=1e-4)


@pytest.mark.parametrize("model_cls", [LightGCN, SimGCL])
@pytest.mark.parametrize("num_negatives", [1, 3])
def test_node_table_gathers_equal_user_item_gathers(model_cls, num_negatives):
  """'nodes' slices to exactly user / item, and both BPR paths agree."""
  graph, batch = tiny_graph(), _batch(num_negatives)
  model = model_cls(num_users=U, num_items=I, embed_dim=D, num_layers=LAYERS,
                    l2_reg=L2)
  params = model.init({"params": jax.random.key(0),
                       "dropout": jax.random.key(1)}, graph, batch,
                      method="loss")

  def bpr_terms(p, drop_nodes: bool):
    def fn(m, g, b):
      out = m.propagate_all(g, train=True)
      if drop_nodes:
        out = out._replace(nodes=None)
      return m.bpr_terms(out, b)
    bpr, reg = model.apply(p, graph, batch, method=fn)
    return bpr + L2 * reg

  out = model.apply(params, graph, method=lambda m, g: m.propagate_all(g))
  chex.assert_shape(out.nodes, (graph.nodes["mask"].shape[0], D))
  chex.assert_trees_all_equal(out.nodes[:U], out.user)
  chex.assert_trees_all_equal(out.nodes[U:U + I], out.item)
  with_nodes = jax.value_and_grad(lambda p: bpr_terms(p, False))(params)
  without = jax.value_and_grad(lambda p: bpr_terms(p, True))(params)
  chex.assert_trees_all_close(with_nodes, without, rtol=1e-6, atol=1e-7)

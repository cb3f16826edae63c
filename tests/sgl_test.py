"""SGL: dropout views vs dense renormalisation, loss terms, configs."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import losses
from jaxrec import models
from jaxrec.graphs import subgraph
from jaxrec.models.lightgcn import LightGCN
from jaxrec.models.sgl import SGL
from tests import config_loader
from tests.graph_fixtures import I
from tests.graph_fixtures import U
from tests.graph_fixtures import tiny_batch
from tests.graph_fixtures import tiny_graph

D = 6


def test_edge_dropout_is_symmetric_and_renormalised():
  graph = tiny_graph()
  keep = np.asarray(subgraph.edge_dropout_keep(jax.random.key(0), graph,
                                               0.4))
  s, r = np.asarray(graph.senders), np.asarray(graph.receivers)
  kept = {(a, b) for a, b, k in zip(s, r, keep) if k}
  assert all((b, a) in kept for a, b in kept)  # both directions together
  assert np.all(keep[np.asarray(subgraph.real_edges(graph)) == 0] == 0)
  w = np.asarray(subgraph.sym_renormalise(graph, jnp.asarray(keep)))
  deg = np.bincount(r, weights=keep, minlength=graph.nodes["mask"].shape[0])
  inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1e-12)), 0)
  np.testing.assert_allclose(w, keep * inv[s] * inv[r], rtol=1e-6)


def test_no_dropout_view_is_lightgcn_and_loss_adds_up():
  graph = tiny_graph()
  model = SGL(num_users=U, num_items=I, embed_dim=D, num_layers=3,
              drop_rate=0.0, ssl_weight=0.3, l2_reg=0.01)
  params = model.init({"params": jax.random.key(0),
                       "dropout": jax.random.key(1)}, graph, tiny_batch(),
                      method="loss")
  loss, m = model.apply(params, graph, tiny_batch(), method="loss",
                        rngs={"dropout": jax.random.key(2)})
  np.testing.assert_allclose(
      float(loss), float(m["bpr"] + 0.01 * m["reg"] + 0.3 * m["ssl"]),
      rtol=1e-6)
  user, item = model.apply(params, graph, method="embed")
  lgcn = LightGCN(num_users=U, num_items=I, embed_dim=D, num_layers=3)
  want_u, want_i = lgcn.apply(params, graph, method="embed")
  chex.assert_trees_all_close((user, item), (want_u, want_i), atol=1e-6)
  nodes = jnp.concatenate([user, item])  # rho = 0: both views = LightGCN
  nodes = jnp.concatenate([nodes, jnp.zeros((24 - U - I, D))])
  want = losses.batch_contrast(nodes, nodes, tiny_batch(), U, I, 0.2)
  np.testing.assert_allclose(float(m["ssl"]), float(want), rtol=1e-5)


def test_contrast_rows_limits_the_ssl_rows():
  graph = tiny_graph()
  kw = dict(num_users=U, num_items=I, embed_dim=D, num_layers=3,
            drop_rate=0.0)
  params = SGL(**kw).init({"params": jax.random.key(0),
                           "dropout": jax.random.key(1)}, graph, tiny_batch(),
                          method="loss")
  _, m = SGL(**kw, contrast_rows=3).apply(
      params, graph, tiny_batch(), method="loss",
      rngs={"dropout": jax.random.key(2)})
  user, item = SGL(**kw).apply(params, graph, method="embed")
  nodes = jnp.concatenate([user, item, jnp.zeros((24 - U - I, D))])
  want = losses.batch_contrast(nodes, nodes, tiny_batch(), U, I, 0.2,
                               max_rows=3)
  np.testing.assert_allclose(float(m["ssl"]), float(want), rtol=1e-5)


def test_all_node_negatives_match_numpy_and_train():
  """contrast_negatives='all' is SGL's calc_ssl_loss_v2: every batch row is
  an anchor (repeats included, padding excluded) and the denominator sums
  over all users (items) of the second view."""
  rng = np.random.default_rng(0)
  v1, v2 = rng.normal(size=(24, D)), rng.normal(size=(24, D))
  batch, t = tiny_batch(), 0.2
  n = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  rows = np.flatnonzero(np.asarray(batch.mask))

  def side(a, b, ids):
    a, b = n(a), n(b)
    per_row = [np.log(np.exp(a[k] @ b.T / t).sum()) - a[k] @ b[k] / t
               for k in np.asarray(ids)[rows]]
    return np.mean(per_row)

  want = (side(v1[:U], v2[:U], batch.users) +
          side(v1[U:U + I], v2[U:U + I], batch.pos_items))
  got = losses.batch_contrast(jnp.asarray(v1), jnp.asarray(v2), batch, U,
                              I, t, negatives="all")
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  with pytest.raises(ValueError, match="negatives"):
    losses.batch_contrast(jnp.asarray(v1), jnp.asarray(v2), batch, U, I,
                          t, negatives="users")
  graph = tiny_graph()
  model = SGL(num_users=U, num_items=I, embed_dim=D, num_layers=3,
              contrast_negatives="all")
  params = model.init({"params": jax.random.key(0),
                       "dropout": jax.random.key(1)}, graph, batch,
                      method="loss")
  grads, m = jax.grad(
      lambda p: model.apply(p, graph, batch, method="loss",
                            rngs={"dropout": jax.random.key(2)}),
      has_aux=True)(params)
  assert np.isfinite(float(m["ssl"])) and float(m["ssl"]) > 0
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("dataset,ssl_weight", [("yelp2018", 0.1),
                                                ("amazon_book", 0.5)])
def test_published_defaults_kept(dataset, ssl_weight):
  model = config_loader.load("sgl.py", dataset).model
  assert (model.aug_type, model.drop_rate, model.ssl_temperature,
          model.ssl_weight) == ("ed", 0.1, 0.2, ssl_weight)


def test_synthetic_override():
  model = config_loader.load("sgl.py", "synthetic").model
  assert (model.drop_rate, model.ssl_temperature, model.ssl_weight) == (
      0.1, 0.2, 0.02)
  assert config_loader.load("sgl.py", "lastfm").model.ssl_weight == 0.1


def test_views_drawn_once_per_epoch():
  """view_period='epoch': every step of an epoch contrasts the same views
  (the step's dropout key does not matter), a new epoch draws new ones;
  'step' draws new views every step; the model declares the 'epoch' field
  (batch_fields) and epoch_batches fills it."""
  graph = tiny_graph()
  kw = dict(num_users=U, num_items=I, embed_dim=D, num_layers=2,
            drop_rate=0.5, ssl_weight=1.0)
  batch = tiny_batch()
  batch = batch._replace(epoch=np.full(batch.users.shape, 3, np.int32))
  per_epoch, per_step = SGL(view_period="epoch", **kw), SGL(**kw)
  params = per_epoch.init({"params": jax.random.key(0),
                           "dropout": jax.random.key(1)}, graph, batch,
                          method="loss")
  ssl = lambda model, b, key: float(model.apply(
      params, graph, b, method="loss", rngs={"dropout": key})[1]["ssl"])
  k1, k2 = jax.random.key(5), jax.random.key(6)
  assert ssl(per_epoch, batch, k1) == ssl(per_epoch, batch, k2)
  next_epoch = batch._replace(epoch=batch.epoch + 1)
  assert ssl(per_epoch, next_epoch, k1) != ssl(per_epoch, batch, k1)
  assert ssl(per_step, batch, k1) != ssl(per_step, batch, k2)
  with pytest.raises(ValueError, match="'epoch' field"):
    ssl(per_epoch, tiny_batch(), k1)
  with pytest.raises(ValueError, match="view_period"):
    ssl(SGL(view_period="batch", **kw), batch, k1)

  from jaxrec import input_pipeline  # pylint: disable=g-import-not-at-top
  from jaxrec.data import synthetic  # pylint: disable=g-import-not-at-top
  ds = synthetic.make_synthetic(num_users=30, num_items=20,
                                num_interactions=200, with_texts=False)
  config = config_loader.load("sgl.py", "synthetic")
  config.batch_size = 64
  model = lambda: models.get_model("sgl", ds.num_users, ds.num_items,
                                   **config.model.to_dict())
  assert per_step.batch_fields == () and model().batch_fields == ()
  assert input_pipeline.epoch_batches(config, ds, 0,
                                      fields=model().batch_fields).epoch is None
  config.model.view_period = "epoch"  # the user-facing setting
  assert per_epoch.batch_fields == model().batch_fields == ("epoch",)
  rows = input_pipeline.epoch_batches(config, ds, 7, fields=model().batch_fields)
  chex.assert_shape(rows.epoch, rows.users.shape)
  assert np.all(rows.epoch == 7)
  with pytest.raises(ValueError, match="unknown batch field"):
    input_pipeline.epoch_batches(config, ds, 7, fields=("day",))

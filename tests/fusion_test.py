"""Tests for the attention fusion model (jaxrec/models/fusion.py)."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import coldstart_eval
from jaxrec import train
from jaxrec.config_utils import with_defaults
from jaxrec.data import coldstart
from jaxrec.data.dataset import Interactions
from jaxrec.data.synthetic import make_synthetic
from jaxrec.graphs import pad_graph
from jaxrec.models import MODELS
from jaxrec.models.fusion import Fusion
from jaxrec.models.fusion import TOKENS
from jaxrec import input_pipeline
from jaxrec import models

D, HEADS = 8, 2


@pytest.fixture(scope="module")
def tiny():
  """Synthetic data whose item 'text' is the item's latent factor + noise."""
  ds, factors = make_synthetic(num_users=40, num_items=60,
                               num_interactions=700, seed=2,
                               return_factors=True)
  rng = np.random.default_rng(0)
  items = factors["item_factors"] + 0.3 * rng.normal(
      size=factors["item_factors"].shape)
  csr = ds.csr("train")
  counts = np.maximum(np.asarray(csr.sum(axis=1)).ravel(), 1.0)
  users = (csr @ items) / counts[:, None]
  return dataclasses.replace(ds, item_embeddings=items.astype(np.float32),
                             user_embeddings=users.astype(np.float32))


def _config(**extra):
  config = with_defaults(dict(
      model_name="fusion", model=dict(embed_dim=D, num_layers=2,
                                      num_heads=HEADS),
      batch_size=64, graph=dict(text_features=True),
      optimizer=dict(name="adam", learning_rate=1e-2), seed=0))
  config.update(extra)
  return config


def _setup(config, dataset, pad_to=None):
  graph = input_pipeline.build_graph(config, dataset)
  if pad_to:
    graph = pad_graph(graph, *pad_to)
  graph = jax.tree.map(jnp.asarray, graph)
  model = models.get_model(config.model_name, dataset.num_users,
                          dataset.num_items, **config.model.to_dict())
  params = train.init_params(model, graph, 16, jax.random.key(0))
  # Non-zero queries, so the attention is not uniform.
  params = dict(params, query=jax.random.normal(jax.random.key(1),
                                                params["query"].shape))
  return graph, model, params


def test_registered():
  assert MODELS["fusion"] is Fusion


def test_shapes_and_attention_sums_to_one(tiny):
  graph, model, params = _setup(_config(), tiny, pad_to=(128, 2048))
  n = 128
  tokens = model.apply({"params": params}, graph, method="tokens")
  chex.assert_shape(tokens.tokens, (n, len(TOKENS), D))
  chex.assert_shape(tokens.mask, (n, len(TOKENS)))
  weights = model.apply({"params": params}, graph,
                        method="attention_weights")
  chex.assert_shape(weights, (n, HEADS, len(TOKENS)))
  real = np.asarray(graph.nodes["mask"]) > 0
  np.testing.assert_allclose(np.asarray(weights).sum(-1)[real], 1.0,
                             rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(weights)[~real], 0.0)
  assert np.asarray(weights)[real].std() > 1e-3  # not uniform
  user_emb, item_emb = train.embed(params, graph, model=model)
  chex.assert_shape(user_emb, (tiny.num_users, D))
  chex.assert_shape(item_emb, (tiny.num_items, D))
  chex.assert_tree_all_finite((user_emb, item_emb))


def test_attention_matches_numpy(tiny):
  """Masked softmax pooling against a direct NumPy computation."""
  graph, model, params = _setup(_config(), tiny)
  tokens = model.apply({"params": params}, graph, method="tokens")
  x = np.asarray(tokens.tokens, np.float64)  # [N, 3, d]
  keys = (x + np.asarray(params["type_embedding"])[None]) @ np.asarray(
      params["key_proj"]["kernel"])
  n, dh = x.shape[0], D // HEADS
  keys = keys.reshape(n, 3, HEADS, dh)
  logits = np.einsum("nthc,hc->nht", keys, np.asarray(params["query"]))
  logits = logits / np.sqrt(dh)
  mask = np.asarray(tokens.mask)[:, None, :] > 0
  logits = np.where(mask, logits, -np.inf)
  w = np.exp(logits - logits.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  fused = np.einsum("nht,nthc->nhc", w, x.reshape(n, 3, HEADS, dh))
  user_emb, item_emb = train.embed(params, graph, model=model)
  got = np.concatenate([user_emb, item_emb])
  np.testing.assert_allclose(got, fused.reshape(n, D), rtol=1e-4, atol=1e-6)


def _einsum_fused(params, tokens):
  """The pool as first written: key projection of the stacked tokens, then
  einsums over the token axis (the model folds the query into the key
  kernel and sums per token; same math up to float reassociation)."""
  n, t, d = tokens.tokens.shape
  dh = d // HEADS
  keys = (tokens.tokens + params["type_embedding"][None]) @ params[
      "key_proj"]["kernel"]
  logits = jnp.einsum("nthc,hc->nht", keys.reshape(n, t, HEADS, dh),
                      params["query"]) / jnp.sqrt(dh)
  present = tokens.mask[:, None, :] > 0
  weights = jnp.where(present, jax.nn.softmax(
      jnp.where(present, logits, -1e9), axis=-1), 0.0)
  fused = jnp.einsum("nht,nthc->nhc", weights,
                     tokens.tokens.reshape(n, t, HEADS, dh))
  return fused.reshape(n, d), weights


def test_matches_einsum_formulation_and_its_gradient(tiny):
  """Representations, attention and the gradient of a loss on them equal
  the einsum formulation's within 1e-5 (padding nodes included)."""
  config = _config()
  config.model.matmul_dtype = "float32"
  graph, model, params = _setup(config, tiny, pad_to=(128, 2048))
  g = jax.random.normal(jax.random.key(2), (128, D))

  def ours(p):
    users, items = model.apply({"params": p}, graph, method="embed")
    return jnp.sum(jnp.concatenate([users, items]) * g[:users.shape[0]
                                                        + items.shape[0]])

  def reference(p):
    tokens = model.apply({"params": p}, graph, method="tokens")
    fused, _ = _einsum_fused(p, tokens)
    return jnp.sum(fused * g)

  tokens = model.apply({"params": params}, graph, method="tokens")
  fused, weights = _einsum_fused(params, tokens)
  users, items = train.embed(params, graph, model=model)
  n = tiny.num_users + tiny.num_items
  np.testing.assert_allclose(np.concatenate([users, items]), fused[:n],
                             atol=1e-5)
  np.testing.assert_allclose(
      model.apply({"params": params}, graph, method="attention_weights"),
      weights, atol=1e-5)
  value, grads = jax.value_and_grad(ours)(params)
  ref_value, ref_grads = jax.value_and_grad(reference)(params)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  chex.assert_trees_all_close(grads, ref_grads, atol=1e-5)


@pytest.mark.parametrize("num_negatives", [1, 3])
def test_batch_row_loss_equals_the_node_table_loss(tiny, num_negatives):
  """`Fusion.loss` pools only the batch's rows; its value and gradient equal
  `Recommender.loss` on `propagate_all`'s table (same dropout draw)."""
  config = _config()
  config.model.matmul_dtype = "float32"
  graph, model, params = _setup(config, tiny, pad_to=(128, 2048))
  drop = dataclasses.replace(model, token_dropout=0.3)
  rng = np.random.default_rng(4)
  b = 32
  neg_shape = (b,) if num_negatives == 1 else (b, num_negatives)
  batch = train.dummy_batch(b, num_negatives)._replace(
      users=jnp.asarray(rng.integers(0, tiny.num_users, b)),
      pos_items=jnp.asarray(rng.integers(0, tiny.num_items, b)),
      neg_items=jnp.asarray(rng.integers(0, tiny.num_items, neg_shape)),
      mask=jnp.asarray(np.arange(b) < b - 3, jnp.float32))

  def loss(p, method):
    return drop.apply({"params": p}, graph, batch, method=method,
                      rngs={"dropout": jax.random.key(7)})

  (value, aux), grads = jax.value_and_grad(
      lambda p: loss(p, "loss"), has_aux=True)(params)
  (ref, ref_aux), ref_grads = jax.value_and_grad(
      lambda p: loss(p, lambda m, g, bt: models.base.Recommender.loss(
          m, g, bt)), has_aux=True)(params)
  np.testing.assert_allclose(value, ref, rtol=1e-6)
  chex.assert_trees_all_close(aux, ref_aux, rtol=1e-6)
  chex.assert_trees_all_close(grads, ref_grads, atol=1e-6)


def test_unconnected_nodes_use_their_text_only(tiny):
  """An item without training edges: weight 1 on text, its ID row unused."""
  cold = tiny.num_items - 1
  keep = tiny.train.items != cold
  ds = dataclasses.replace(tiny, train=Interactions(tiny.train.users[keep],
                                                    tiny.train.items[keep]))
  graph, model, params = _setup(_config(), ds)
  node = ds.num_users + cold
  weights = model.apply({"params": params}, graph,
                        method="attention_weights")
  np.testing.assert_allclose(weights[node], [[0.0, 1.0, 0.0]] * HEADS)
  _, item_emb = train.embed(params, graph, model=model)
  moved = dict(params, item_embedding=params["item_embedding"].at[cold].add(
      5.0))
  _, item_moved = train.embed(moved, graph, model=model)
  np.testing.assert_allclose(item_moved[cold], item_emb[cold], rtol=1e-6)
  text = graph.nodes["text"][node] @ params["text_proj"]["kernel"]
  np.testing.assert_allclose(item_emb[cold], text, rtol=1e-2, atol=1e-3)


def test_permutation_equivariant_over_nodes(tiny):
  """Relabelling users and items permutes the representations alike."""
  config = _config()
  config.model.matmul_dtype = "float32"
  graph, model, params = _setup(config, tiny)
  rng = np.random.default_rng(5)
  pu, pi = rng.permutation(tiny.num_users), rng.permutation(tiny.num_items)
  inv_u, inv_i = np.argsort(pu), np.argsort(pi)  # old id -> new id

  def relabel(inter):
    return Interactions(inv_u[inter.users], inv_i[inter.items])
  permuted = dataclasses.replace(
      tiny, train=relabel(tiny.train), valid=relabel(tiny.valid),
      test=relabel(tiny.test), item_embeddings=tiny.item_embeddings[pi],
      user_embeddings=tiny.user_embeddings[pu], item_texts=None,
      user_texts=None, item_categories=None, item_num_tags=None)
  graph_p, _, _ = _setup(config, permuted)
  params_p = dict(params, user_embedding=params["user_embedding"][pu],
                  item_embedding=params["item_embedding"][pi])
  users, items = train.embed(params, graph, model=model)
  users_p, items_p = train.embed(params_p, graph_p, model=model)
  np.testing.assert_allclose(users_p, np.asarray(users)[pu], rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(items_p, np.asarray(items)[pi], rtol=1e-4,
                             atol=1e-6)


def test_token_dropout_only_in_training(tiny):
  graph, model, params = _setup(_config(), tiny)
  drop = dataclasses.replace(model, token_dropout=0.5)
  masks = [drop.apply({"params": params}, graph, True, method="tokens",
                      rngs={"dropout": jax.random.key(s)}).mask
           for s in (0, 1)]
  connected = np.asarray(model.apply({"params": params}, graph,
                                     method="tokens").mask)[:, 0] > 0
  for mask in masks:
    mask = np.asarray(mask)
    np.testing.assert_array_equal(mask[:, 0], mask[:, 2])  # dropped together
    assert 0.3 < mask[connected, 0].mean() < 0.7
    np.testing.assert_array_equal(mask[:, 1], 1.0)  # text always kept
  assert not np.array_equal(masks[0], masks[1])
  eval_a = drop.apply({"params": params}, graph, method="embed")
  eval_b = model.apply({"params": params}, graph, method="embed")
  np.testing.assert_array_equal(eval_a[1], eval_b[1])


def test_bad_heads_rejected(tiny):
  with pytest.raises(ValueError, match="num_heads"):
    _setup(_config(model=dict(embed_dim=8, num_heads=3)), tiny)


def test_trains_and_beats_random_warm_and_cold(tiny, tmp_path):
  """BPR training lifts warm Recall@10 well above random; cold items ranked
  from their text alone beat a random ranking too."""
  split = coldstart.cold_start_split(tiny, item_fraction=0.5, seed=0)
  config = _config(num_epochs=20, eval_every=5, steps_per_call=16,
                   eval_ks=(10,), selection_metric="recall@10",
                   progress=False, max_checkpoints=1)
  workdir = str(tmp_path / "fusion")
  results = train.train_and_evaluate(config, workdir, dataset=split.warm)
  losses = results["epoch_losses"]
  assert losses[-1] < 0.8 * losses[0]
  random_warm = 10 / split.warm.num_items
  assert results["test"]["recall@10"] > 2 * random_warm
  cold = coldstart_eval.evaluate_cold_start(config, workdir, split,
                                            ks=(5,), splits=("item_test",))
  num_cold = len(split.cold_test_items)
  assert num_cold >= 10
  assert (cold["item_test"]["recall@5"]
          > 1.3 * coldstart_eval.random_recall(num_cold, 5))

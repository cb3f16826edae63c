"""Tests for text-aligned models (textgnn, rlmrec_con/gen, alpharec) and cold start."""

import dataclasses
import os

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxrec import train
from jaxrec.data import coldstart
from jaxrec.data.synthetic import make_synthetic
from jaxrec.graphs import pad_graph
from jaxrec.models import MODELS
from tests import config_loader

TEXT_DIM = 12
TEXT_CONFIGS = ("textgnn.py", "alpharec.py", "rlmrec_con.py", "rlmrec_gen.py")


@pytest.fixture(scope="module")
def tiny():
  ds = make_synthetic(num_users=30, num_items=40, num_interactions=400, seed=1)
  rng = np.random.default_rng(0)
  return dataclasses.replace(
      ds, item_embeddings=rng.normal(size=(40, TEXT_DIM)).astype(np.float32),
      user_embeddings=rng.normal(size=(30, TEXT_DIM)).astype(np.float32))


def _text_config(model_name, model, **extra):
  config = ml_collections.ConfigDict(dict(
      model_name=model_name, model=model, batch_size=16,
      graph=dict(norm="sym", text_features=True, pad_multiple=0),
      optimizer=dict(name="adam", learning_rate=1e-2),
      num_negatives=1, seed=0))
  config.update(extra)
  return config


def _setup(config, dataset, batch_size=16):
  graph = jax.tree.map(jnp.asarray, train.build_graph(config, dataset))
  model = train.get_model(config.model_name, dataset.num_users,
                          dataset.num_items, **config.model.to_dict())
  num_neg = config.get("num_negatives", 1)
  params = train.init_params(model, graph, batch_size, jax.random.key(0),
                             num_neg)
  rows = train.stack_batches(train.sampler.epoch_triples(
      dataset.train, dataset.num_users, dataset.num_items, 0, 0,
      num_negatives=num_neg), batch_size)
  batch = {k: jnp.asarray(v[0]) for k, v in rows.items()}
  return graph, model, params, batch


def _loss(model, params, graph, batch, seed=0):
  return model.apply({"params": params}, graph, batch, method="loss",
                     rngs={"dropout": jax.random.key(seed)})


LGCN = dict(embed_dim=8, num_layers=2, l2_reg=1e-4)
SMALL_MODELS = {
    "textgnn": dict(embed_dim=8, num_layers=2),
    "alpharec": dict(embed_dim=8, num_layers=2),
    "rlmrec_con": dict(backbone="lightgcn", backbone_kwargs=LGCN),
    "rlmrec_gen": dict(backbone="lightgcn", backbone_kwargs=LGCN),
}


@pytest.mark.parametrize("filename", TEXT_CONFIGS)
def test_text_configs_run_a_step_with_embeddings(filename, tiny):
  """configs_test skips text configs on data without embeddings: run them here."""
  config = config_loader.load(filename)
  assert config.model_name in MODELS and config.graph.text_features
  config.batch_size = 16
  config.num_negatives = min(config.num_negatives, 4)
  graph, model, params, batch = _setup(config, tiny)
  state = train.TrainState.create(apply_fn=model.apply, params=params,
                                  tx=train.make_optimizer(config))
  state, metrics = jax.jit(lambda s, b: train.train_step(
      s, b, jax.random.key(0), model=model))(state, dict(batch, graph=graph))
  assert jnp.isfinite(metrics["loss"])
  user_emb, item_emb = train.embed(state.params, graph, model=model)
  chex.assert_shape(user_emb, (tiny.num_users, None))
  chex.assert_shape(item_emb, (tiny.num_items, user_emb.shape[1]))


@pytest.mark.parametrize("mode,backbone", [("con", "sgl"), ("gen", "simgcl"),
                                           ("gen", "lightgcn")])
def test_rlmrec_on_backbones_gradients_reach_mlp(mode, backbone, tiny):
  kwargs = dict(LGCN, **({"ssl_weight": 0.1} if backbone != "lightgcn" else {}))
  config = _text_config(f"rlmrec_{mode}",
                        dict(backbone=backbone, backbone_kwargs=kwargs))
  graph, model, params, batch = _setup(config, tiny)
  (loss, metrics), grads = jax.jit(jax.value_and_grad(
      lambda p: _loss(model, p, graph, batch), has_aux=True))(params)
  assert jnp.isfinite(loss) and metrics["kd"] > 0
  if backbone != "lightgcn":
    assert "ssl" in metrics  # the backbone's own SSL term is kept
  mlp = "con_mlp" if mode == "con" else "gen_mlp"
  for leaf in jax.tree.leaves(grads[mlp]):
    assert jnp.all(jnp.isfinite(leaf)) and jnp.any(leaf != 0)
  # The loss is the backbone loss + kd_weight * kd.
  base, _ = jax.jit(lambda p: model.apply(
      {"params": p}, graph, batch, method=lambda m, g, b: m.net.loss(g, b),
      rngs={"dropout": jax.random.key(0)}))(params)
  np.testing.assert_allclose(loss, base + model.kd_weight * metrics["kd"],
                             rtol=1e-5)
  if mode == "gen":
    assert jnp.any(grads["mask_token"] != 0)


def _np_info_nce(a, b, tau, keep):
  """Reference InfoNCE over kept rows (cosine, in-set negatives)."""
  a, b = a[keep], b[keep]
  a = a / np.linalg.norm(a, axis=1, keepdims=True)
  b = b / np.linalg.norm(b, axis=1, keepdims=True)
  logits = a @ b.T / tau
  logits = logits - logits.max(axis=1, keepdims=True)
  logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  return float(-np.mean(np.diag(logp)))


def _first_occurrence(ids, mask):
  keep = np.zeros(len(ids), bool)
  seen = set()
  for r, (i, m) in enumerate(zip(ids.tolist(), mask.tolist())):
    if m > 0 and i not in seen:
      seen.add(i)
      keep[r] = True
  return keep


def test_con_loss_matches_numpy_reference(tiny):
  config = _text_config("rlmrec_con", dict(backbone="lightgcn",
                                           backbone_kwargs=LGCN,
                                           kd_temperature=0.3))
  graph, model, params, batch = _setup(config, tiny)
  # Duplicated ids and a padding row: duplicates must not be negatives.
  batch = dict(batch)
  batch["users"] = batch["users"].at[1].set(batch["users"][0])
  batch["pos_items"] = batch["pos_items"].at[2].set(batch["pos_items"][0])
  batch["mask"] = batch["mask"].at[-1].set(0.0)
  kd = model.apply({"params": params}, graph, batch, method="con_loss")

  def parts(m, g):
    out = m.net.propagate_all(g, train=True)
    text = g.nodes["text"]
    ut, it = text[:m.num_users], text[m.num_users:m.num_users + m.num_items]
    return (out["user"], out["item"], m.con_mlp(ut), m.con_mlp(it))
  user, item, user_map, item_map = (np.asarray(x) for x in model.apply(
      {"params": params}, graph, method=parts))
  mask = np.asarray(batch["mask"])
  expected = 0.0
  for collab, mapped, key in ((user, user_map, "users"),
                              (item, item_map, "pos_items"),
                              (item, item_map, "neg_items")):
    ids = np.asarray(batch[key])
    expected += _np_info_nce(collab[ids], mapped[ids], 0.3,
                             _first_occurrence(ids, mask))
  np.testing.assert_allclose(float(kd), expected, rtol=1e-4)


def test_alpharec_has_no_id_tables_and_scores_cold_items(tiny):
  config = _text_config("alpharec", dict(embed_dim=8, num_layers=2),
                        num_negatives=4)
  graph, model, params, batch = _setup(config, tiny)
  names = {"/".join(str(getattr(k, "key", k)) for k in path)
           for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
  assert all(n.startswith("mlp/") for n in names), names
  # A cold item (no edges) gets its representation from its text alone.
  split = coldstart.cold_start_split(tiny, item_fraction=0.25, seed=0)
  full_graph = jax.tree.map(jnp.asarray, train.build_graph(config, split.full))
  full = train.get_model("alpharec", split.full.num_users,
                         split.full.num_items, **config.model.to_dict())
  user_emb, item_emb = full.apply({"params": params}, full_graph,
                                  method="embed")
  cold = split.cold_test_items
  text = np.asarray(full_graph.nodes["text"])[split.full.num_users + cold]
  ego = full.apply({"params": params}, jnp.asarray(text),
                   method=lambda m, t: m.mlp(t))
  expected = ego / np.linalg.norm(ego, axis=1, keepdims=True)
  np.testing.assert_allclose(np.asarray(item_emb)[cold], expected, atol=1e-5)
  scores = full.apply({"params": params}, user_emb, item_emb,
                      jnp.arange(3), method="score")
  assert np.all(np.isfinite(np.asarray(scores)[:, cold]))
  assert np.std(np.asarray(scores)[:, cold]) > 1e-3  # not constant
  loss, _ = _loss(model, params, graph, batch)
  assert jnp.isfinite(loss)


def test_alpharec_loss_matches_sampled_softmax_reference(tiny):
  config = _text_config("alpharec", dict(embed_dim=8, num_layers=2,
                                         temperature=0.15), num_negatives=3)
  graph, model, params, batch = _setup(config, tiny)
  loss, _ = _loss(model, params, graph, batch)
  user, item = (np.asarray(x) for x in model.apply(
      {"params": params}, graph, method="embed"))
  u = user[np.asarray(batch["users"])]
  pos = np.sum(u * item[np.asarray(batch["pos_items"])], -1) / 0.15
  neg = np.einsum("bd,bkd->bk", u, item[np.asarray(batch["neg_items"])]) / 0.15
  logits = np.concatenate([pos[:, None], neg], 1)
  per_row = np.log(np.exp(logits).sum(1)) - pos
  mask = np.asarray(batch["mask"])
  np.testing.assert_allclose(float(loss), (per_row * mask).sum() / mask.sum(),
                             rtol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL_MODELS))
def test_padded_graph_gives_equal_embeddings(name, tiny):
  config = _text_config(name, SMALL_MODELS[name])
  graph, model, params, batch = _setup(config, tiny)
  padded = jax.tree.map(jnp.asarray, pad_graph(
      jax.tree.map(np.asarray, graph), tiny.num_users + tiny.num_items + 7,
      int(graph.n_edge[0]) + 13))
  for a, b in zip(model.apply({"params": params}, graph, method="embed"),
                  model.apply({"params": params}, padded, method="embed")):
    np.testing.assert_allclose(a, b, atol=1e-5)
  if name != "rlmrec_gen":  # Gen draws its mask over real nodes only: same too
    np.testing.assert_allclose(_loss(model, params, graph, batch)[0],
                               _loss(model, params, padded, batch)[0],
                               rtol=1e-5)


def test_textgnn_without_id_embedding_is_a_function_of_text(tiny):
  config = _text_config("textgnn", dict(embed_dim=8, num_layers=0))
  graph, model, params, _ = _setup(config, tiny)
  _, item_emb = model.apply({"params": params}, graph, method="embed")
  w = np.asarray(params["text_proj"]["kernel"])  # [d_text, d]
  np.testing.assert_allclose(item_emb, tiny.item_embeddings @ w, atol=1e-5)
  with_id = _text_config("textgnn", dict(embed_dim=8, use_id_embedding=True))
  _, _, params2, _ = _setup(with_id, tiny)
  assert {"text_proj", "user_embedding", "item_embedding"} <= set(params2)


def test_missing_text_features_error_names_the_flag(tiny):
  config = _text_config("alpharec", dict(embed_dim=8))
  config.graph.text_features = False
  with pytest.raises(ValueError, match="text_features"):
    _setup(config, tiny)


# ----------------------------------------------------------------------------
# Cold start.


def test_cold_start_split_holds_items_and_users_out(tiny):
  split = coldstart.cold_start_split(tiny, item_fraction=0.25,
                                     user_fraction=0.2, seed=3)
  warm, full = split.warm, split.full
  assert (warm.num_users, warm.num_items) == (24, 30)
  assert (full.num_users, full.num_items) == (30, 40)
  cold_items = np.concatenate([split.cold_valid_items, split.cold_test_items])
  np.testing.assert_array_equal(np.sort(cold_items), np.arange(30, 40))
  for s in ("train", "valid", "test"):  # no cold id anywhere in warm data
    inter = getattr(warm, s)
    assert inter.items.max() < warm.num_items
    assert inter.users.max() < warm.num_users
  assert np.isin(split.cold_item_test.items, split.cold_test_items).all()
  assert np.isin(split.cold_item_valid.items, split.cold_valid_items).all()
  assert (split.cold_item_test.users < warm.num_users).all()
  assert (split.cold_user_test.users >= warm.num_users).all()
  assert (split.cold_user_test.items < warm.num_items).all()
  # Every interaction is accounted for once, in original ids; only cold-user
  # x cold-item pairs are dropped.
  def orig(inter):
    return set(zip(split.user_order[inter.users].tolist(),
                   split.item_order[inter.items].tolist()))
  kept = set().union(*(orig(getattr(warm, s)) for s in ("train", "valid",
                                                        "test")),
                     orig(split.cold_item_valid), orig(split.cold_item_test),
                     orig(split.cold_user_test))
  everything = set()
  for s in ("train", "valid", "test"):
    inter = getattr(tiny, s)
    everything |= set(zip(inter.users.tolist(), inter.items.tolist()))
  cold_u = set(split.user_order[split.cold_users].tolist())
  cold_i = set(split.item_order[cold_items].tolist())
  dropped = {p for p in everything if p[0] in cold_u and p[1] in cold_i}
  assert kept == everything - dropped
  # Side information follows the renumbering.
  np.testing.assert_array_equal(full.item_embeddings,
                                tiny.item_embeddings[split.item_order])
  np.testing.assert_array_equal(warm.item_embeddings,
                                full.item_embeddings[:30])
  assert full.item_texts[5] == tiny.item_texts[split.item_order[5]]


def test_graft_params_keeps_trained_rows():
  trained = {"t": jnp.ones((3, 2)), "w": jnp.full((4,), 2.0)}
  init = {"t": jnp.zeros((5, 2)), "w": jnp.zeros((4,))}
  out = coldstart.graft_params(trained, init)
  np.testing.assert_array_equal(out["t"], [[1, 1]] * 3 + [[0, 0]] * 2)
  np.testing.assert_array_equal(out["w"], [2.0] * 4)


def test_evaluate_cold_start_end_to_end(tiny, tmp_path):
  """Trains on warm data, restores best params, grafts, ranks cold items."""
  split = coldstart.cold_start_split(tiny, item_fraction=0.25, seed=0)
  results = {}
  for name, model in (("lightgcn", dict(embed_dim=8, num_layers=1)),):
    config = _text_config(name, model, num_epochs=1, eval_every=1,
                          steps_per_call=4, eval_ks=(5,),
                          selection_metric="recall@5", patience=5,
                          progress=False, max_checkpoints=1)
    config.graph.text_features = name != "lightgcn"
    workdir = str(tmp_path / name)
    train.train_and_evaluate(config, workdir, dataset=split.warm)
    results[name] = coldstart.evaluate_cold_start(
        config, workdir, split, ks=(5,), splits=("item_test", "item_valid"))
    for metrics in results[name].values():
      assert 0.0 <= metrics["recall@5"] <= 1.0
      assert metrics["num_users_evaluated"] > 0
  # Candidate sets are the cold items only: recall@5 with 5 candidates is 1.
  assert len(split.cold_test_items) == 5
  assert results["lightgcn"]["item_test"]["recall@5"] == pytest.approx(1.0)


def test_gen_gradients_finite_when_masked_rows_are_zero(tiny):
  """mask_ratio 1: every ego row is the zero mask token, MLP(0) = 0 at init."""
  config = _text_config("rlmrec_gen", dict(backbone="lightgcn",
                                           backbone_kwargs=LGCN,
                                           mask_ratio=1.0))
  graph, model, params, batch = _setup(config, tiny)
  grads = jax.grad(lambda p: _loss(model, p, graph, batch)[0])(params)
  for leaf in jax.tree.leaves(grads):
    assert jnp.all(jnp.isfinite(leaf))

"""Tests for text-aligned models (textgnn, rlmrec_con/gen, alpharec) and cold start."""

import dataclasses
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import coldstart_eval
from jaxrec import losses
from jaxrec import train
from jaxrec.config_utils import with_defaults
from jaxrec.data import coldstart
from jaxrec.data.synthetic import make_synthetic
from jaxrec.graphs import pad_graph
from jaxrec.models import MODELS
from jaxrec.models.base import Propagated
from jaxrec import input_pipeline
from jaxrec import models
from jaxrec import optimizers
from jaxrec.data import sampler
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
  config = with_defaults(dict(
      model_name=model_name, model=model, batch_size=16,
      graph=dict(norm="sym", text_features=True, pad_multiple=0),
      optimizer=dict(name="adam", learning_rate=1e-2),
      num_negatives=1, seed=0))
  config.update(extra)
  return config


def _setup(config, dataset, batch_size=16):
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, dataset))
  model = models.get_model(config.model_name, dataset.num_users,
                          dataset.num_items, **config.model.to_dict())
  num_neg = config.get("num_negatives", 1)
  params = train.init_params(model, graph, batch_size, jax.random.key(0),
                             num_neg)
  rows = input_pipeline.stack_batches(sampler.epoch_triples(
      dataset.train, dataset.num_users, dataset.num_items, 0, 0,
      num_negatives=num_neg), batch_size)
  batch = jax.tree.map(lambda v: jnp.asarray(v[0]), rows)
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
                                  tx=optimizers.make_optimizer(config))
  state, metrics = jax.jit(lambda s, b: train.train_step(
      s, graph, b, jax.random.key(0), model=model))(state, batch)
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
  batch = batch._replace(users=batch.users.at[1].set(batch.users[0]),
                         pos_items=batch.pos_items.at[2].set(batch.pos_items[0]),
                         mask=batch.mask.at[-1].set(0.0))
  kd = model.apply({"params": params}, graph, batch, method="con_loss")

  def parts(m, g):
    out = m.net.propagate_all(g, train=True)
    text = g.nodes["text"]
    ut, it = text[:m.num_users], text[m.num_users:m.num_users + m.num_items]
    return (out.user, out.item, m.con_mlp(ut), m.con_mlp(it))
  user, item, user_map, item_map = (np.asarray(x) for x in model.apply(
      {"params": params}, graph, method=parts))
  mask = np.asarray(batch.mask)
  expected = 0.0
  for collab, mapped, key in ((user, user_map, "users"),
                              (item, item_map, "pos_items"),
                              (item, item_map, "neg_items")):
    ids = np.asarray(getattr(batch, key))
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
  full_graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, split.full))
  full = models.get_model("alpharec", split.full.num_users,
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
  u = user[np.asarray(batch.users)]
  pos = np.sum(u * item[np.asarray(batch.pos_items)], -1) / 0.15
  neg = np.einsum("bd,bkd->bk", u, item[np.asarray(batch.neg_items)]) / 0.15
  logits = np.concatenate([pos[:, None], neg], 1)
  per_row = np.log(np.exp(logits).sum(1)) - pos
  mask = np.asarray(batch.mask)
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
  out = coldstart_eval.graft_params(trained, init)
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
    results[name] = coldstart_eval.evaluate_cold_start(
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


# ----------------------------------------------------------------------------
# Speed options: shared negatives, one backbone pass, row subsets, bfloat16.


def test_alpharec_shared_negatives_closed_form(tiny):
  """'batch': every row against the batch's first K negatives, minus hits."""
  config = _text_config("alpharec", dict(embed_dim=8, num_layers=2,
                                         temperature=0.2,
                                         negative_sharing="batch",
                                         shared_negatives=6))
  graph, model, params, batch = _setup(config, tiny)
  # Row 3's positive is one of the shared negatives (an accidental hit);
  # the last row is padding.
  batch = batch._replace(
      pos_items=batch.pos_items.at[3].set(batch.neg_items[2]))
  # Masked rows: their negatives leave the pool (row 4) and their loss rows
  # count nothing (rows 4 and 15).
  batch = batch._replace(mask=batch.mask.at[-1].set(0.0).at[4].set(0.0))
  loss, metrics = _loss(model, params, graph, batch)
  user, item = (np.asarray(x) for x in model.apply(
      {"params": params}, graph, method="embed"))
  users, pos_items, negs, mask = (np.asarray(x) for x in (
      batch.users, batch.pos_items, batch.neg_items, batch.mask))
  # num_negatives=1: rows 0..5 give the K = 6 negatives; row 4's is padding.
  shared = [j for j, m in zip(negs[:6], mask[:6]) if m > 0]
  per_row = []
  for b in range(len(users)):
    u = user[users[b]]
    kept = [j for j in shared if j != pos_items[b]]
    logits = np.concatenate([[u @ item[pos_items[b]]], item[kept] @ u]) / 0.2
    per_row.append(np.log(np.exp(logits).sum()) - logits[0])
  assert len([j for j in shared if j == pos_items[3]]) >= 1
  want = np.sum(np.array(per_row) * mask) / mask.sum()
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["infonce"]), want, rtol=1e-5)
  # Small batches: K is capped at the negatives the batch has.
  big = dataclasses.replace(model, shared_negatives=1000)
  np.testing.assert_allclose(
      _loss(big, params, graph, batch)[0],
      _loss(dataclasses.replace(model, shared_negatives=16), params, graph,
            batch)[0], rtol=1e-6)


def test_alpharec_row_negatives_l2_term_matches_gathered_penalty(tiny):
  config = _text_config("alpharec", dict(embed_dim=8, num_layers=2,
                                         l2_reg=0.5), num_negatives=3)
  graph, model, params, batch = _setup(config, tiny)
  _, metrics = _loss(model, params, graph, batch)
  ego_fn = lambda m, g: m.propagate_all(g)
  out = model.apply({"params": params}, graph, method=ego_fn)
  want = losses.l2_penalty(
      out.user_ego[batch.users], out.item_ego[batch.pos_items],
      out.item_ego[batch.neg_items], mask=batch.mask)
  np.testing.assert_allclose(metrics["reg"], want, rtol=1e-5)
  np.testing.assert_allclose(
      metrics["loss"], metrics["infonce"] + 0.5 * metrics["reg"], rtol=1e-6)


@pytest.mark.parametrize("name", ["alpharec", "textgnn"])
def test_bfloat16_products_stay_close_to_float32(name, tiny):
  model_kwargs = dict(embed_dim=8, num_layers=2)
  config = _text_config(name, dict(model_kwargs, matmul_dtype="float32"),
                        num_negatives=2)
  graph, model, params, batch = _setup(config, tiny)
  low = dataclasses.replace(model, matmul_dtype="bfloat16")
  grad = lambda m: jax.grad(lambda p: _loss(m, p, graph, batch)[0])(params)
  np.testing.assert_allclose(_loss(low, params, graph, batch)[0],
                             _loss(model, params, graph, batch)[0], rtol=2e-2)
  for g32, g16 in zip(jax.tree.leaves(grad(model)), jax.tree.leaves(grad(low))):
    g32, g16 = np.ravel(g32), np.ravel(g16)
    assert g16.dtype == np.float32
    cos = g32 @ g16 / (np.linalg.norm(g32) * np.linalg.norm(g16))
    assert cos > 0.99, cos
  with pytest.raises(ValueError, match="matmul_dtype"):
    _setup(_text_config(name, dict(model_kwargs, matmul_dtype="float16")),
           tiny)


@pytest.mark.parametrize("backbone", ["lightgcn", "simgcl"])
def test_con_shares_the_backbone_propagation(backbone, tiny):
  """One backbone pass equals the two-pass loss when that pass is fixed."""
  kwargs = dict(LGCN, **({"ssl_weight": 0.1} if backbone != "lightgcn" else {}))
  config = _text_config("rlmrec_con", dict(backbone=backbone,
                                           backbone_kwargs=kwargs,
                                           kd_weight=0.5))
  graph, model, params, batch = _setup(config, tiny)
  batch = batch._replace(mask=batch.mask.at[-2:].set(0.0))

  def two_pass(m, g, b):
    base, _ = m.net.loss(g, b)
    return base + m.kd_weight * m.con_loss(g, b)  # propagates again
  apply = lambda fn: model.apply({"params": params}, graph, batch, method=fn,
                                 rngs={"dropout": jax.random.key(0)})
  loss, metrics = apply("loss")
  np.testing.assert_allclose(loss, apply(two_pass), rtol=1e-6)
  captured = apply(lambda m, g, b: m.backbone_loss(g, b)[2])
  assert isinstance(captured, Propagated)
  # Gradients agree too.
  def value(p, fn):
    out = model.apply({"params": p}, graph, batch, method=fn,
                      rngs={"dropout": jax.random.key(0)})
    return out[0] if isinstance(out, tuple) else out
  chex.assert_trees_all_close(
      jax.grad(lambda p: value(p, "loss"))(params),
      jax.grad(lambda p: value(p, two_pass))(params), rtol=1e-5, atol=1e-8)
  assert metrics["kd"] > 0


def test_con_without_a_captured_pass_propagates_itself(tiny):
  """XSimGCL's loss never calls propagate_all: Con propagates on its own."""
  config = _text_config("rlmrec_con", dict(backbone="xsimgcl",
                                           backbone_kwargs=LGCN))
  graph, model, params, batch = _setup(config, tiny)
  apply = lambda fn: model.apply({"params": params}, graph, batch, method=fn,
                                 rngs={"dropout": jax.random.key(0)})
  assert apply(lambda m, g, b: m.backbone_loss(g, b)[2]) is None
  loss, metrics = apply("loss")
  np.testing.assert_allclose(
      loss, apply(lambda m, g, b: m.net.loss(g, b)[0])
      + model.kd_weight * apply("con_loss"), rtol=1e-6)
  assert jnp.isfinite(metrics["kd"])


def test_con_kd_rows_aligns_the_first_rows(tiny):
  config = _text_config("rlmrec_con", dict(backbone="lightgcn",
                                           backbone_kwargs=LGCN))
  graph, model, params, batch = _setup(config, tiny)
  batch = batch._replace(users=batch.users.at[1].set(batch.users[0]))  # a repeat
  subset = dataclasses.replace(model, kd_rows=6)
  kd = lambda m, b: m.apply({"params": params}, graph, b, method="con_loss")
  first = jax.tree.map(lambda v: v[:6], batch)
  np.testing.assert_allclose(kd(subset, batch), kd(model, first), rtol=1e-6)
  assert not np.isclose(float(kd(subset, batch)), float(kd(model, batch)))
  # kd_rows >= batch size is every row.
  np.testing.assert_allclose(kd(dataclasses.replace(model, kd_rows=64), batch),
                             kd(model, batch), rtol=1e-6)


def test_blocked_weight_gradient_equals_one_product():
  from jaxrec.models import textgnn  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(1000, 12)).astype(np.float32))  # padded
  g = jnp.asarray(rng.normal(size=(1000, 5)).astype(np.float32))
  want = np.asarray(x.astype(jnp.bfloat16).astype(np.float32)).T @ np.asarray(
      g.astype(jnp.bfloat16).astype(np.float32))
  np.testing.assert_allclose(textgnn._weight_grad(x, g), want, rtol=1e-4,
                             atol=1e-4)
  # Through the custom product's gradient, against float32.
  w = jnp.asarray(rng.normal(size=(12, 5)).astype(np.float32))
  dot = textgnn.text_dot_general("bfloat16")
  f = lambda w: jnp.sum(jnp.sin(dot(x, w, (((1,), (0,)), ((), ())))))
  f32 = lambda w: jnp.sum(jnp.sin(x @ w))
  g16, g32 = jax.grad(f)(w), jax.grad(f32)(w)
  assert np.linalg.norm(g16 - g32) < 2e-2 * np.linalg.norm(g32)

"""RLMRec: Gen options, the registry-built backbone and the parameter tree."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import train
from jaxrec.config_utils import with_defaults
from jaxrec.data.synthetic import make_synthetic
from jaxrec import input_pipeline
from jaxrec import models
from jaxrec.data import sampler

TEXT_DIM = 6
LGCN = dict(embed_dim=8, num_layers=2, l2_reg=1e-3)


@pytest.fixture(scope="module")
def tiny():
  """30 users, 40 items; items 0-9 share one text, users 0-4 another."""
  ds = make_synthetic(num_users=30, num_items=40, num_interactions=400, seed=2)
  rng = np.random.default_rng(0)
  items = rng.normal(size=(40, TEXT_DIM)).astype(np.float32)
  users = rng.normal(size=(30, TEXT_DIM)).astype(np.float32)
  items[1:10] = items[0]
  users[1:5] = users[0]
  return dataclasses.replace(ds, item_embeddings=items, user_embeddings=users)


def _setup(tiny, **model):
  config = with_defaults(dict(
      model_name="rlmrec_gen",
      model=dict(dict(backbone="lightgcn", backbone_kwargs=LGCN), **model),
      batch_size=16, graph=dict(norm="sym", text_features=True,
                                pad_multiple=0),
      num_negatives=1, seed=0))
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, tiny))
  net = models.get_model("rlmrec_gen", tiny.num_users, tiny.num_items,
                        **config.model.to_dict())
  params = train.init_params(net, graph, 16, jax.random.key(0), 1)
  # A non-zero mask token, so masked rows are told apart from zero rows.
  params = dict(params, mask_token=jnp.linspace(-1.0, 1.0, LGCN["embed_dim"]))
  rows = input_pipeline.stack_batches(sampler.epoch_triples(
      tiny.train, tiny.num_users, tiny.num_items, 0, 0, num_negatives=1), 16)
  batch = jax.tree.map(lambda v: jnp.asarray(v[0]), rows)
  batch = batch._replace(mask=batch.mask.at[-2:].set(0))  # two padding rows
  return graph, net, params, batch


def _apply(net, params, graph, *args, method):
  return net.apply({"params": params}, graph, *args, method=method,
                   rngs={"dropout": jax.random.key(3)})


def _np_propagation(graph, ego, num_layers):
  """Layer mean of [e, A e, ..., A^K e] with a dense A_hat. # [N, d]"""
  adj = np.zeros((ego.shape[0],) * 2)
  np.add.at(adj, (np.asarray(graph.receivers), np.asarray(graph.senders)),
            np.asarray(graph.edges))
  layers = [ego]
  for _ in range(num_layers):
    layers.append(adj @ layers[-1])
  return np.mean(layers, axis=0)


def _np_mlp(p, x):
  h = x @ np.asarray(p["hidden"]["kernel"]) + np.asarray(p["hidden"]["bias"])
  h = np.where(h > 0, h, 0.01 * h)  # leaky_relu
  return h @ np.asarray(p["out"]["kernel"]) + np.asarray(p["out"]["bias"])


def _np_info_nce(pred, text, tau, drop_same_text):
  pred = pred / np.linalg.norm(pred, axis=1, keepdims=True)
  text = text / np.linalg.norm(text, axis=1, keepdims=True)
  logits = pred @ text.T / tau  # [M, M]
  per_row = []
  for i in range(len(pred)):
    keep = np.ones(len(pred), bool)
    if drop_same_text:
      keep = ~np.all(np.isclose(text, text[i], atol=1e-6), axis=1)
      keep[i] = True
    per_row.append(np.log(np.exp(logits[i][keep]).sum()) - logits[i, i])
  return float(np.mean(per_row))


@pytest.mark.parametrize("dedup", [False, True])
def test_masked_backbone_loss_matches_numpy_reference(tiny, dedup):
  graph, net, params, batch = _setup(tiny, gen_masked_backbone=True,
                                     gen_dedup_text=dedup, mask_ratio=0.5,
                                     kd_weight=0.3, kd_temperature=0.4)
  final, is_masked, sel = _apply(net, params, graph,
                                 method="masked_propagation")
  n_real = tiny.num_users + tiny.num_items
  is_masked, sel = np.asarray(is_masked), np.asarray(sel)
  assert is_masked.sum() == round(0.5 * n_real) == len(sel)
  assert set(sel.tolist()) == set(np.flatnonzero(is_masked).tolist())
  # Masked rows really hold the mask token before propagation.
  p = params["net"]
  ego = np.concatenate([p["user_embedding"], p["item_embedding"]])  # [N, d]
  ego[is_masked] = np.asarray(params["mask_token"])
  ref_final = _np_propagation(graph, ego, LGCN["num_layers"])
  np.testing.assert_allclose(final, ref_final, atol=1e-5)
  # BPR on the MASKED pass, L2 on the real ego rows, reconstruction.
  loss, metrics = _apply(net, params, graph, batch, method="loss")
  u, i, j, m = (np.asarray(x) for x in (batch.users, batch.pos_items,
                                         batch.neg_items, batch.mask))
  users, items = ref_final[:tiny.num_users], ref_final[tiny.num_users:]
  diff = np.sum(users[u] * (items[i] - items[j]), -1)
  bpr = np.sum(np.logaddexp(0.0, -diff) * m) / m.sum()
  reg = np.sum(0.5 * (np.sum(p["user_embedding"][u] ** 2, -1)
                      + np.sum(p["item_embedding"][i] ** 2, -1)
                      + np.sum(p["item_embedding"][j] ** 2, -1)) * m) / m.sum()
  text = np.concatenate([tiny.user_embeddings, tiny.item_embeddings])[sel]
  kd = _np_info_nce(_np_mlp(params["gen_mlp"], ref_final[sel]), text, 0.4,
                    dedup)
  np.testing.assert_allclose(metrics["bpr"], bpr, rtol=1e-5)
  np.testing.assert_allclose(metrics["reg"], reg, rtol=1e-5)
  np.testing.assert_allclose(metrics["kd"], kd, rtol=1e-5)
  np.testing.assert_allclose(loss, bpr + 1e-3 * reg + 0.3 * kd, rtol=1e-5)


def test_dedup_changes_the_loss_only_with_duplicate_texts(tiny):
  graph, net, params, _ = _setup(tiny, gen_dedup_text=True)
  plain = _setup(tiny)[1]
  final, _, _ = _apply(net, params, graph, method="masked_propagation")
  recon = lambda m, g, f, s: m.reconstruction(g, f, s)
  dup = jnp.arange(tiny.num_users, tiny.num_users + 10)  # one shared text
  distinct = jnp.arange(tiny.num_users + 10, tiny.num_users + 40)
  mixed = jnp.concatenate([dup[:3], distinct[:5]])
  for ids, same in ((distinct, True), (dup, False), (mixed, False)):
    a = _apply(net, params, graph, final, ids, method=recon)
    b = _apply(plain, params, graph, final, ids, method=recon)
    assert bool(jnp.isclose(a, b, rtol=1e-6)) == same
  # All ten anchors share one text: no negative is left, the loss is 0.
  np.testing.assert_allclose(
      _apply(net, params, graph, final, dup, method=recon), 0.0, atol=1e-6)


def test_bpr_gradient_reaches_mask_token_only_on_the_masked_pass(tiny):
  """kd_weight 0: the mask token is trained by BPR iff BPR sees the mask."""
  for masked in (True, False):
    graph, net, params, batch = _setup(tiny, gen_masked_backbone=masked,
                                       mask_ratio=0.5, kd_weight=0.0)
    grads = jax.grad(lambda q: _apply(net, q, graph, batch,
                                      method="loss")[0])(params)
    assert bool(jnp.any(grads["mask_token"] != 0)) == masked
    for leaf in jax.tree.leaves(grads):
      assert jnp.all(jnp.isfinite(leaf))


@pytest.mark.parametrize("backbone,mode", [("sgl", "rlmrec_gen"),
                                           ("simgcl", "rlmrec_gen"),
                                           ("mf", "rlmrec_gen"),
                                           ("lightgcn", "rlmrec_con")])
def test_masked_backbone_needs_plain_lightgcn_gen(tiny, backbone, mode):
  net = models.get_model(mode, tiny.num_users, tiny.num_items,
                        backbone=backbone, backbone_kwargs=dict(embed_dim=8),
                        gen_masked_backbone=True)
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(
      with_defaults(dict(graph=dict(
          norm="sym", text_features=True, pad_multiple=0))), tiny))
  with pytest.raises(ValueError, match="gen_masked_backbone"):
    train.init_params(net, graph, 16, jax.random.key(0), 1)


def test_max_recon_nodes_caps_the_reconstructed_set(tiny):
  n_real = tiny.num_users + tiny.num_items
  for cap, want in ((0, round(0.5 * n_real)), (7, 7), (1000, round(0.5 * n_real))):
    graph, net, params, _ = _setup(tiny, mask_ratio=0.5, max_recon_nodes=cap)
    _, is_masked, sel = _apply(net, params, graph, method="masked_propagation")
    assert len(sel) == want
    assert int(np.sum(is_masked)) == round(0.5 * n_real)
    assert np.all(np.asarray(is_masked)[np.asarray(sel)])  # sel is masked
    assert len(set(np.asarray(sel).tolist())) == want  # without repeats


# Parameter trees of RLMRec over the fixture (d = 8, d_text = 6, MLP hidden
# (6 + 8) // 2 = 7): the backbone's parameters under 'net' beside the
# alignment MLP (and Gen's mask token). Checkpoints of earlier runs restore
# only while these paths and shapes hold.
_NET = {("net", "item_embedding"): (40, 8), ("net", "user_embedding"): (30, 8)}
PARAM_TREES = {
    "rlmrec_con": {
        **_NET,
        ("con_mlp", "hidden", "bias"): (7,),
        ("con_mlp", "hidden", "kernel"): (6, 7),
        ("con_mlp", "out", "bias"): (8,),
        ("con_mlp", "out", "kernel"): (7, 8),
    },
    "rlmrec_gen": {
        **_NET,
        ("gen_mlp", "hidden", "bias"): (7,),
        ("gen_mlp", "hidden", "kernel"): (8, 7),
        ("gen_mlp", "out", "bias"): (6,),
        ("gen_mlp", "out", "kernel"): (7, 6),
        ("mask_token",): (8,),
    },
}


@pytest.mark.parametrize("backbone", ["lightgcn", "sgl"])
@pytest.mark.parametrize("name", sorted(PARAM_TREES))
def test_param_tree_is_unchanged(tiny, name, backbone):
  kwargs = dict(LGCN, **({"ssl_weight": 0.1} if backbone == "sgl" else {}))
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(
      with_defaults(dict(graph=dict(
          norm="sym", text_features=True, pad_multiple=0))), tiny))
  net = models.get_model(name, tiny.num_users, tiny.num_items,
                        backbone=backbone, backbone_kwargs=kwargs)
  params = train.init_params(net, graph, 16, jax.random.key(0), 1)
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  tree = {tuple(k.key for k in path): tuple(v.shape) for path, v in leaves}
  assert tree == PARAM_TREES[name]
  assert all(v.dtype == jnp.float32 for _, v in leaves)
  # The backbone's own tree, exactly, under 'net'.
  alone = models.get_model(backbone, tiny.num_users, tiny.num_items, **kwargs)
  own = train.init_params(alone, graph, 16, jax.random.key(0), 1)
  assert jax.tree.structure(params["net"]) == jax.tree.structure(own)
  chex.assert_trees_all_equal_shapes(params["net"], own)


def test_registry_builds_the_backbone_submodule(tiny):
  net = models.get_model("rlmrec_con", tiny.num_users, tiny.num_items,
                        backbone="simgcl", backbone_kwargs=dict(embed_dim=8))
  assert type(net.net).__name__ == "SimGCL"
  assert (net.net.num_users, net.net.num_items, net.net.embed_dim) == (
      tiny.num_users, tiny.num_items, 8)
  default = models.get_model("rlmrec_gen", tiny.num_users, tiny.num_items)
  assert type(default.net).__name__ == "LightGCN"


@pytest.mark.parametrize("backbone", ["rlmrec_con", "alpharec", "mostpop"])
def test_wrapper_rejects_non_cf_backbones(tiny, backbone):
  with pytest.raises(ValueError, match="not a trainable"):
    models.get_model("rlmrec_con", tiny.num_users, tiny.num_items,
                    backbone=backbone)


def test_wrapper_backbone_kwargs_are_checked(tiny):
  with pytest.raises(ValueError, match="valid keys"):
    models.get_model("rlmrec_con", tiny.num_users, tiny.num_items,
                    backbone="lightgcn", backbone_kwargs=dict(kd_weight=1.0))

"""config.text.finetune_layers: the encoder's top layers train with a text model."""

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy

from jaxrec import text as text_lib
from jaxrec import text_finetune
from jaxrec import train
from jaxrec import warm_start
from jaxrec.config_utils import with_defaults
from jaxrec.data.synthetic import make_synthetic
from jaxrec.errors import ConfigError
from jaxrec.models import get_model


TOP = "layer_1"  # The tiny encoder's top layer.


@pytest.fixture(scope="module")
def tiny(bundled_model_path):  # pylint: disable=unused-argument
  """20 users and 30 items, every one with a short text."""
  return make_synthetic(num_users=20, num_items=30, num_interactions=240, seed=3,
                        num_threads=1)


@pytest.fixture(scope="module")
def encoder_dir(bundled_model_path, tmp_path_factory):
  """A 2-layer, 32-wide BERT with random weights and MiniLM's tokenizer (fast to compile)."""
  out = tmp_path_factory.mktemp("tiny_bert")
  shutil.copy(os.path.join(bundled_model_path, "tokenizer.json"), out / "tokenizer.json")
  h, f, layers = 32, 64, 2
  cfg = dict(model_type="bert", vocab_size=30522, hidden_size=h, num_hidden_layers=layers,
             num_attention_heads=2, intermediate_size=f, max_position_embeddings=128,
             type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0)
  (out / "config.json").write_text(json.dumps(cfg))
  rng = np.random.default_rng(0)
  w = lambda *shape: (0.1 * rng.normal(size=shape)).astype(np.float32)
  ln = lambda name: {f"{name}.weight": 1 + w(h), f"{name}.bias": w(h)}
  state = {"embeddings.word_embeddings.weight": w(30522, h),
           "embeddings.position_embeddings.weight": w(128, h),
           "embeddings.token_type_embeddings.weight": w(2, h), **ln("embeddings.LayerNorm")}
  for i in range(layers):
    p = f"encoder.layer.{i}."
    for name, (o, n) in {"attention.self.query": (h, h), "attention.self.key": (h, h),
                         "attention.self.value": (h, h), "attention.output.dense": (h, h),
                         "intermediate.dense": (f, h), "output.dense": (h, f)}.items():
      state[p + name + ".weight"], state[p + name + ".bias"] = w(o, n), w(o)
    state.update(ln(p + "attention.output.LayerNorm"), **ln(p + "output.LayerNorm"))
  safetensors_numpy.save_file(state, str(out / "model.safetensors"))
  return str(out)


def _config(tmp_path, encoder_dir, epochs=2, **text):
  return with_defaults(dict(
      model_name="textgnn", model=dict(embed_dim=8, num_layers=1), batch_size=64,
      num_epochs=epochs, eval_every=1, steps_per_call=16, eval_ks=(10,),
      selection_metric="recall@10", progress=False, max_checkpoints=1,
      optimizer=dict(learning_rate=1e-2), seed=0,
      graph=dict(text_features=True, text_model=encoder_dir,
                 text_cache_dir=str(tmp_path / "text_cache")),
      text=dict(dict(finetune_layers=1, max_length=16, learning_rate=1e-2), **text)))


def _leaves_equal(a, b) -> list:
  return [bool(np.array_equal(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]


@pytest.mark.parametrize("layers", [1, 2])
def test_cached_states_then_top_layers_equal_the_full_encoder(tiny, encoder_dir, layers):
  # Texts of 1..6 repeats: lengths over the buckets 16, 32 and 64.
  data = dataclasses.replace(tiny, item_texts=[
      " ".join([t] * (1 + i % 6)) for i, t in enumerate(tiny.item_texts)])
  enc = text_lib.TextEncoder(encoder_dir, max_length=64)
  nodes, toks = text_finetune.node_tokens(enc, data, 64)
  lengths = toks["attention_mask"].sum(axis=1)
  assert len(nodes) == tiny.num_users + tiny.num_items and toks["input_ids"].shape[1] == 64
  assert lengths.min() <= 16 and lengths.max() > 32
  first = enc.config.num_layers - layers
  states = text_finetune.text_states(enc.config, jnp.float32, enc.params, nodes, toks,
                                     len(nodes) + 2, first)
  t = len(nodes)
  assert states.hidden.shape[0] == t + 1 and states.node[-1] == t + 2
  assert np.all(states.node[states.row[nodes]] == nodes) and np.all(states.row[t:] == t)
  assert np.all(np.diff(states.mask.sum(axis=1)[:t]) >= 0)  # rows by length
  rows = jnp.minimum(jnp.arange(64), t)  # every text, then the fill row
  got = text_finetune.encode_rows(enc.config, jnp.float32, enc.params, states.hidden,
                                  states.mask, rows, first, 8)
  want = text_finetune.encode(enc.config, jnp.float32, enc.params, toks["input_ids"],
                              toks["attention_mask"])
  np.testing.assert_allclose(np.asarray(got)[states.row[nodes]], want, atol=1e-5, rtol=0)
  assert np.all(np.asarray(got)[t:] == 0)  # chunks of fill rows only: skipped


def _batch(users, pos, neg):
  batch = jax.tree.map(jnp.asarray, train.dummy_batch(len(users)))
  return batch._replace(users=jnp.asarray(users), pos_items=jnp.asarray(pos),
                        neg_items=jnp.asarray(neg))


def _step_texts(exp, graph, params, batch):
  """nodes['text'] as a train step sees it, and the re-encoded text rows."""
  def fn(m, g, b):
    return m._with_batch_texts(g, b).nodes["text"], m.batch_rows(g, b)  # pylint: disable=protected-access
  return exp.model.apply({"params": params}, graph, batch, method=fn)


@pytest.mark.parametrize("user_texts", [True, False])
def test_step_reencodes_only_the_batch_texts(tiny, encoder_dir, tmp_path, user_texts):
  data = tiny if user_texts else dataclasses.replace(tiny, user_texts=None)
  exp = train.setup_experiment(_config(tmp_path, encoder_dir), data)
  graph = exp.text_cache.refresh(exp.state.params, exp.graph)
  u = data.num_users
  users, pos, neg = [0, 1, 1, 5], [3, 3, 7, 8], [11, 12, 3, 29]
  batch = _batch(users, pos, neg)
  # Unchanged parameters: the re-encoded rows equal the cached ones.
  text, rows = _step_texts(exp, graph, exp.state.params, batch)
  cached = np.asarray(graph.nodes["text"])
  np.testing.assert_allclose(text, cached, atol=1e-5, rtol=0)
  # The unique rows of the batch's nodes, users only when they have texts.
  nodes = np.asarray(graph.nodes["text_node"])[np.asarray(rows)]
  want = sorted({u + v for v in pos + neg} | (set(users) if user_texts else set()))
  num_nodes = cached.shape[0]
  assert sorted(nodes[nodes < num_nodes].tolist()) == want
  assert len(rows) % text_finetune.STEP_CHUNK == 0
  # Moved top layer: batch rows change, every other row is the cache's.
  params = jax.tree.map(lambda x: x, exp.state.params)
  params["encoder"][TOP]["mlp_out"]["bias"] = params["encoder"][TOP]["mlp_out"]["bias"] + 0.5
  text, _ = _step_texts(exp, graph, params, batch)
  text = np.asarray(text)
  changed = np.flatnonzero(np.any(text != cached, axis=1))
  assert changed.tolist() == want
  if not user_texts:  # users keep the mean of their items' cached rows
    np.testing.assert_array_equal(text[:u], cached[:u])


def test_trains_top_layer_only_and_resumes_exactly_with_encoder(tiny, encoder_dir, tmp_path):
  workdir, straight = str(tmp_path / "run"), str(tmp_path / "straight")
  config = lambda epochs: _config(tmp_path, encoder_dir, epochs=epochs)
  exp = train.setup_experiment(config(2), tiny)
  pretrained = exp.state.params["encoder"]
  train.train_and_evaluate(config(1), workdir, tiny)
  step, first, _ = train.restore_best_params(workdir, config(2), exp.model, exp.graph)
  assert step == 1 and sorted(first) == ["encoder", "model"]
  # The checkpoint holds the trained encoder: its top layer moved.
  assert not all(_leaves_equal(first["encoder"][TOP], pretrained[TOP]))
  # Resumed for a second epoch (num_epochs may change on resume).
  results = train.train_and_evaluate(config(2), workdir, tiny)
  assert results["epochs_run"] == 2 and np.isfinite(results["valid"]["recall@10"])
  step, best, _ = train.restore_best_params(workdir, config(2), exp.model, exp.graph)
  # Exact resume: the same parameters as two epochs in one run.
  train.train_and_evaluate(config(2), straight, tiny)
  step2, best2, _ = train.restore_best_params(straight, config(2), exp.model, exp.graph)
  assert step == step2 and all(_leaves_equal(best, best2))
  # Embeddings and the lower layer: bit-identical to the pretrained weights.
  frozen = {k: v for k, v in pretrained.items() if k != TOP}
  assert all(_leaves_equal({k: best["encoder"][k] for k in frozen}, frozen))
  if step == 2:
    assert not all(_leaves_equal(best["encoder"][TOP], pretrained[TOP]))


def test_config_errors(tiny, encoder_dir, tmp_path):
  with pytest.raises(ConfigError, match="text_features"):
    train.setup_experiment(with_defaults(dict(
        model_name="textgnn", text=dict(finetune_layers=1))), tiny)
  with pytest.raises(ConfigError, match="unknown key"):
    text_finetune.check_config(_config(tmp_path, encoder_dir, layers=1))
  with pytest.raises(ConfigError, match=r"0\.\.2"):
    train.setup_experiment(_config(tmp_path, encoder_dir, finetune_layers=3), tiny)
  with pytest.raises(ConfigError, match="user_text"):
    config = _config(tmp_path, encoder_dir)
    config.graph.user_text = "history"
    text_finetune.check_config(config)


def test_init_does_not_encode_and_warm_starts_from_a_frozen_run(
    tiny, encoder_dir, tmp_path, monkeypatch):
  # A frozen-encoder run, then a fine-tuning run started from its parameters.
  source = str(tmp_path / "frozen")
  train.train_and_evaluate(_config(tmp_path, encoder_dir, epochs=1, finetune_layers=0),
                           source, tiny)
  best = warm_start.source_params(source)  # {'path': array}
  config = _config(tmp_path, encoder_dir)
  config.init_from = source
  config.init_map = ",".join(f"{p}:model/{p}" for p in best)

  def no_encoding(*args, **kwargs):
    raise AssertionError("init encoded texts (flax init runs eagerly: minutes "
                         "on a real batch)")
  monkeypatch.setattr(text_finetune, "encode", no_encoding)
  exp = train.setup_experiment(config, tiny)
  monkeypatch.undo()
  model = warm_start.flatten(exp.state.params["model"])
  assert sorted(model) == sorted(best)
  assert all(np.array_equal(model[p], best[p]) for p in best)
  pretrained = text_lib.TextEncoder(encoder_dir).params
  assert all(_leaves_equal(exp.state.params["encoder"], pretrained))


def test_alpharec_batch_sharing_reencodes_only_the_scored_negatives():
  batch = _batch([0, 1, 2], [3, 4, 5], [6, 7, 8])
  shared = get_model("alpharec", 20, 30, negative_sharing="batch", shared_negatives=2)
  nodes = text_finetune.batch_text_nodes(shared, 20, False, batch)
  assert nodes.tolist() == [23, 24, 25, 26, 27]  # positives, the pool's 2 negatives
  per_row = get_model("alpharec", 20, 30, negative_sharing="row")
  nodes = text_finetune.batch_text_nodes(per_row, 20, True, batch)
  assert nodes.tolist() == [23, 24, 25, 26, 27, 28, 0, 1, 2]

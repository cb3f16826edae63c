"""config.text.finetune_layers: the encoder's top layers train with a text model."""

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


def test_batch_texts_match_the_cache(tiny, encoder_dir, tmp_path):
  exp = train.setup_experiment(_config(tmp_path, encoder_dir), tiny)
  graph = exp.text_cache.refresh(exp.state.params, exp.graph)
  # With unchanged parameters the re-encoded batch rows equal the cached rows.
  batch = jax.tree.map(jnp.asarray, train.dummy_batch(8))
  batch = batch._replace(users=jnp.arange(8), pos_items=jnp.arange(8) + 3,
                         neg_items=jnp.arange(8) + 11)
  loss = exp.model.apply({"params": exp.state.params}, graph, batch, method="loss")[0]
  inner = exp.model.model.apply({"params": exp.state.params["model"]}, graph, batch,
                                method="loss")[0]
  np.testing.assert_allclose(loss, inner, rtol=1e-5)


def test_trains_top_layer_only_and_resumes_with_encoder(tiny, encoder_dir, tmp_path):
  workdir = str(tmp_path / "run")
  exp = train.setup_experiment(_config(tmp_path, encoder_dir), tiny)
  pretrained = exp.state.params["encoder"]
  train.train_and_evaluate(_config(tmp_path, encoder_dir, epochs=1), workdir, tiny)
  step, first, _ = train.restore_best_params(workdir, _config(tmp_path, encoder_dir), exp.model, exp.graph)
  assert step == 1 and sorted(first) == ["encoder", "model"]
  # The checkpoint holds the trained encoder: its top layer moved.
  assert not all(_leaves_equal(first["encoder"][TOP], pretrained[TOP]))
  # Resumed for a second epoch (num_epochs may change on resume).
  results = train.train_and_evaluate(_config(tmp_path, encoder_dir, epochs=2), workdir, tiny)
  assert results["epochs_run"] == 2 and np.isfinite(results["valid"]["recall@10"])
  step, best, _ = train.restore_best_params(workdir, _config(tmp_path, encoder_dir), exp.model, exp.graph)
  assert step == 2
  # Embeddings and the lower layer: bit-identical to the pretrained weights.
  frozen = {k: v for k, v in pretrained.items() if k != TOP}
  assert all(_leaves_equal({k: best["encoder"][k] for k in frozen}, frozen))
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

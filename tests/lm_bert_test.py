"""jaxrec.lm.bert (through jaxrec.text.TextEncoder) against independent references.

References, each skipped when its library is missing:
  * sentence-transformers (PyTorch): `SentenceTransformer(<model dir>)` on the
    same bundled all-MiniLM-L6-v2 directory;
  * transformers' own Flax BERT (`FlaxBertModel`, the path jaxrec used before
    it had its own encoder), fed the same safetensors weights.
And jaxrec.text must import and encode with transformers unimportable.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import text
from jaxrec.lm import bert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Varied lengths (2..128+ tokens, one truncated), non-ASCII, empty-ish.
TEXTS = [
    "A man is eating food.",
    "",
    "   ",
    "?",
    "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy.",
    "Amélie (Le fabuleux destin d'Amélie Poulain) (2001). Genres: Comedy, Romance.",
    "Crouching Tiger, Hidden Dragon (卧虎藏龙) (2000)",
    "Мастер и Маргарита — роман Михаила Булгакова.",
    "東京物語 (Tokyo Story, 1953)",
    "Émoji test 🎬🍿 and accents: naïve café façade, Zürich, São Paulo.",
    "Wireless noise-cancelling headphones with 30-hour battery life.",
    "The quick brown fox jumps over the lazy dog!",
    "Beyoncé, Björk and Sigur Rós; tags: post-rock, trip-hop, electronic, icelandic.",
    "word " * 40,
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "Organic green tea, 100 bags; smooth, slightly sweet taste. Great for mornings "
    "& late-night study sessions in the library.",
    "Long description " + " ".join(f"token{i}" for i in range(80)),
    "x " * 300,  # Truncated at max_length.
    "\t\n newline and tab \t separated \n text",
    "1234567890 3.14159 -42 1e10 $9.99 50% off",
]


@pytest.fixture(scope="module")
def encoder(bundled_model_path):  # pylint: disable=unused-argument
  return text.TextEncoder(max_length=128, batch_size=8)


def test_config_and_params_tree(encoder):
  c = encoder.config
  assert (c.hidden_size, c.num_layers, c.num_heads, c.intermediate_size) == (384, 6, 12, 1536)
  p = encoder.params
  assert sorted(p) == ["embeddings"] + [f"layer_{i}" for i in range(6)]
  assert p["layer_0"]["qkv"]["kernel"].shape == (384, 3 * 384)
  assert p["layer_0"]["mlp_in"]["kernel"].shape == (384, 1536)
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(p))


def test_matches_sentence_transformers(encoder):
  st_lib = pytest.importorskip("sentence_transformers")
  pytest.importorskip("torch")
  st = st_lib.SentenceTransformer(encoder.model_dir, device="cpu")
  st.max_seq_length = encoder.max_length
  ref = st.encode(TEXTS, batch_size=8, convert_to_numpy=True)  # [n, 384]
  ours = encoder.encode(TEXTS)  # [n, 384]
  np.testing.assert_allclose(ours, ref, atol=1e-5)
  # Same tokenisation (lengths), truncation included.
  ref_lens = st.tokenizer(TEXTS, truncation=True, max_length=128)["input_ids"]
  toks = encoder.tokenize(TEXTS, pad_to="longest")
  for row, ids in zip(toks["input_ids"], ref_lens):
    np.testing.assert_array_equal(row[:len(ids)], ids)
  np.testing.assert_array_equal(toks["attention_mask"].sum(1), [len(i) for i in ref_lens])


def _transformers_flax_embeddings(model_dir: str, toks: dict) -> np.ndarray:
  """Mean-pooled, normalised embeddings from transformers' FlaxBertModel."""
  transformers = pytest.importorskip("transformers")
  if not hasattr(transformers, "FlaxBertModel"):
    pytest.skip(f"transformers {transformers.__version__} has no Flax classes")
  from flax.traverse_util import flatten_dict, unflatten_dict  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  from transformers import modeling_flax_pytorch_utils as pt2flax  # pylint: disable=g-import-not-at-top
  config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
  model = transformers.FlaxBertModel(config, _do_init=False)
  state, _ = bert.read_safetensors(model_dir)
  shim = types.SimpleNamespace(base_model_prefix=model.base_model_prefix,
                               params=model.params_shape_tree)
  converted = flatten_dict(pt2flax.convert_pytorch_state_dict_to_flax(state, shim))
  params = unflatten_dict({k: jnp.asarray(converted[k], jnp.float32)
                           for k in flatten_dict(model.params_shape_tree)})
  hidden = model(toks["input_ids"], toks["attention_mask"], params=params).last_hidden_state
  pooled = text.mean_pool(hidden, jnp.asarray(toks["attention_mask"]))  # [n, 384]
  return np.asarray(text.l2_normalize(pooled))


def test_matches_transformers_flax(encoder):
  toks = encoder.tokenize(TEXTS, pad_to="longest")
  ref = _transformers_flax_embeddings(encoder.model_dir, toks)  # [n, 384]
  np.testing.assert_allclose(encoder.encode(TEXTS), ref, atol=1e-5)
  hidden = encoder.apply(encoder.params, toks["input_ids"], toks["attention_mask"])
  assert hidden.shape == (len(TEXTS), toks["input_ids"].shape[1], 384)


def test_bfloat16_matmuls_close(encoder):
  bf16 = text.TextEncoder(max_length=128, batch_size=8, dtype=jnp.bfloat16)
  ours, ref = bf16.encode(TEXTS), encoder.encode(TEXTS)
  cos = np.sum(ours * ref, axis=1)  # [n], unit rows
  assert cos.min() > 0.999, cos.min()
  assert bf16.fingerprint != encoder.fingerprint


def test_train_mode_dropout(encoder):
  toks = encoder.tokenize(TEXTS[:4], pad_to="bucket")
  args = (encoder.params, toks["input_ids"], toks["attention_mask"])
  a = encoder.encode_tokens(*args, train=True, dropout_rng=jax.random.PRNGKey(0))
  b = encoder.encode_tokens(*args, train=True, dropout_rng=jax.random.PRNGKey(1))
  det = encoder.encode_tokens(*args)
  assert np.abs(np.asarray(a - b)).max() > 1e-3  # Dropout is on ...
  np.testing.assert_allclose(det, encoder.encode(TEXTS[:4]), atol=1e-5)  # ... and off.


def test_bad_model_dirs(tmp_path, bundled_model_path):
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
  with pytest.raises(ValueError, match="model_type='gpt2'"):
    bert.read_config(str(tmp_path))
  with open(os.path.join(bundled_model_path, "config.json")) as f:
    cfg = json.load(f)
  cfg["num_hidden_layers"] = 7  # One more layer than the weights have.
  (tmp_path / "config.json").write_text(json.dumps(cfg))
  state, _ = bert.read_safetensors(bundled_model_path)
  with pytest.raises(ValueError, match="encoder.layer.6"):
    bert.convert_state_dict(state, bert.read_config(str(tmp_path)), "model.safetensors")
  cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"] = 6, 768, 12
  (tmp_path / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(ValueError, match="shape"):
    bert.convert_state_dict(state, bert.read_config(str(tmp_path)), "model.safetensors")
  with pytest.raises(FileNotFoundError, match="model.safetensors"):
    bert.read_safetensors(str(tmp_path))


_BLOCKED = """
import sys
class Block:
  def find_spec(self, name, path=None, target=None):
    if name == "transformers" or name.startswith("transformers."):
      raise ImportError("transformers blocked for this test")
sys.meta_path.insert(0, Block())
from jaxrec import text
enc = text.TextEncoder(max_length=32, batch_size=4)
emb = enc.encode(["A man is eating food.", "Amélie (2001)"])
assert "transformers" not in sys.modules
print(emb.shape, float(emb[0, 0]))
"""


def test_works_without_transformers(encoder):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  out = subprocess.run([sys.executable, "-c", _BLOCKED], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  shape, first = out.stdout.split(")")[0] + ")", float(out.stdout.split()[-1])
  assert shape == "(2, 384)"
  np.testing.assert_allclose(first, encoder.encode(["A man is eating food."])[0, 0], atol=1e-5)

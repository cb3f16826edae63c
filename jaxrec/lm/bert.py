"""A small Flax BERT-family encoder that loads Hugging Face files directly.

Covers BERT-shaped checkpoints (`"model_type": "bert"` in config.json:
all-MiniLM-L6-v2, BERT-base, ...): token + position + token-type embeddings,
then post-LayerNorm transformer layers (self-attention with a padding mask,
a GELU MLP), each sub-block followed by a residual add and LayerNorm. It
returns the last hidden states; pooling is the caller's (`jaxrec.text`).

Weights come from `model.safetensors` (PyTorch names, read as NumPy by the
`safetensors` package: no torch, no transformers), the shapes from
`config.json`, the tokenizer from `tokenizer.json` through the `tokenizers`
library (or a WordPiece tokenizer built from `vocab.txt`).

Parameter tree (readable; `trainable_layer_mask` in jaxrec.text finds the
layers by their `layer_<i>` names):

  embeddings/{word, position, token_type}/embedding, embeddings/norm/{scale, bias}
  layer_<i>/qkv/{kernel [H, 3H], bias [3H]}      # query, key, value fused
  layer_<i>/attention_out/{kernel [H, H], bias}
  layer_<i>/attention_norm/{scale, bias}
  layer_<i>/mlp_in/{kernel [H, F], bias}, layer_<i>/mlp_out/{kernel [F, H], bias}
  layer_<i>/mlp_norm/{scale, bias}

Parameters are float32. `dtype` is the matmul input dtype: with bfloat16
the products take bfloat16 inputs and accumulate in float32, while
embeddings, softmax, LayerNorm and the residual stream stay float32.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

SUPPORTED_MODEL_TYPES = ("bert",)
_ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # erf GELU, as PyTorch's.
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}


class BertConfig(NamedTuple):
  """The config.json fields the encoder uses."""
  vocab_size: int
  hidden_size: int  # H
  num_layers: int
  num_heads: int
  intermediate_size: int  # F
  max_position_embeddings: int
  type_vocab_size: int
  layer_norm_eps: float
  hidden_act: str
  hidden_dropout: float
  attention_dropout: float
  pad_token_id: int


def read_config(model_dir: str) -> BertConfig:
  """The encoder config from `<model_dir>/config.json`.

  Args:
    model_dir: local model directory.

  Returns:
    A `BertConfig`.

  Raises:
    FileNotFoundError: no config.json.
    ValueError: not a BERT-family config, or a field is missing or invalid.
  """
  path = os.path.join(model_dir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"jaxrec.lm.bert: {path} does not exist")
  with open(path, encoding="utf-8") as f:
    raw = json.load(f)
  model_type = raw.get("model_type", "")
  if model_type not in SUPPORTED_MODEL_TYPES:
    raise ValueError(f"jaxrec.lm.bert: {path}: model_type={model_type!r}, expected one of "
                     f"{list(SUPPORTED_MODEL_TYPES)} (a BERT-family encoder)")
  if raw.get("position_embedding_type", "absolute") != "absolute":
    raise ValueError(f"jaxrec.lm.bert: {path}: position_embedding_type="
                     f"{raw['position_embedding_type']!r}, expected 'absolute'")
  act = raw.get("hidden_act", "gelu")
  if act not in _ACTIVATIONS:
    raise ValueError(f"jaxrec.lm.bert: {path}: hidden_act={act!r}, expected one of "
                     f"{sorted(_ACTIVATIONS)}")
  try:
    config = BertConfig(
        vocab_size=int(raw["vocab_size"]), hidden_size=int(raw["hidden_size"]),
        num_layers=int(raw["num_hidden_layers"]), num_heads=int(raw["num_attention_heads"]),
        intermediate_size=int(raw["intermediate_size"]),
        max_position_embeddings=int(raw.get("max_position_embeddings", 512)),
        type_vocab_size=int(raw.get("type_vocab_size", 2)),
        layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)), hidden_act=act,
        hidden_dropout=float(raw.get("hidden_dropout_prob", 0.1)),
        attention_dropout=float(raw.get("attention_probs_dropout_prob", 0.1)),
        pad_token_id=int(raw.get("pad_token_id") or 0))
  except KeyError as e:
    raise ValueError(f"jaxrec.lm.bert: {path} has no field {e.args[0]!r}") from e
  if config.hidden_size % config.num_heads:
    raise ValueError(f"jaxrec.lm.bert: {path}: hidden_size={config.hidden_size} is not a "
                     f"multiple of num_attention_heads={config.num_heads}")
  return config


class Dense(nn.Module):
  """`x @ kernel + bias`, inputs cast to `dtype`, float32 accumulation and output."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.normal(0.02),
                        (x.shape[-1], self.features), jnp.float32)  # [in, out]
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    y = jnp.dot(x.astype(self.dtype), kernel.astype(self.dtype),
                preferred_element_type=jnp.float32)  # [..., out]
    return y + bias


def _layer_norm(eps: float, name: str) -> nn.LayerNorm:
  # Two-pass variance (as PyTorch) rather than E[x^2] - E[x]^2.
  return nn.LayerNorm(epsilon=eps, dtype=jnp.float32, use_fast_variance=False, name=name)


class BertLayer(nn.Module):
  """Post-LN transformer layer: x = LN(x + Attn(x)); x = LN(x + MLP(x))."""
  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, bias: jax.Array, deterministic: bool) -> jax.Array:
    """One layer.

    Args:
      x: token states. # [B, L, H] float32
      bias: additive attention bias, 0 for real keys, very negative for padding.
        # [B, 1, 1, L]
      deterministic: no dropout.

    Returns:
      New token states. # [B, L, H] float32
    """
    c, dt = self.config, self.dtype
    b, length, h = x.shape
    heads, head_dim = c.num_heads, h // c.num_heads
    qkv = Dense(3 * h, dt, name="qkv")(x)  # [B, L, 3H]
    q, k, v = jnp.split(qkv.reshape(b, length, 3, heads, head_dim), 3, axis=2)
    q, k, v = (t[:, :, 0] for t in (q, k, v))  # each [B, L, heads, head_dim]
    scores = jnp.einsum("bqnd,bknd->bnqk", q.astype(dt), k.astype(dt),
                        preferred_element_type=jnp.float32)  # [B, heads, L, L]
    probs = jax.nn.softmax(scores * (1.0 / np.sqrt(head_dim)) + bias, axis=-1)
    probs = nn.Dropout(c.attention_dropout)(probs, deterministic=deterministic)
    ctx = jnp.einsum("bnqk,bknd->bqnd", probs.astype(dt), v.astype(dt),
                     preferred_element_type=jnp.float32)  # [B, L, heads, head_dim]
    attn = Dense(h, dt, name="attention_out")(ctx.reshape(b, length, h))  # [B, L, H]
    attn = nn.Dropout(c.hidden_dropout)(attn, deterministic=deterministic)
    x = _layer_norm(c.layer_norm_eps, "attention_norm")(x + attn)
    mid = _ACTIVATIONS[c.hidden_act](Dense(c.intermediate_size, dt, name="mlp_in")(x))  # [B, L, F]
    out = Dense(h, dt, name="mlp_out")(mid)  # [B, L, H]
    out = nn.Dropout(c.hidden_dropout)(out, deterministic=deterministic)
    return _layer_norm(c.layer_norm_eps, "mlp_norm")(x + out)


class Embeddings(nn.Module):
  """Word + position + token-type embeddings, then LayerNorm."""
  config: BertConfig

  @nn.compact
  def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array,
               deterministic: bool) -> jax.Array:
    """Embeds tokens at positions 0..L-1. # [B, L] ids -> [B, L, H] float32"""
    c = self.config
    embed = lambda n, name: nn.Embed(n, c.hidden_size, dtype=jnp.float32,
                                     embedding_init=nn.initializers.normal(0.02), name=name)
    length = input_ids.shape[1]
    x = (embed(c.vocab_size, "word")(input_ids)
         + embed(c.max_position_embeddings, "position")(jnp.arange(length))[None]
         + embed(c.type_vocab_size, "token_type")(token_type_ids))  # [B, L, H]
    x = _layer_norm(c.layer_norm_eps, "norm")(x)
    return nn.Dropout(c.hidden_dropout)(x, deterministic=deterministic)


class BertEncoder(nn.Module):
  """BERT-family encoder: ids -> last hidden states (no pooler, no head).

  Attributes:
    config: a `BertConfig`.
    dtype: matmul input dtype (float32 or bfloat16; accumulation is float32).
  """
  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array,
               token_type_ids: Optional[jax.Array] = None,
               deterministic: bool = True) -> jax.Array:
    """Forward pass.

    Args:
      input_ids: token ids. # [B, L] int
      attention_mask: 1 for real tokens, 0 for padding. # [B, L]
      token_type_ids: segment ids (default all 0). # [B, L] int
      deterministic: False enables dropout (needs a 'dropout' rng).

    Returns:
      Last hidden states, float32. # [B, L, H]
    """
    if input_ids.shape[1] > self.config.max_position_embeddings:
      raise ValueError(f"BertEncoder: sequence length {input_ids.shape[1]} > "
                       f"max_position_embeddings={self.config.max_position_embeddings}")
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    x = Embeddings(self.config, name="embeddings")(input_ids, token_type_ids, deterministic)
    # Padding keys get a large negative score (finite: rows without any real
    # token then attend uniformly instead of producing NaN).
    bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0,
                     jnp.finfo(jnp.float32).min / 2)  # [B, 1, 1, L]
    for i in range(self.config.num_layers):
      x = BertLayer(self.config, self.dtype, name=f"layer_{i}")(x, bias, deterministic)
    return x


def _torch_prefix(state: dict, path: str) -> str:
  """The prefix ('' or 'bert.') of a PyTorch BERT state dict's encoder names."""
  for prefix in ("", "bert.", "model."):
    if prefix + "embeddings.word_embeddings.weight" in state:
      break
  else:
    raise ValueError(f"jaxrec.lm.bert: {path} has no 'embeddings.word_embeddings.weight' "
                     f"(optionally under 'bert.'); keys start with {sorted(state)[:5]}")
  return prefix


def read_safetensors(model_dir: str) -> tuple[dict, str]:
  """PyTorch-named tensors of `model.safetensors` (or its shards) as float32 NumPy.

  Args:
    model_dir: local model directory.

  Returns:
    (name -> array, path of the first weight file).

  Raises:
    FileNotFoundError: no safetensors weights.
  """
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  single = os.path.join(model_dir, "model.safetensors")
  index = os.path.join(model_dir, "model.safetensors.index.json")
  if os.path.isfile(single):
    files = [single]
  elif os.path.isfile(index):
    with open(index, encoding="utf-8") as f:
      files = sorted({os.path.join(model_dir, v) for v in json.load(f)["weight_map"].values()})
  else:
    raise FileNotFoundError(
        f"jaxrec.lm.bert: {model_dir} has no model.safetensors (found: "
        f"{sorted(os.listdir(model_dir))[:12]}); pytorch_model.bin needs torch, which "
        "jaxrec does not use: convert it to safetensors first")
  state = {}
  for path in files:
    try:
      with safe_open(path, framework="numpy") as f:
        state.update({k: f.get_tensor(k) for k in f.keys()})
    except (TypeError, ValueError):  # bfloat16 tensors, which NumPy lacks: via JAX.
      with safe_open(path, framework="flax") as f:
        state.update({k: np.asarray(f.get_tensor(k), np.float32) for k in f.keys()})
  return state, files[0]


def convert_state_dict(state: dict, config: BertConfig, path: str = "weights") -> dict:
  """PyTorch BERT tensors -> this module's float32 parameter tree.

  Args:
    state: PyTorch names -> arrays (`read_safetensors`); a 'bert.' prefix and
      old-style LayerNorm `gamma`/`beta` names are accepted; heads and the
      pooler are ignored.
    config: the encoder config.
    path: file named in errors.

  Returns:
    The `params` collection of `BertEncoder(config)` (NumPy float32 leaves).

  Raises:
    ValueError: a tensor is missing or has the wrong shape.
  """
  prefix = _torch_prefix(state, path)

  def get(name: str) -> np.ndarray:
    for key in (prefix + name, prefix + name.replace(".weight", ".gamma").replace(
        ".bias", ".beta")):
      if key in state:
        return np.asarray(state[key], np.float32)
    raise ValueError(f"jaxrec.lm.bert: {path} has no tensor {prefix + name!r}")

  def dense(name: str) -> dict:
    return {"kernel": get(name + ".weight").T, "bias": get(name + ".bias")}

  def norm(name: str) -> dict:
    return {"scale": get(name + ".weight"), "bias": get(name + ".bias")}

  params = {"embeddings": {
      "word": {"embedding": get("embeddings.word_embeddings.weight")},
      "position": {"embedding": get("embeddings.position_embeddings.weight")},
      "token_type": {"embedding": get("embeddings.token_type_embeddings.weight")},
      "norm": norm("embeddings.LayerNorm")}}
  for i in range(config.num_layers):
    pre = f"encoder.layer.{i}."
    q, k, v = (dense(pre + f"attention.self.{n}") for n in ("query", "key", "value"))
    params[f"layer_{i}"] = {
        "qkv": {"kernel": np.concatenate([q["kernel"], k["kernel"], v["kernel"]], axis=1),
                "bias": np.concatenate([q["bias"], k["bias"], v["bias"]])},
        "attention_out": dense(pre + "attention.output.dense"),
        "attention_norm": norm(pre + "attention.output.LayerNorm"),
        "mlp_in": dense(pre + "intermediate.dense"),
        "mlp_out": dense(pre + "output.dense"),
        "mlp_norm": norm(pre + "output.LayerNorm")}
  expected = jax.eval_shape(
      lambda: BertEncoder(config).init(jax.random.PRNGKey(0), jnp.zeros((1, 2), jnp.int32),
                                       jnp.ones((1, 2), jnp.int32)))["params"]
  flat_expected = dict(jax.tree_util.tree_flatten_with_path(expected)[0])
  flat_got = dict(jax.tree_util.tree_flatten_with_path(params)[0])
  for key, spec in flat_expected.items():
    name = jax.tree_util.keystr(key)
    if key not in flat_got:
      raise ValueError(f"jaxrec.lm.bert: {path}: no weights for {name}")
    if flat_got[key].shape != spec.shape:
      raise ValueError(f"jaxrec.lm.bert: {path}: {name} has shape {flat_got[key].shape}, "
                       f"config.json implies {spec.shape}")
  return params


def load_params(model_dir: str, config: Optional[BertConfig] = None) -> dict:
  """The encoder parameters of a local model directory (float32 JAX arrays).

  Args:
    model_dir: directory with config.json and model.safetensors.
    config: its config (default `read_config(model_dir)`).

  Returns:
    The `params` collection of `BertEncoder(config)`.
  """
  config = read_config(model_dir) if config is None else config
  state, path = read_safetensors(model_dir)
  return jax.tree_util.tree_map(jnp.asarray, convert_state_dict(state, config, path))


def load_tokenizer(model_dir: str, max_length: int) -> Any:
  """A `tokenizers.Tokenizer` that adds [CLS]/[SEP] and truncates on the right.

  Reads `tokenizer.json`; a directory with only `vocab.txt` gets a WordPiece
  BERT tokenizer (lower-casing as `tokenizer_config.json`'s `do_lower_case`).
  Padding is off (callers pad to their own lengths).

  Args:
    model_dir: local model directory.
    max_length: truncation length in tokens, special tokens included.

  Returns:
    The tokenizer.

  Raises:
    FileNotFoundError: neither tokenizer.json nor vocab.txt.
  """
  import tokenizers  # pylint: disable=g-import-not-at-top
  path = os.path.join(model_dir, "tokenizer.json")
  vocab = os.path.join(model_dir, "vocab.txt")
  if os.path.isfile(path):
    tok = tokenizers.Tokenizer.from_file(path)
  elif os.path.isfile(vocab):
    lower = True
    cfg = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.isfile(cfg):
      with open(cfg, encoding="utf-8") as f:
        lower = bool(json.load(f).get("do_lower_case", True))
    tok = tokenizers.BertWordPieceTokenizer(vocab, lowercase=lower)._tokenizer  # pylint: disable=protected-access
  else:
    raise FileNotFoundError(f"jaxrec.lm.bert: {model_dir} has no tokenizer.json or vocab.txt")
  tok.no_padding()
  tok.enable_truncation(int(max_length))
  return tok


def special_token_id(tokenizer: Any, token: str, fallback: Optional[int] = None) -> int:
  """Id of a special token such as '[PAD]' (`fallback` when absent).

  Raises:
    ValueError: the token is absent and there is no fallback.
  """
  idx = tokenizer.token_to_id(token)
  if idx is None:
    if fallback is None:
      raise ValueError(f"jaxrec.lm.bert: the tokenizer has no {token} token")
    return int(fallback)
  return int(idx)

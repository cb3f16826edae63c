"""Input pipeline: dataset loading, the training graph and epoch batches.

Everything the trainer feeds to the jitted step is built here as a pure
function of (config, dataset, epoch): the padded (and, on large graphs,
column-tiled) training graph, and one epoch of sampled (user, positive,
negative) triples stacked into fixed-shape batches (`batches.Batch`; the
rating task's `batches.RatingBatch`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional, Sequence

import jax
import jraph
import ml_collections
import numpy as np

from jaxrec import batches
from jaxrec.batches import AnyBatch
from jaxrec.batches import Batch
from jaxrec.batches import RatingBatch
from jaxrec.data import sampler
from jaxrec.data.dataset import DataError
from jaxrec.data.dataset import Dataset
from jaxrec.data.dataset import empty_interactions
from jaxrec.data.dataset import Interactions
from jaxrec.graphs import bipartite_graph
from jaxrec.graphs import is_symmetric
from jaxrec.graphs import mark_bfloat16_gather
from jaxrec.graphs import native
from jaxrec.graphs import pad_graph
from jaxrec.graphs import round_up
from jaxrec.graphs import tiling


def load_data(config: ml_collections.ConfigDict) -> Dataset:
  """Loads the dataset named by `config.dataset`, in `config.graph.node_order`."""
  from jaxrec.data import registry  # pylint: disable=g-import-not-at-top
  ds = config.dataset
  kwargs = dict(ds.kwargs or {})
  kwargs.setdefault("seed", config.seed)  # a preset's own data seed wins
  return order_nodes(config, registry.load_dataset(
      ds.name, data_root=ds.data_root, **kwargs))


def order_nodes(config: ml_collections.ConfigDict, dataset: Dataset) -> Dataset:
  """The dataset with its ids in `config.graph.node_order`.

  'data' keeps the ids; 'degree' relabels users and items by decreasing train
  degree (`preprocess.relabel_by_degree`; the id maps keep the original ids).
  Idempotent: a dataset already in degree order comes back unchanged, so
  applying it to a dataset from `load_data` again is harmless.

  Args:
    config: experiment configuration.
    dataset: the loaded dataset.

  Returns:
    The dataset in the configured order.

  Raises:
    ValueError: an unknown node order.
  """
  from jaxrec.config_utils import NODE_ORDERS  # pylint: disable=g-import-not-at-top
  from jaxrec.data import preprocess  # pylint: disable=g-import-not-at-top
  order = config.graph.node_order
  if order == "data":
    return dataset
  if order == "degree":
    return preprocess.relabel_by_degree(dataset)
  raise ValueError(f"config.graph.node_order: unknown node order {order!r}; "
                   f"valid: {list(NODE_ORDERS)}")


def build_graph(config: ml_collections.ConfigDict,
                dataset: Dataset) -> jraph.GraphsTuple:
  """Training graph, with text features as node features when configured.

  `config.graph.text_features` puts the dataset's semantic embeddings (users
  first, then items) into `graph.nodes['text']`; `config.graph.pad_multiple`
  pads nodes and edges up to a multiple so related datasets share shapes.
  Users get, in order of preference: the dataset's user embeddings, its
  encoded user texts (e.g. RLMRec profiles), else `config.graph.user_text`:
  'mean' (mean of their train items' embeddings) or 'history' (the encoded
  `texts.user_history_texts` of THIS dataset's train split, so a refit or
  cold-start dataset uses its own; never valid/test items).
  """
  gcfg = config.graph
  features = None
  if gcfg.text_features:
    user_emb, item_emb = _text_embeddings(gcfg, dataset)
    features = {"text": np.concatenate([user_emb, item_emb]
                                       ).astype(np.float32)}
  # The rating task keeps each edge's rating on the graph (rating models
  # read their levels and the train mean from it); edge_weight weights the
  # adjacency by them for any task.
  graph = bipartite_graph(dataset.train, dataset.num_users, dataset.num_items,
                          norm=gcfg.norm, node_features=features,
                          edge_weight=gcfg.edge_weight,
                          keep_ratings=config.task == "rating")
  multiple = gcfg.pad_multiple
  if multiple:
    nodes = round_up(int(graph.n_node[0]) + 1, multiple)
    edges = round_up(int(graph.n_edge[0]), multiple)
    graph = pad_graph(graph, nodes, edges)
  block = tile_block_nodes(gcfg.tile_nodes,
                           int(np.sum(graph.n_node)), len(graph.senders))
  if block and is_symmetric(graph):
    graph = tiling.tile_graph(graph, block)
  if gcfg.gather_dtype == "bfloat16":
    graph = mark_bfloat16_gather(graph)
  return graph


# config.graph.user_text values: features of users without their own text.
USER_TEXTS = ("mean", "history")
# config.graph.text_source values: the loader's texts or LLM-written profiles.
TEXT_SOURCES = ("dataset", "profiles")


def with_text_features(config: ml_collections.ConfigDict,
                       dataset: Dataset) -> Dataset:
  """The dataset with the node text features `build_graph` would use.

  With `config.graph.text_features`, returns a copy whose `user_embeddings`
  and `item_embeddings` (float32) are exactly the rows of
  `build_graph(config, dataset).nodes['text']`: texts encoded (through the
  disk cache), user histories or train means filled in. `build_graph` on the
  result encodes nothing, and `workdir.save_artifacts` saves these arrays so
  inference rebuilds the same graph. Without `text_features` the dataset
  comes back unchanged.

  Args:
    config: experiment configuration.
    dataset: the dataset as trained (after node ordering and refit).

  Returns:
    The dataset with its text features resolved.

  Raises:
    ValueError: see `build_graph` (no texts or embeddings, bad user_text).
  """
  gcfg = config.graph
  if not gcfg.text_features:
    return dataset
  user_emb, item_emb = _text_embeddings(gcfg, dataset)
  return dataclasses.replace(
      dataset, user_embeddings=np.asarray(user_emb, np.float32),
      item_embeddings=np.asarray(item_emb, np.float32))


def _text_embeddings(gcfg, dataset: Dataset
                     ) -> tuple[np.ndarray, np.ndarray]:
  """(user [U, d_text], item [I, d_text]) text features for `build_graph`."""
  mode = gcfg.user_text
  if mode not in USER_TEXTS:
    raise ValueError(f"config.graph.user_text: unknown value {mode!r}; valid: "
                     f"{list(USER_TEXTS)}")
  if gcfg.text_source not in TEXT_SOURCES:
    raise ValueError(f"config.graph.text_source: unknown value "
                     f"{gcfg.text_source!r}; valid: {list(TEXT_SOURCES)}")
  if gcfg.text_source == "profiles" and dataset.item_embeddings is None:
    # LLM-written profiles replace the texts (not features already resolved
    # by with_text_features); users' are looked up by THIS train split.
    from jaxrec.lm import profile_texts  # pylint: disable=g-import-not-at-top
    dataset = profile_texts.with_profiles(dataset, gcfg.profiles_dir)
  item_emb, user_emb = dataset.item_embeddings, dataset.user_embeddings
  encoded_items = item_emb is None and dataset.item_texts is not None
  if encoded_items:
    item_emb = _encode_texts(gcfg, dataset.item_texts)
    if user_emb is None and dataset.user_texts is not None:
      user_emb = _encode_texts(gcfg, dataset.user_texts)
  if item_emb is None:
    raise ValueError(f"config.graph.text_features needs item embeddings or "
                     f"item texts, but dataset {dataset.name!r} has neither")
  if user_emb is None and mode == "history":
    if not encoded_items:
      raise ValueError(
          f"config.graph.user_text='history' encodes user histories with "
          f"config.graph.text_model like the item texts, but dataset "
          f"{dataset.name!r} has precomputed item embeddings"
          + ("" if dataset.item_texts is not None else " and no item texts")
          + "; use user_text='mean'")
    user_emb = _history_embeddings(gcfg, dataset, item_emb.shape[1])
  if user_emb is None:  # users without text: mean of their train items.
    user_emb = _mean_item_embedding(dataset, item_emb)
  return user_emb, item_emb


def _history_embeddings(gcfg, dataset: Dataset, dim: int) -> np.ndarray:
  """Encoded train-history texts; zeros for users without train items."""
  from jaxrec.data import texts  # pylint: disable=g-import-not-at-top
  history = texts.user_history_texts(dataset.train, dataset.num_users,
                                     dataset.item_texts)
  has = np.flatnonzero([bool(t) for t in history])  # users with a history
  user_emb = np.zeros((dataset.num_users, dim), np.float32)  # [U, d_text]
  if len(has):
    user_emb[has] = _encode_texts(gcfg, [history[u] for u in has])
  return user_emb


def tile_block_nodes(tile_nodes: Optional[int], num_nodes: int,
                     num_edges: int = 0) -> int:
  """Column-tile block size for `build_graph` (0 = no tiling).

  Args:
    tile_nodes: `config.graph.tile_nodes`: -1 (or None) for automatic: tiles
      of `tiling.DEFAULT_BLOCK_NODES` on the CPU backend with XLA's kernels
      (none when the native kernel runs, unless
      `tiling.AUTO_TILES_WITH_NATIVE`) for graphs with more than
      `tiling.AUTO_MIN_NODES` nodes (the node table outgrows the cache) and
      a mean degree of at least `tiling.AUTO_MIN_DEGREE`; 0 for none; or the
      nodes per block.
    num_nodes: nodes of the graph (padding included).
    num_edges: directed edges of the graph.

  Returns:
    Nodes per column block, or 0.
  """
  if tile_nodes is None or tile_nodes == -1:
    if (jax.default_backend() != "cpu" or num_nodes <= tiling.AUTO_MIN_NODES
        or num_edges < tiling.AUTO_MIN_DEGREE * num_nodes):
      return 0
    if native.enabled() and not tiling.AUTO_TILES_WITH_NATIVE:
      return 0  # the untiled native product is faster
    return tiling.DEFAULT_BLOCK_NODES
  if tile_nodes < 0:
    raise ValueError(f"config.graph.tile_nodes must be -1 (auto), 0 (off) "
                     f"or a positive block size, got {tile_nodes}")
  return int(tile_nodes)


def _encode_texts(gcfg, texts) -> np.ndarray:
  """Texts -> L2-normalised sentence embeddings, cached on disk by content.

  Uses `config.graph.text_model` (default: the bundled all-MiniLM-L6-v2) and
  `config.graph.text_cache_dir` (default ~/.cache/jaxrec/text).
  """
  from jaxrec import text  # pylint: disable=g-import-not-at-top
  cache_dir = gcfg.text_cache_dir or os.path.join(
      os.path.expanduser("~"), ".cache", "jaxrec", "text")
  return text.encode_cached(list(texts), cache_dir,
                            model_name_or_path=gcfg.text_model or None)


def _mean_item_embedding(dataset: Dataset,
                         item_emb: Optional[np.ndarray] = None) -> np.ndarray:
  """Per-user mean of the train items' semantic embeddings. # [U, d_text]"""
  csr = dataset.csr("train")
  counts = np.maximum(np.asarray(csr.sum(axis=1)).ravel(), 1.0)
  item_emb = dataset.item_embeddings if item_emb is None else item_emb
  return np.asarray(csr @ item_emb) / counts[:, None]


def _stack(arrays: dict, batch_size: int) -> dict:
  """Equally long arrays padded to whole batches and stacked, plus 'mask'."""
  n = len(next(iter(arrays.values())))
  steps = max(1, math.ceil(n / batch_size))
  total = steps * batch_size
  out = {}
  for key, value in arrays.items():
    pad = np.zeros((total - n,) + value.shape[1:], value.dtype)
    padded = np.concatenate([value, pad])
    out[key] = padded.reshape((steps, batch_size) + value.shape[1:])
  mask = np.zeros(total, np.float32)
  mask[:n] = 1.0
  out["mask"] = mask.reshape(steps, batch_size)
  return out


def stack_batches(triples: dict, batch_size: int) -> Batch:
  """An epoch of sampled triples padded to whole batches and stacked.

  Args:
    triples: `sampler.epoch_triples` (users, pos_items, neg_items).
    batch_size: rows per batch B.

  Returns:
    A `Batch` whose fields are [S, B] ([S, B, k] negatives); the padding
    rows of the last batch have mask 0. `epoch` is None.
  """
  return Batch(**_stack(triples, batch_size))


def rating_batches(config: ml_collections.ConfigDict, dataset: Dataset,
                   epoch: int) -> RatingBatch:
  """One epoch of the train split's (user, item, rating) rows. # [S, B]

  Every train rating once per epoch, in an order shuffled by (config.seed,
  epoch) (`sampler.epoch_rng`), padded to whole batches of
  `config.batch_size`; a pure function of (config, train split, epoch).

  Args:
    config: experiment config.
    dataset: the dataset whose train split carries ratings.
    epoch: epoch index.

  Returns:
    A `RatingBatch` of stacked arrays [S, B].

  Raises:
    DataError: the train split has no ratings.
  """
  train = dataset.train
  if train.ratings is None:
    raise DataError(f"{dataset.name}: config.task = 'rating' needs ratings, "
                    "but the train split has none (field 'ratings'; e.g. "
                    "ml_latest_small with dataset.kwargs.min_rating = 0)")
  order = sampler.epoch_rng(config.seed, epoch).permutation(len(train))
  return RatingBatch(**_stack({"users": train.users[order],
                               "items": train.items[order],
                               "ratings": np.asarray(train.ratings[order],
                                                     np.float32)},
                              config.batch_size))


def epoch_batches(config: ml_collections.ConfigDict, dataset: Dataset,
                  epoch: int, keys: Optional[np.ndarray] = None,
                  fields: Sequence[str] = (),
                  columns: Optional[np.ndarray] = None) -> AnyBatch:
  """One epoch of training batches, stacked. # [S, B]

  The sampler as the config sets it (seed, num_negatives, sampling,
  sampler) and `config.batch_size`; a pure function of (config, train
  split, epoch). With `columns` (the batch columns one process's devices
  hold, `sharding.local_batch_columns`) only those rows of each batch are
  sampled: column c of step s is global row s * B + c of the epoch.

  Args:
    config: experiment config.
    dataset: the dataset whose train split is sampled.
    epoch: epoch index.
    keys: optional `sampler.positive_keys(dataset.train, num_items)`.
    fields: the optional `Batch` fields the model reads (its
      `batch_fields`, e.g. ('epoch',) for SGL with view_period='epoch');
      the others stay None.
    columns: sorted batch columns to sample (ranking task with
      config.sampler = 'counter'); columns >= B (the padding of B up to the
      'data' axis) come back as padding rows. None: every column.

  Returns:
    For the ranking task, `stack_batches` of the epoch's
    `sampler.epoch_triples` with the requested optional fields filled
    ('epoch': the epoch index in every slot, int32 [S, B]); with `columns`,
    those columns of it, [S, C] (padding columns all zero, as
    `sharding.shard_batch` pads); for `config.task = 'rating'`,
    `rating_batches`.

  Raises:
    ValueError: an unknown field name; `columns` without the counter sampler.
  """
  fields = batches.check_fields(fields)
  if config.task == "rating":
    return rating_batches(config, dataset, epoch)
  if columns is not None:
    return _column_batches(config, dataset, epoch, keys, fields, columns)
  triples = sampler.epoch_triples(
      dataset.train, dataset.num_users, dataset.num_items, seed=config.seed,
      epoch=epoch, num_negatives=config.num_negatives, keys=keys,
      sampling=config.sampling, sampler=config.sampler)
  rows = stack_batches(triples, config.batch_size)
  if "epoch" in fields:
    rows = rows._replace(
        epoch=np.full(rows.mask.shape, epoch, np.int32))  # [S, B]
  return rows


def _column_batches(config, dataset: Dataset, epoch: int,
                    keys: Optional[np.ndarray], fields: Sequence[str],
                    columns: np.ndarray) -> Batch:
  """`epoch_batches` restricted to some batch columns. # [S, C]"""
  if config.sampler != "counter":
    raise ValueError(f"epoch_batches: sampling some batch columns needs "
                     f"config.sampler='counter', got {config.sampler!r}")
  size, n = config.batch_size, len(dataset.train)
  columns = np.asarray(columns, np.int64)  # [C]
  steps = max(1, math.ceil(n / size))
  position = np.arange(steps)[:, None] * size + columns  # [S, C]
  in_batch = np.broadcast_to(columns < size, position.shape)  # [S, C]
  real = in_batch & (position < n)
  triples = sampler.epoch_triples(
      dataset.train, dataset.num_users, dataset.num_items, seed=config.seed,
      epoch=epoch, num_negatives=config.num_negatives, keys=keys,
      sampling=config.sampling, sampler="counter", rows=position[real])
  out = {}
  for key, value in triples.items():
    out[key] = np.zeros(position.shape + value.shape[1:], value.dtype)
    out[key][real] = value
  rows = Batch(mask=real.astype(np.float32), **out)
  if "epoch" in fields:  # padding rows of the last batch keep the index
    rows = rows._replace(epoch=np.where(in_batch, epoch, 0).astype(np.int32))
  return rows


def refit_dataset(dataset: Dataset) -> Dataset:
  """The dataset with its validation split merged into train (valid empty).

  Args:
    dataset: a Dataset, usually with a carved validation split.

  Returns:
    A new Dataset whose train = train + valid, valid = empty, same test.
  """
  if len(dataset.valid) == 0:
    return dataset
  return dataclasses.replace(
      dataset, train=Interactions.concat([dataset.train, dataset.valid]),
      valid=empty_interactions())

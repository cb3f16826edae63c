"""Bipartite user-item graph as a jraph `GraphsTuple` with normalised weights.

Node ids: users are 0..U-1, items are U..U+I-1. Every (user, item) training
interaction contributes two directed edges (user->item and item->user), so the
adjacency is the symmetric block matrix A = [[0, R], [R^T, 0]] of LightGCN.
Edge weights hold the normalised adjacency entries, e.g. 1/sqrt(d_u d_i).
"""

from __future__ import annotations

from typing import Optional

import jraph
import numpy as np

from jaxrec.data.dataset import DataError
from jaxrec.data.dataset import Interactions

NORMALISATIONS = ("sym", "left", "right", "none")
# Normalisations whose weights are symmetric, w(s->r) == w(r->s).
SYMMETRIC_NORMALISATIONS = ("sym", "none")
# Key of the `globals` marker of a graph whose edge weights are symmetric.
# Its presence is pytree STRUCTURE, hence static under jit: `propagate` can
# pick the kernel whose backward pass reuses the forward (A^T = A).
SYMMETRIC_KEY = "symmetric_weights"
# Key of the `globals` marker of a graph whose native CPU propagation gathers
# node rows in bfloat16 (`mark_bfloat16_gather`); static like SYMMETRIC_KEY.
BFLOAT16_GATHER_KEY = "bfloat16_gather"
# Key of the per-edge ratings in `globals` (float32 [E], aligned with
# `senders` / `receivers`; padding edges 0): rating models read the rating
# level of each message (GC-MC) and the train mean from them.
EDGE_RATINGS_KEY = "edge_ratings"
# Edge values of the adjacency before normalisation (config.graph.edge_weight):
# 'none' 1 per interaction, 'rating' the rating, 'log_rating' log(1 + rating)
# (for heavy-tailed counts such as listening counts).
EDGE_WEIGHTS = ("none", "rating", "log_rating")


def mark_symmetric(graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
  """Declares that `graph.edges` holds symmetric weights (see `is_symmetric`).

  Args:
    graph: graph whose edge set contains (r->s) for every (s->r) with the
      same weight (padding edges are zero-weight self-loops, also symmetric).

  Returns:
    The graph with a zero-size marker leaf in `globals`.
  """
  if graph.globals is not None and not isinstance(graph.globals, dict):
    raise ValueError("mark_symmetric: graph.globals must be None or a dict")
  extra = dict(graph.globals or {})
  extra[SYMMETRIC_KEY] = np.zeros((0,), np.float32)
  return graph._replace(globals=extra)


def is_symmetric(graph: jraph.GraphsTuple) -> bool:
  """Whether `graph` was marked as having symmetric edge weights (static)."""
  return isinstance(graph.globals, dict) and SYMMETRIC_KEY in graph.globals


def mark_bfloat16_gather(graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
  """Lets the native CPU kernels gather this graph's node rows in bfloat16.

  `propagate` then picks `propagation.BFLOAT16_FOR`'s kernels wherever it
  would pick a native float32 one: each gathered row is rounded to bfloat16
  (relative error <= 2^-9), the sums and outputs stay float32. Other kernels
  (GPU, XLA, non-symmetric weights) ignore the marker.

  Args:
    graph: graph whose `globals` is None or a dict.

  Returns:
    The graph with a zero-size marker leaf in `globals`.
  """
  if graph.globals is not None and not isinstance(graph.globals, dict):
    raise ValueError("mark_bfloat16_gather: graph.globals must be None or a "
                     "dict")
  extra = dict(graph.globals or {})
  extra[BFLOAT16_GATHER_KEY] = np.zeros((0,), np.float32)
  return graph._replace(globals=extra)


def gathers_bfloat16(graph: jraph.GraphsTuple) -> bool:
  """Whether `graph` was marked by `mark_bfloat16_gather` (static)."""
  return (isinstance(graph.globals, dict)
          and BFLOAT16_GATHER_KEY in graph.globals)


def degree_normalise(senders: np.ndarray, receivers: np.ndarray,
                     num_nodes: int, norm: str = "sym",
                     values: Optional[np.ndarray] = None) -> np.ndarray:
  """Edge weights of a normalised adjacency.

  Args:
    senders: source node of each edge. # [E]
    receivers: target node of each edge. # [E]
    num_nodes: number of nodes.
    norm: 'sym' D^-1/2 A D^-1/2 (GCN/LightGCN), 'left' D^-1 A (row/mean
      aggregation: each receiver averages its in-neighbours), 'right' A D^-1,
      or 'none' (A itself).
    values: optional positive adjacency entries A_e (e.g. ratings); None =
      1 per edge. Degrees are then weighted (D = row sums of A), so 'left'
      is a rating-weighted mean of the neighbours.

  Returns:
    float32 edge weights. # [E]
  """
  if norm not in NORMALISATIONS:
    raise ValueError(f"norm must be one of {NORMALISATIONS}, got {norm!r}")
  ones = (np.ones(len(senders), np.float64) if values is None
          else np.asarray(values, np.float64))
  if norm == "none":
    return ones.astype(np.float32)
  deg_in = np.bincount(receivers, weights=ones, minlength=num_nodes)  # [N]
  deg_out = np.bincount(senders, weights=ones, minlength=num_nodes)  # [N]
  with np.errstate(divide="ignore"):
    inv_sqrt_in = np.where(deg_in > 0, deg_in ** -0.5, 0.0)
    inv_sqrt_out = np.where(deg_out > 0, deg_out ** -0.5, 0.0)
    inv_in = np.where(deg_in > 0, 1.0 / np.maximum(deg_in, 1), 0.0)
    inv_out = np.where(deg_out > 0, 1.0 / np.maximum(deg_out, 1), 0.0)
  if norm == "sym":
    weights = inv_sqrt_out[senders] * inv_sqrt_in[receivers]
  elif norm == "left":
    weights = inv_in[receivers]
  else:
    weights = inv_out[senders]
  return (weights * ones).astype(np.float32)


def edge_values(ratings: np.ndarray, edge_weight: str) -> np.ndarray:
  """Adjacency entries of rated edges for `config.graph.edge_weight`.

  Args:
    ratings: rating of each edge. # [E]
    edge_weight: one of `EDGE_WEIGHTS`.

  Returns:
    float64 positive entries. # [E]

  Raises:
    DataError: unknown edge_weight, or ratings that are not positive.
  """
  if edge_weight not in EDGE_WEIGHTS:
    raise DataError(f"config.graph.edge_weight: unknown value "
                    f"{edge_weight!r}; valid: {list(EDGE_WEIGHTS)}")
  ratings = np.asarray(ratings, np.float64)
  if edge_weight == "none":
    return np.ones_like(ratings)
  if ratings.size and not np.all(ratings > 0):
    raise DataError(f"config.graph.edge_weight={edge_weight!r}: ratings must "
                    f"be > 0 to weight edges, got min {ratings.min()}")
  return ratings if edge_weight == "rating" else np.log1p(ratings)


def edge_ratings(graph: jraph.GraphsTuple):
  """Per-edge ratings of a graph built with `keep_ratings` (else None). # [E]"""
  if isinstance(graph.globals, dict):
    return graph.globals.get(EDGE_RATINGS_KEY)
  return None


def bipartite_graph(train: Interactions, num_users: int, num_items: int, *,
                    norm: str = "sym",
                    node_features: Optional[dict] = None,
                    edge_weight: str = "none",
                    keep_ratings: bool = False) -> jraph.GraphsTuple:
  """Builds the symmetric user-item graph of the training interactions.

  Duplicate interactions collapse to a single edge pair. No dense adjacency is
  ever formed: memory is O(E).

  Args:
    train: training interactions with contiguous ids.
    num_users: number of users U.
    num_items: number of items I.
    norm: adjacency normalisation (see `degree_normalise`).
    node_features: optional dict of per-node arrays with leading dim U + I
      (e.g. {'text': [U+I, d_text]}); 'mask' is reserved and always added.
    edge_weight: adjacency entries before normalisation (`edge_values`):
      'none' (binary), 'rating' or 'log_rating' (need `train.ratings`).
    keep_ratings: store each edge's rating in `globals[EDGE_RATINGS_KEY]`
      (float32 [2E], needs `train.ratings`); duplicate interactions keep
      the mean of their ratings.

  Returns:
    A single-graph `GraphsTuple` with `edges` = normalised weights [2E],
    `senders`/`receivers` int32 [2E] sorted by receiver, `n_node` = [U+I],
    `n_edge` = [2E], `nodes` = dict with 'mask' [U+I] plus `node_features`;
    marked symmetric (`mark_symmetric`) for the 'sym' and 'none' norms.
  """
  if len(train) == 0:
    raise DataError("bipartite_graph: the training split is empty")
  keys, inverse = np.unique(
      train.users.astype(np.int64) * num_items + train.items,
      return_inverse=True)
  users = (keys // num_items).astype(np.int32)  # [E]
  items = (keys % num_items).astype(np.int32) + num_users  # [E]
  senders = np.concatenate([users, items])  # [2E]
  receivers = np.concatenate([items, users])  # [2E]
  num_nodes = num_users + num_items
  rated = None
  if edge_weight != "none" or keep_ratings:
    if train.ratings is None:
      raise DataError(f"bipartite_graph: edge_weight={edge_weight!r} / "
                      f"keep_ratings={keep_ratings} need ratings, but the "
                      "train split has none (field 'ratings')")
    inverse = np.ravel(inverse)
    sums = np.bincount(inverse, weights=train.ratings, minlength=len(keys))
    rated = np.tile(sums / np.bincount(inverse, minlength=len(keys)), 2)
  values = None if edge_weight == "none" else edge_values(rated, edge_weight)
  weights = degree_normalise(senders, receivers, num_nodes, norm, values)
  node_features = dict(node_features or {})
  if "mask" in node_features:
    raise ValueError("bipartite_graph: node feature name 'mask' is reserved")
  for name, value in node_features.items():
    if np.shape(value)[0] != num_nodes:
      raise DataError(f"bipartite_graph: node feature {name!r} must have "
                      f"{num_nodes} rows (users + items), got "
                      f"{np.shape(value)[0]}")
  # 'mask' marks real nodes (padding rows get 0) and fixes the static node
  # count inside jit, where n_node is traced.
  node_features["mask"] = np.ones(num_nodes, np.float32)
  # Edges sorted by receiver make the scatter-add of propagation cache-friendly.
  order = np.argsort(receivers, kind="stable")
  senders, receivers, weights = senders[order], receivers[order], weights[order]
  extra = None
  if keep_ratings:
    extra = {EDGE_RATINGS_KEY: rated[order].astype(np.float32)}  # [2E]
  graph = jraph.GraphsTuple(
      nodes=node_features, edges=weights,
      senders=senders, receivers=receivers,
      n_node=np.asarray([num_nodes], np.int32),
      n_edge=np.asarray([len(senders)], np.int32), globals=extra)
  return mark_symmetric(graph) if norm in SYMMETRIC_NORMALISATIONS else graph

"""Padding a graph to bucketed sizes so shapes stay static under `jax.jit`.

Padding follows jraph's convention: one extra padding graph holds the padding
nodes and edges, so `jraph.get_node_padding_mask` works. Padding edges join the
first padding node to itself with weight 0 and padding node features are
zeros, so propagation results on real nodes are unchanged.
(jraph's own `pad_with_graphs`/`zero_out_padding` call the removed
`jax.tree_map` in jraph 0.0.6.dev0, hence this module.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
import numpy as np


def round_up(value: int, multiple: int = 1, power_of_two: bool = False) -> int:
  """Rounds `value` up to a multiple, or to the next power of two."""
  if power_of_two:
    return 1 << max(0, int(value - 1).bit_length())
  return int(-(-value // multiple) * multiple)


def pad_graph(graph: jraph.GraphsTuple, num_nodes: int,
              num_edges: int) -> jraph.GraphsTuple:
  """Pads a single graph to exactly `num_nodes` nodes and `num_edges` edges.

  Args:
    graph: single graph (n_node of length 1) with NumPy or JAX arrays.
    num_nodes: total node count after padding; must exceed the real count
      (at least one padding node is needed to receive padding edges).
    num_edges: total edge count after padding (>= real count).

  Returns:
    Graph with n_node = [real, pad] and n_edge = [real, pad].
  """
  real_nodes = int(np.sum(graph.n_node))
  real_edges = int(np.sum(graph.n_edge))
  if num_nodes <= real_nodes or num_edges < real_edges:
    raise ValueError(f"pad_graph: need num_nodes > {real_nodes} and num_edges "
                     f">= {real_edges}, got {num_nodes}, {num_edges}")
  pad_nodes, pad_edges = num_nodes - real_nodes, num_edges - real_edges
  pad_index = np.full(pad_edges, real_nodes, np.int32)

  def append_zeros(x, count):
    x = np.asarray(x)
    return np.concatenate([x, np.zeros((count,) + x.shape[1:], x.dtype)])

  if not isinstance(graph.nodes, dict) or "mask" not in graph.nodes:
    raise ValueError("pad_graph: graph.nodes must be a dict with 'mask' "
                     "(build graphs with jaxrec.graphs.bipartite_graph)")
  nodes = jax.tree.map(lambda x: append_zeros(x, pad_nodes), graph.nodes)
  extra = graph.globals
  if isinstance(extra, dict) and "edge_ratings" in extra:
    # Per-edge ratings (bipartite.EDGE_RATINGS_KEY) follow the edges.
    extra = dict(extra, edge_ratings=append_zeros(extra["edge_ratings"],
                                                  pad_edges))
  return graph._replace(
      nodes=nodes, globals=extra,
      edges=append_zeros(graph.edges, pad_edges),
      senders=np.concatenate([np.asarray(graph.senders), pad_index]),
      receivers=np.concatenate([np.asarray(graph.receivers), pad_index]),
      n_node=np.asarray([real_nodes, pad_nodes], np.int32),
      n_edge=np.asarray([real_edges, pad_edges], np.int32))


def node_mask(graph: jraph.GraphsTuple) -> jnp.ndarray:
  """Boolean mask of real nodes (works under jit). # [N]"""
  return graph.nodes["mask"] > 0


def num_nodes(graph: jraph.GraphsTuple) -> int:
  """Static total node count (real + padding), also under jit."""
  return int(graph.nodes["mask"].shape[0])


def pad_rows(graph: jraph.GraphsTuple, x: jnp.ndarray) -> jnp.ndarray:
  """Appends zero rows to real-node features for the padding nodes. # [N, d]"""
  missing = num_nodes(graph) - x.shape[0]
  if missing == 0:
    return x
  return jnp.concatenate([x, jnp.zeros((missing,) + x.shape[1:], x.dtype)])


def ego_nodes(graph: jraph.GraphsTuple, users: jnp.ndarray,
              items: jnp.ndarray) -> jnp.ndarray:
  """[users; items] with zero rows appended for padding nodes. # [N, d]"""
  return pad_rows(graph, jnp.concatenate([users, items]))

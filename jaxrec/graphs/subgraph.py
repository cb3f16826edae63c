"""Edge masks of subgraphs and their normalised edge weights.

Everything works on the padded, receiver-sorted bipartite `GraphsTuple` of
`jaxrec.graphs.bipartite_graph`/`pad_graph` with static shapes: a subgraph is
a 0/1 mask over the edges (SGL's dropout views keep every edge and zero its
weight), its degrees are recomputed with a segment_sum, and the weights
follow from them (symmetric, Kipf-Welling with self loops, neighbour mean).
Dropout masks are symmetric: an interaction's two directed edges are kept or
dropped together.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph

from jaxrec.fast_random import pair_uniform
from jaxrec.graphs.padding import num_nodes


def real_edges(graph: jraph.GraphsTuple) -> jnp.ndarray:
  """1.0 on edges between real nodes, 0.0 on padding edges. # [E]"""
  mask = graph.nodes["mask"]
  return (mask[graph.senders] * mask[graph.receivers]).astype(jnp.float32)


def in_degree(graph: jraph.GraphsTuple, edge_mask: jnp.ndarray) -> jnp.ndarray:
  """Number of kept incoming edges per node. # [N]"""
  return jax.ops.segment_sum(edge_mask, graph.receivers,
                             num_segments=num_nodes(graph))


def _inv_sqrt(deg: jnp.ndarray) -> jnp.ndarray:
  return jnp.where(deg > 0, jax.lax.rsqrt(jnp.maximum(deg, 1e-12)), 0.0)


def sym_renormalise(graph: jraph.GraphsTuple,
                    keep: jnp.ndarray) -> jnp.ndarray:
  """D_k^-1/2 A_k D_k^-1/2 weights of the subgraph of kept edges.

  Degrees are recomputed from the kept edges with a segment_sum, so the
  result equals `degree_normalise(..., 'sym')` of the graph with the dropped
  edges removed, while every array keeps its static shape.

  Args:
    graph: the (padded) bipartite graph.
    keep: 0/1 edge mask (padding edges must be 0). # [E]

  Returns:
    Edge weights, 0 on dropped edges. # [E]
  """
  inv = _inv_sqrt(in_degree(graph, keep))  # [N]
  return keep * inv[graph.senders] * inv[graph.receivers]


def edge_dropout_keep(rng: jax.Array, graph: jraph.GraphsTuple,
                      rate: float) -> jnp.ndarray:
  """Symmetric edge-dropout mask: each interaction kept w.p. 1 - rate. # [E]"""
  lo = jnp.minimum(graph.senders, graph.receivers)
  hi = jnp.maximum(graph.senders, graph.receivers)
  keep = (pair_uniform(rng, lo, hi) >= rate).astype(jnp.float32)
  return keep * real_edges(graph)


def node_dropout_keep(rng: jax.Array, graph: jraph.GraphsTuple,
                      rate: float) -> jnp.ndarray:
  """Edges of nodes kept w.p. 1 - rate (all edges of a dropped node go). # [E]"""
  kept_nodes = jax.random.bernoulli(rng, 1.0 - rate, (num_nodes(graph),))
  kept_nodes = kept_nodes.astype(jnp.float32)
  return kept_nodes[graph.senders] * kept_nodes[graph.receivers] * real_edges(
      graph)


def gcn_normalisation(graph: jraph.GraphsTuple):
  """Kipf-Welling weights of A + I: (edge [E], self-loop [N]) weights.

  A_tilde = D~^-1/2 (A + I) D~^-1/2 with D~ = deg + 1 on real nodes; padding
  nodes get no self loop (weight 0).
  """
  real = real_edges(graph)
  deg = in_degree(graph, real) + graph.nodes["mask"]  # [N]
  inv = _inv_sqrt(deg)
  edge_w = real * inv[graph.senders] * inv[graph.receivers]  # [E]
  self_w = graph.nodes["mask"] * inv * inv  # [N]
  return edge_w, self_w


def mean_weights(graph: jraph.GraphsTuple) -> jnp.ndarray:
  """Weights 1/deg(receiver) of a neighbour mean (GraphSAGE). # [E]"""
  real = real_edges(graph)
  deg = in_degree(graph, real)
  return real / jnp.maximum(deg, 1.0)[graph.receivers]


__all__ = [
    "edge_dropout_keep", "gcn_normalisation", "in_degree", "mean_weights",
    "node_dropout_keep", "real_edges", "sym_renormalise",
]

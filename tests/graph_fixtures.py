"""Tiny bipartite graphs and their dense adjacency, shared by model tests."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.batches import Batch
from jaxrec.data.dataset import Interactions
from jaxrec.graphs import bipartite_graph
from jaxrec.graphs import pad_graph

U, I = 7, 9  # users, items of `tiny_graph`
PADDED_NODES = 24  # node count of the padded `tiny_graph`


def tiny_graph(norm: str = "sym", pad: bool = True):
  """30 random interactions of 7 users x 9 items (padded to 24 nodes)."""
  rng = np.random.default_rng(0)
  inter = Interactions(rng.integers(0, U, 30), rng.integers(0, I, 30))
  graph = bipartite_graph(inter, U, I, norm=norm)
  if pad:
    graph = pad_graph(graph, PADDED_NODES, int(graph.n_edge[0]) + 10)
  return jax.tree.map(jnp.asarray, graph)


def dense_adjacency(graph, weights=None) -> np.ndarray:
  """[N, N] matrix A with A[r, s] = weight of edge s->r (duplicates add)."""
  n = graph.nodes["mask"].shape[0]
  a = np.zeros((n, n), np.float32)
  w = graph.edges if weights is None else weights
  np.add.at(a, (np.asarray(graph.receivers), np.asarray(graph.senders)),
            np.asarray(w))
  return a


def tiny_batch() -> Batch:
  """BPR batch on `tiny_graph` ids: repeated users/items, 2 padding rows."""
  return Batch(users=jnp.array([0, 3, 3, 5, 1, 0, 2, 2]),
               pos_items=jnp.array([1, 1, 4, 8, 2, 0, 6, 6]),
               neg_items=jnp.array([2, 0, 5, 3, 7, 6, 1, 1]),
               mask=jnp.array([1, 1, 1, 1, 1, 1, 0, 0], jnp.float32))

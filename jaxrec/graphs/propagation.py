"""Message passing over the normalised adjacency: out = A_hat @ x.

Two kernels compute the same product:
  * 'segment_sum': gather x[senders] * w, scatter-add into receivers.
  * 'bcoo': `jax.experimental.sparse` BCOO matrix times dense matrix.
`benchmarks/propagation.py` times both (forward + backward); DEFAULT_METHOD is
the faster one on CPU and every propagation model uses `propagate`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
from jax.experimental import sparse as jsparse

METHODS = ("segment_sum", "bcoo")
DEFAULT_METHOD = "segment_sum"


def propagate(graph: jraph.GraphsTuple, x: jnp.ndarray,
              edge_weights: jnp.ndarray | None = None,
              method: str | None = None) -> jnp.ndarray:
  """Aggregates neighbour features: out[r] = sum_{(s->r)} w_sr * x[s].

  Args:
    graph: graph whose `edges` hold the normalised weights. # [E]
    x: node features. # [N, d]
    edge_weights: optional weights overriding `graph.edges` (edge dropout,
      attention). # [E]
    method: 'segment_sum' or 'bcoo' (default DEFAULT_METHOD).

  Returns:
    Aggregated node features. # [N, d]
  """
  weights = graph.edges if edge_weights is None else edge_weights  # [E]
  method = method or DEFAULT_METHOD
  num_nodes = x.shape[0]
  if method == "segment_sum":
    messages = x[graph.senders] * weights[:, None].astype(x.dtype)  # [E, d]
    return jax.ops.segment_sum(messages, graph.receivers,
                               num_segments=num_nodes)
  if method == "bcoo":
    indices = jnp.stack([graph.receivers, graph.senders], axis=1)  # [E, 2]
    adj = jsparse.BCOO((weights.astype(x.dtype), indices),
                       shape=(num_nodes, num_nodes))
    return adj @ x
  raise ValueError(f"propagation method must be one of {METHODS}, "
                   f"got {method!r}")


def split_nodes(x: jnp.ndarray, num_users: int, num_items: int):
  """Splits node rows into (users [U, d], items [I, d]), dropping padding."""
  return x[:num_users], x[num_users:num_users + num_items]

"""LightGCN (He et al., SIGIR 2020).

e^{k+1} = A_hat e^k with A_hat = D^-1/2 A D^-1/2 over the user-item graph, no
feature transform or nonlinearity; the final embedding is the mean of layers
0..K. Trained with BPR + L2 on the layer-0 (ego) embeddings of the batch.
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
import jraph

from jaxrec.graphs import pad_rows
from jaxrec.graphs import propagate
from jaxrec.graphs import split_nodes
from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender


def light_propagate(graph: jraph.GraphsTuple, ego: jnp.ndarray, num_layers: int,
                    edge_weights: Optional[jnp.ndarray] = None,
                    method: Optional[str] = None) -> list[jnp.ndarray]:
  """Returns [e^0, e^1, ..., e^K], each [N, d], by repeated A_hat products."""
  layers = [ego]
  for _ in range(num_layers):
    layers.append(propagate(graph, layers[-1], edge_weights, method))
  return layers


def lightgcn_outputs(graph: jraph.GraphsTuple, ego: jnp.ndarray,
                     num_layers: int, num_users: int, num_items: int,
                     method: Optional[str] = None,
                     ego_tables: Optional[tuple] = None) -> Propagated:
  """Layer-mean LightGCN propagation of node embeddings `ego` [N, d].

  Args:
    graph: the (possibly padded) training graph.
    ego: layer-0 node embeddings, users then items then padding. # [N, d]
    num_layers: K.
    num_users: U.
    num_items: I.
    method: propagation kernel (None = `propagate`'s default).
    ego_tables: the (users [U, d], items [I, d]) tables `ego` was built from,
      when it was (the L2 penalty then reads them directly, and its gradient
      joins the parameters' without a pad to N rows); None = slices of `ego`.

  Returns:
    A `Propagated`: user [U, d], item [I, d] (mean of layers 0..K),
    user_ego [U, d], item_ego [I, d] (layer 0) and nodes [N, d] (the layer
    mean of every node, which `user` and `item` slice).
  """
  layers = light_propagate(graph, ego, num_layers, method=method)
  final = jnp.mean(jnp.stack(layers), axis=0)  # [N, d]
  user, item = split_nodes(final, num_users, num_items)
  if ego_tables is None:
    ego_tables = split_nodes(ego, num_users, num_items)
  user_ego, item_ego = ego_tables
  return Propagated(user=user, item=item, user_ego=user_ego,
                    item_ego=item_ego, nodes=final)


class LightGCN(Recommender):
  """LightGCN with K propagation layers and layer-mean combination.

  Attributes:
    num_layers: K.
    propagation: kernel name for `jaxrec.graphs.propagate` (None = default).
  """
  num_layers: int = 3
  propagation: Optional[str] = None

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    del train
    users, items = self.ego_embeddings()
    ego = pad_rows(graph, jnp.concatenate([users, items]))  # [N, d]
    return lightgcn_outputs(graph, ego, self.num_layers, self.num_users,
                            self.num_items, self.propagation, (users, items))

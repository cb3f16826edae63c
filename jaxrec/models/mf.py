"""Matrix factorisation (BPR-MF): score = <p_u, q_i>, no graph propagation."""

from __future__ import annotations

import jraph

from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender


class MF(Recommender):
  """BPR matrix factorisation (Rendle et al., 2009)."""

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    del graph, train
    users, items = self.ego_embeddings()
    return Propagated(user=users, item=items, user_ego=users, item_ego=items)

"""Cold-start evaluation: trained models ranked on items/users unseen in training.

`evaluate_cold_start` restores the parameters a run trained on a
`jaxrec.data.coldstart.ColdStartSplit`'s warm dataset (best on validation,
from its workdir), grafts them into a model built for the full id range
(tables get fresh rows for cold ids, exactly what an ID-embedding model
would have for an item it never trained on), and ranks only the cold
candidates: cold-test items for warm users (item cold-start), warm items for
cold users (user cold-start). Models whose `embed` uses text (textgnn,
alpharec; rlmrec's backbone does not) can rank them meaningfully; a random
ranking has expected Recall@K = K / #candidates per target (`random_recall`).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec import metrics as metrics_lib
from jaxrec import train
from jaxrec.data.coldstart import ColdStartSplit
from jaxrec.data.dataset import DataError, Interactions
from jaxrec import input_pipeline
from jaxrec import models


def graft_params(trained: Any, full_init: Any) -> Any:
  """Trained parameters inside a larger model's parameter tree.

  Leaves of equal shape are taken from `trained`; a leaf whose leading
  dimension grew (an ID table over more users/items) gets the trained rows
  first and keeps `full_init`'s rows for the new ids.

  Args:
    trained: parameters of the model trained on warm ids.
    full_init: initial parameters of the same model over all ids.

  Returns:
    A pytree shaped like `full_init`.
  """
  def graft(new, old):
    new, old = jnp.asarray(new), jnp.asarray(old)
    if new.shape == old.shape:
      return old
    if new.shape[1:] != old.shape[1:] or new.shape[0] < old.shape[0]:
      raise ValueError(f"graft_params: cannot place a {old.shape} leaf into "
                       f"{new.shape}")
    return new.at[:old.shape[0]].set(old)
  return jax.tree.map(graft, full_init, trained)


def restore_best_params(workdir: str, config, model, graph) -> Any:
  """Best (validation-selected) parameters of a finished run in `workdir`."""
  return train.restore_best_params(workdir, config, model, graph)[1]


def evaluate_candidates(model, params, graph, target: Interactions,
                        num_users: int, num_items: int,
                        candidates: np.ndarray,
                        ks: Sequence[int] = (20,),
                        exclude: Sequence[Interactions] = ()) -> dict:
  """Full ranking restricted to `candidates` items.

  Args:
    model: the Flax model (over num_users x num_items).
    params: its parameters.
    graph: its graph.
    target: held-out interactions (items must be candidates).
    num_users, num_items: id ranges.
    candidates: item ids ranked. # [C]
    ks: cut-offs.
    exclude: interactions masked before ranking.

  Returns:
    `metrics.evaluate_ranking`'s dict (users without targets are skipped).
  """
  candidates = np.asarray(candidates, np.int64)
  if len(target) and not np.isin(target.items, candidates).all():
    raise DataError("evaluate_candidates: target has items outside "
                    "the candidate set")
  user_emb, item_emb = model.apply({"params": params}, graph, method="embed")
  item_emb = jnp.asarray(item_emb)[jnp.asarray(candidates)]  # [C, d]
  cols = lambda inter: inter.to_csr(num_users, num_items)[:, candidates]
  return metrics_lib.evaluate_ranking(
      train.make_score_fn(model), (params, user_emb, item_emb), cols(target),
      [cols(e) for e in exclude], ks=ks)


def evaluate_cold_start(config, workdir: str, split: ColdStartSplit,
                        ks: Sequence[int] = (20,),
                        splits: Sequence[str] = ("item_test",)) -> dict:
  """Cold-start metrics of a run trained on `split.warm` in `workdir`.

  Args:
    config: the run's config.
    workdir: the run's workdir (its best parameters are restored).
    split: the cold-start split the run was trained on.
    ks: cut-offs.
    splits: any of 'item_valid', 'item_test' (cold items for warm users) and
      'user_test' (warm items for cold users).

  Returns:
    {split name: metrics dict}.
  """
  kwargs = config.model.to_dict()
  warm_model = models.get_model(config.model_name, split.warm.num_users,
                               split.warm.num_items, **kwargs)
  warm_graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, split.warm))
  trained = restore_best_params(workdir, config, warm_model, warm_graph)
  full = split.full
  model = models.get_model(config.model_name, full.num_users, full.num_items,
                          **kwargs)
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, full))
  init = train.init_params(model, graph, config.batch_size,
                           jax.random.key(config.seed),
                           config.num_negatives)
  params = graft_params(trained, init)
  warm_items = np.arange(split.warm.num_items)
  sets = {"item_valid": (split.cold_item_valid, split.cold_valid_items),
          "item_test": (split.cold_item_test, split.cold_test_items),
          "user_test": (split.cold_user_test, warm_items)}
  out = {}
  for name in splits:  # at most three evaluations
    if name not in sets:
      raise ValueError(f"evaluate_cold_start: unknown split {name!r}; "
                       f"valid: {sorted(sets)}")
    target, candidates = sets[name]
    if len(target) == 0:
      raise DataError(f"evaluate_cold_start: cold split {name!r} is empty")
    out[name] = evaluate_candidates(model, params, graph, target,
                                    full.num_users, full.num_items,
                                    candidates, ks)
  return out


def random_recall(num_candidates: int, k: int = 20) -> float:
  """Expected Recall@k of a uniformly random ranking of C candidates: k / C."""
  return min(k, num_candidates) / max(num_candidates, 1)


__all__ = ["evaluate_candidates", "evaluate_cold_start", "graft_params",
           "restore_best_params", "random_recall"]

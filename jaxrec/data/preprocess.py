"""Interaction preprocessing: deduplication, k-core filtering, id remapping.

All functions are vectorised (no Python loop over interactions) and work on
both `Interactions` (contiguous int32 ids) and `RawInteractions` (original ids
of any sortable dtype: int64 or str, as read from files). Rows that are dropped
are reported with a `DataWarning` (and a `logging` record) that states how
many rows were affected, so silent data loss cannot happen.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Optional, Sequence, Union

import numpy as np

from jaxrec.data.dataset import DataError, Dataset, IdMap, Interactions

logger = logging.getLogger(__name__)


class DataWarning(UserWarning):
  """Rows were dropped or altered while loading/preprocessing data."""


def warn(message: str) -> None:
  """Emits `message` both as a `DataWarning` and as a logging warning."""
  logger.info(message)
  warnings.warn(message, DataWarning, stacklevel=3)


@dataclasses.dataclass(frozen=True)
class RawInteractions:
  """Interactions with original (not yet contiguous) ids, as read from a file.

  Attributes:
    users: original user ids (int64 or str). # [n]
    items: original item ids (int64 or str). # [n]
    ratings: optional float32 ratings. # [n]
    timestamps: optional int64/float64 timestamps. # [n]
    lines: optional 1-based source line (or row) of each interaction. # [n]
    source: file the rows came from (for messages).
  """
  users: np.ndarray
  items: np.ndarray
  ratings: Optional[np.ndarray] = None
  timestamps: Optional[np.ndarray] = None
  lines: Optional[np.ndarray] = None
  source: str = ""

  def __len__(self) -> int:
    return int(np.shape(self.users)[0])

  def subset(self, index: np.ndarray) -> "RawInteractions":
    """Rows selected by a boolean mask or integer index array."""
    pick = lambda a: None if a is None else a[index]
    return RawInteractions(self.users[index], self.items[index],
                           pick(self.ratings), pick(self.timestamps),
                           pick(self.lines), self.source)


AnyInteractions = Union[Interactions, RawInteractions]


def _factorize(values: np.ndarray) -> tuple[np.ndarray, int]:
  """Dense codes 0..k-1 of `values` (sorted order) and k."""
  uniq, inverse = np.unique(values, return_inverse=True)
  return inverse.reshape(-1).astype(np.int64), len(uniq)


def pair_codes(users: np.ndarray, items: np.ndarray) -> np.ndarray:
  """A unique int64 code per distinct (user, item) pair. # [n]"""
  u, _ = _factorize(users)
  i, num_items = _factorize(items)
  return u * max(num_items, 1) + i


def deduplicate(inter: AnyInteractions, name: str = "") -> AnyInteractions:
  """Drops repeated (user, item) pairs, keeping the first occurrence.

  Args:
    inter: interactions (contiguous or original ids).
    name: label used in the warning (e.g. the file name).

  Returns:
    The same type with duplicates removed; original row order is preserved.
    A `DataWarning` reports the number of dropped rows.
  """
  if len(inter) == 0:
    return inter
  codes = pair_codes(inter.users, inter.items)
  _, first = np.unique(codes, return_index=True)
  dropped = len(inter) - len(first)
  if dropped == 0:
    return inter
  warn(f"{name or 'interactions'}: dropped {dropped} duplicate (user, item) "
       f"rows (kept the first occurrence)")
  return inter.subset(np.sort(first))


def kcore_filter(inter: AnyInteractions, min_user_degree: int = 1,
                 min_item_degree: int = 1, max_iters: int = 10_000
                 ) -> AnyInteractions:
  """Iterative k-core: repeatedly drops users/items below a minimum degree.

  Degrees count rows, so deduplicate first if repeated pairs should count
  once. The loop runs over filtering rounds, never over interactions.

  Args:
    inter: interactions (contiguous or original ids).
    min_user_degree: minimum number of interactions each kept user has.
    min_item_degree: minimum number of interactions each kept item has.
    max_iters: safety bound on the number of rounds.

  Returns:
    The rows of the largest sub-graph where every user has at least
    `min_user_degree` and every item at least `min_item_degree` rows. Ids are
    NOT remapped (use `remap_ids`).
  """
  if len(inter) == 0:
    return inter
  u, num_users = _factorize(inter.users)
  i, num_items = _factorize(inter.items)
  alive = np.ones(len(inter), bool)
  for _ in range(max_iters):
    deg_u = np.bincount(u[alive], minlength=num_users)  # [U]
    deg_i = np.bincount(i[alive], minlength=num_items)  # [I]
    bad = alive & ((deg_u[u] < min_user_degree) | (deg_i[i] < min_item_degree))
    if not bad.any():
      break
    alive &= ~bad
  else:
    raise DataError(f"kcore_filter: no convergence after {max_iters} rounds")
  return inter.subset(alive)


def lookup_ids(sorted_ids: np.ndarray, values: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
  """Vectorised lookup of `values` in a sorted unique id array.

  Args:
    sorted_ids: sorted unique original ids. # [k]
    values: original ids to map. # [n]

  Returns:
    (positions int64 [n] (undefined where unknown), known bool [n]).
  """
  values = np.asarray(values)
  if len(sorted_ids) == 0:
    return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
  pos = np.searchsorted(sorted_ids, values)
  pos_c = np.minimum(pos, len(sorted_ids) - 1)
  known = (pos < len(sorted_ids)) & (sorted_ids[pos_c] == values)
  return pos_c.astype(np.int64), known


def _map_split(raw: AnyInteractions, users: np.ndarray, items: np.ndarray
               ) -> tuple[Interactions, int]:
  u, ku = lookup_ids(users, raw.users)
  i, ki = lookup_ids(items, raw.items)
  keep = ku & ki
  pick = lambda a: None if a is None else a[keep]
  return Interactions(u[keep], i[keep], pick(raw.ratings),
                      pick(raw.timestamps)), int((~keep).sum())


def remap_ids(train: AnyInteractions, *others: AnyInteractions,
              drop_unseen: bool = True, names: Sequence[str] = ()
              ) -> tuple[Interactions, list[Interactions], IdMap, IdMap]:
  """Maps original ids to contiguous 0-based ids (sorted original order).

  Args:
    train: the training rows; defines the id space when `drop_unseen`.
    *others: further splits (e.g. valid, test) remapped with the SAME maps.
    drop_unseen: if True, ids come from `train` only and rows of `others`
      whose user or item never occurs in train are dropped (a `DataWarning`
      gives the count per split). If False, ids come from the union of all
      splits and nothing is dropped.
    names: split names for warnings, parallel to `others`.

  Returns:
    (train, [others...], user_map, item_map), with
    `user_map.original[new_id] == original_id` (reversible).
  """
  sources = [train] if drop_unseen else [train, *others]
  users = np.unique(np.concatenate([np.asarray(s.users) for s in sources]))
  items = np.unique(np.concatenate([np.asarray(s.items) for s in sources]))
  new_train, _ = _map_split(train, users, items)
  mapped = []
  for k, other in enumerate(others):
    new, dropped = _map_split(other, users, items)
    if dropped:
      label = names[k] if k < len(names) else f"split {k + 1}"
      warn(f"{label}: dropped {dropped} of {len(other)} rows whose user or "
           f"item does not occur in train")
    mapped.append(new)
  return new_train, mapped, IdMap(users), IdMap(items)


def filter_to_train(train: Interactions, other: Interactions,
                    num_users: int, num_items: int, name: str = "test"
                    ) -> Interactions:
  """Keeps rows of `other` whose user AND item have >= 1 train interaction.

  Args:
    train: training interactions (contiguous ids).
    other: a validation/test split (contiguous ids).
    num_users: number of users.
    num_items: number of items.
    name: split name used in the warning.

  Returns:
    The filtered split; a `DataWarning` reports how many rows were dropped.
  """
  seen_u = np.bincount(train.users, minlength=num_users) > 0  # [U]
  seen_i = np.bincount(train.items, minlength=num_items) > 0  # [I]
  keep = seen_u[other.users] & seen_i[other.items]
  dropped = int((~keep).sum())
  if dropped:
    warn(f"{name}: dropped {dropped} of {len(other)} rows whose user or item "
         f"has no train interaction")
    return other.subset(keep)
  return other


def remove_overlap(train: Interactions, other: Interactions,
                   num_items: int, name: str = "test") -> Interactions:
  """Drops rows of `other` whose (user, item) pair also occurs in train.

  Args:
    train: training interactions.
    other: split to clean.
    num_items: number of items (for pair keys).
    name: split name used in the warning.

  Returns:
    `other` without the pairs present in train (warned with a count).
  """
  keys = np.unique(train.users.astype(np.int64) * num_items + train.items)
  query = other.users.astype(np.int64) * num_items + other.items
  _, known = lookup_ids(keys, query)
  if known.any():
    warn(f"{name}: dropped {int(known.sum())} rows that also occur in train")
    return other.subset(~known)
  return other


def replace_with_noise(inter: Interactions, num_items: int, fraction: float,
                       seed: int = 0,
                       exclude: Sequence[Interactions] = ()) -> Interactions:
  """Replaces a random `fraction` of interactions by random fake ones.

  The robustness protocol of RLMRec (Ren et al., WWW 2024, Sec. 4.4): each
  chosen row keeps its user and gets an item drawn uniformly among the items
  that user has in neither `inter`, `exclude` (e.g. the valid/test splits)
  nor the other fake rows, so per-user counts are unchanged and no fake
  pair leaks an evaluation target into training.

  Args:
    inter: interactions with contiguous ids (typically the train split).
    num_items: number of items; fake items are drawn from [0, num_items).
    fraction: share of rows replaced, in [0, 1).
    seed: random seed.
    exclude: interactions whose pairs a fake row must not create.

  Returns:
    Interactions of the same length; the replaced rows have new items
    (ratings and timestamps of every row are kept).

  Raises:
    DataError: `fraction` outside [0, 1), or a user with more fake rows
      than items it never interacted with.
  """
  if not 0.0 <= fraction < 1.0:
    raise DataError(f"replace_with_noise: fraction must be in [0, 1), got "
                    f"{fraction}")
  n = len(inter)
  num_fake = int(round(fraction * n))
  if num_fake == 0:
    return inter
  rng = np.random.default_rng(seed)
  rows = np.sort(rng.choice(n, num_fake, replace=False))  # [k]
  users = inter.users[rows].astype(np.int64)  # [k]
  taken = np.concatenate([x.users.astype(np.int64) * num_items + x.items
                          for x in (inter, *exclude)])
  taken = np.unique(taken)  # sorted pair keys the fakes must avoid
  num_users = int(max(users.max(), taken.max() // num_items)) + 1
  free = num_items - np.bincount(taken // num_items, minlength=num_users)
  short = np.flatnonzero(np.bincount(users, minlength=num_users) > free)
  if short.size:
    u = int(short[0])
    raise DataError(
        f"replace_with_noise: user {u} needs {int((users == u).sum())} fake "
        f"items but has only {int(free[u])} items it never interacted with; "
        "lower the fraction")
  items = np.empty(num_fake, np.int64)  # [k]
  todo = np.arange(num_fake)
  while todo.size:  # rejection sampling; a few rounds for sparse data
    items[todo] = rng.integers(0, num_items, todo.size)
    keys = users * num_items + items  # [k]
    _, clash = lookup_ids(taken, keys[todo])
    # Two fakes of one user on the same item: keep an accepted one (sorted
    # first among equal keys), redraw the others.
    pending = np.zeros(num_fake, np.int8)
    pending[todo] = 1
    order = np.lexsort((pending, keys))
    repeat = np.zeros(num_fake, bool)
    repeat[order[1:]] = keys[order[1:]] == keys[order[:-1]]
    todo = todo[clash | repeat[todo]]
  new_items = inter.items.copy()
  new_items[rows] = items
  return dataclasses.replace(inter, items=new_items)


def relabel_by_degree(dataset: Dataset) -> Dataset:
  """Relabels users and items by decreasing train degree (ties: old order).

  A locality-aware node order for propagation: popular columns share the
  first column tiles, so fewer (block, row) pairs exist and the gathers hit
  fewer cache lines (`benchmarks/node_order.py`: the tiled product 11-21%
  faster on 3e6-1e7-edge synthetic graphs). Ranking metrics do not depend
  on ids. Every split, text, embedding, category and tag count moves with
  its node, and `user_ids` / `item_ids` still map new ids to the original
  ones.
  Idempotent: a dataset already in this order comes back unchanged. Used by
  `config.graph.node_order = 'degree'`.

  Args:
    dataset: a Dataset with contiguous ids.

  Returns:
    The relabelled Dataset (the input is not modified).
  """
  def orders(ids, n):  # (old id of each new id, new id of each old id)
    order = np.argsort(-np.bincount(ids, minlength=n), kind="stable")  # [n]
    new = np.empty_like(order)
    new[order] = np.arange(n)
    return order, new

  user_order, new_user = orders(dataset.train.users, dataset.num_users)  # [U]
  item_order, new_item = orders(dataset.train.items, dataset.num_items)  # [I]

  def split(inter: Interactions) -> Interactions:
    return dataclasses.replace(
        inter, users=new_user[inter.users].astype(np.int32),
        items=new_item[inter.items].astype(np.int32))

  def id_map(old: Optional[IdMap], order: np.ndarray) -> IdMap:
    return IdMap(order if old is None else old.original[order])

  rows = lambda a, order: None if a is None else np.asarray(a)[order]
  texts = lambda t, order: None if t is None else [t[k] for k in order]
  return dataclasses.replace(
      dataset, train=split(dataset.train), valid=split(dataset.valid),
      test=split(dataset.test),
      user_ids=id_map(dataset.user_ids, user_order),
      item_ids=id_map(dataset.item_ids, item_order),
      user_texts=texts(dataset.user_texts, user_order),
      item_texts=texts(dataset.item_texts, item_order),
      user_embeddings=rows(dataset.user_embeddings, user_order),
      item_embeddings=rows(dataset.item_embeddings, item_order),
      item_categories=rows(dataset.item_categories, item_order),
      item_num_tags=rows(dataset.item_num_tags, item_order))

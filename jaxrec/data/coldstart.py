"""Cold-start splits: items/users held out of training entirely.

`cold_start_split` holds out a fraction of items (and optionally users)
entirely: none of their interactions is in the training, validation or test
split of the warm dataset the model is trained on. Ids are renumbered so warm
ids come first (users: warm, cold; items: warm, cold-valid, cold-test); the
warm dataset has only the warm ids, so negative sampling and the training
graph never see a cold id. The `full` dataset has every id (same warm
splits, texts/embeddings for all) and is what cold-start evaluation builds
its graph from: cold nodes have no edges.

The evaluation of trained models on these splits is
`jaxrec.coldstart_eval`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxrec.data.dataset import DataError, Dataset, Interactions


@dataclasses.dataclass
class ColdStartSplit:
  """Warm training data plus held-out cold users/items (renumbered ids).

  Attributes:
    warm: dataset over warm users [0, Uw) and warm items [0, Iw) only.
    full: all users/items (same ids), warm splits, side info for all.
    cold_valid_items: cold item ids for validation. # [n_cv]
    cold_test_items: cold item ids for testing. # [n_ct]
    cold_item_valid: warm users x cold_valid_items interactions.
    cold_item_test: warm users x cold_test_items interactions.
    cold_users: cold user ids (>= Uw). # [n_cu]
    cold_user_test: cold users x warm items interactions.
    user_order: original user id of every new id. # [U]
    item_order: original item id of every new id. # [I]
  """
  warm: Dataset
  full: Dataset
  cold_valid_items: np.ndarray
  cold_test_items: np.ndarray
  cold_item_valid: Interactions
  cold_item_test: Interactions
  cold_users: np.ndarray
  cold_user_test: Interactions
  user_order: np.ndarray
  item_order: np.ndarray

  def summary(self) -> str:
    return (f"{self.warm.summary()}; cold items {len(self.cold_valid_items)} "
            f"valid / {len(self.cold_test_items)} test with "
            f"{len(self.cold_item_valid)} / {len(self.cold_item_test)} "
            f"interactions; cold users {len(self.cold_users)} with "
            f"{len(self.cold_user_test)} interactions")


def _pick(rng: np.random.Generator, n: int, fraction: float,
          field: str) -> np.ndarray:
  """Boolean mask of round(fraction * n) random entries. # [n]"""
  if not 0.0 <= fraction < 1.0:
    raise DataError(f"cold_start_split: {field} must be in [0, 1), got "
                    f"{fraction}")
  mask = np.zeros(n, bool)
  mask[rng.choice(n, int(round(fraction * n)), replace=False)] = True
  return mask


def _remap(inter: Interactions, user_new: np.ndarray,
           item_new: np.ndarray) -> Interactions:
  return Interactions(user_new[inter.users], item_new[inter.items],
                      inter.ratings, inter.timestamps)


def cold_start_split(dataset: Dataset, item_fraction: float = 0.2,
                     user_fraction: float = 0.0,
                     valid_fraction: float = 0.5,
                     seed: int = 0) -> ColdStartSplit:
  """Holds out random items (and users) with all their interactions.

  Args:
    dataset: a dataset with train/valid/test splits.
    item_fraction: fraction of items held out (cold items).
    user_fraction: fraction of users held out (cold users).
    valid_fraction: fraction of the cold items used for cold validation
      (the rest for cold test).
    seed: random seed.

  Returns:
    A `ColdStartSplit`. Interactions between a cold user and a cold item are
    dropped; every other interaction of a cold id goes to a cold set.
  """
  if not 0.0 <= valid_fraction <= 1.0:
    raise DataError(f"cold_start_split: valid_fraction must be in [0, 1], "
                    f"got {valid_fraction}")
  rng = np.random.default_rng(seed)
  cold_item = _pick(rng, dataset.num_items, item_fraction, "item_fraction")
  cold_user = _pick(rng, dataset.num_users, user_fraction, "user_fraction")
  cold_ids = np.flatnonzero(cold_item)
  cold_ids = rng.permutation(cold_ids)  # [n_cold]
  n_cv = int(round(valid_fraction * len(cold_ids)))
  cold_valid_orig = np.sort(cold_ids[:n_cv])
  cold_test_orig = np.sort(cold_ids[n_cv:])
  item_order = np.concatenate([np.flatnonzero(~cold_item), cold_valid_orig,
                               cold_test_orig])  # [I] new -> original
  user_order = np.concatenate([np.flatnonzero(~cold_user),
                               np.flatnonzero(cold_user)])  # [U]
  item_new = np.empty(dataset.num_items, np.int64)
  item_new[item_order] = np.arange(dataset.num_items)
  user_new = np.empty(dataset.num_users, np.int64)
  user_new[user_order] = np.arange(dataset.num_users)
  num_wu = int((~cold_user).sum())
  num_wi = int((~cold_item).sum())
  if num_wu == 0 or num_wi == 0:
    raise DataError("cold_start_split: no warm user or item left")

  def warm_part(inter: Interactions) -> Interactions:
    keep = ~cold_user[inter.users] & ~cold_item[inter.items]
    return _remap(inter.subset(keep), user_new, item_new)

  splits = {s: warm_part(getattr(dataset, s))
            for s in ("train", "valid", "test")}
  if len(splits["train"]) == 0:
    raise DataError("cold_start_split: the warm train split is empty")
  everything = Interactions.concat([dataset.train, dataset.valid,
                                    dataset.test])
  warm_u = ~cold_user[everything.users]
  in_cv = np.isin(everything.items, cold_valid_orig)
  in_ct = np.isin(everything.items, cold_test_orig)
  cold_item_valid = _remap(everything.subset(warm_u & in_cv), user_new,
                           item_new)
  cold_item_test = _remap(everything.subset(warm_u & in_ct), user_new,
                          item_new)
  cold_user_test = _remap(everything.subset(~warm_u & ~cold_item[
      everything.items]), user_new, item_new)

  def permute(value, order):
    if value is None:
      return None
    if isinstance(value, np.ndarray):
      return value[order]
    return np.asarray(value, dtype=object)[order].tolist()  # texts

  side = dict(user_texts=permute(dataset.user_texts, user_order),
              item_texts=permute(dataset.item_texts, item_order),
              user_embeddings=permute(dataset.user_embeddings, user_order),
              item_embeddings=permute(dataset.item_embeddings, item_order),
              item_categories=permute(dataset.item_categories, item_order),
              item_num_tags=permute(dataset.item_num_tags, item_order))
  full = Dataset(f"{dataset.name}_coldstart_full", dataset.num_users,
                 dataset.num_items, **splits, **side)
  warm_side = {k: (None if v is None else v[:num_wi]
                   if k.startswith("item") else v[:num_wu])
               for k, v in side.items()}
  warm = Dataset(f"{dataset.name}_coldstart_warm", num_wu, num_wi, **splits,
                 **warm_side)
  return ColdStartSplit(
      warm=warm, full=full,
      cold_valid_items=np.arange(num_wi, num_wi + n_cv),
      cold_test_items=np.arange(num_wi + n_cv, dataset.num_items),
      cold_item_valid=cold_item_valid, cold_item_test=cold_item_test,
      cold_users=np.arange(num_wu, dataset.num_users),
      cold_user_test=cold_user_test, user_order=user_order,
      item_order=item_order)


__all__ = ["ColdStartSplit", "cold_start_split"]

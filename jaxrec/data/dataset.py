"""Core data containers shared by loaders, graphs, training and evaluation.

Every loader returns a `Dataset`: contiguous 0-based user/item ids, a train
split, an optional validation split and a test split, each an `Interactions`
record of parallel NumPy arrays. Side information (texts, semantic embeddings)
rides along as optional fields so text-aligned models need no second loader.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import scipy.sparse as sp


class DataError(ValueError):
  """Bad input data; the message names the file/field/line and what was expected."""


@dataclasses.dataclass(frozen=True)
class Interactions:
  """A set of (user, item) interactions as parallel arrays.

  Attributes:
    users: int32 user ids. # [n]
    items: int32 item ids. # [n]
    ratings: optional float32 ratings/weights. # [n]
    timestamps: optional int64 or float64 timestamps. # [n]
  """
  users: np.ndarray
  items: np.ndarray
  ratings: Optional[np.ndarray] = None
  timestamps: Optional[np.ndarray] = None

  def __post_init__(self):
    object.__setattr__(self, "users", np.asarray(self.users, np.int32))
    object.__setattr__(self, "items", np.asarray(self.items, np.int32))
    if self.users.shape != self.items.shape or self.users.ndim != 1:
      raise DataError(
          f"Interactions: users {self.users.shape} and items "
          f"{self.items.shape} must be 1-D arrays of equal length")
    for name in ("ratings", "timestamps"):
      value = getattr(self, name)
      if value is not None and np.shape(value) != self.users.shape:
        raise DataError(f"Interactions.{name}: expected shape "
                        f"{self.users.shape}, got {np.shape(value)}")

  def __len__(self) -> int:
    return int(self.users.shape[0])

  def subset(self, index: np.ndarray) -> "Interactions":
    """Rows selected by a boolean mask or integer index array."""
    pick = lambda a: None if a is None else a[index]
    return Interactions(self.users[index], self.items[index],
                        pick(self.ratings), pick(self.timestamps))

  def to_csr(self, num_users: int, num_items: int) -> sp.csr_matrix:
    """Binary user x item CSR matrix (duplicates collapse to 1)."""
    data = np.ones(len(self), np.float32)
    mat = sp.csr_matrix((data, (self.users, self.items)),
                        shape=(num_users, num_items))
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat

  @staticmethod
  def from_csr(mat: sp.spmatrix) -> "Interactions":
    """Interactions from the nonzeros of a user x item sparse matrix."""
    coo = sp.coo_matrix(mat)
    order = np.lexsort((coo.col, coo.row))
    return Interactions(coo.row[order], coo.col[order],
                        np.asarray(coo.data[order], np.float32))

  @staticmethod
  def concat(parts: Sequence["Interactions"]) -> "Interactions":
    """Concatenates interaction sets (optional fields kept only if all have them)."""
    def cat(name):
      values = [getattr(p, name) for p in parts]
      return None if any(v is None for v in values) else np.concatenate(values)
    return Interactions(np.concatenate([p.users for p in parts]),
                        np.concatenate([p.items for p in parts]),
                        cat("ratings"), cat("timestamps"))


def empty_interactions() -> Interactions:
  return Interactions(np.zeros(0, np.int32), np.zeros(0, np.int32))


@dataclasses.dataclass(frozen=True)
class IdMap:
  """Reversible mapping between original ids and contiguous 0-based ids.

  Attributes:
    original: original id of each contiguous id (index = new id). # [n]
  """
  original: np.ndarray

  def __len__(self) -> int:
    return int(len(self.original))

  def to_original(self, new_ids: np.ndarray) -> np.ndarray:
    return self.original[np.asarray(new_ids)]

  def to_new(self, original_ids) -> np.ndarray:
    """Maps original ids to contiguous ids; raises DataError for unknown ids."""
    lookup = {k: i for i, k in enumerate(self.original.tolist())}
    out = []
    for value in np.atleast_1d(np.asarray(original_ids, self.original.dtype)).tolist():
      if value not in lookup:
        raise DataError(f"IdMap: unknown original id {value!r}")
      out.append(lookup[value])
    return np.asarray(out, np.int64)


@dataclasses.dataclass
class Dataset:
  """A recommendation dataset with contiguous ids and fixed splits.

  Attributes:
    name: human-readable dataset name.
    num_users: number of users (ids 0..num_users-1).
    num_items: number of items (ids 0..num_items-1).
    train: training interactions (used for the graph and for loss).
    valid: validation interactions (model selection / early stopping only).
    test: test interactions (reported, never used for selection).
    user_ids / item_ids: optional reversible maps to original ids.
    user_texts / item_texts: optional per-user / per-item text (profiles,
      titles); index = contiguous id.
    user_embeddings / item_embeddings: optional precomputed semantic
      embeddings, float32. # [num_users, d_text] / [num_items, d_text]
    item_categories: optional int category per item (synthetic data, plots).
    item_num_tags: optional int number of distinct tags of each item (the
      cold-start metadata-popularity proxy; 0 = untagged). # [num_items]
  """
  name: str
  num_users: int
  num_items: int
  train: Interactions
  valid: Interactions = dataclasses.field(default_factory=empty_interactions)
  test: Interactions = dataclasses.field(default_factory=empty_interactions)
  user_ids: Optional[IdMap] = None
  item_ids: Optional[IdMap] = None
  user_texts: Optional[list[str]] = None
  item_texts: Optional[list[str]] = None
  user_embeddings: Optional[np.ndarray] = None
  item_embeddings: Optional[np.ndarray] = None
  item_categories: Optional[np.ndarray] = None
  item_num_tags: Optional[np.ndarray] = None

  def __post_init__(self):
    for split in ("train", "valid", "test"):
      inter = getattr(self, split)
      if len(inter) == 0:
        continue
      if inter.users.min() < 0 or inter.users.max() >= self.num_users:
        raise DataError(f"{self.name}: {split} user ids must lie in "
                        f"[0, {self.num_users}), got [{inter.users.min()}, "
                        f"{inter.users.max()}]")
      if inter.items.min() < 0 or inter.items.max() >= self.num_items:
        raise DataError(f"{self.name}: {split} item ids must lie in "
                        f"[0, {self.num_items}), got [{inter.items.min()}, "
                        f"{inter.items.max()}]")
    for field, rows in (("user_embeddings", self.num_users),
                        ("item_embeddings", self.num_items)):
      emb = getattr(self, field)
      if emb is None:
        continue
      if emb.ndim != 2 or emb.shape[0] != rows:
        raise DataError(f"{self.name}: {field} must have shape [{rows}, d], "
                        f"got {emb.shape}")
      if not np.all(np.isfinite(emb)):
        raise DataError(f"{self.name}: {field} contains NaN or inf")
    if self.item_num_tags is not None:
      tags = np.asarray(self.item_num_tags)
      if tags.shape != (self.num_items,) or not np.issubdtype(
          tags.dtype, np.integer):
        raise DataError(f"{self.name}: item_num_tags must be an integer array "
                        f"of shape [{self.num_items}], got {tags.dtype} "
                        f"{tags.shape}")

  def csr(self, split: str) -> sp.csr_matrix:
    """Binary user x item CSR matrix of one split ('train'/'valid'/'test')."""
    return getattr(self, split).to_csr(self.num_users, self.num_items)

  def summary(self) -> str:
    density = len(self.train) / max(1, self.num_users * self.num_items)
    return (f"{self.name}: {self.num_users} users, {self.num_items} items, "
            f"train {len(self.train)}, valid {len(self.valid)}, "
            f"test {len(self.test)} (train density {density:.2e})")

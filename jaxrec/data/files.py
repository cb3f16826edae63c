"""Shared helpers of the file loaders: path checks and raw -> Dataset.

Used by `jaxrec.data.loaders` (line formats), `jaxrec.data.tables`
(CSV/parquet/MovieLens/RecBole) and `jaxrec.data.rlmrec` (RLMRec pickles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from jaxrec.data import preprocess
from jaxrec.data.dataset import DataError, Dataset
from jaxrec.data.preprocess import RawInteractions

PathLike = Union[str, Path]


def require_dir(path: PathLike, what: str) -> Path:
  """Returns `path` as a Path or raises DataError if it is not a directory."""
  path = Path(path)
  if not path.is_dir():
    raise DataError(f"{path}: directory not found (expected {what})")
  return path


def require_file(path: PathLike, what: str) -> Path:
  """Returns `path` as a Path or raises DataError if it is not a file."""
  path = Path(path)
  if not path.is_file():
    raise DataError(f"{path}: file not found (expected {what})")
  return path


def dataset_from_raw(name: str, train: RawInteractions,
                     test: Optional[RawInteractions] = None,
                     valid: Optional[RawInteractions] = None) -> Dataset:
  """Deduplicates and contiguously remaps raw splits into a Dataset.

  Args:
    name: dataset name.
    train: raw train rows; defines the contiguous user/item ids.
    test / valid: optional raw splits; rows with ids unseen in train are
      dropped with a `DataWarning` count.

  Returns:
    The Dataset with `user_ids` / `item_ids` maps to the original ids.
  """
  splits = {"valid": valid, "test": test}
  others = {k: preprocess.deduplicate(v, f"{v.source or name} ({k})")
            for k, v in splits.items() if v is not None}
  train = preprocess.deduplicate(train, f"{train.source or name} (train)")
  names = [f"{v.source or name} ({k})" for k, v in others.items()]
  tr, mapped, umap, imap = preprocess.remap_ids(
      train, *others.values(), names=names)
  return Dataset(name, len(umap), len(imap), tr, user_ids=umap,
                 item_ids=imap, **dict(zip(others, mapped)))


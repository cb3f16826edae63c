"""RLMRec dataset folders (pickled sparse matrices, profiles, embeddings).

Only unpickle files from a trusted source: unpickling can run code.
Re-exported by `jaxrec.data.loaders`.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional

import numpy as np
import scipy.sparse as sp

from jaxrec.data import preprocess
from jaxrec.data.dataset import DataError, Dataset, Interactions
from jaxrec.data.files import PathLike, require_dir, require_file


def _unpickle(path: Path):
  # Only load pickles from sources you trust: unpickling can run code.
  try:
    with open(path, "rb") as f:
      return pickle.load(f)
  except Exception as e:  # noqa: BLE001 - any unreadable pickle
    raise DataError(f"{path}: cannot unpickle ({type(e).__name__}: {e})") from e


def _rlmrec_matrix(path: Path) -> sp.csr_matrix:
  obj = _unpickle(path)
  if not (sp.issparse(obj) or isinstance(obj, np.ndarray)) or obj.ndim != 2:
    raise DataError(f"{path}: expected a pickled 2-D user x item scipy sparse "
                    f"matrix, got {type(obj).__name__}")
  try:
    mat = sp.csr_matrix(obj)
  except (TypeError, ValueError) as e:
    raise DataError(f"{path}: expected a numeric user x item matrix, got "
                    f"dtype {getattr(obj, 'dtype', '?')} ({e})") from e
  if not np.issubdtype(mat.dtype, np.number) or not np.all(
      np.isfinite(mat.data)):
    raise DataError(f"{path}: expected finite numeric entries, got dtype "
                    f"{mat.dtype} with NaN/inf or non-numbers")
  mat.eliminate_zeros()
  return mat


def _rlmrec_texts(path: Path, n: int) -> list[str]:
  """Profiles: dict id -> {'profile': str, ...} or id -> str, or a list."""
  obj = _unpickle(path)
  if isinstance(obj, (list, tuple, np.ndarray)):
    obj = dict(enumerate(obj))
  if not isinstance(obj, dict):
    raise DataError(f"{path}: expected a dict id -> profile, got "
                    f"{type(obj).__name__}")
  texts = [""] * n
  for key, value in obj.items():  # one entry per user/item, not interaction
    try:
      k = int(key)
    except (TypeError, ValueError):
      k = -1
    if not 0 <= k < n or (isinstance(key, float) and key != k):
      raise DataError(f"{path}: key {key!r}: expected an integer id in "
                      f"[0, {n})")
    if isinstance(value, dict):
      value = value.get("profile")
    if not isinstance(value, str):
      raise DataError(f"{path}: key {key!r}: expected a str or a dict with a "
                      f"'profile' str, got {type(value).__name__}")
    texts[k] = value
  missing = n - len(obj)
  if missing > 0:
    preprocess.warn(f"{path}: {missing} of {n} ids have no profile (using '')")
  return texts


def _rlmrec_embeddings(path: Path, n: int) -> np.ndarray:
  obj = _unpickle(path)
  try:
    emb = np.asarray(obj, np.float32)
  except (TypeError, ValueError) as e:
    raise DataError(f"{path}: expected a float array [n, d] ({e})") from e
  if emb.ndim != 2 or emb.shape[0] != n:
    raise DataError(f"{path}: expected embeddings of shape [{n}, d] (one row "
                    f"per id), got {emb.shape}")
  finite = np.isfinite(emb).all(1)
  if not finite.all():
    raise DataError(f"{path}: row {int(np.argmax(~finite))}: expected finite "
                    f"values, found NaN or inf")
  return emb


def load_rlmrec(directory: PathLike, name: Optional[str] = None) -> Dataset:
  """Loads an RLMRec dataset folder (amazon/yelp/steam of RLMRec's data.zip).

  Files: `trn_mat.pkl`, `tst_mat.pkl` (required) and `val_mat.pkl` (optional):
  pickled user x item scipy sparse matrices of one shape. Optional side
  information: `usr_prf.pkl`/`itm_prf.pkl` profiles (dict id -> {'profile':
  str, ...} as in RLMRec, or dict id -> str, or a list of str; ids without a
  profile get '' with a warning) and `usr_emb_np.pkl`/`itm_emb_np.pkl`
  float arrays [n, d] (row count must equal the number of users/items;
  NaN/inf rejected). Only unpickle files from a trusted source.

  Args:
    directory: the dataset folder.
    name: dataset name (default: 'rlmrec_<folder>').

  Returns:
    Dataset with texts/embeddings set where the files exist.
  """
  d = require_dir(directory, "an RLMRec folder with trn_mat.pkl/tst_mat.pkl")
  mats = {}
  for split, f in (("train", "trn_mat.pkl"), ("valid", "val_mat.pkl"),
                   ("test", "tst_mat.pkl")):
    if split == "valid" and not (d / f).exists():
      continue
    mats[split] = _rlmrec_matrix(require_file(d / f, "a pickled sparse matrix"))
    shape = mats[split].shape
    if shape != mats["train"].shape:
      raise DataError(f"{d / f}: expected shape {mats['train'].shape} like "
                      f"trn_mat.pkl, got {shape}")
    if split != "valid" and mats[split].nnz == 0:
      raise DataError(f"{d / f}: empty split: no interaction")
  num_users, num_items = mats["train"].shape
  splits = {k: Interactions.from_csr(v) for k, v in mats.items()}
  side = {}
  for field, f, n, fn in (
      ("user_texts", "usr_prf.pkl", num_users, _rlmrec_texts),
      ("item_texts", "itm_prf.pkl", num_items, _rlmrec_texts),
      ("user_embeddings", "usr_emb_np.pkl", num_users, _rlmrec_embeddings),
      ("item_embeddings", "itm_emb_np.pkl", num_items, _rlmrec_embeddings)):
    if (d / f).exists():
      side[field] = fn(d / f, n)
  return Dataset(name or f"rlmrec_{d.name}", num_users, num_items, **splits,
                 **side)

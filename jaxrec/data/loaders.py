"""Readers for common recommendation file formats, each returning a `Dataset`.

Supported formats:
  * LightGCN `train.txt`/`test.txt`: one line per user, `user item item ...`,
    0-based ids; a lone `user` line is a user without items
    (`load_lightgcn`). Blank lines are ignored.
  * LightGCN-PyTorch Gowalla: `s_adj_mat.npz` (unnormalised symmetric
    (U+I)x(U+I) adjacency whose user x item block is the train set) plus
    `test.txt` (`load_lightgcn_adj`).
  * LightGCN-PyTorch LastFM: `data1.txt`/`test1.txt`, `user<TAB>item<TAB>count`
    with 1-based ids (`load_lastfm`; ids are shifted to 0-based like
    LightGCN-PyTorch does, the listen count becomes `ratings`).
  * SELFRec: `user:item item ...` per line, arbitrary non-negative integer
    ids, remapped contiguously from train (`load_selfrec`).
  * RLMRec pickles (`load_rlmrec`, in `jaxrec.data.rlmrec`), plain
    CSV/TSV/parquet (`load_csv`) and RecBole atomic `.inter` (+ `.item`)
    files (`load_recbole`), in `jaxrec.data.tables`.
  * Text-attributed sets, in `jaxrec.data.textsets`: MovieLens
    `u.data`/`ratings.dat`/`ratings.csv` with item texts from the metadata
    beside them (`load_movielens`), GroupLens ml-latest-small
    (`load_ml_latest_small`) and HetRec Last.fm 2K (`load_hetrec_lastfm`).

Whitespace-delimited integer formats are parsed with a vectorised NumPy byte
tokenizer; bad input raises `DataError` naming the file, the 1-based line and
what was expected. Test/valid rows whose user or item is absent from train
are KEPT by the LightGCN-style loaders (to match published protocols) and
DROPPED with a `DataWarning` count by the remapping loaders (SELFRec, CSV,
MovieLens, RecBole) since such ids have no contiguous id.

The tabular formats live in `jaxrec.data.tables`, the text-attributed sets
in `jaxrec.data.textsets`, RLMRec in `jaxrec.data.rlmrec`; all are
re-exported here so `loaders.load_X` works for every format.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np
import scipy.sparse as sp

from jaxrec.data import preprocess
from jaxrec.data.dataset import DataError, Dataset, Interactions
from jaxrec.data.files import (PathLike, dataset_from_raw, require_dir,
                               require_file)
from jaxrec.data.preprocess import RawInteractions
from jaxrec.data.rlmrec import load_rlmrec
from jaxrec.data.tokens import _MAX_ID, _line_error, _tokenize
from jaxrec.data.tables import (load_csv, load_recbole, read_recbole,
                                read_recbole_items, read_table)
from jaxrec.data.textsets import (load_hetrec_lastfm, load_ml_latest_small,
                                  load_movielens)

__all__ = [
    "PathLike", "UserLines", "load_csv", "load_hetrec_lastfm", "load_lastfm",
    "load_lightgcn", "load_lightgcn_adj", "load_ml_latest_small",
    "load_movielens", "load_recbole", "load_rlmrec", "load_selfrec",
    "read_recbole", "read_recbole_items", "read_table", "read_triplets",
    "read_user_lines", "require_dir", "require_file",
]
_dataset_from_raw = dataset_from_raw  # backwards-compatible private alias

@dataclasses.dataclass
class UserLines:
  """Parsed `user item item ...` file (original ids).

  Attributes:
    users / items: one entry per interaction. # [n]
    lines: 1-based source line of each interaction. # [n]
    line_users: user id of every non-blank line (incl. users without items).
  """
  users: np.ndarray
  items: np.ndarray
  lines: np.ndarray
  line_users: np.ndarray

  def interactions(self) -> Interactions:
    return Interactions(self.users, self.items)


def read_user_lines(path: PathLike, colon: bool = False,
                    allow_empty: bool = False) -> UserLines:
  """Reads a per-user adjacency-list file.

  Args:
    path: file with `user item item ...` lines (LightGCN) or
      `user:item item ...` lines (SELFRec, `colon=True`).
    colon: whether the user id is terminated by ':'.
    allow_empty: accept a file without any interaction.

  Returns:
    A `UserLines`; raises DataError naming file and line on malformed input.
  """
  path = require_file(path, "a 'user item item ...' text file")
  data = path.read_bytes()
  if data.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
    data = b"   " + data[3:]
  expected = "'user:item item ...'" if colon else "'user item item ...'"
  tok = _tokenize(path, data, b":" if colon else b"")
  if len(tok.values) == 0:
    raise DataError(f"{path}: empty file (expected lines {expected})")
  if colon:
    n_lines = len(tok.newlines) + 1
    colons = np.flatnonzero(np.frombuffer(data, np.uint8) == 58)
    c_line = np.searchsorted(tok.newlines, colons)
    c_count = np.bincount(c_line, minlength=n_lines)  # [L]
    t_count = np.bincount(tok.lines, minlength=n_lines)  # [L]
    c_pos = np.full(n_lines, -1, np.int64)
    c_pos[c_line] = colons
    is_first = tok.starts < c_pos[tok.lines]  # tokens before ':'
    n_before = np.bincount(tok.lines[is_first], minlength=n_lines)
    bad = ((c_count != 1) & ((t_count > 0) | (c_count > 0))) | (
        (c_count == 1) & (n_before != 1))
    if bad.any():
      raise _line_error(path, data, tok.newlines, int(np.argmax(bad)),
                        f"one line per user {expected}")
  else:
    is_first = np.concatenate([[True], tok.lines[1:] != tok.lines[:-1]])
  group = np.cumsum(is_first) - 1  # line group of every token
  line_users = tok.values[is_first]
  is_item = ~is_first
  users = line_users[group[is_item]]
  items = tok.values[is_item]
  if len(items) == 0 and not allow_empty:
    raise DataError(f"{path}: empty split: no (user, item) interaction found "
                    f"(expected lines {expected})")
  return UserLines(users, items, tok.lines[is_item] + 1, line_users)


def _check_range(path: Path, name: str, values: np.ndarray,
                 lines: np.ndarray, limit: int) -> None:
  bad = values >= limit
  if bad.any():
    k = int(np.argmax(bad))
    raise DataError(f"{path}:{int(lines[k])}: expected {name} id < {limit}, "
                    f"got {int(values[k])}")


def load_lightgcn(directory: PathLike, train_file: str = "train.txt",
                  test_file: str = "test.txt", name: Optional[str] = None
                  ) -> Dataset:
  """Loads the LightGCN `train.txt`/`test.txt` format (0-based ids).

  Args:
    directory: folder holding the two files.
    train_file / test_file: file names inside `directory`.
    name: dataset name (default: the folder name).

  Returns:
    A Dataset with num_users/num_items = max id + 1 over both files
    (LightGCN convention; test users/items unseen in train are kept).
  """
  d = require_dir(directory, "a LightGCN data folder with train.txt/test.txt")
  tr = read_user_lines(d / train_file)
  te = read_user_lines(d / test_file)
  num_users = int(max(tr.line_users.max(), te.line_users.max())) + 1
  num_items = int(max(tr.items.max(), te.items.max())) + 1
  train = preprocess.deduplicate(tr.interactions(), str(d / train_file))
  test = preprocess.deduplicate(te.interactions(), str(d / test_file))
  return Dataset(name or d.name, num_users, num_items, train, test=test)


def load_lightgcn_adj(directory: PathLike, adj_file: str = "s_adj_mat.npz",
                      test_file: str = "test.txt",
                      num_users: Optional[int] = None,
                      name: Optional[str] = None) -> Dataset:
  """Loads LightGCN-PyTorch's cached adjacency `s_adj_mat.npz` + `test.txt`.

  Args:
    directory: folder holding both files.
    adj_file: scipy sparse npz, unnormalised symmetric (U+I)x(U+I) adjacency
      (users first); the train set is its user x item block.
    test_file: LightGCN-format test file.
    num_users: number of users U; inferred as max test user id + 1 if None
      (valid when the last user has a test line, as in Gowalla).
    name: dataset name (default: the folder name).

  Returns:
    The Dataset (train from the adjacency, test from test.txt).
  """
  d = require_dir(directory, "a folder with s_adj_mat.npz and test.txt")
  adj_path = require_file(d / adj_file, "a scipy sparse .npz adjacency")
  try:
    adj = sp.load_npz(adj_path).tocsr()
  except Exception as e:  # noqa: BLE001 - any unreadable file is a DataError
    raise DataError(f"{adj_path}: cannot read scipy sparse npz ({e})") from e
  te = read_user_lines(d / test_file)
  n = adj.shape[0]
  if adj.ndim != 2 or adj.shape[1] != n:
    raise DataError(f"{adj_path}: expected a square matrix, got {adj.shape}")
  if num_users is None:
    num_users = int(te.line_users.max()) + 1
  num_items = n - num_users
  if num_items <= 0:
    raise DataError(f"{adj_path}: shape {adj.shape} leaves no items for "
                    f"num_users={num_users}")
  block = adj[:num_users, num_users:]
  if (adj[:num_users, :num_users].nnz or adj[num_users:, num_users:].nnz or
      (block != adj[num_users:, :num_users].T).nnz):
    raise DataError(f"{adj_path}: expected a symmetric bipartite adjacency "
                    f"with {num_users} users first (field num_users)")
  coo = block.tocoo()
  order = np.lexsort((coo.col, coo.row))
  train = Interactions(coo.row[order], coo.col[order])
  if len(train) == 0:
    raise DataError(f"{adj_path}: empty split: no train interaction")
  test_path = d / test_file
  _check_range(test_path, "user", te.users, te.lines, num_users)
  _check_range(test_path, "item", te.items, te.lines, num_items)
  test = preprocess.deduplicate(te.interactions(), str(test_path))
  return Dataset(name or d.name, num_users, num_items, train, test=test)


def load_selfrec(directory: PathLike, train_file: str = "train.txt",
                 test_file: str = "test.txt", name: Optional[str] = None
                 ) -> Dataset:
  """Loads SELFRec `user:item item ...` files (e.g. amazon-beauty).

  Ids may be 1-based or non-contiguous: users/items are remapped to
  contiguous ids from the TRAIN file (sorted original order, kept as
  `Dataset.user_ids`/`item_ids`); the same maps are applied to the test file
  and test rows whose user or item does not occur in train are dropped with a
  `DataWarning` giving the count.

  Args:
    directory: folder with the two files.
    train_file / test_file: file names.
    name: dataset name (default: the folder name).

  Returns:
    The remapped Dataset.
  """
  d = require_dir(directory, "a SELFRec data folder with train.txt/test.txt")
  raws = []
  for f in (train_file, test_file):
    ul = read_user_lines(d / f, colon=True)
    raws.append(RawInteractions(ul.users, ul.items, lines=ul.lines,
                                source=str(d / f)))
  return dataset_from_raw(name or d.name, raws[0], test=raws[1])


def read_triplets(path: PathLike, one_based: bool = False,
                  sep: str = "\t") -> RawInteractions:
  """Reads `user<sep>item[<sep>count]` rows (LastFM `data1.txt` style).

  Args:
    path: the file. The optional third column (a listen count, possibly
      written like `3.2466e+05`) becomes `ratings`.
    one_based: ids start at 1 and are shifted to 0-based; an id 0 is an error.
    sep: field separator.

  Returns:
    RawInteractions with int64 ids.
  """
  raw = read_table(path, sep=sep, header=False, rating_col="rating",
                   optional_cols=True)
  if one_based:
    zero = (raw.users == 0) | (raw.items == 0)
    if zero.any():
      k = int(np.argmax(zero))
      raise DataError(f"{path}:{int(raw.lines[k])}: expected 1-based ids "
                      f">= 1, got 0")
    raw = dataclasses.replace(raw, users=raw.users - 1, items=raw.items - 1)
  for field, ids in (("user", raw.users), ("item", raw.items)):
    big = ids > _MAX_ID  # ids are used as they are (no remapping)
    if big.any():
      k = int(np.argmax(big))
      raise DataError(f"{path}:{int(raw.lines[k])}: field {field!r}: expected "
                      f"ids <= {_MAX_ID + int(one_based)}, got "
                      f"{int(ids[k]) + int(one_based)}")
  return raw


def load_lastfm(directory: PathLike, train_file: str = "data1.txt",
                test_file: str = "test1.txt", one_based: bool = True,
                name: str = "lastfm") -> Dataset:
  """Loads LightGCN-PyTorch's LastFM split (`user item listen_count` rows).

  The files use 1-based ids; like LightGCN-PyTorch we subtract 1 and keep
  num_users/num_items = max id (1892 users, 4489 items for the real data),
  so ids with no interaction stay as isolated nodes and test rows with items
  unseen in train are kept.

  Args:
    directory: folder with the files.
    train_file / test_file: file names.
    one_based: whether ids start at 1.
    name: dataset name.

  Returns:
    The Dataset (`ratings` = listen counts).
  """
  d = require_dir(directory, "the LastFM folder with data1.txt/test1.txt")
  tr = read_triplets(d / train_file, one_based)
  te = read_triplets(d / test_file, one_based)
  num_users = int(max(tr.users.max(), te.users.max())) + 1
  num_items = int(max(tr.items.max(), te.items.max())) + 1
  conv = lambda r: preprocess.deduplicate(
      Interactions(r.users, r.items, r.ratings), r.source)
  return Dataset(name, num_users, num_items, conv(tr), test=conv(te))

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
  * RLMRec pickles (`load_rlmrec`), plain CSV/TSV/parquet (`load_csv`),
    MovieLens `u.data`/`ratings.dat`/`ratings.csv` (`load_movielens`) and
    RecBole atomic `.inter` files (`load_recbole`).

Whitespace-delimited integer formats are parsed with a vectorised NumPy byte
tokenizer; bad input raises `DataError` naming the file, the 1-based line and
what was expected. Test/valid rows whose user or item is absent from train
are KEPT by the LightGCN-style loaders (to match published protocols) and
DROPPED with a `DataWarning` count by the remapping loaders (SELFRec, CSV,
MovieLens, RecBole) since such ids have no contiguous id.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp

from jaxrec.data import preprocess
from jaxrec.data.dataset import DataError, Dataset, Interactions
from jaxrec.data.preprocess import RawInteractions

PathLike = Union[str, Path]
_MAX_ID = 2**31 - 2  # ids + 1 must fit in int32
_POW10 = 10 ** np.arange(19, dtype=np.int64)


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


# ----------------------------------------------------------------------------
# Vectorised byte tokenizer for whitespace-separated integer formats.


@dataclasses.dataclass
class _Tokens:
  values: np.ndarray  # int64 [t]
  starts: np.ndarray  # byte offset of each token [t]
  lines: np.ndarray  # 0-based line of each token [t]
  newlines: np.ndarray  # byte offsets of b"\n"
  data: bytes


def _line_error(path: Path, data: bytes, newlines: np.ndarray, line0: int,
                expected: str) -> DataError:
  """DataError for 0-based `line0`, quoting the offending line."""
  start = 0 if line0 == 0 else int(newlines[line0 - 1]) + 1
  end = int(newlines[line0]) if line0 < len(newlines) else len(data)
  text = data[start:end].rstrip(b"\r").decode("utf-8", "replace")
  if len(text) > 80:
    text = text[:77] + "..."
  return DataError(f"{path}:{line0 + 1}: expected {expected}; got {text!r}")


def _tokenize(path: Path, data: bytes, extra: bytes = b"") -> _Tokens:
  """Splits `data` into non-negative integer tokens (whitespace separated).

  Allowed bytes are ASCII digits, space, tab, CR, LF and `extra`.
  """
  buf = np.frombuffer(data, np.uint8)
  digit = (buf >= 48) & (buf <= 57)
  ok = digit | (buf == 32) | (buf == 9) | (buf == 10) | (buf == 13)
  for ch in extra:
    ok |= buf == ch
  newlines = np.flatnonzero(buf == 10)
  bad = np.flatnonzero(~ok)
  if len(bad):
    pos = int(bad[0])
    ch = data[pos:pos + 1]
    if ch == b"-":
      what = "non-negative integer ids (found a negative id)"
    elif ch in b".eE+,":
      what = "integer ids (found a non-integer number)"
    else:
      what = f"integer ids separated by whitespace (found byte {ch!r})"
    raise _line_error(path, data, newlines,
                      int(np.searchsorted(newlines, pos)), what)
  prev = np.concatenate([[False], digit[:-1]])
  nxt = np.concatenate([digit[1:], [False]])
  starts = np.flatnonzero(digit & ~prev)
  ends = np.flatnonzero(digit & ~nxt) + 1
  lengths = ends - starts  # [t]
  lines = np.searchsorted(newlines, starts)
  if len(starts) and lengths.max() > 10:
    line0 = int(lines[np.argmax(lengths > 10)])
    raise _line_error(path, data, newlines, line0, f"ids <= {_MAX_ID}")
  pos = np.flatnonzero(digit)
  exp = np.repeat(ends - 1, lengths) - pos
  contrib = (buf[pos].astype(np.int64) - 48) * _POW10[exp]
  offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
  values = (np.add.reduceat(contrib, offsets) if len(starts)
            else np.zeros(0, np.int64))
  if len(values) and values.max() > _MAX_ID:
    line0 = int(lines[np.argmax(values > _MAX_ID)])
    raise _line_error(path, data, newlines, line0, f"ids <= {_MAX_ID}")
  return _Tokens(values, starts, lines, newlines, data)


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


def _dataset_from_raw(name: str, train: RawInteractions,
                      test: Optional[RawInteractions] = None,
                      valid: Optional[RawInteractions] = None) -> Dataset:
  """Deduplicates and contiguously remaps raw splits into a Dataset."""
  splits = {"valid": valid, "test": test}
  others = {k: preprocess.deduplicate(v, f"{v.source or name} ({k})")
            for k, v in splits.items() if v is not None}
  train = preprocess.deduplicate(train, f"{train.source or name} (train)")
  names = [f"{v.source or name} ({k})" for k, v in others.items()]
  tr, mapped, umap, imap = preprocess.remap_ids(
      train, *others.values(), names=names)
  return Dataset(name, len(umap), len(imap), tr, user_ids=umap,
                 item_ids=imap, **dict(zip(others, mapped)))


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
  return _dataset_from_raw(name or d.name, raws[0], test=raws[1])


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


# ----------------------------------------------------------------------------
# Tabular formats (pandas).

_DEFAULT_NAMES = ("user", "item", "rating", "timestamp")


def _read_csv_strings(path: Path, source, sep: str, header: bool,
                      encoding: str) -> pd.DataFrame:
  try:
    return pd.read_csv(source, sep=sep, header=0 if header else None,
                       dtype=str, keep_default_na=False,
                       skip_blank_lines=False, encoding=encoding,
                       engine="c")
  except pd.errors.EmptyDataError as e:
    raise DataError(f"{path}: empty file (expected delimited rows)") from e
  except pd.errors.ParserError as e:
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
    if m:
      raise DataError(f"{path}:{m.group(2)}: expected {m.group(1)} fields "
                      f"separated by {sep!r}, saw {m.group(3)}") from e
    raise DataError(f"{path}: malformed delimited file ({e})") from e
  except UnicodeDecodeError as e:
    raw = path.read_bytes() if source is path else source.getvalue()
    try:
      raw.decode(encoding)
      line = "?"
    except UnicodeDecodeError as e2:
      line = raw.count(b"\n", 0, e2.start) + 1
    raise DataError(f"{path}:{line}: expected {encoding} text") from e


def _parse_ids(values: pd.Series, path: Path, lines: np.ndarray, field: str,
               id_type: str) -> np.ndarray:
  """Validates an id column; returns int64 ('int') or str ('str') ids."""
  if pd.api.types.is_integer_dtype(values.dtype):
    ids = values.to_numpy(np.int64)
    if (ids < 0).any():
      k = int(np.argmax(ids < 0))
      raise DataError(f"{path}:{int(lines[k])}: field {field!r}: expected a "
                      f"non-negative integer id, got {ids[k]}")
    return ids
  s = values.astype(str).str.strip()
  empty = (s == "").to_numpy()
  if empty.any():
    k = int(np.argmax(empty))
    raise DataError(f"{path}:{int(lines[k])}: field {field!r}: missing id")
  is_int = s.str.fullmatch(r"\d{1,18}").to_numpy(bool)
  if id_type == "str" or (id_type == "auto" and not is_int.all()):
    return s.to_numpy(dtype=str)
  if not is_int.all():
    k = int(np.argmax(~is_int))
    kind = "negative" if s.iloc[k].startswith("-") else "non-integer"
    raise DataError(f"{path}:{int(lines[k])}: field {field!r}: expected a "
                    f"non-negative integer id, got {kind} {s.iloc[k]!r}")
  return s.astype(np.int64).to_numpy()


def _parse_numbers(values: pd.Series, path: Path, lines: np.ndarray,
                   field: str) -> np.ndarray:
  num = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
  bad = ~np.isfinite(num)
  if bad.any():
    k = int(np.argmax(bad))
    raise DataError(f"{path}:{int(lines[k])}: field {field!r}: expected a "
                    f"finite number, got {values.iloc[k]!r}")
  return num


def read_table(path: PathLike, *, user_col: Union[str, int] = "user",
               item_col: Union[str, int] = "item",
               rating_col: Union[str, int, None] = None,
               timestamp_col: Union[str, int, None] = None,
               sep: Optional[str] = None, header: bool = True,
               names: Optional[Sequence[str]] = None, id_type: str = "int",
               encoding: str = "utf-8", content: Optional[bytes] = None,
               optional_cols: bool = False) -> RawInteractions:
  """Reads a CSV/TSV/parquet interaction table.

  Args:
    path: the file; `.parquet` is read with pyarrow, anything else as text.
    user_col / item_col / rating_col / timestamp_col: column names (or
      0-based positions). Without a header and without `names`, columns are
      named user, item, rating, timestamp in order.
    sep: field separator (default: tab for .tsv/.tab/.inter/.data, else ',').
    header: whether the first line holds column names.
    names: explicit column names (replace the header if any).
    id_type: 'int' (non-negative integers, else DataError), 'str' (any
      token) or 'auto' (int if every id is an integer, else str).
    encoding: text encoding.
    content: file bytes to parse instead of reading `path` (messages still
      name `path`).
    optional_cols: skip rating/timestamp columns that do not exist.

  Returns:
    RawInteractions with 1-based source `lines` (rows for parquet).
  """
  path = Path(path)
  if content is None:
    require_file(path, "an interaction table (csv/tsv/parquet)")
  if path.suffix == ".parquet":
    try:
      df = pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - unreadable parquet
      raise DataError(f"{path}: cannot read parquet ({e})") from e
    first = 1
  else:
    if sep is None:
      sep = "\t" if path.suffix in (".tsv", ".tab", ".inter", ".data") else ","
    source = io.BytesIO(content) if content is not None else path
    df = _read_csv_strings(path, source, sep, header, encoding)
    first = 2 if header else 1
  if names is not None:
    if len(names) != df.shape[1]:
      raise DataError(f"{path}: expected {len(names)} columns {list(names)}, "
                      f"found {df.shape[1]}")
    df.columns = list(names)
  elif not header and path.suffix != ".parquet" and df.shape[1] <= 4:
    df.columns = list(_DEFAULT_NAMES[:df.shape[1]])
  lines = np.arange(len(df)) + first
  if path.suffix != ".parquet" and len(df):
    blank = (df.astype(str).apply(lambda c: c.str.strip()) == "").all(axis=1)
    blank = blank.to_numpy(bool)
    df, lines = df[~blank], lines[~blank]
  if len(df) == 0:
    raise DataError(f"{path}: empty split: no interaction rows")

  def column(col):
    if isinstance(col, int) and col not in df.columns:
      if not 0 <= col < df.shape[1]:
        raise DataError(f"{path}: column index {col} out of range "
                        f"({df.shape[1]} columns)")
      return df.iloc[:, col], str(col)
    if col not in df.columns:
      raise DataError(f"{path}: missing column {col!r}; expected one of "
                      f"{[str(c) for c in df.columns]}")
    return df[col], str(col)

  users = _parse_ids(column(user_col)[0], path, lines, str(user_col),
                     id_type)
  items = _parse_ids(column(item_col)[0], path, lines, str(item_col),
                     id_type)
  ratings = timestamps = None
  if optional_cols:
    has = lambda c: c in df.columns or (isinstance(c, int) and c < df.shape[1])
    rating_col = rating_col if has(rating_col) else None
    timestamp_col = timestamp_col if has(timestamp_col) else None
  if rating_col is not None:
    ratings = _parse_numbers(column(rating_col)[0], path, lines,
                             str(rating_col)).astype(np.float32)
  if timestamp_col is not None:
    ts = _parse_numbers(column(timestamp_col)[0], path, lines,
                        str(timestamp_col))
    timestamps = ts.astype(np.int64) if np.all(ts == np.floor(ts)) else ts
  return RawInteractions(users, items, ratings, timestamps, lines, str(path))


def load_csv(path: PathLike, *, name: Optional[str] = None,
             test_path: Optional[PathLike] = None, **kwargs) -> Dataset:
  """Loads a CSV/TSV/parquet table of `user,item[,rating,timestamp]`.

  Args:
    path: the interaction table (all rows go to `train` unless `test_path`).
    name: dataset name (default: file stem).
    test_path: optional separate test table with the same layout.
    **kwargs: forwarded to `read_table` (columns, sep, header, id_type, ...).

  Returns:
    A deduplicated Dataset with contiguous ids and IdMaps (test rows with
    ids unseen in train are dropped with a warning).
  """
  train = read_table(path, **kwargs)
  test = read_table(test_path, **kwargs) if test_path is not None else None
  return _dataset_from_raw(name or Path(path).stem, train, test=test)


def load_movielens(path: PathLike, name: Optional[str] = None) -> Dataset:
  """Loads MovieLens ratings: ml-100k `u.data`, ml-1m `ratings.dat` or
  ml-latest `ratings.csv` (a file or a folder containing one of them).

  Args:
    path: the ratings file or its folder.
    name: dataset name (default: the folder name).

  Returns:
    A Dataset with all ratings in `train` (split it with `jaxrec.data.splits`),
    ratings and timestamps kept, contiguous ids with IdMaps to the 1-based
    MovieLens ids.
  """
  path = Path(path)
  if path.is_dir():
    found = [path / f for f in ("ratings.dat", "u.data", "ratings.csv")
             if (path / f).is_file()]
    if not found:
      raise DataError(f"{path}: no MovieLens ratings file (expected "
                      f"ratings.dat, u.data or ratings.csv)")
    path = found[0]
  require_file(path, "a MovieLens ratings file")
  cols = dict(user_col="user", item_col="item", rating_col="rating",
              timestamp_col="timestamp", header=False, encoding="latin-1")
  if path.name.endswith(".csv"):
    raw = read_table(path, user_col="userId", item_col="movieId",
                     rating_col="rating", timestamp_col="timestamp")
  elif path.suffix == ".dat":
    raw = read_table(path, sep="\t", names=_DEFAULT_NAMES,
                     content=path.read_bytes().replace(b"::", b"\t"), **cols)
  else:
    raw = read_table(path, sep="\t", names=_DEFAULT_NAMES, **cols)
  return _dataset_from_raw(name or path.parent.name, raw)


_RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


def _recbole_header(path: Path) -> list[tuple[str, str]]:
  with open(path, "rb") as f:
    first = f.readline().decode("utf-8", "replace").rstrip("\r\n")
  fields = []
  for spec in first.split("\t"):
    name, _, kind = spec.partition(":")
    if not name or kind not in _RECBOLE_TYPES:
      raise DataError(f"{path}:1: expected a RecBole header of 'name:type' "
                      f"fields (type in {_RECBOLE_TYPES}), got {spec!r}")
    fields.append((name, kind))
  return fields


def read_recbole(path: PathLike, user_field: str = "user_id",
                 item_field: str = "item_id", rating_field: str = "rating",
                 timestamp_field: str = "timestamp") -> RawInteractions:
  """Reads one RecBole atomic `.inter` file (tab separated, typed header).

  Args:
    path: the `.inter` file.
    user_field / item_field: token fields holding the ids (kept as ints if
      all are integers, else as strings).
    rating_field / timestamp_field: float fields used when present.

  Returns:
    RawInteractions.
  """
  path = require_file(path, "a RecBole .inter file")
  fields = _recbole_header(path)
  names = [n for n, _ in fields]
  for f in (user_field, item_field):
    if f not in names:
      raise DataError(f"{path}:1: missing field {f!r} in header {names}")
  return read_table(
      path, sep="\t", names=names, id_type="auto", user_col=user_field,
      item_col=item_field,
      rating_col=rating_field if rating_field in names else None,
      timestamp_col=timestamp_field if timestamp_field in names else None)


def load_recbole(path: PathLike, name: Optional[str] = None, **fields
                 ) -> Dataset:
  """Loads RecBole atomic files.

  Args:
    path: a `.inter` file (all rows -> train), or a folder with either one
      `<name>.inter` file or benchmark splits `<name>.train.inter`,
      `<name>.test.inter` and optionally `<name>.valid.inter`.
    name: dataset name (default: the file/folder name).
    **fields: user_field / item_field / rating_field / timestamp_field.

  Returns:
    A remapped Dataset (ids from train).
  """
  path = Path(path)
  if path.is_dir():
    trains = sorted(path.glob("*.train.inter"))
    if trains:
      stem = trains[0].name[:-len(".train.inter")]
      read = lambda s: read_recbole(path / f"{stem}.{s}.inter", **fields)
      valid = (read("valid") if (path / f"{stem}.valid.inter").is_file()
               else None)
      return _dataset_from_raw(name or stem, read("train"),
                               test=read("test"), valid=valid)
    inters = sorted(path.glob("*.inter"))
    if len(inters) != 1:
      raise DataError(f"{path}: expected exactly one .inter file or "
                      f"*.train.inter/*.test.inter splits, found "
                      f"{[p.name for p in inters]}")
    path = inters[0]
  raw = read_recbole(path, **fields)
  return _dataset_from_raw(name or path.name.split(".")[0], raw)

# ----------------------------------------------------------------------------
# RLMRec pickles.


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
  mat = sp.csr_matrix(obj)
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

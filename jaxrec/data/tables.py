"""Tabular interaction formats: CSV/TSV/parquet, MovieLens, RecBole.

  * `read_table` / `load_csv`: plain CSV/TSV/parquet tables of
    `user,item[,rating,timestamp]` (columns selectable by name or position).
  * `load_movielens`: ml-100k `u.data`, ml-1m `ratings.dat`, ml-latest
    `ratings.csv`.
  * `read_recbole` / `load_recbole`: RecBole atomic `.inter` files.

Ids are validated per row (a `DataError` names the file, the 1-based line and
the field) and remapped contiguously from train; test/valid rows with ids
unseen in train are dropped with a `DataWarning` count. All are re-exported by
`jaxrec.data.loaders`.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from jaxrec.data.dataset import DataError, Dataset
from jaxrec.data.files import PathLike, dataset_from_raw, require_file
from jaxrec.data.preprocess import RawInteractions

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
    integral = np.all(ts == np.floor(ts)) and np.all(np.abs(ts) < 2.0**62)
    timestamps = ts.astype(np.int64) if integral else ts
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
  return dataset_from_raw(name or Path(path).stem, train, test=test)


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
  return dataset_from_raw(name or path.parent.name, raw)


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
      return dataset_from_raw(name or stem, read("train"),
                               test=read("test"), valid=valid)
    inters = sorted(path.glob("*.inter"))
    if len(inters) != 1:
      raise DataError(f"{path}: expected exactly one .inter file or "
                      f"*.train.inter/*.test.inter splits, found "
                      f"{[p.name for p in inters]}")
    path = inters[0]
  raw = read_recbole(path, **fields)
  return dataset_from_raw(name or path.name.split(".")[0], raw)

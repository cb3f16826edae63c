"""Tabular interaction formats: CSV/TSV/parquet, RecBole.

  * `read_table` / `load_csv`: plain CSV/TSV/parquet tables of
    `user,item[,rating,timestamp]` (columns selectable by name or position),
    with optional item texts (a text column or a second id -> text table).
  * `read_recbole` / `load_recbole`: RecBole atomic `.inter` files, with
    item texts from a `.item` file beside them.

MovieLens (`load_movielens`) lives in `jaxrec.data.textsets`.

Ids are validated per row (a `DataError` names the file, the 1-based line and
the field) and remapped contiguously from train; test/valid rows with ids
unseen in train are dropped with a `DataWarning` count. All are re-exported by
`jaxrec.data.loaders`.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from jaxrec.data import texts as texts_lib
from jaxrec.data.dataset import DataError, Dataset
from jaxrec.data.files import PathLike, dataset_from_raw, require_file
from jaxrec.data.preprocess import RawInteractions

_DEFAULT_NAMES = ("user", "item", "rating", "timestamp")


def _read_csv_strings(path: Path, source, sep: str, header: bool,
                      encoding: str, quoting: int = csv.QUOTE_MINIMAL
                      ) -> pd.DataFrame:
  """All cells of a delimited file as str ('' for empty); DataError if bad."""
  try:
    return pd.read_csv(source, sep=sep, header=0 if header else None,
                       dtype=str, keep_default_na=False,
                       skip_blank_lines=False, encoding=encoding,
                       engine="c", quoting=quoting)
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
  df, lines = _read_frame(path, sep, header, names, encoding, content)
  return _rows_from_frame(df, lines, path, user_col, item_col, rating_col,
                          timestamp_col, id_type, optional_cols)


_FRAME_KEYS = ("sep", "header", "names", "encoding", "content")


def _read_frame(path: Path, sep: Optional[str] = None, header: bool = True,
                names: Optional[Sequence[str]] = None,
                encoding: str = "utf-8", content: Optional[bytes] = None,
                what: str = "an interaction table (csv/tsv/parquet)",
                rows: str = "interaction") -> tuple[pd.DataFrame, np.ndarray]:
  """A table's cells (str for text files) and 1-based line of each row."""
  if content is None:
    require_file(path, what)
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
    raise DataError(f"{path}: empty split: no interaction rows"
                    if rows == "interaction" else f"{path}: no {rows} rows")
  return df, lines


def _column(df: pd.DataFrame, path: Path, col: Union[str, int]) -> pd.Series:
  """Column `col` (a name, or a 0-based position) or a DataError."""
  if isinstance(col, int) and col not in df.columns:
    if not 0 <= col < df.shape[1]:
      raise DataError(f"{path}: column index {col} out of range "
                      f"({df.shape[1]} columns)")
    return df.iloc[:, col]
  if col not in df.columns:
    raise DataError(f"{path}: missing column {col!r}; expected one of "
                    f"{[str(c) for c in df.columns]}")
  return df[col]


def _rows_from_frame(df: pd.DataFrame, lines: np.ndarray, path: Path,
                     user_col: Union[str, int] = "user",
                     item_col: Union[str, int] = "item",
                     rating_col: Union[str, int, None] = None,
                     timestamp_col: Union[str, int, None] = None,
                     id_type: str = "int", optional_cols: bool = False
                     ) -> RawInteractions:
  """Validated interaction columns of a table read by `_read_frame`."""
  users = _parse_ids(_column(df, path, user_col), path, lines, str(user_col),
                     id_type)
  items = _parse_ids(_column(df, path, item_col), path, lines, str(item_col),
                     id_type)
  ratings = timestamps = None
  if optional_cols:
    has = lambda c: c in df.columns or (isinstance(c, int) and c < df.shape[1])
    rating_col = rating_col if has(rating_col) else None
    timestamp_col = timestamp_col if has(timestamp_col) else None
  if rating_col is not None:
    ratings = _parse_numbers(_column(df, path, rating_col), path, lines,
                             str(rating_col)).astype(np.float32)
  if timestamp_col is not None:
    ts = _parse_numbers(_column(df, path, timestamp_col), path, lines,
                        str(timestamp_col))
    integral = np.all(ts == np.floor(ts)) and np.all(np.abs(ts) < 2.0**62)
    timestamps = ts.astype(np.int64) if integral else ts
  return RawInteractions(users, items, ratings, timestamps, lines, str(path))


def _text_values(values: pd.Series) -> np.ndarray:
  """A text column as an object array of str ('' for missing). # [n]"""
  return values.fillna("").astype(str).to_numpy(dtype=object)


def load_csv(path: PathLike, *, name: Optional[str] = None,
             test_path: Optional[PathLike] = None,
             item_text_path: Optional[PathLike] = None,
             item_text_col: Union[str, int, None] = None,
             item_id_col: Union[str, int, None] = None, **kwargs) -> Dataset:
  """Loads a CSV/TSV/parquet table of `user,item[,rating,timestamp]`.

  Args:
    path: the interaction table (all rows go to `train` unless `test_path`).
    name: dataset name (default: file stem).
    test_path: optional separate test table with the same layout.
    item_text_path: optional table of item texts with a header row (same
      `sep` / `encoding` as the interactions; parquet by suffix): column
      `item_id_col` (default: `item_col` when it is a name, else 'item')
      holds the item id, `item_text_col` (default 'text') the text.
    item_text_col: without `item_text_path`, a text column of the
      interaction table itself (each item gets its first non-empty text).
    item_id_col: id column of the `item_text_path` table.
    **kwargs: forwarded to `read_table` (columns, sep, header, id_type, ...).

  Returns:
    A deduplicated Dataset with contiguous ids and IdMaps (test rows with
    ids unseen in train are dropped with a warning); `item_texts` aligned
    with the item ids when a text source is given ('' for items without
    one, counted in a `DataWarning`).
  """
  path = Path(path)
  frame_kw = {k: kwargs.pop(k) for k in _FRAME_KEYS if k in kwargs}
  df, lines = _read_frame(path, **frame_kw)
  train = _rows_from_frame(df, lines, path, **kwargs)
  test = (read_table(test_path, **frame_kw, **kwargs)
          if test_path is not None else None)
  dataset = dataset_from_raw(name or path.stem, train, test=test)
  if item_text_path is not None:
    text_path = Path(item_text_path)
    item_col = kwargs.get("item_col", "item")
    id_col = item_id_col if item_id_col is not None else (
        item_col if isinstance(item_col, str) else "item")
    text_col = "text" if item_text_col is None else item_text_col
    tdf, tlines = _read_frame(
        text_path, frame_kw.get("sep"), True, None,
        frame_kw.get("encoding", "utf-8"),
        what=f"an item text table with columns {id_col!r}, {text_col!r}",
        rows="item text")
    kind = "int" if dataset.item_ids.original.dtype.kind in "iu" else "str"
    ids = _parse_ids(_column(tdf, text_path, id_col), text_path, tlines,
                     str(id_col), kind)
    return texts_lib.attach_item_texts(
        dataset, ids, _text_values(_column(tdf, text_path, text_col)),
        source=str(text_path), lines=tlines)
  if item_text_col is not None:
    values = _text_values(_column(df, path, item_text_col))  # [n]
    has = values != ""  # [n]
    _, first = np.unique(train.items[has], return_index=True)
    return texts_lib.attach_item_texts(
        dataset, train.items[has][first], values[has][first],
        source=f"{path} (column {item_text_col!r})")
  return dataset


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


def read_recbole_items(path: PathLike, item_field: str = "item_id",
                       text_fields: Optional[Sequence[str]] = None
                       ) -> tuple[np.ndarray, list[str], np.ndarray]:
  """Item texts of a RecBole atomic `.item` file (tab separated, typed header).

  Args:
    path: the `.item` file.
    item_field: the token field holding the item id.
    text_fields: fields joined into the text: the first as it is, the
      others as '. field name: value' (empty values left out). Default: every
      token / token_seq field other than the id, in file order.

  Returns:
    (item ids [k] (int if all are integers, else str), texts [k], 1-based
    line of each item [k]).
  """
  path = require_file(path, "a RecBole .item file")
  fields = _recbole_header(path)
  names = [n for n, _ in fields]
  if item_field not in names:
    raise DataError(f"{path}:1: missing field {item_field!r} in header {names}")
  if text_fields is None:
    text_fields = [n for n, kind in fields
                   if n != item_field and kind in ("token", "token_seq")]
  text_fields = [text_fields] if isinstance(text_fields, str) else list(
      text_fields)
  unknown = [f for f in text_fields if f not in names]
  if unknown or not text_fields:
    raise DataError(f"{path}:1: text_fields {text_fields}: expected one or "
                    f"more fields of the header {names}")
  df = _read_csv_strings(path, path, "\t", True, "utf-8", csv.QUOTE_NONE)
  if df.shape[1] != len(names):
    raise DataError(f"{path}: expected {len(names)} columns {names}, found "
                    f"{df.shape[1]}")
  df.columns = names
  lines = np.arange(len(df)) + 2
  blank = (df.apply(lambda c: c.str.strip()) == "").all(axis=1).to_numpy()
  df, lines = df[~blank], lines[~blank]
  if len(df) == 0:
    raise DataError(f"{path}: no item rows")
  ids = _parse_ids(df[item_field], path, lines, item_field, "auto")
  texts = texts_lib.compose_texts(
      df[text_fields[0]], **{f: df[f] for f in text_fields[1:]})
  return ids, texts, lines


def load_recbole(path: PathLike, name: Optional[str] = None,
                 text_fields: Optional[Sequence[str]] = None, **fields
                 ) -> Dataset:
  """Loads RecBole atomic files.

  Args:
    path: a `.inter` file (all rows -> train), or a folder with either one
      `<name>.inter` file or benchmark splits `<name>.train.inter`,
      `<name>.test.inter` and optionally `<name>.valid.inter`. A
      `<name>.item` file beside them gives the item texts.
    name: dataset name (default: the file/folder name).
    text_fields: `.item` fields that make the text (see
      `read_recbole_items`; default all token / token_seq fields but the id).
    **fields: user_field / item_field / rating_field / timestamp_field.

  Returns:
    A remapped Dataset (ids from train), with `item_texts` aligned with its
    items when the `.item` file exists ('' for items it lacks).
  """
  path = Path(path)
  if path.is_dir():
    trains = sorted(path.glob("*.train.inter"))
    if trains:
      stem = trains[0].name[:-len(".train.inter")]
      read = lambda s: read_recbole(path / f"{stem}.{s}.inter", **fields)
      valid = (read("valid") if (path / f"{stem}.valid.inter").is_file()
               else None)
      dataset = dataset_from_raw(name or stem, read("train"),
                                 test=read("test"), valid=valid)
      return _recbole_texts(dataset, path / f"{stem}.item", text_fields,
                            fields.get("item_field", "item_id"))
    inters = sorted(path.glob("*.inter"))
    if len(inters) != 1:
      raise DataError(f"{path}: expected exactly one .inter file or "
                      f"*.train.inter/*.test.inter splits, found "
                      f"{[p.name for p in inters]}")
    path = inters[0]
  raw = read_recbole(path, **fields)
  stem = path.name.split(".")[0]
  dataset = dataset_from_raw(name or stem, raw)
  return _recbole_texts(dataset, path.parent / f"{stem}.item", text_fields,
                        fields.get("item_field", "item_id"))


def _recbole_texts(dataset: Dataset, item_path: Path,
                   text_fields: Optional[Sequence[str]],
                   item_field: str) -> Dataset:
  if not item_path.is_file():
    if text_fields is not None:
      raise DataError(f"{item_path}: file not found (expected a RecBole "
                      f".item file with fields {list(text_fields)})")
    return dataset
  ids, texts, lines = read_recbole_items(item_path, item_field, text_fields)
  return texts_lib.attach_item_texts(dataset, ids, texts,
                                     source=str(item_path), lines=lines)

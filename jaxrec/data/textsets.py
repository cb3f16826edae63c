"""Text-attributed datasets: MovieLens with item texts, ml-latest-small, HetRec.

  * `load_movielens`: ml-100k `u.data`, ml-1m `ratings.dat` or ml-latest
    `ratings.csv`, with item texts from the metadata beside the ratings
    (`u.item` + `u.genre`, `movies.dat`, `movies.csv` + `tags.csv`):
    'Title (year). Genres: A, B. Tags: t1, t2'.
  * `load_ml_latest_small`: GroupLens ml-latest-small as implicit feedback
    (ratings >= `min_rating`), split per user 80/10/10.
  * `load_hetrec_lastfm`: HetRec 2011 Last.fm 2K (every listened artist is a
    positive, the listen count kept as `ratings`; text 'Artist. Tags: ...'),
    split per user 80/10/10.

Tag lists are the item's distinct tags (case-insensitive), most frequent
first; `Dataset.item_num_tags` counts them (the metadata-popularity proxy of
cold-start studies). Metadata files are split into lines on '\\n' ONLY (names
may contain '\\r', '\\x0b', '\\u2028', ...; such runs become one space in
the texts). Bad input raises `DataError` naming the file, line and field.
Re-exported by `jaxrec.data.loaders`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from jaxrec.data import preprocess, splits
from jaxrec.data import texts as texts_lib
from jaxrec.data.dataset import DataError, Dataset
from jaxrec.data.files import (PathLike, dataset_from_raw, require_dir,
                               require_file)
from jaxrec.data.preprocess import RawInteractions
from jaxrec.data.tokens import _line_error, _tokenize
# Package-private helpers of the table readers (same validation and messages).
from jaxrec.data.tables import (_DEFAULT_NAMES, _parse_ids, _read_csv_strings,
                                read_table)

# ml-100k genre flags, in u.item column order (u.genre, when present, wins).
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's",
                 "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
                 "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
                 "Sci-Fi", "Thriller", "War", "Western")
_NO_GENRE = ("unknown", "(no genres listed)")
_RATINGS_FILES = ("ratings.dat", "u.data", "ratings.csv")
_HETREC_FILES = ("user_artists", "artists", "tags", "user_taggedartists")


def read_fields(path: PathLike, names: Sequence[str], sep: str = "\t",
                encoding: str = "utf-8", header: bool = False
                ) -> tuple[pd.DataFrame, np.ndarray]:
  """Reads a delimited text file, splitting lines on '\\n' ONLY.

  No quoting: every character but `sep` and '\\n' belongs to a field (a
  trailing '\\r' is dropped). Blank lines are skipped.

  Args:
    path: the file.
    names: the field names; every line must have exactly this many fields.
    sep: field separator (may be several characters, e.g. '::').
    encoding: text encoding (e.g. 'latin-1').
    header: the first line must equal the names joined by `sep`.

  Returns:
    (str cells with columns `names`, 1-based line of each row).
  """
  path = require_file(path, f"a {sep!r}-separated file with fields "
                      f"{list(names)}")
  data = path.read_bytes()
  try:
    text = data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise DataError(f"{path}:{line}: expected {encoding} text") from e
  rows = pd.Series(text.removeprefix("\ufeff").split("\n"), dtype=object)
  rows = rows.str.removesuffix("\r")
  lines = np.arange(1, len(rows) + 1)
  expected = sep.join(names)
  if header:
    if rows.iloc[0].strip() != expected:
      raise DataError(f"{path}:1: expected the header {expected!r}, got "
                      f"{rows.iloc[0][:80]!r}")
    rows, lines = rows.iloc[1:], lines[1:]
  blank = (rows.str.strip() == "").to_numpy(bool)
  rows, lines = rows[~blank].reset_index(drop=True), lines[~blank]
  if len(rows) == 0:
    raise DataError(f"{path}: no data rows (expected lines {expected!r})")
  count = rows.str.count(re.escape(sep)).to_numpy() + 1  # fields per line
  bad = np.flatnonzero(count != len(names))
  if len(bad):
    k = int(bad[0])
    raise DataError(f"{path}:{int(lines[k])}: expected {len(names)} fields "
                    f"{expected!r} separated by {sep!r}, got {count[k]}")
  df = rows.str.split(sep, n=len(names) - 1, regex=False, expand=True)
  df.columns = list(names)
  return df, lines


def read_int_rows(path: PathLike, names: Sequence[str]
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Reads a tab/space-separated table of non-negative integers, fast.

  The first line must be the header `names` (joined by tabs); blank lines
  are skipped. Parsed with `loaders`' vectorised byte tokenizer.

  Args:
    path: the file.
    names: the column names.

  Returns:
    (values int64 [n, len(names)], 1-based line of each row [n]).
  """
  path = require_file(path, f"a tab-separated table {list(names)}")
  data = path.read_bytes()
  end = data.find(b"\n")
  head = data[:end if end >= 0 else len(data)]
  if head.decode("utf-8", "replace").strip() != "\t".join(names):
    raise DataError(f"{path}:1: expected the header {chr(9).join(names)!r}, "
                    f"got {head[:80].decode('utf-8', 'replace')!r}")
  tok = _tokenize(path, b" " * len(head) + data[len(head):])  # same offsets
  if len(tok.values) == 0:
    raise DataError(f"{path}: no data rows (expected {list(names)})")
  per_line = np.bincount(tok.lines)  # tokens of each 0-based line
  bad = np.flatnonzero((per_line != 0) & (per_line != len(names)))
  if len(bad):
    raise _line_error(path, data, tok.newlines, int(bad[0]),
                      f"{len(names)} integer fields {list(names)}")
  values = tok.values.reshape(-1, len(names))  # [n, k]
  return values, np.flatnonzero(per_line) + 1


def _ids(df: pd.DataFrame, field: str, path: Path, lines: np.ndarray
         ) -> np.ndarray:
  return _parse_ids(df[field], path, lines, field, "int")


def _genres_from_pipes(genres: pd.Series) -> pd.Series:
  """'A|B' -> 'A, B'; the no-genre markers -> ''."""
  out = genres.str.strip().str.replace("|", ", ", regex=False)
  return out.where(~genres.str.strip().isin(_NO_GENRE), "")


def _ml100k_items(d: Path) -> tuple[np.ndarray, pd.Series, pd.Series,
                                    np.ndarray, Path]:
  path = d / "u.item"
  flag_names = [f"genre {k}" for k in range(len(ML100K_GENRES))]
  df, lines = read_fields(path, ["movie id", "title", "release date",
                                 "video release date", "IMDb URL",
                                 *flag_names], sep="|", encoding="latin-1")
  genres = np.asarray(ML100K_GENRES, dtype=object)
  if (d / "u.genre").is_file():
    g, glines = read_fields(d / "u.genre", ["genre", "index"], sep="|",
                            encoding="latin-1")
    index = _ids(g, "index", d / "u.genre", glines)
    if sorted(index.tolist()) != list(range(len(genres))):
      raise DataError(f"{d / 'u.genre'}: expected {len(genres)} genres with "
                      f"indices 0..{len(genres) - 1}, got {index.tolist()}")
    genres = g["genre"].to_numpy(dtype=object)[np.argsort(index)]
  flags = df[flag_names].to_numpy(dtype=str)  # [k, 19]
  bad = ~np.isin(flags, ("0", "1"))
  if bad.any():
    r, c = np.argwhere(bad)[0]
    raise DataError(f"{path}:{int(lines[r])}: field 'genre {c}' "
                    f"({genres[c]}): expected 0 or 1, got {flags[r, c]!r}")
  shown = (flags == "1") & ~np.isin(genres, _NO_GENRE)[None]  # [k, 19]
  names = pd.Series([", ".join(genres[f]) for f in shown])  # one per movie
  return _ids(df, "movie id", path, lines), df["title"], names, lines, path


def _movielens_tags(path: Path, max_tags: int) -> texts_lib.ItemTags:
  df = _read_csv_strings(path, path, ",", True, "utf-8")
  lines = np.arange(len(df)) + 2
  for col in ("movieId", "tag"):
    if col not in df.columns:
      raise DataError(f"{path}: missing column {col!r}; expected the header "
                      f"userId,movieId,tag,timestamp")
  blank = (df["movieId"].str.strip() == "").to_numpy() & (
      df["tag"].str.strip() == "").to_numpy()
  df, lines = df[~blank], lines[~blank]
  return texts_lib.tags_per_item(_ids(df, "movieId", path, lines),
                                 df["tag"].tolist(), max_tags)


def movielens_item_texts(ratings_path: PathLike, max_tags: int = 20
                         ) -> Optional[dict]:
  """Item texts from the MovieLens metadata beside a ratings file.

  Args:
    ratings_path: `u.data` (reads `u.item`, `u.genre`), `ratings.dat`
      (`movies.dat`) or `ratings.csv` (`movies.csv`, `tags.csv`).
    max_tags: at most this many tags per text.

  Returns:
    None when the metadata file is absent, else the keyword arguments of
    `texts.attach_item_texts` (ids, texts, num_tags (None without tags),
    source, lines).
  """
  ratings_path = Path(ratings_path)
  d = ratings_path.parent
  meta = {"u.data": "u.item", "ratings.dat": "movies.dat",
          "ratings.csv": "movies.csv"}.get(ratings_path.name)
  if meta is None or not (d / meta).is_file():
    return None
  path = d / meta
  if meta == "u.item":
    ids, title, genres, lines, path = _ml100k_items(d)
  elif meta == "movies.dat":
    df, lines = read_fields(path, ["movieId", "title", "genres"], sep="::",
                            encoding="latin-1")
    ids, title, genres = (_ids(df, "movieId", path, lines), df["title"],
                          _genres_from_pipes(df["genres"]))
  else:
    df = _read_csv_strings(path, path, ",", True, "utf-8")
    lines = np.arange(len(df)) + 2
    for col in ("movieId", "title", "genres"):
      if col not in df.columns:
        raise DataError(f"{path}: missing column {col!r}; expected the header "
                        f"movieId,title,genres")
    blank = (df["movieId"].str.strip() == "").to_numpy()
    df, lines = df[~blank].reset_index(drop=True), lines[~blank]
    ids, title, genres = (_ids(df, "movieId", path, lines), df["title"],
                          _genres_from_pipes(df["genres"]))
  sections = {"Genres": genres.reset_index(drop=True)}
  num_tags = None
  if meta == "movies.csv" and (d / "tags.csv").is_file():
    tags = _movielens_tags(d / "tags.csv", max_tags)
    pos, known = preprocess.lookup_ids(tags.items, ids)  # [k] each
    tag_texts = np.asarray(tags.texts, dtype=object)
    sections["Tags"] = pd.Series(np.where(
        known, tag_texts[pos] if len(tag_texts) else "", ""))
    num_tags = np.where(known, tags.num_tags[pos] if len(tags.items) else 0,
                        0)
  texts = texts_lib.compose_texts(title.reset_index(drop=True), **sections)
  return dict(ids=ids, texts=texts, num_tags=num_tags, source=str(path),
              lines=lines)


def _filter(raw: RawInteractions, k_core: int, source: str
            ) -> RawInteractions:
  """Deduplicated rows, k-core filtered (k_core > 1) with a warning."""
  if k_core < 0 or int(k_core) != k_core:
    raise DataError(f"{source}: k_core: expected an integer >= 0, got "
                    f"{k_core!r}")
  raw = preprocess.deduplicate(raw, source)
  if k_core <= 1:
    return raw
  kept = preprocess.kcore_filter(raw, int(k_core), int(k_core))
  if len(kept) == 0:
    raise DataError(f"{source}: k_core={k_core} leaves no interaction")
  if len(kept) < len(raw):
    preprocess.warn(f"{source}: the {k_core}-core filter dropped "
                    f"{len(raw) - len(kept)} of {len(raw)} interactions")
  return kept


def load_movielens(path: PathLike, name: Optional[str] = None,
                   min_rating: Optional[float] = None, with_text: bool = True,
                   max_tags: int = 20, k_core: int = 0) -> Dataset:
  """Loads MovieLens ratings: ml-100k `u.data`, ml-1m `ratings.dat` or
  ml-latest `ratings.csv` (a file or a folder containing one of them).

  Args:
    path: the ratings file or its folder.
    name: dataset name (default: the folder name).
    min_rating: keep only ratings >= this (implicit feedback); None keeps
      every rating.
    with_text: attach item texts when the metadata file is beside the
      ratings (`movielens_item_texts`); items it lacks get '' (warned).
    max_tags: at most this many tags per item text (ml-latest `tags.csv`).
    k_core: > 1 keeps the k-core (users and items with >= k_core ratings).

  Returns:
    A Dataset with all kept ratings in `train` (split it with
    `jaxrec.data.splits`), ratings and timestamps kept, contiguous ids with
    IdMaps to the MovieLens ids, `item_texts` (and `item_num_tags` with
    tags.csv) when the metadata exists.
  """
  path = Path(path)
  if path.is_dir():
    found = [path / f for f in _RATINGS_FILES if (path / f).is_file()]
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
  if min_rating is not None:
    keep = raw.ratings >= float(min_rating)  # [n]
    if not keep.any():
      raise DataError(f"{path}: field 'rating': no rating >= min_rating="
                      f"{min_rating} (max {float(raw.ratings.max())})")
    raw = raw.subset(keep)
  raw = _filter(raw, k_core, str(path))
  dataset = dataset_from_raw(name or path.parent.name, raw)
  meta = movielens_item_texts(path, max_tags) if with_text else None
  return (texts_lib.attach_item_texts(dataset, **meta) if meta is not None
          else dataset)


def _split(dataset: Dataset, split: str, valid_ratio: float,
           test_ratio: float, seed: int) -> Dataset:
  """Per-user split of all interactions (each user keeps >= 1 in train)."""
  return splits.split_dataset(dataset, split, test_ratio, valid_ratio, seed)


def load_ml_latest_small(directory: PathLike, *, min_rating: float = 4.0,
                         k_core: int = 0, max_tags: int = 20,
                         valid_ratio: float = 0.1, test_ratio: float = 0.1,
                         split: str = "random", seed: int = 0,
                         name: str = "ml_latest_small") -> Dataset:
  """Loads GroupLens ml-latest-small as an implicit-feedback dataset.

  Ratings >= `min_rating` are the positives; movies without a positive
  are dropped (never evaluable). Item texts: 'Title (year). Genres: A, B.
  Tags: t1, t2' (`movielens_item_texts`).

  Args:
    directory: the folder with ratings.csv, movies.csv and tags.csv.
    min_rating: smallest rating counted as a positive.
    k_core: > 1 keeps the k-core of the positives.
    max_tags: at most this many tags per item text.
    valid_ratio / test_ratio: expected fraction of each user's positives
      held out (each user keeps >= 1 train positive).
    split: 'random' (per user), 'temporal' or 'leave_one_out'
      (`splits.split_dataset`).
    seed: split seed.
    name: dataset name.

  Returns:
    The Dataset (ratings, timestamps, texts, item_num_tags, IdMaps to
    userId / movieId).
  """
  d = require_dir(directory, "the ml-latest-small folder")
  for f in ("ratings.csv", "movies.csv", "tags.csv"):
    require_file(d / f, "a file of MovieLens ml-latest-small")
  dataset = load_movielens(d / "ratings.csv", name=name,
                           min_rating=min_rating, max_tags=max_tags,
                           k_core=k_core)
  return _split(dataset, split, valid_ratio, test_ratio, seed)


def _hetrec_tags(d: Path, artists: np.ndarray, max_tags: int
                 ) -> tuple[pd.Series, np.ndarray]:
  """Tag text and distinct tag count of each artist id. # [k] each"""
  tag_path = d / "tags.dat"
  tags, tlines = read_fields(tag_path, ["tagID", "tagValue"],
                             encoding="latin-1", header=True)
  tag_ids = _ids(tags, "tagID", tag_path, tlines)
  order = np.argsort(tag_ids, kind="stable")
  repeat = np.flatnonzero(tag_ids[order][1:] == tag_ids[order][:-1])
  if len(repeat):
    k = int(order[repeat[0] + 1])
    raise DataError(f"{tag_path}:{int(tlines[k])}: field 'tagID': expected "
                    f"unique ids, {tag_ids[k]} repeats")
  path = d / "user_taggedartists.dat"
  rows, lines = read_int_rows(path, ["userID", "artistID", "tagID", "day",
                                     "month", "year"])  # [n, 6], [n]
  pos, known = preprocess.lookup_ids(tag_ids[order], rows[:, 2])  # [n] each
  if not known.all():
    k = int(np.argmax(~known))
    raise DataError(f"{path}:{int(lines[k])}: field 'tagID': expected an id "
                    f"of tags.dat, got {rows[k, 2]}")
  values = tags["tagValue"].to_numpy(dtype=object)[order][pos]  # [n]
  per = texts_lib.tags_per_item(rows[:, 1], values, max_tags)
  at, has = preprocess.lookup_ids(per.items, artists)  # [k] each
  text = np.asarray(per.texts, dtype=object)
  return (pd.Series(np.where(has, text[at] if len(text) else "", "")),
          np.where(has, per.num_tags[at] if len(per.items) else 0, 0))


def load_hetrec_lastfm(directory: PathLike, *, k_core: int = 0,
                       max_tags: int = 20, valid_ratio: float = 0.1,
                       test_ratio: float = 0.1, split: str = "random",
                       seed: int = 0, name: str = "hetrec_lastfm") -> Dataset:
  """Loads HetRec 2011 Last.fm 2K (1,892 users, 17,632 artists).

  Every (user, artist) pair of user_artists.dat is a positive; its listen
  count is kept as `ratings`. Item texts: 'Artist name. Tags: t1, t2'
  (tags of user_taggedartists.dat joined with tags.dat, ISO-8859-1).

  Args:
    directory: folder with user_artists.dat, artists.dat, tags.dat and
      user_taggedartists.dat (tab separated, with header rows).
    k_core: > 1 keeps the k-core of the positives.
    max_tags: at most this many tags per item text.
    valid_ratio / test_ratio: expected fraction of each user's positives
      held out (each user keeps >= 1 train positive).
    split: 'random' (per user) or 'leave_one_out' (`splits.split_dataset`).
    seed: split seed.
    name: dataset name.

  Returns:
    The Dataset (listen counts, texts, item_num_tags, IdMaps to userID /
    artistID).
  """
  d = require_dir(directory, "the HetRec Last.fm 2K folder")
  for f in _HETREC_FILES:
    require_file(d / f"{f}.dat", "a file of HetRec 2011 Last.fm 2K")
  path = d / "user_artists.dat"
  raw = read_table(path, sep="\t", user_col="userID", item_col="artistID",
                   rating_col="weight")
  dataset = dataset_from_raw(name, _filter(raw, k_core, str(path)))
  art_path = d / "artists.dat"
  artists, lines = read_fields(art_path, ["id", "name", "url", "pictureURL"],
                               header=True)
  ids = _ids(artists, "id", art_path, lines)
  tag_text, num_tags = _hetrec_tags(d, ids, max_tags)
  texts = texts_lib.compose_texts(artists["name"], Tags=tag_text)
  dataset = texts_lib.attach_item_texts(dataset, ids, texts, num_tags,
                                        source=str(art_path), lines=lines)
  return _split(dataset, split, valid_ratio, test_ratio, seed)


__all__ = ["ML100K_GENRES", "load_hetrec_lastfm", "load_ml_latest_small",
           "load_movielens", "movielens_item_texts", "read_fields",
           "read_int_rows"]

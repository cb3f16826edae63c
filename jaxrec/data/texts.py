"""Item and user texts: tag lists, item descriptions and user histories.

Item texts are built by the loaders (`jaxrec.data.textsets`,
`jaxrec.data.tables`) and attached to a `Dataset` aligned with its contiguous
item ids (`attach_item_texts`). User texts for language-model features are
built ONLY from a user's TRAIN interactions (`user_history_texts`), so no
validation or test item can leak into a user's representation;
`input_pipeline.build_graph` calls it on the dataset it is given
(`config.graph.user_text = 'history'`), so a refit or cold-start dataset
uses its own train split.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from jaxrec.data import preprocess
from jaxrec.data.dataset import DataError, Dataset, Interactions

HISTORY_ORDERS = ("auto", "recent", "rating", "given")
# ". Genres: ", ". Tags: ": the start of a labelled section of an item text.
_SECTION = re.compile(r"\.\s+[A-Z][a-z]+:\s")
# A sentence end followed by a capital letter ("... band. They ...").
_SENTENCE = re.compile(r"[.!?]\s+(?=[A-Z])")


def clean_text(values: pd.Series) -> pd.Series:
  """Collapses every whitespace run (\\r, \\x0b, \\u2028, ...) to one space."""
  return values.astype(str).str.replace(r"\s+", " ", regex=True).str.strip()


def compose_texts(title: pd.Series, max_chars: int = 0,
                  **sections: pd.Series) -> list[str]:
  """'Title. Label: value. Label: value' per row; empty sections are left out.

  Args:
    title: first sentence of each text (a title or name). # [k]
    max_chars: > 0 truncates each text to at most this many characters.
    **sections: label -> value per row (e.g. Genres='Action, Drama'); the
      label is the keyword with underscores as spaces. # [k] each

  Returns:
    The texts, a list of k str.
  """
  text = clean_text(pd.Series(np.asarray(title, dtype=object)))
  for label, values in sections.items():
    values = clean_text(pd.Series(np.asarray(values, dtype=object)))
    label = label.replace("_", " ")
    joined = (text + ". ").where(text != "", "") + f"{label}: " + values
    text = text.where(values == "", joined)
  if max_chars > 0:
    text = text.str.slice(0, max_chars)
  return text.tolist()


@dataclasses.dataclass(frozen=True)
class ItemTags:
  """Tags aggregated per item.

  Attributes:
    items: original item ids with at least one tag (sorted). # [k]
    texts: each item's most frequent tags, joined by ', '. # [k]
    num_tags: number of distinct tags of each item (case-insensitive). # [k]
  """
  items: np.ndarray
  texts: list[str]
  num_tags: np.ndarray


def tags_per_item(items: np.ndarray, tags: Sequence[str],
                  max_tags: int = 20) -> ItemTags:
  """Distinct tags of each item, most frequent first.

  Tags are compared case-insensitively after trimming and collapsing spaces
  (each distinct tag shows its most frequent spelling); ties in frequency
  keep the order of first appearance. Empty tags are ignored.

  Args:
    items: original item id of each tag assignment. # [n]
    tags: tag text of each assignment. # [n]
    max_tags: at most this many tags in each item's text (0 = all).

  Returns:
    An `ItemTags` (num_tags counts all distinct tags, not only the shown).
  """
  items = np.asarray(items)
  uniq_items, item_code = np.unique(items, return_inverse=True)  # [m], [n]
  item_code = item_code.reshape(-1)
  raw_code, raw = pd.factorize(pd.Series(list(tags), dtype=object).fillna(
      ""))  # [n], [r]: clean each distinct raw tag once
  clean_code, spellings = pd.factorize(clean_text(pd.Series(raw)))  # [r], [s]
  spell_code = clean_code[raw_code]  # [n] distinct cleaned spelling per row
  key_of_spell, _ = pd.factorize(pd.Series(spellings).str.casefold())  # [s]
  ok = np.asarray(spellings, dtype=object)[spell_code] != ""  # [n]
  item_code, spell_code = item_code[ok], spell_code[ok]
  if len(item_code) == 0:
    return ItemTags(uniq_items[:0], [], np.zeros(0, np.int64))
  num_keys, num_spell = int(key_of_spell.max()) + 1, len(spellings)
  pair = item_code * num_keys + key_of_spell[spell_code]  # [n'] (item, tag)
  pairs, first, pair_of_row, count = np.unique(
      pair, return_index=True, return_inverse=True, return_counts=True)
  # Shown spelling of each (item, tag): most frequent, then first seen.
  variant = pair_of_row.reshape(-1) * num_spell + spell_code  # [n']
  variants, v_first, v_count = np.unique(variant, return_index=True,
                                         return_counts=True)
  v_pair = variants // num_spell
  best = np.lexsort((v_first, -v_count, v_pair))
  lead = np.concatenate([[True], v_pair[best][1:] != v_pair[best][:-1]])
  shown_spell = (variants % num_spell)[best][lead]  # [p], one per pair
  # Tags of each item: most frequent first, ties by first appearance.
  item_of_pair = pairs // num_keys  # [p]
  order = np.lexsort((first, -count, item_of_pair))
  item_sorted = item_of_pair[order]
  num_tags = np.bincount(item_sorted)  # [m'] distinct tags per item code
  start = np.cumsum(num_tags) - num_tags
  rank = np.arange(len(order)) - start[item_sorted]
  keep = rank < max_tags if max_tags > 0 else np.ones(len(order), bool)
  words = np.asarray(spellings, dtype=object)[shown_spell[order][keep]]
  has = np.flatnonzero(num_tags)  # item codes with a tag
  shown = np.minimum(num_tags, max_tags) if max_tags > 0 else num_tags
  return ItemTags(uniq_items[has], _join_groups(words, shown[has], ", "),
                  num_tags[has].astype(np.int64))


def _join_groups(words: np.ndarray, sizes: np.ndarray, sep: str
                 ) -> list[str]:
  """`sep`-joined consecutive runs of `sizes[k]` words, one str per run."""
  words = words.tolist()
  ends = np.cumsum(sizes).tolist()
  starts = [0] + ends[:-1]
  return [sep.join(words[a:b]) for a, b in zip(starts, ends)]  # per group


def attach_item_texts(dataset: Dataset, ids: np.ndarray, texts: Sequence[str],
                      num_tags: Optional[np.ndarray] = None,
                      source: str = "",
                      lines: Optional[np.ndarray] = None) -> Dataset:
  """The dataset with item texts looked up by ORIGINAL item id.

  Args:
    dataset: a Dataset with `item_ids` (original ids of its items).
    ids: original item id of each text (same kind of id as `item_ids`). # [k]
    texts: the text of each id. # [k]
    num_tags: optional distinct-tag count of each id. # [k]
    source: file the texts came from (for messages).
    lines: optional 1-based source line of each id (for messages). # [k]

  Returns:
    A new Dataset with `item_texts` ('' for items without a text, counted
    in a `DataWarning`) and `item_num_tags` (0 for those) when `num_tags`.

  Raises:
    DataError: a repeated id, or a dataset without `item_ids`.
  """
  if dataset.item_ids is None:
    raise DataError(f"{dataset.name}: item texts from {source} need item_ids "
                    f"(original ids) to align with")
  original = dataset.item_ids.original
  ids = np.asarray(ids)
  if original.dtype.kind in "iu" and ids.dtype.kind not in "iu":
    ids = ids.astype(str)
    original = original.astype(str)
  elif original.dtype.kind not in "iu":
    ids, original = ids.astype(str), original.astype(str)
  order = np.argsort(ids, kind="stable")
  sorted_ids = ids[order]
  repeat = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
  if len(repeat):
    k = int(order[repeat[0] + 1])
    where = f"{source}:{int(lines[k])}" if lines is not None else source
    raise DataError(f"{where}: item id {ids[k]!r}: expected one text per "
                    f"item, found a repeated id")
  pos, known = preprocess.lookup_ids(sorted_ids, original)  # [I] each
  texts = np.asarray(list(texts), dtype=object)[order]
  item_texts = np.where(known, texts[pos] if len(texts) else "", "")
  missing = int((~known).sum())
  if missing:
    preprocess.warn(f"{source or dataset.name}: {missing} of "
                    f"{dataset.num_items} items have no text (using '')")
  side = {"item_texts": [str(t) for t in item_texts]}
  if num_tags is not None:
    counts = np.asarray(num_tags, np.int64)[order]
    side["item_num_tags"] = np.where(
        known, counts[pos] if len(counts) else 0, 0).astype(np.int64)
  return dataclasses.replace(dataset, **side)


def short_item_texts(item_texts: Sequence[str], max_chars: int = 80
                     ) -> list[str]:
  """The title / first sentence of each item text, at most `max_chars`.

  'Toy Story (1995). Genres: ...' -> 'Toy Story (1995)': a text is cut at
  its first labelled section ('. Word: '), else at the end of its first
  sentence of 20+ characters, then truncated at a word boundary with '...'.

  Args:
    item_texts: full item texts.
    max_chars: maximum length of a short text (> 3).

  Returns:
    The short texts (whitespace runs collapsed to single spaces).
  """
  def short(text: str) -> str:
    m = _SECTION.search(text)
    if m:
      text = text[:m.start()]
    else:
      for m in _SENTENCE.finditer(text):
        if m.start() >= 20:
          text = text[:m.start() + 1]
          break
    if len(text) > max_chars:
      cut = text[:max_chars - 3]
      space = cut.rfind(" ")
      text = (cut[:space] if space > max_chars // 2 else cut) + "..."
    return text
  cleaned = clean_text(pd.Series(list(item_texts), dtype=object))
  return [short(t) for t in cleaned.tolist()]  # one call per item


def user_history_texts(train: Interactions, num_users: int,
                       item_texts: Sequence[str], max_items: int = 20,
                       order: str = "auto",
                       prefix: str = "Interacted with: ", sep: str = "; ",
                       max_chars: int = 80) -> list[str]:
  """One text per user listing the items of its TRAIN interactions.

  'Interacted with: Toy Story (1995); Heat (1995); ...' from the short item
  texts (`short_item_texts`). Give only the train split: the texts of
  validation/test items must never reach a user's features.

  Args:
    train: the train interactions (contiguous ids).
    num_users: number of users (texts are returned for all of them).
    item_texts: text of every item (index = item id). # [num_items]
    max_items: at most this many distinct items per user (0 = all).
    order: which items come first: 'recent' (latest timestamp), 'rating'
      (highest rating, e.g. listen count), 'given' (row order), or 'auto'
      (recent if timestamps exist, else rating if ratings exist, else
      given). Ties keep the row order.
    prefix: text before the list.
    sep: separator between items.
    max_chars: maximum length of each item's short text.

  Returns:
    num_users texts; '' for a user without train interactions.

  Raises:
    DataError: an item id without text, or an unusable `order`.
  """
  if order not in HISTORY_ORDERS:
    raise DataError(f"user_history_texts: unknown order {order!r}; expected "
                    f"one of {list(HISTORY_ORDERS)}")
  if order == "auto":
    order = ("recent" if train.timestamps is not None else
             "rating" if train.ratings is not None else "given")
  n = len(train)
  num_items = len(item_texts)
  if n and (train.items.max() >= num_items or train.users.max() >= num_users):
    raise DataError(f"user_history_texts: item_texts has {num_items} texts and "
                    f"num_users is {num_users}, but train has item id "
                    f"{train.items.max()} / user id {train.users.max()}")
  key = {"recent": train.timestamps, "rating": train.ratings,
         "given": np.zeros(n)}[order]
  if key is None:
    raise DataError(f"user_history_texts: order={order!r} needs train."
                    f"{'timestamps' if order == 'recent' else 'ratings'}")
  rows = np.lexsort((np.arange(n), -np.asarray(key, np.float64),
                     train.users))  # by user, best first, then row order
  users = train.users[rows].astype(np.int64)  # [n]
  items = train.items[rows].astype(np.int64)  # [n]
  _, first = np.unique(users * max(num_items, 1) + items, return_index=True)
  keep = np.zeros(n, bool)
  keep[first] = True  # one row per distinct (user, item) pair
  users, items = users[keep], items[keep]
  if max_items > 0:
    rank = _rank_in_groups(users)  # [n'] 0 = the user's first item
    users, items = users[rank < max_items], items[rank < max_items]
  short = np.asarray(short_item_texts(item_texts, max_chars), dtype=object)
  names = short[items]  # [m]
  counts = np.bincount(users, minlength=num_users)  # [U]
  lists = _join_groups(names, counts, sep)  # one str per user
  return [prefix + t if c else "" for t, c in zip(lists, counts.tolist())]


def _rank_in_groups(users: np.ndarray) -> np.ndarray:
  """Position of each row within its run of equal (grouped) users. # [n]"""
  if len(users) == 0:
    return np.zeros(0, np.int64)
  starts = np.flatnonzero(np.concatenate([[True], users[1:] != users[:-1]]))
  lengths = np.diff(np.append(starts, len(users)))
  return np.arange(len(users)) - np.repeat(starts, lengths)


__all__ = ["HISTORY_ORDERS", "ItemTags", "attach_item_texts", "clean_text",
           "compose_texts", "short_item_texts", "tags_per_item",
           "user_history_texts"]

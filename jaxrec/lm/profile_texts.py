"""RLMRec-style profile prompts and the read side of the profile store.

RLMRec asks a language model, for every item, which kinds of users would
enjoy it (from its title, categories and description) and, for every user,
which kinds of items the user enjoys (from the items the user interacted
with). `item_messages` / `user_messages` build those chats, in plain prose
(RLMRec asks a large API model for JSON with a reasoning field; a small local
model answers better when asked for two sentences):

  * item: the item text as the loader composes it ('Title (year). Genres:
    A, B. Tags: t1, t2') split into title / genres / tags;
  * user: `data.texts.user_history_texts` of the TRAIN split only (the titles
    of up to `HISTORY_ITEMS` train items, most recent first): validation and
    test items never reach a prompt.

A profile store is a folder written by `python -m jaxrec.profiles`:

  * `profiles.jsonl`: one JSON record per generated profile: {'kind',
    'id' (original id), 'model' (sha256 of the GGUF file), 'prompt' (sha256
    of the chat), 'profile', 'new_tokens', 'finished'};
  * `index.json`: the model, the decoding settings and the byte length of
    the JSONL's complete records (written atomically after every appended
    chunk; bytes past it are a torn append and are ignored / cut off).

Profiles are looked up by prompt hash, so a user's profile is used only for
the exact train history it was written from (another split seed or a refit
gives other prompts, reported as missing).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from typing import NamedTuple, Sequence

from jaxrec.data import texts as texts_lib
from jaxrec.data.dataset import DataError, Dataset

PROFILES_FILE = "profiles.jsonl"
INDEX_FILE = "index.json"
FORMAT = 1
HISTORY_ITEMS = 20  # train items listed in a user prompt
KINDS = ("item", "user")

ITEM_SYSTEM = (
    "You will serve as an assistant to help me summarize which types of "
    "users would enjoy a specific movie. I will give you its title, genres "
    "and the tags viewers gave it. Answer in at most two sentences of plain "
    "text, starting with 'Users who'.")
USER_SYSTEM = (
    "You will serve as an assistant to help me determine which types of "
    "movies a specific user is likely to enjoy. I will give you the titles "
    "of movies the user liked. Answer in at most two sentences of plain "
    "text, starting with 'This user'.")
_SECTIONS = re.compile(r"^(?P<title>.*?)(?:\. Genres: (?P<genres>.*?))?"
                       r"(?:\. Tags: (?P<tags>.*))?$", re.S)


def item_messages(item_text: str) -> list[dict]:
  """The chat asking who would enjoy one item.

  Args:
    item_text: 'Title (year). Genres: A, B. Tags: t1, t2' (sections
      optional).

  Returns:
    [system, user] messages.
  """
  m = _SECTIONS.match(item_text.strip())
  fields = {k: (v or "").strip() for k, v in m.groupdict().items()}
  lines = [f"Title: {fields['title']}"]
  if fields["genres"]:
    lines.append(f"Genres: {fields['genres']}")
  if fields["tags"]:
    lines.append(f"Tags: {fields['tags']}")
  return [{"role": "system", "content": ITEM_SYSTEM},
          {"role": "user", "content": "\n".join(lines)}]


def user_messages(history: str) -> list[dict]:
  """The chat asking what one user enjoys, from its train history text."""
  return [{"role": "system", "content": USER_SYSTEM},
          {"role": "user", "content": f"Movies the user liked: {history}"}]


def prompt_sha(messages: Sequence[dict]) -> str:
  """sha256 (hex) of a chat: the cache key of its profile, with the model."""
  payload = json.dumps(list(messages), sort_keys=True, ensure_ascii=False)
  return hashlib.sha256(payload.encode()).hexdigest()


def _original(id_map, n: int) -> list:
  if id_map is None:
    return list(range(n))
  return [x.item() if hasattr(x, "item") else x
          for x in id_map.to_original(list(range(n)))]


def prompts(dataset: Dataset, kind: str) -> list[tuple]:
  """(original id, chat) of every item or user of the dataset.

  Args:
    dataset: the dataset as trained (its train split gives user histories).
    kind: 'item' or 'user'.

  Returns:
    One (id, messages) per item / user in contiguous-id order; a user
    without train interactions gets messages None.
  """
  if kind not in KINDS:
    raise DataError(f"profiles: unknown kind {kind!r}; expected one of "
                    f"{list(KINDS)}")
  if dataset.item_texts is None:
    raise DataError(f"dataset {dataset.name!r} has no item texts; profiles "
                    f"need a text-attributed dataset (e.g. ml_latest_small)")
  if kind == "item":
    ids = _original(dataset.item_ids, dataset.num_items)
    return [(i, item_messages(t)) for i, t in zip(ids, dataset.item_texts)]
  history = texts_lib.user_history_texts(
      dataset.train, dataset.num_users, dataset.item_texts,
      max_items=HISTORY_ITEMS, prefix="")
  ids = _original(dataset.user_ids, dataset.num_users)
  return [(u, user_messages(h) if h else None) for u, h in zip(ids, history)]


class Store(NamedTuple):
  """The complete records of a profile folder."""
  index: dict  # index.json (empty without one)
  records: list  # the JSON records of profiles.jsonl, in file order


def read_store(directory: str) -> Store:
  """Reads a profile folder (no index.json: an empty store).

  Args:
    directory: the folder.

  Returns:
    The Store; records past the index's byte length are left out.

  Raises:
    DataError: an unreadable index or record (names the file and line).
  """
  index_path = os.path.join(directory, INDEX_FILE)
  if not os.path.isfile(index_path):
    return Store({}, [])
  try:
    with open(index_path, encoding="utf-8") as f:
      index = json.load(f)
    size = int(index["bytes"])
  except (ValueError, KeyError, TypeError) as e:
    raise DataError(f"{index_path}: expected a JSON object with 'bytes', "
                    f"'model' and 'settings' ({e})") from e
  path = os.path.join(directory, PROFILES_FILE)
  with open(path, "rb") as f:
    data = f.read(size)
  if len(data) < size:
    raise DataError(f"{path}: {len(data)} bytes, but {INDEX_FILE} records "
                    f"{size}")
  records = []
  for line, text in enumerate(data.decode("utf-8").splitlines(), 1):
    try:
      records.append(json.loads(text))
    except ValueError as e:
      raise DataError(f"{path}:{line}: expected a JSON record ({e})") from e
  return Store(index, records)


def with_profiles(dataset: Dataset, directory: str) -> Dataset:
  """The dataset with its item (and user) texts replaced by stored profiles.

  Items must all have a profile. Users get theirs when the store holds user
  profiles (then every user with train interactions must have one for THIS
  train split; users without any get ''); otherwise user texts are left
  as they were.

  Args:
    dataset: the dataset as trained.
    directory: a folder written by `python -m jaxrec.profiles`.

  Returns:
    A copy with `item_texts` (and `user_texts`) from the profiles.

  Raises:
    DataError: no store, or profiles missing for this dataset (the message
      says how to write them).
  """
  store = read_store(directory)
  if not store.records:
    raise DataError(f"{directory}: no profiles ({INDEX_FILE} missing or "
                    f"empty); write them with python -m jaxrec.profiles "
                    f"--kind item --out {directory}")
  texts = {(r["kind"], r["prompt"]): r["profile"] for r in store.records}
  kinds = {r["kind"] for r in store.records}
  out = {}
  for kind in KINDS:
    if kind == "user" and "user" not in kinds:
      continue
    rows = prompts(dataset, kind)
    got = [None if m is None else texts.get((kind, prompt_sha(m)))
           for _, m in rows]
    missing = sum(1 for (_, m), g in zip(rows, got)
                  if m is not None and g is None)
    if missing:
      scope = "train split" if kind == "user" else "catalogue"
      raise DataError(
          f"{directory}: {missing} of {len(rows)} {kind}s of dataset "
          f"{dataset.name!r} have no profile for this {scope}; "
          f"write them with python -m jaxrec.profiles --dataset "
          f"{dataset.name} --kind {kind} --out {directory} (same --seed as "
          f"the run)")
    out[f"{kind}_texts"] = [g or "" for g in got]
  return dataclasses.replace(dataset, **out)


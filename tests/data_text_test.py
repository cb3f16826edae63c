"""Tests for jaxrec.data.texts, text side information and user text features."""

import dataclasses
import re
import time

import chex
import numpy as np
import pytest

from jaxrec import config_utils
from jaxrec import input_pipeline
from jaxrec.data import coldstart
from jaxrec.data import preprocess
from jaxrec.data import registry
from jaxrec.data import splits
from jaxrec.data import texts
from jaxrec.data.dataset import DataError, Dataset, Interactions

PREFIX, SEP = "Interacted with: ", "; "
NUM_USERS, NUM_ITEMS = 8, 40


def item_text(i: int) -> str:
  return f"Item {i:04d} (2001). Genres: G{i % 3}. Tags: t{i}"


def make_dataset(seed: int = 0) -> Dataset:
  """Distinct item texts; 3-15 interactions per user with timestamps."""
  rng = np.random.default_rng(seed)
  users, items = [], []
  for u in range(NUM_USERS):  # test data set-up, a handful of users
    picked = rng.choice(NUM_ITEMS, rng.integers(3, 16), replace=False)
    users += [u] * len(picked)
    items += picked.tolist()
  n = len(users)
  inter = Interactions(np.array(users), np.array(items),
                       rng.integers(1, 6, n).astype(np.float32),
                       rng.permutation(n).astype(np.int64))
  train, valid, test = splits.random_split(inter, 0.2, 0.2, seed)
  return Dataset("texts", NUM_USERS, NUM_ITEMS, train, valid, test,
                 item_texts=[item_text(i) for i in range(NUM_ITEMS)],
                 item_num_tags=np.arange(NUM_ITEMS) % 4)


def listed(text: str) -> list[str]:
  """The item names of a history text."""
  if not text:
    return []
  assert text.startswith(PREFIX), text
  return text[len(PREFIX):].split(SEP)


def title(i: int) -> str:
  return f"Item {i:04d} (2001)"


def assert_no_held_out_text(ds: Dataset, user_texts: list[str]) -> None:
  """No user text names an item the user has only in valid/test."""
  train = {(u, i) for u, i in zip(ds.train.users.tolist(),
                                  ds.train.items.tolist())}
  for split in (ds.valid, ds.test):
    for u, i in zip(split.users.tolist(), split.items.tolist()):
      if (u, i) not in train:
        name = ds.item_texts[i][:len("Item 0000")]
        assert name not in user_texts[u], (u, i, user_texts[u])


def test_history_texts_list_exactly_the_train_items():
  ds = make_dataset()
  got = texts.user_history_texts(ds.train, ds.num_users, ds.item_texts)
  assert len(got) == NUM_USERS
  for u in range(NUM_USERS):
    train_items = ds.train.items[ds.train.users == u]
    assert sorted(listed(got[u])) == sorted(title(i) for i in train_items)
  assert_no_held_out_text(ds, got)


def test_leak_check_detects_held_out_items():
  ds = make_dataset()
  assert len(ds.valid) and len(ds.test)
  everything = Interactions.concat([ds.train, ds.valid, ds.test])
  leaked = texts.user_history_texts(everything, ds.num_users, ds.item_texts)
  with pytest.raises(AssertionError):
    assert_no_held_out_text(ds, leaked)


def test_history_order_cap_duplicates_and_empty_users():
  inter = Interactions(np.array([0, 0, 0, 0, 2]), np.array([3, 1, 2, 3, 0]),
                       np.array([1.0, 5.0, 3.0, 2.0, 1.0], np.float32),
                       np.array([10, 30, 20, 40, 5]))
  names = [item_text(i) for i in range(4)]
  recent = texts.user_history_texts(inter, 3, names)
  assert listed(recent[0]) == [title(3), title(1), title(2)]  # latest first
  assert recent[1] == ""  # no train interaction
  assert listed(recent[2]) == [title(0)]
  rated = texts.user_history_texts(inter, 3, names, order="rating")
  assert listed(rated[0]) == [title(1), title(2), title(3)]
  given = texts.user_history_texts(inter, 3, names, order="given",
                                   max_items=2)
  assert listed(given[0]) == [title(3), title(1)]
  plain = Interactions(inter.users, inter.items)  # auto -> row order
  assert texts.user_history_texts(plain, 3, names)[0] == given[0] + SEP + \
      title(2)
  with pytest.raises(DataError, match="timestamps"):
    texts.user_history_texts(plain, 3, names, order="recent")
  with pytest.raises(DataError, match="item_texts has 2 texts"):
    texts.user_history_texts(inter, 3, names[:2])


def test_short_item_texts():
  got = texts.short_item_texts([
      "Toy Story (1995). Genres: Animation. Tags: pixar",
      "Dr. Strangelove or: How I Learned to Stop Worrying (1964). Genres: X",
      "Björk. Tags: rock",
      "A band from Iceland formed in 1986. They play rock. Tags: x",
      "A band from Iceland formed in 1986. They play rock.",
      "Line\x0bbreak\u2028name", "word " * 40])
  assert got[:6] == ["Toy Story (1995)",
                     "Dr. Strangelove or: How I Learned to Stop Worrying "
                     "(1964)", "Björk",
                     "A band from Iceland formed in 1986. They play rock",
                     "A band from Iceland formed in 1986.",  # 1st sentence
                     "Line break name"]
  assert len(got[6]) <= 80 and got[6].endswith("...")


def test_tags_per_item_case_insensitive_most_frequent_first():
  tags = texts.tags_per_item(
      np.array([7, 7, 7, 7, 7, 9, 7]),
      ["Sci-Fi", "dark", "sci-fi", "SCI-FI ", "Dark", "x", "  "], max_tags=1)
  np.testing.assert_array_equal(tags.items, [7, 9])
  assert tags.texts == ["Sci-Fi", "x"]  # 3 x sci-fi beat 2 x dark
  np.testing.assert_array_equal(tags.num_tags, [2, 1])


# --------------------------------------------------------- build_graph


def fake_encoder(calls):
  """Multi-hot of the 'Item dddd' names in each text, recording the texts."""
  def encode(gcfg, values):
    values = list(values)
    calls.append(values)
    out = np.zeros((len(values), NUM_ITEMS), np.float32)
    for row, value in enumerate(values):
      for i in re.findall(r"Item (\d{4})", value):
        out[row, int(i)] = 1.0
    return out
  return encode


def text_config(user_text: str):
  config = config_utils.base_config("synthetic_small")
  config.graph.text_features = True
  config.graph.tile_nodes = 0
  config.graph.user_text = user_text
  return config


def user_features(config, ds) -> np.ndarray:
  graph = input_pipeline.build_graph(config, ds)
  return np.asarray(graph.nodes["text"])[:ds.num_users]  # [U, d]


def train_multi_hot(ds, original=None) -> np.ndarray:
  """Users x ORIGINAL items (the ids in the texts) of the train split."""
  items = ds.train.items if original is None else original[ds.train.items]
  out = np.zeros((ds.num_users, NUM_ITEMS), np.float32)
  out[ds.train.users, items] = 1.0
  return out


def test_build_graph_user_text_history_uses_the_given_train(monkeypatch):
  calls = []
  monkeypatch.setattr(input_pipeline, "_encode_texts", fake_encoder(calls))
  ds = make_dataset()
  assert config_utils.base_config().graph.user_text == "mean"
  got = user_features(text_config("history"), ds)
  np.testing.assert_array_equal(got, train_multi_hot(ds))
  # A refit dataset (valid merged into train) uses its own train split.
  refit = input_pipeline.refit_dataset(ds)
  np.testing.assert_array_equal(user_features(text_config("history"), refit),
                                train_multi_hot(refit))
  # 'mean': the mean of the train items' (multi-hot) embeddings.
  mean = user_features(text_config("mean"), ds)
  counts = np.bincount(ds.train.users, minlength=ds.num_users)
  np.testing.assert_allclose(mean, train_multi_hot(ds) / counts[:, None])
  # Explicit user texts win.
  profiles = dataclasses.replace(ds, user_texts=[f"Item {u:04d}" for u in
                                                 range(ds.num_users)])
  np.testing.assert_array_equal(
      user_features(text_config("history"), profiles)[:, :ds.num_users],
      np.eye(ds.num_users))


def test_build_graph_user_text_errors(monkeypatch):
  monkeypatch.setattr(input_pipeline, "_encode_texts", fake_encoder([]))
  ds = make_dataset()
  with pytest.raises(ValueError, match="user_text.*'nope'.*history"):
    input_pipeline.build_graph(text_config("nope"), ds)
  emb = dataclasses.replace(ds, item_embeddings=np.ones((NUM_ITEMS, 3),
                                                        np.float32))
  with pytest.raises(ValueError, match="precomputed item embeddings"):
    input_pipeline.build_graph(text_config("history"), emb)
  chex.assert_shape(user_features(text_config("mean"), emb), (NUM_USERS, 3))


def test_cold_start_history_uses_warm_train(monkeypatch):
  monkeypatch.setattr(input_pipeline, "_encode_texts", fake_encoder([]))
  ds = make_dataset()
  split = coldstart.cold_start_split(ds, item_fraction=0.25, seed=1)
  cold = np.concatenate([split.cold_valid_items, split.cold_test_items])
  for part in (split.warm, split.full):
    got = user_features(text_config("history"), part)  # [U, NUM_ITEMS]
    np.testing.assert_array_equal(got, train_multi_hot(part,
                                                       split.item_order))
    hist = texts.user_history_texts(part.train, part.num_users,
                                    part.item_texts)
    assert_no_held_out_text(part, hist)
  names = [split.full.item_texts[i][:9] for i in cold]  # 'Item dddd'
  assert names and not any(n in h for n in names for h in hist)


# ------------------------------------------------------------ item_num_tags


def test_item_num_tags_moves_with_items():
  ds = make_dataset()
  assert dataclasses.replace(ds, name="x").item_num_tags is ds.item_num_tags
  relabelled = preprocess.relabel_by_degree(ds)
  order = relabelled.item_ids.original  # old id of each new id
  np.testing.assert_array_equal(relabelled.item_num_tags,
                                ds.item_num_tags[order])
  assert relabelled.item_texts == [ds.item_texts[k] for k in order]
  split = coldstart.cold_start_split(ds, item_fraction=0.25, seed=0)
  np.testing.assert_array_equal(split.full.item_num_tags,
                                ds.item_num_tags[split.item_order])
  np.testing.assert_array_equal(
      split.warm.item_num_tags,
      ds.item_num_tags[split.item_order[:split.warm.num_items]])
  with pytest.raises(DataError, match="item_num_tags"):
    dataclasses.replace(ds, item_num_tags=np.zeros(3, np.int64))
  with pytest.raises(DataError, match="item_num_tags"):
    dataclasses.replace(ds, item_num_tags=np.zeros(NUM_ITEMS, np.float32))


# --------------------------------------------------- integration (real data)

DATA_ROOT = registry.resolve_data_root()


def _real(*parts):
  if DATA_ROOT is None or not DATA_ROOT.joinpath(*parts).exists():
    pytest.skip(f"real data {'/'.join(parts)} not found under {DATA_ROOT} "
                f"(set {registry.ENV_VAR})")


def _load(name: str, seed: int = 0):
  # CPU seconds of this process, not wall time: the bound is on the loader's
  # work, which other processes on a shared machine do not change.
  start = time.process_time()
  with pytest.warns(preprocess.DataWarning, match="no train interaction"):
    ds = registry.load_dataset(name, seed=seed)
  return ds, time.process_time() - start


def _check_real(ds, seconds, users, items, positives, tagged, first_text):
  assert (ds.num_users, ds.num_items) == (users, items)
  assert len(ds.train) + len(ds.valid) + len(ds.test) == positives
  for split, share in (("valid", 0.1), ("test", 0.1)):
    assert abs(len(getattr(ds, split)) / positives - share) < 0.01
  assert (np.bincount(ds.train.users, minlength=users) >= 1).all()
  assert len(ds.item_texts) == items and all(ds.item_texts)
  assert not any(re.search(r"[\r\n\x0b\x0c\x85\u2028\u2029]", t)
                 for t in ds.item_texts)
  assert ds.item_texts[0] == first_text
  assert int((ds.item_num_tags > 0).sum()) == tagged
  assert seconds < 3.0, seconds
  hist = texts.user_history_texts(ds.train, ds.num_users, ds.item_texts)
  assert all(h.startswith(PREFIX) for h in hist)


def test_real_ml_latest_small():
  _real("movielens", "ml-latest-small", "ratings.csv")
  ds, seconds = _load("ml_latest_small")
  _check_real(ds, seconds, 609, 6298, 48580, 1422,
              "Toy Story (1995). Genres: Adventure, Animation, Children, "
              "Comedy, Fantasy. Tags: pixar, fun")
  assert (ds.train.ratings >= 4.0).all()
  other, _ = _load("ml_latest_small", seed=1)
  assert not np.array_equal(ds.test.items, other.test.items)


def test_real_hetrec_lastfm():
  _real("hetrec", "lastfm-2k", "user_artists.dat")
  ds, seconds = _load("hetrec_lastfm")
  _check_real(ds, seconds, 1892, 17632, 92834, 12133,
              "MALICE MIZER. Tags: j-rock, visual kei, gothic, japanese, "
              "weeabo, jrock, better than lady gaga")
  other, _ = _load("hetrec_lastfm", seed=1)
  assert not np.array_equal(ds.test.items, other.test.items)

"""LLM-written profiles: prompts, the resumable store, the text_source hook.

A tiny random GGUF model (tests/lm_fixtures.py) writes the profiles of a toy
dataset, so nothing here needs the bundled SmolLM2 or real data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxrec import config_utils
from jaxrec import input_pipeline
from jaxrec import profiles
from jaxrec.data.dataset import DataError, Dataset, IdMap, Interactions
from jaxrec.lm import profile_texts
from tests import lm_fixtures

pytest.importorskip("gguf")

ITEMS = ["Toy Story (1995). Genres: Adventure, Animation. Tags: pixar, fun",
         "Heat (1995). Genres: Action, Crime",
         "Alien (1979). Genres: Horror, Sci-Fi. Tags: space",
         "Valid Only Film (2001). Genres: Drama",
         "Test Only Film (2002)"]


def toy_dataset() -> Dataset:
  """3 users, 5 items; items 3 / 4 appear only in valid / test."""
  train = Interactions(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 2, 2]),
                       timestamps=np.array([1, 2, 3, 4, 5]))
  return Dataset(
      name="toy", num_users=3, num_items=5, train=train,
      valid=Interactions(np.array([0, 1]), np.array([3, 3])),
      test=Interactions(np.array([0, 2]), np.array([4, 4])),
      user_ids=IdMap(np.array([10, 20, 30])),
      item_ids=IdMap(np.array([101, 102, 103, 104, 105])), item_texts=ITEMS)


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
  from jaxrec.lm import generate  # pylint: disable=g-import-not-at-top
  path = str(tmp_path_factory.mktemp("lm") / "tiny.gguf")
  lm_fixtures.write_tiny_gguf(path)
  return generate.ChatModel(path)


def test_item_prompt_fields():
  msgs = profile_texts.item_messages(ITEMS[0])
  assert msgs[0]["role"] == "system" and "which types of users" in \
      msgs[0]["content"]
  assert msgs[1]["content"] == ("Title: Toy Story (1995)\nGenres: Adventure, "
                                "Animation\nTags: pixar, fun")
  assert profile_texts.item_messages(ITEMS[4])[1]["content"] == \
      "Title: Test Only Film (2002)"


def test_user_prompts_use_train_items_only():
  rows = profile_texts.prompts(toy_dataset(), "user")
  assert [r[0] for r in rows] == [10, 20, 30]
  text = [m[1]["content"] for _, m in rows]
  assert text[0] == "Movies the user liked: Heat (1995); Toy Story (1995)"
  for t in text:
    assert "Valid Only" not in t and "Test Only" not in t


def _records(out):
  with open(os.path.join(out, profile_texts.PROFILES_FILE)) as f:
    return [json.loads(line) for line in f]


def test_write_resume_and_cache(tmp_path, chat_model):
  out = str(tmp_path / "p")
  ds = toy_dataset()
  kw = dict(max_new_tokens=6, batch_size=2)
  first = profiles.write_profiles(ds, "item", out, chat_model, limit=3, **kw)
  assert (first["written"], first["cached"]) == (3, 0)
  # A torn append (a kill mid-write) past the index is ignored, then cut.
  with open(os.path.join(out, profile_texts.PROFILES_FILE), "ab") as f:
    f.write(b'{"kind": "item", "id": 10')
  assert len(profile_texts.read_store(out).records) == 3
  second = profiles.write_profiles(ds, "item", out, chat_model, **kw)
  assert (second["written"], second["cached"]) == (2, 3)
  records = _records(out)
  assert sorted(r["id"] for r in records) == [101, 102, 103, 104, 105]
  index = profile_texts.read_store(out).index
  assert index["bytes"] == os.path.getsize(
      os.path.join(out, profile_texts.PROFILES_FILE))
  assert index["model"]["sha256"] == chat_model.fingerprint
  assert profiles.write_profiles(ds, "item", out, chat_model,
                                 **kw)["written"] == 0
  # Batched profiles equal one-by-one ones (greedy; padded batch rows).
  solo = str(tmp_path / "solo")
  profiles.write_profiles(ds, "item", solo, chat_model, max_new_tokens=6,
                          batch_size=1)
  by_prompt = {r["prompt"]: r["profile"] for r in records}
  assert {r["prompt"]: r["profile"] for r in _records(solo)} == by_prompt


def test_other_model_or_settings_refused(tmp_path, chat_model):
  out = str(tmp_path / "p")
  ds = toy_dataset()
  profiles.write_profiles(ds, "item", out, chat_model, limit=1,
                          max_new_tokens=4, batch_size=1)
  with pytest.raises(DataError, match="decoding settings"):
    profiles.write_profiles(ds, "item", out, chat_model, max_new_tokens=5)
  index_path = os.path.join(out, profile_texts.INDEX_FILE)
  with open(index_path) as f:
    index = json.load(f)
  index["model"]["sha256"] = "0" * 64
  with open(index_path, "w") as f:
    json.dump(index, f)
  with pytest.raises(DataError, match="another --out"):
    profiles.write_profiles(ds, "item", out, chat_model, max_new_tokens=4)


def test_sampled_profiles_do_not_depend_on_the_batch(tmp_path, chat_model):
  ds = toy_dataset()
  kw = dict(max_new_tokens=6, temperature=1.0, top_p=0.9, seed=3)
  profiles.write_profiles(ds, "item", str(tmp_path / "a"), chat_model,
                          batch_size=4, **kw)
  profiles.write_profiles(ds, "item", str(tmp_path / "b"), chat_model,
                          batch_size=1, **kw)
  a = {r["prompt"]: r["profile"] for r in _records(str(tmp_path / "a"))}
  b = {r["prompt"]: r["profile"] for r in _records(str(tmp_path / "b"))}
  assert a == b


def test_text_source_profiles_in_build_graph(tmp_path, chat_model,
                                             monkeypatch):
  out = str(tmp_path / "p")
  ds = toy_dataset()
  config = config_utils.base_config()
  config.graph.text_features = True
  config.graph.text_source = "profiles"
  config.graph.profiles_dir = out
  with pytest.raises(DataError, match="no profiles"):
    input_pipeline.with_text_features(config, ds)
  profiles.write_profiles(ds, "item", out, chat_model, max_new_tokens=4)
  encoded = []

  def fake_encode(gcfg, texts):
    del gcfg
    encoded.append(list(texts))
    return np.ones((len(texts), 3), np.float32)

  monkeypatch.setattr(input_pipeline, "_encode_texts", fake_encode)
  input_pipeline.with_text_features(config, ds)
  items = {r["id"]: r["profile"] for r in _records(out)}
  assert encoded[0] == [items[i] for i in (101, 102, 103, 104, 105)]
  assert len(encoded) == 1  # no user profiles: users use user_text='mean'
  profiles.write_profiles(ds, "user", out, chat_model, max_new_tokens=4,
                          limit=2)
  with pytest.raises(DataError, match="1 of 3 users"):
    input_pipeline.with_text_features(config, ds)
  profiles.write_profiles(ds, "user", out, chat_model, max_new_tokens=4)
  encoded.clear()
  input_pipeline.with_text_features(config, ds)
  users = {r["id"]: r["profile"] for r in _records(out) if r["kind"] == "user"}
  assert encoded[1] == [users[u] for u in (10, 20, 30)]


def test_cli_bad_dataset_one_line_error(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "jaxrec.profiles", "--dataset", "nope",
       "--kind", "item", "--out", str(tmp_path / "p")],
      capture_output=True, text=True, timeout=120,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: --dataset")

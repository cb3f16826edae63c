"""`jaxrec.recommend` serves every registered model from its workdir.

Each model trains two epochs on a tiny synthetic dataset that has item texts
but no precomputed embeddings (text models encode them with a fake encoder).
Loading the workdir must then rebuild the training graph without encoding
anything (the encoder raises once training is done), reproduce the test
metrics of training, and give well-formed top-k lists over unseen items
through the library and the command line. A snapshot without the text
features falls back to reloading `config.dataset` and encoding its texts.
"""

import dataclasses
import os
import zlib

import numpy as np
import pandas as pd
import pytest

from jaxrec import input_pipeline
from jaxrec import recommend
from jaxrec import train
from jaxrec import workdir as workdir_lib
from jaxrec.data.synthetic import make_synthetic
from tests import config_loader

TEXT_DIM, K = 8, 5


def fake_encode(gcfg, texts):
  """Unit vectors seeded by each text's CRC32: deterministic, no model."""
  del gcfg
  rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=TEXT_DIM)
          for t in texts]
  emb = np.asarray(rows, np.float32).reshape(len(rows), TEXT_DIM)
  return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def no_encoding(gcfg, texts):
  raise AssertionError(f"texts encoded at load time ({len(list(texts))})")


@pytest.fixture(scope="module")
def dataset():
  ds = make_synthetic(num_users=30, num_items=40, num_interactions=360,
                      seed=0)
  assert ds.item_texts is not None and ds.item_embeddings is None
  # Users without texts: their features come from config.graph.user_text.
  return dataclasses.replace(ds, user_texts=None,
                             item_num_tags=np.arange(ds.num_items) % 3)


def _check_top_k(frame: pd.DataFrame, ds, k: int) -> None:
  """k (or all unseen) distinct unseen items per user, by descending score."""
  seen = (ds.csr("train") + ds.csr("valid")).toarray() > 0  # [U, I]
  assert list(frame.columns) == ["user", "rank", "item", "score"]
  assert sorted(frame["user"].unique()) == list(range(ds.num_users))
  for user, rows in frame.groupby("user", sort=True):  # 30 tiny groups
    want = min(k, ds.num_items - int(seen[user].sum()))
    assert rows["rank"].tolist() == list(range(1, want + 1))
    items = rows["item"].to_numpy()
    assert len(set(items.tolist())) == want
    assert ((items >= 0) & (items < ds.num_items)).all()
    assert not seen[user, items].any()
    scores = rows["score"].to_numpy()
    assert np.isfinite(scores).all() and (np.diff(scores) <= 0).all()


@pytest.mark.parametrize("name", config_loader.ranking_models())
def test_every_model_recommends_from_its_workdir(name, dataset, tmp_path,
                                                 monkeypatch):
  config = config_loader.load("test.py", name)
  config.num_epochs = 2
  config.batch_size = 64
  config.steps_per_call = 64  # one scan chunk per epoch: one compilation
  workdir = str(tmp_path / "run")
  monkeypatch.setattr(input_pipeline, "_encode_texts", fake_encode)
  results = train.train_and_evaluate(config, workdir, dataset)
  text = config.graph.get("text_features", False)

  monkeypatch.setattr(input_pipeline, "_encode_texts", no_encoding)
  trained = recommend.TrainedModel.load(workdir)
  snap = trained.dataset
  np.testing.assert_array_equal(snap.item_num_tags, dataset.item_num_tags)
  for split in ("train", "valid", "test"):
    np.testing.assert_array_equal(getattr(snap, split).items,
                                  getattr(dataset, split).items)
  if text:  # the saved features are the encoded texts and train-item means
    items = fake_encode(None, dataset.item_texts)
    np.testing.assert_array_equal(snap.item_embeddings, items)
    csr = dataset.csr("train")
    counts = np.maximum(np.asarray(csr.sum(axis=1)).ravel(), 1.0)
    np.testing.assert_allclose(snap.user_embeddings,
                               (csr @ items) / counts[:, None], rtol=1e-6)
  else:
    assert snap.item_embeddings is None and snap.user_embeddings is None

  # The loaded embeddings reproduce training's test metrics exactly.
  evaluator = train.Evaluator(trained.model, None, snap, config)
  evaluator.embeddings = lambda params: (trained.user_emb, trained.item_emb)
  test = evaluator(trained.params, "test")
  assert test == pytest.approx(results["test"], rel=1e-6, abs=1e-9)

  frame = trained.recommend(k=K)
  _check_top_k(frame, dataset, K)

  out = tmp_path / "recs.csv"
  assert recommend.main(["--workdir", workdir, "--all_users", "--k", str(K),
                         "--output", str(out)]) == 0
  cli = pd.read_csv(out)
  assert (cli[["user", "rank", "item"]].values.tolist()
          == frame[["user", "rank", "item"]].values.tolist())
  np.testing.assert_allclose(cli["score"], frame["score"], rtol=1e-5)
  assert workdir_lib.load_config(workdir).model_name == name


def test_snapshot_without_text_features_rebuilds_them(tmp_path, monkeypatch):
  """No text features in dataset.npz: texts of config.dataset encoded again."""
  config = config_loader.load("test.py", "textgnn")
  config.dataset.kwargs = dict(num_users=30, num_items=40,
                               num_interactions=360)
  config.num_epochs = 1
  config.batch_size = 64
  config.steps_per_call = 64
  workdir = str(tmp_path / "run")
  monkeypatch.setattr(input_pipeline, "_encode_texts", fake_encode)
  train.train_and_evaluate(config, workdir)
  saved = recommend.TrainedModel.load(workdir)
  path = os.path.join(workdir, workdir_lib.DATASET_FILE)
  with np.load(path) as z:
    arrays = {k: z[k] for k in z.files
              if k not in ("user_embeddings", "item_embeddings")}
  np.savez_compressed(path, **arrays)
  rebuilt = recommend.TrainedModel.load(workdir)
  assert rebuilt.dataset.item_texts is not None
  np.testing.assert_array_equal(rebuilt.user_emb, saved.user_emb)
  np.testing.assert_array_equal(rebuilt.item_emb, saved.item_emb)

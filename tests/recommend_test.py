"""Tests of jaxrec.recommend: top-K in original ids vs brute-force NumPy.

A tiny MF model is trained on a CSV with non-contiguous integer user ids and
string item ids; the exported embeddings (.npy) are the reference: NumPy
scores u . v, seen (train + valid) items masked, ranked by descending score
with ties towards the lower contiguous id.
"""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from jaxrec import recommend
from jaxrec import train
from jaxrec.data import registry
from jaxrec.data.dataset import DataError
from tests import config_loader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_USERS, NUM_ITEMS = 60, 80


def _user_id(u):
  return 1000 + 7 * u


def _item_id(i):
  return f"it{i:03d}"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp("rec")
  rng = np.random.default_rng(0)
  rows = {(u, int(i)) for u in range(NUM_USERS)
          for i in rng.choice(NUM_ITEMS, size=rng.integers(6, 20),
                              replace=False)}
  csv = root / "ratings.csv"
  csv.write_text("user,item\n" + "".join(
      f"{_user_id(u)},{_item_id(i)}\n" for u, i in sorted(rows)))
  config = config_loader.load("test.py", "mf")
  config.dataset.name = "csv"
  config.dataset.kwargs = dict(path=str(csv), id_type="auto")
  config.num_epochs = 3
  workdir = str(root / "workdir")
  results = train.train_and_evaluate(config, workdir)
  kwargs = dict(config.dataset.kwargs, seed=config.seed)
  dataset = registry.load_dataset("csv", **kwargs)  # independent reload
  export = str(root / "emb")
  trained = recommend.TrainedModel.load(workdir)
  trained.export_embeddings(export)
  return dict(workdir=workdir, results=results, dataset=dataset,
              trained=trained, export=export)


def _exported(run):
  load = lambda name: np.load(os.path.join(run["export"], f"{name}.npy"))
  return (load("user_embeddings"), load("item_embeddings"), load("user_ids"),
          load("item_ids"))


def _brute_force(run, k, exclude_seen=True):
  """(items [U, k] contiguous, scores [U, k]) from the exported .npy files."""
  user_emb, item_emb, _, _ = _exported(run)
  scores = user_emb.astype(np.float64) @ item_emb.astype(np.float64).T
  if exclude_seen:
    ds = run["dataset"]
    seen = (ds.csr("train") + ds.csr("valid")).toarray() > 0
    scores[seen] = -np.inf
  order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # ties: low id
  return order, np.take_along_axis(scores, order, axis=1)


def test_export_holds_ids_and_embeddings(run):
  user_emb, item_emb, user_ids, item_ids = _exported(run)
  trained, ds = run["trained"], run["dataset"]
  assert user_emb.shape == (ds.num_users, 16)
  assert item_emb.shape == (ds.num_items, 16)
  np.testing.assert_array_equal(user_emb, trained.user_emb)
  np.testing.assert_array_equal(item_ids, ds.item_ids.original)
  np.testing.assert_array_equal(user_ids, ds.user_ids.original)
  assert user_ids.tolist() == [_user_id(u) for u in range(NUM_USERS)]
  assert item_ids[0] == _item_id(0)
  assert trained.best_epoch == run["results"]["best_epoch"]


def test_exported_embeddings_are_the_selected_parameters(run):
  """Test recall@20 recomputed in NumPy equals results.json's."""
  order, scores = _brute_force(run, 20)
  test = run["dataset"].csr("test")
  recalls = []
  for u in np.flatnonzero(np.diff(test.indptr)):  # users with test items
    targets = set(test.indices[test.indptr[u]:test.indptr[u + 1]].tolist())
    top = order[u][np.isfinite(scores[u])]
    recalls.append(len(targets & set(top.tolist())) / len(targets))
  assert np.mean(recalls) == pytest.approx(
      run["results"]["test"]["recall@20"], rel=1e-6)


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_library_top_k_matches_brute_force(run, exclude_seen):
  k = 10
  frame = recommend.recommend(run["workdir"], k=k, exclude_seen=exclude_seen)
  order, scores = _brute_force(run, k, exclude_seen)
  ds = run["dataset"]
  assert len(frame) == ds.num_users * k
  assert frame["user"].tolist() == np.repeat(ds.user_ids.original, k).tolist()
  assert frame["rank"].tolist() == list(range(1, k + 1)) * ds.num_users
  assert frame["item"].tolist() == ds.item_ids.original[order].ravel().tolist()
  np.testing.assert_allclose(frame["score"].to_numpy(), scores.ravel(),
                             rtol=1e-5, atol=1e-6)


def test_seen_items_are_excluded(run):
  ds = run["dataset"]
  frame = run["trained"].recommend(k=30)
  user = ds.user_ids.to_new(frame["user"].to_numpy())
  item = ds.item_ids.to_new(frame["item"].to_numpy())
  seen = (ds.csr("train") + ds.csr("valid")).toarray() > 0
  assert not seen[user, item].any()
  test = ds.csr("test").toarray() > 0
  assert test[user, item].any()  # test items are candidates


def test_users_with_few_candidates_get_short_lists(run):
  trained = run["trained"]
  ds = run["dataset"]
  seen = (ds.csr("train") + ds.csr("valid")).toarray() > 0
  frame = trained.recommend([_user_id(0)], k=NUM_ITEMS)
  assert len(frame) == ds.num_items - seen[0].sum()
  assert np.all(np.diff(frame["score"].to_numpy()) <= 0)


def test_unknown_user_and_bad_users_file(run, tmp_path):
  with pytest.raises(DataError, match=r"unknown user id '5'.*1000, 1007"):
    run["trained"].recommend(["5"])
  path = tmp_path / "users.txt"
  path.write_text("1000\n1007 1014\n")
  with pytest.raises(DataError, match=rf"{path}:2: expected one user id"):
    recommend.read_users_file(str(path))
  with pytest.raises(FileNotFoundError, match="not a trained jaxrec workdir"):
    recommend.TrainedModel.load(str(tmp_path))


def test_load_is_read_only(run):
  ckpt = os.path.join(run["workdir"], "checkpoints")
  before = sorted(os.walk(ckpt))
  recommend.TrainedModel.load(run["workdir"])
  assert sorted(os.walk(ckpt)) == before


# ----------------------------------------------------------------------------
# Command line.


def _cli(*args):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
  return subprocess.run([sys.executable, "-m", "jaxrec.recommend", *args],
                        cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=300, check=False)


def test_cli_single_user_prints_top_k(run):
  out = _cli("--workdir", run["workdir"], "--user", str(_user_id(3)),
             "--k", "20")
  assert out.returncode == 0, out.stderr[-2000:]
  got = pd.read_csv(io.StringIO(out.stdout))
  want = run["trained"].recommend([_user_id(3)], k=20)
  assert got["item"].tolist() == want["item"].tolist()
  assert got["user"].tolist() == [_user_id(3)] * 20
  np.testing.assert_allclose(got["score"], want["score"], rtol=1e-5)


def test_cli_batch_to_csv_and_export(run, tmp_path):
  users = tmp_path / "users.txt"
  users.write_text(f"# a comment\n{_user_id(5)}\n\n{_user_id(9)}\n")
  out_csv, emb_dir = tmp_path / "out" / "recs.csv", tmp_path / "emb"
  out = _cli("--workdir", run["workdir"], "--users_file", str(users),
             "--k", "5", "--output", str(out_csv), "--export_embeddings",
             str(emb_dir))
  assert out.returncode == 0, out.stderr[-2000:]
  got = pd.read_csv(out_csv)
  want = run["trained"].recommend([_user_id(5), _user_id(9)], k=5)
  assert got[["user", "rank", "item"]].values.tolist() == \
      want[["user", "rank", "item"]].values.tolist()
  for name in ("user_embeddings", "item_embeddings", "user_ids", "item_ids"):
    np.testing.assert_array_equal(
        np.load(emb_dir / f"{name}.npy"),
        np.load(os.path.join(run["export"], f"{name}.npy")))
  assert sorted(os.listdir(out_csv.parent)) == ["recs.csv"]  # no temp files


def test_cli_unknown_user_is_a_clear_error(run):
  out = _cli("--workdir", run["workdir"], "--user", "42")
  assert out.returncode == 1
  assert "error: unknown user id '42'" in out.stderr
  assert out.stdout == ""
  with open(os.path.join(run["workdir"], "results.json")) as f:
    assert json.load(f)["model"] == "mf"


@pytest.fixture(scope="module")
def degree_run(tmp_path_factory, run):
  """The `run` data trained with config.graph.node_order = 'degree'."""
  root = tmp_path_factory.mktemp("rec_degree")
  config = config_loader.load("test.py", "mf")
  config.dataset.name = "csv"
  config.dataset.kwargs = dict(path=os.path.join(
      os.path.dirname(run["workdir"]), "ratings.csv"), id_type="auto")
  config.num_epochs = 3
  config.graph.node_order = "degree"
  workdir = str(root / "workdir")
  train.train_and_evaluate(config, workdir)
  export = str(root / "emb")
  recommend.TrainedModel.load(workdir).export_embeddings(export)
  load = lambda name: np.load(os.path.join(export, f"{name}.npy"))
  return dict(workdir=workdir, user_emb=load("user_embeddings"),
              item_emb=load("item_embeddings"), user_ids=load("user_ids"),
              item_ids=load("item_ids"))


def test_degree_order_run_speaks_original_ids(run, degree_run):
  """node_order='degree' relabels inside the run; users see original ids."""
  ds = run["dataset"]  # independent reload, data order
  user_ids, item_ids = degree_run["user_ids"], degree_run["item_ids"]
  # Run row r holds original id user_ids[r]; data-order id of that row:
  users = ds.user_ids.to_new(user_ids)  # [U]
  items = ds.item_ids.to_new(item_ids)  # [I]
  assert sorted(users.tolist()) == list(range(ds.num_users))
  assert sorted(items.tolist()) == list(range(ds.num_items))
  train_csr = ds.csr("train")
  assert np.all(np.diff(np.diff(train_csr.indptr)[users]) <= 0)  # by degree
  assert np.all(np.diff(np.bincount(train_csr.indices,
                                    minlength=ds.num_items)[items]) <= 0)
  k = 10
  seen = ((train_csr + ds.csr("valid")).toarray() > 0)[np.ix_(users, items)]
  scores = (degree_run["user_emb"].astype(np.float64) @
            degree_run["item_emb"].astype(np.float64).T)
  scores[seen] = -np.inf
  order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
  frame = recommend.recommend(degree_run["workdir"], k=k)
  assert frame["user"].tolist() == np.repeat(user_ids, k).tolist()
  assert frame["item"].tolist() == item_ids[order].ravel().tolist()

"""Tests for jaxrec.data.loaders and jaxrec.data.registry."""

import pickle
import re
import tempfile
import time
from pathlib import Path

import chex
import hypothesis
import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from jaxrec.data import loaders
from jaxrec.data import registry
from jaxrec.data.dataset import DataError, Dataset
from jaxrec.data.preprocess import DataWarning

DATA_ROOT = registry.resolve_data_root()


def write(path: Path, text):
  path.parent.mkdir(parents=True, exist_ok=True)
  if isinstance(text, bytes):
    path.write_bytes(text)
  else:
    path.write_text(text)
  return path


def pairs(inter):
  return sorted(zip(inter.users.tolist(), inter.items.tolist()))


def assert_error(fn, *patterns):
  with pytest.raises(DataError) as info:
    fn()
  for p in patterns:
    assert re.search(p, str(info.value)), (p, str(info.value))
  return str(info.value)


# ------------------------------------------------------------------ LightGCN


def test_lightgcn_parses_lone_users_blank_lines_crlf(tmp_path):
  write(tmp_path / "train.txt", "0 1 2\r\n1 0\n\n2\n3 4\t5  \n")
  write(tmp_path / "test.txt", "0 3\n3 0\n")
  ds = loaders.load_lightgcn(tmp_path)
  assert (ds.num_users, ds.num_items) == (4, 6)
  assert pairs(ds.train) == [(0, 1), (0, 2), (1, 0), (3, 4), (3, 5)]
  assert pairs(ds.test) == [(0, 3), (3, 0)]
  chex.assert_type([ds.train.users, ds.train.items], np.int32)


def test_lightgcn_dedup_warns(tmp_path):
  write(tmp_path / "train.txt", "0 1 1 2\n")
  write(tmp_path / "test.txt", "0 3\n")
  with pytest.warns(DataWarning, match="dropped 1 duplicate"):
    ds = loaders.load_lightgcn(tmp_path)
  assert pairs(ds.train) == [(0, 1), (0, 2)]


@pytest.mark.parametrize("text,line,what", [
    ("0 1\n1 -2\n", 2, "negative"),
    ("0 1\n1 2\n2 3.5\n", 3, "non-integer"),
    ("0 a\n", 1, "integer ids"),
    ("0 1\n1 99999999999\n", 2, "ids <="),
    ("0 1\n1 2147483647\n", 2, "ids <="),
])
def test_lightgcn_bad_lines_name_file_and_line(tmp_path, text, line, what):
  path = write(tmp_path / "train.txt", text)
  write(tmp_path / "test.txt", "0 1\n")
  assert_error(lambda: loaders.load_lightgcn(tmp_path),
               re.escape(f"{path}:{line}:"), what)


def test_lightgcn_empty_file_split_and_missing(tmp_path):
  write(tmp_path / "train.txt", "")
  write(tmp_path / "test.txt", "0 1\n")
  assert_error(lambda: loaders.load_lightgcn(tmp_path), "train.txt",
               "empty file")
  write(tmp_path / "train.txt", "0\n1\n")
  assert_error(lambda: loaders.load_lightgcn(tmp_path), "train.txt",
               "empty split")
  (tmp_path / "test.txt").unlink()
  write(tmp_path / "train.txt", "0 1\n")
  assert_error(lambda: loaders.load_lightgcn(tmp_path), "test.txt",
               "file not found")
  assert_error(lambda: loaders.load_lightgcn(tmp_path / "nope"), "nope",
               "directory not found")


def test_lightgcn_adj(tmp_path):
  num_users, num_items = 3, 4
  block = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]],
                                 np.float32))
  adj = sp.bmat([[None, block], [block.T, None]], format="csr")
  sp.save_npz(tmp_path / "s_adj_mat.npz", adj)
  write(tmp_path / "test.txt", "0 1\n1 3\n2 0 2\n")
  ds = loaders.load_lightgcn_adj(tmp_path)
  assert (ds.num_users, ds.num_items) == (num_users, num_items)
  assert pairs(ds.train) == [(0, 0), (0, 2), (1, 1), (2, 3)]
  assert pairs(ds.test) == [(0, 1), (1, 3), (2, 0), (2, 2)]
  # Wrong num_users breaks the bipartite structure.
  assert_error(lambda: loaders.load_lightgcn_adj(tmp_path, num_users=2),
               "s_adj_mat.npz", "bipartite")
  write(tmp_path / "test.txt", "0 1\n1 3\n2 0 9\n")
  assert_error(lambda: loaders.load_lightgcn_adj(tmp_path),
               r"test.txt:3:", "item id < 4")
  write(tmp_path / "s_adj_mat.npz", b"not an npz")
  assert_error(lambda: loaders.load_lightgcn_adj(tmp_path), "s_adj_mat.npz",
               "cannot read")


# ------------------------------------------------------------------- SELFRec


def test_selfrec_remaps_and_drops_unseen(tmp_path):
  write(tmp_path / "train.txt", "1:10 20 30\n5:20\n7:40 10\n")
  write(tmp_path / "test.txt", "1:40\n5:99\n8:10\n7:20\n")
  with pytest.warns(DataWarning, match="dropped 2 of 4"):
    ds = loaders.load_selfrec(tmp_path)
  assert (ds.num_users, ds.num_items) == (3, 4)
  np.testing.assert_array_equal(ds.user_ids.original, [1, 5, 7])
  np.testing.assert_array_equal(ds.item_ids.original, [10, 20, 30, 40])
  orig = lambda inter: sorted(zip(
      ds.user_ids.to_original(inter.users).tolist(),
      ds.item_ids.to_original(inter.items).tolist()))
  assert orig(ds.train) == [(1, 10), (1, 20), (1, 30), (5, 20), (7, 10),
                            (7, 40)]
  assert orig(ds.test) == [(1, 40), (7, 20)]


@pytest.mark.parametrize("text,line", [
    ("1:2 3\n4 5\n", 2),  # missing colon
    ("1:2\n3:4:5\n", 2),  # two colons
    ("1 2:3\n", 1),  # two tokens before the colon
    ("1:2\n:3\n", 2),  # no user
])
def test_selfrec_malformed(tmp_path, text, line):
  path = write(tmp_path / "train.txt", text)
  write(tmp_path / "test.txt", "1:2\n")
  assert_error(lambda: loaders.load_selfrec(tmp_path),
               re.escape(f"{path}:{line}:"), "user:item")


# -------------------------------------------------------------------- LastFM


def test_lastfm_one_based_with_float_counts(tmp_path):
  write(tmp_path / "data1.txt", "1\t1\t3\r\n2\t3\t3.2466e+05\r\n3\t2\t7\r\n")
  write(tmp_path / "test1.txt", "1\t2\t1\r\n3\t4\t2\r\n")
  ds = loaders.load_lastfm(tmp_path)
  assert (ds.num_users, ds.num_items) == (3, 4)
  assert pairs(ds.train) == [(0, 0), (1, 2), (2, 1)]
  assert pairs(ds.test) == [(0, 1), (2, 3)]
  np.testing.assert_allclose(ds.train.ratings, [3, 324660, 7])


def test_lastfm_errors(tmp_path):
  write(tmp_path / "test1.txt", "1\t2\t1\n")
  path = write(tmp_path / "data1.txt", "1\t1\t3\n0\t3\t3\n")
  assert_error(lambda: loaders.load_lastfm(tmp_path),
               re.escape(f"{path}:2:"), "1-based")
  write(path, "1\t1\t3\n2\t3\t3\t4\n")
  assert_error(lambda: loaders.load_lastfm(tmp_path),
               re.escape(f"{path}:2:"), "expected 3 fields")
  write(path, "1\t1\t3\n2\t-3\t3\n")
  assert_error(lambda: loaders.load_lastfm(tmp_path),
               re.escape(f"{path}:2:"), "negative")


# ------------------------------------------------------------------ CSV etc.


def test_csv_variants(tmp_path):
  write(tmp_path / "a.csv", "uid,iid,r,ts\n7,100,4.5,10\n3,100,3,11\n\n"
        "7,200,1,12\n")
  ds = loaders.load_csv(tmp_path / "a.csv", user_col="uid", item_col="iid",
                        rating_col="r", timestamp_col="ts")
  assert (ds.num_users, ds.num_items, len(ds.train)) == (2, 2, 3)
  np.testing.assert_array_equal(ds.user_ids.original, [3, 7])
  np.testing.assert_allclose(ds.train.ratings, [4.5, 3, 1])
  assert ds.train.timestamps.dtype == np.int64
  write(tmp_path / "b.tsv", "u1\ti1\nu2\ti1\n")
  ds = loaders.load_csv(tmp_path / "b.tsv", header=False, id_type="str")
  assert list(ds.user_ids.original) == ["u1", "u2"]
  write(tmp_path / "c.txt", "x;y\n1;2\n")
  ds = loaders.load_csv(tmp_path / "c.txt", sep=";", user_col="x",
                        item_col="y")
  assert len(ds.train) == 1
  pd.DataFrame({"user": [5, 6], "item": [1, 1]}).to_parquet(
      tmp_path / "d.parquet")
  ds = loaders.load_csv(tmp_path / "d.parquet")
  assert (ds.num_users, ds.num_items) == (2, 1)


@pytest.mark.parametrize("text,line,what,kwargs", [
    ("user,item\n1,2\n-3,4\n", 3, "negative", {}),
    ("user,item\n1,2\n3,4.5\n", 3, "non-integer", {}),
    ("user,item\n1,2\n3,x\n", 3, "non-integer", {}),
    ("user,item\n1,2\n3,4,5\n", 3, "expected 2 fields", {}),
    ("user,item\n1,2\n3\n", 3, "missing id", {}),
    ("user,item,rating\n1,2,nan\n", 2, "finite number",
     {"rating_col": "rating"}),
    ("user,item,rating\n1,2,3\n1,3,abc\n", 3, "finite number",
     {"rating_col": "rating"}),
    ("1,2\n\n3,-4\n", 3, "negative", {"header": False}),
])
def test_csv_bad_rows(tmp_path, text, line, what, kwargs):
  path = write(tmp_path / "x.csv", text)
  assert_error(lambda: loaders.load_csv(path, **kwargs),
               re.escape(f"{path}:{line}:"), what)


def test_csv_missing_column_and_empty(tmp_path):
  path = write(tmp_path / "x.csv", "a,b\n1,2\n")
  assert_error(lambda: loaders.load_csv(path), "x.csv", "missing column")
  write(path, "")
  assert_error(lambda: loaders.load_csv(path), "x.csv", "empty")
  write(path, "user,item\n")
  assert_error(lambda: loaders.load_csv(path), "x.csv", "empty split")
  assert_error(lambda: loaders.load_csv(tmp_path / "no.csv"), "no.csv",
               "not found")


def test_movielens_formats(tmp_path):
  write(tmp_path / "ml-100k" / "u.data",
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t1\t1\n")
  ds = loaders.load_movielens(tmp_path / "ml-100k")
  assert (ds.name, ds.num_users, ds.num_items, len(ds.train)) == (
      "ml-100k", 2, 2, 3)
  np.testing.assert_array_equal(ds.train.timestamps, [881250949, 891717742, 1])
  write(tmp_path / "ml-1m" / "ratings.dat",
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::1\n")
  ds = loaders.load_movielens(tmp_path / "ml-1m" / "ratings.dat")
  assert (ds.num_users, ds.num_items, len(ds.train)) == (2, 2, 3)
  np.testing.assert_allclose(ds.train.ratings, [5, 3, 4])
  write(tmp_path / "ml-1m" / "ratings.dat", "1::1193::5::978300760\n1::x::3::1\n")
  assert_error(lambda: loaders.load_movielens(tmp_path / "ml-1m"),
               "ratings.dat:2:", "non-integer")
  write(tmp_path / "ml" / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,2,3.5,4\n")
  assert len(loaders.load_movielens(tmp_path / "ml").train) == 1
  assert_error(lambda: loaders.load_movielens(tmp_path), "no MovieLens")


def test_recbole(tmp_path):
  header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
  write(tmp_path / "ml.inter", header + "A\tx\t5\t3\nB\tx\t4\t2\nA\ty\t1\t1\n")
  ds = loaders.load_recbole(tmp_path)
  assert list(ds.user_ids.original) == ["A", "B"]
  assert (ds.name, ds.num_items, len(ds.train)) == ("ml", 2, 3)
  np.testing.assert_array_equal(ds.train.timestamps, [3, 2, 1])
  d2 = tmp_path / "split"
  write(d2 / "b.train.inter", "user_id:token\titem_id:token\n1\t2\n3\t4\n")
  write(d2 / "b.test.inter", "user_id:token\titem_id:token\n1\t4\n")
  ds = loaders.load_recbole(d2)
  assert (len(ds.train), len(ds.test), len(ds.valid)) == (2, 1, 0)
  write(tmp_path / "bad.inter", "user_id\titem_id\n1\t2\n")
  assert_error(lambda: loaders.load_recbole(tmp_path / "bad.inter"),
               "bad.inter:1:", "name:type")


# -------------------------------------------------------------------- RLMRec


def dump(path, obj):
  with open(path, "wb") as f:
    pickle.dump(obj, f)


def make_rlmrec(d: Path, num_users=4, num_items=5, dim=3):
  d.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  mats = (rng.random((3, num_users, num_items)) < 0.5).astype(np.float32)
  mats[0, :, 0] = 1  # non-empty train and test
  mats[2, :, 1] = 1
  for name, m in zip(("trn", "val", "tst"), mats):
    dump(d / f"{name}_mat.pkl", sp.coo_matrix(m))
  dump(d / "usr_prf.pkl", {u: {"profile": f"user {u}", "reasoning": "r"}
                           for u in range(num_users)})
  dump(d / "itm_prf.pkl", {i: f"item {i}" for i in range(num_items)})
  dump(d / "usr_emb_np.pkl", rng.normal(size=(num_users, dim)))
  dump(d / "itm_emb_np.pkl", rng.normal(size=(num_items, dim)))
  return mats


def test_rlmrec(tmp_path):
  mats = make_rlmrec(tmp_path)
  ds = loaders.load_rlmrec(tmp_path)
  assert (ds.num_users, ds.num_items) == (4, 5)
  for split, m in zip(("train", "valid", "test"), mats):
    np.testing.assert_array_equal(ds.csr(split).toarray(), m)
  assert ds.user_texts[2] == "user 2" and ds.item_texts[4] == "item 4"
  chex.assert_shape(ds.user_embeddings, (4, 3))
  chex.assert_type(ds.item_embeddings, np.float32)


def test_rlmrec_bad_inputs(tmp_path):
  make_rlmrec(tmp_path)
  emb = np.ones((5, 3))
  emb[3, 1] = np.nan
  dump(tmp_path / "itm_emb_np.pkl", emb)
  assert_error(lambda: loaders.load_rlmrec(tmp_path), "itm_emb_np.pkl",
               "row 3", "NaN")
  dump(tmp_path / "itm_emb_np.pkl", np.ones((4, 3)))
  assert_error(lambda: loaders.load_rlmrec(tmp_path), "itm_emb_np.pkl",
               r"\[5, d\]")
  dump(tmp_path / "itm_emb_np.pkl", np.ones((5, 3)))
  dump(tmp_path / "usr_prf.pkl", {0: {"profile": 3}})
  assert_error(lambda: loaders.load_rlmrec(tmp_path), "usr_prf.pkl",
               "key 0", "profile")
  dump(tmp_path / "usr_prf.pkl", {9: "x"})
  assert_error(lambda: loaders.load_rlmrec(tmp_path), "usr_prf.pkl",
               "key 9")
  dump(tmp_path / "usr_prf.pkl", {0: "only one"})
  with pytest.warns(DataWarning, match="3 of 4 ids have no profile"):
    assert loaders.load_rlmrec(tmp_path).user_texts[1] == ""
  dump(tmp_path / "val_mat.pkl", sp.coo_matrix(np.ones((4, 6))))
  assert_error(lambda: loaders.load_rlmrec(tmp_path), "val_mat.pkl",
               "expected shape")
  dump(tmp_path / "val_mat.pkl", sp.coo_matrix(np.ones((4, 5))))
  dump(tmp_path / "tst_mat.pkl", sp.coo_matrix((4, 5)))
  assert_error(lambda: loaders.load_rlmrec(tmp_path), "tst_mat.pkl",
               "empty split")
  write(tmp_path / "tst_mat.pkl", b"garbage")
  assert_error(lambda: loaders.load_rlmrec(tmp_path), "tst_mat.pkl",
               "cannot unpickle")
  (tmp_path / "tst_mat.pkl").unlink()
  assert_error(lambda: loaders.load_rlmrec(tmp_path), "tst_mat.pkl",
               "not found")


# ------------------------------------------------------------------ registry


def test_registry_with_fixture_root(tmp_path, monkeypatch):
  root = tmp_path / "root"
  write(root / "lightgcn" / "gowalla" / "train.txt", "0 1 2 3\n1 0 1 2 3\n")
  write(root / "lightgcn" / "gowalla" / "test.txt", "0 0\n1 4\n")
  make_rlmrec(root / "rlmrec" / "steam")
  ds = registry.load_dataset("gowalla", data_root=root, valid_ratio=0.25)
  assert (len(ds.train) + len(ds.valid), len(ds.test)) == (7, 2)
  assert len(ds.valid) > 0
  monkeypatch.setenv(registry.ENV_VAR, str(root))
  assert registry.resolve_data_root() == root
  ds = registry.load_dataset("rlmrec_steam")
  assert ds.name == "rlmrec_steam" and ds.user_texts is not None
  write(tmp_path / "r.csv", "user,item\n" + "".join(
      f"{u},{i}\n" for u in range(5) for i in range(6)))
  ds = registry.load_dataset("csv", path=tmp_path / "r.csv", seed=3)
  assert len(ds.train) + len(ds.valid) + len(ds.test) == 30
  assert len(ds.test) > 0 and len(ds.valid) > 0
  ds = registry.load_dataset("synthetic", num_users=30, num_items=40,
                             num_interactions=300)
  assert ds.name == "synthetic"


def test_registry_errors(tmp_path):
  assert_error(lambda: registry.load_dataset("nope"), "unknown dataset",
               "gowalla", "rlmrec_steam")
  assert_error(lambda: registry.load_dataset("yelp2018", data_root=tmp_path),
               re.escape(str(tmp_path / "lightgcn" / "yelp2018")),
               "JAXREC_DATA_ROOT")
  assert_error(lambda: registry.load_dataset("csv"), "path")


def test_registry_rlmrec_names_read_their_own_folder(tmp_path):
  # Regression: the loader lambdas bound `d` late, so every name read steam.
  shapes = {"amazon": (4, 5), "yelp": (5, 6), "steam": (6, 7)}
  for folder, (u, i) in shapes.items():
    make_rlmrec(tmp_path / "rlmrec" / folder, num_users=u, num_items=i)
  for name, folder in registry._RLMREC_DIRS.items():
    ds = registry.load_dataset(name, data_root=tmp_path)
    assert ds.name == name
    assert (ds.num_users, ds.num_items) == shapes[folder], name


def test_registry_lightgcn_names_read_their_own_folder(tmp_path):
  shapes = {"gowalla": (2, 5), "yelp2018": (3, 6), "amazon-book": (4, 7)}
  for folder, (u, i) in shapes.items():
    d = tmp_path / "lightgcn" / folder
    write(d / "train.txt", "".join(f"{k} 0 1 2\n" for k in range(u)))
    write(d / "test.txt", f"0 {i - 1}\n")
  for name, folder in registry._LIGHTGCN_DIRS.items():
    ds = registry.load_dataset(name, data_root=tmp_path, valid_ratio=0.0)
    assert ds.name == name
    assert (ds.num_users, ds.num_items) == shapes[folder], name


# ------------------------------------------------------ item texts (fixtures)

TEXT_DATA = Path(__file__).parent / "testdata" / "text_data"


def texts_by_id(ds):
  return dict(zip(ds.item_ids.original.tolist(), ds.item_texts))


def copy_tree(src: Path, dst: Path) -> Path:
  for f in src.rglob("*"):
    if f.is_file():
      write(dst / f.relative_to(src), f.read_bytes())
  return dst


def test_movielens_texts_ml100k_ml1m_latest():
  ds = loaders.load_movielens(TEXT_DATA / "movielens" / "ml-100k")
  assert texts_by_id(ds) == {
      1: "Toy Story (1995). Genres: Animation, Children's, Comedy",
      2: "GoldenEye (1995). Genres: Action, Adventure, Thriller",
      267: "unknown",  # genre 'unknown' left out
      1440: "Misérables, Les (1995). Genres: Drama"}  # latin-1
  assert ds.item_num_tags is None
  ds = loaders.load_movielens(TEXT_DATA / "movielens" / "ml-1m" /
                              "ratings.dat")
  assert texts_by_id(ds) == {
      661: "James and the Giant Peach (1996). Genres: Animation, "
           "Children's, Musical",
      1193: "One Flew Over the Cuckoo's Nest (1975). Genres: Drama",
      3410: '"Great Performances" Cats (1998). Genres: Musical'}
  ds = loaders.load_movielens(TEXT_DATA / "movielens" / "ml-latest-small")
  assert texts_by_id(ds) == {
      1: "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, "
         "Fantasy. Tags: pixar, fun",  # 'pixar'/'Pixar' count once, first
      2: "American President, The (1995). Genres: Comedy, Drama, Romance. "
         "Tags: politics",
      3: "Empty Genre Film (2000)",  # '(no genres listed)' left out
      4: "Never Liked (1999). Genres: Drama. Tags: boring"}
  np.testing.assert_array_equal(ds.item_num_tags, [2, 1, 0, 1])
  assert len(ds.train) == 8
  ds = loaders.load_movielens(TEXT_DATA / "movielens" / "ml-latest-small",
                              min_rating=4.0, with_text=False)
  assert ds.item_texts is None and len(ds.train) == 5
  np.testing.assert_array_equal(ds.item_ids.original, [1, 2, 3])
  assert (ds.train.ratings >= 4.0).all()


def test_movielens_text_errors(tmp_path):
  d = copy_tree(TEXT_DATA / "movielens", tmp_path)
  ml100k = d / "ml-100k" / "u.item"
  good = ml100k.read_bytes()
  write(ml100k, good.replace(b"|0|1|1|0", b"|0|x|1|0", 1))
  assert_error(lambda: loaders.load_movielens(d / "ml-100k"),
               re.escape(f"{ml100k}:2:"), "genre 1", "0 or 1")
  write(ml100k, good.replace(b"|01-Jan-1995||", b"|01-Jan-1995|", 1))
  assert_error(lambda: loaders.load_movielens(d / "ml-100k"),
               re.escape(f"{ml100k}:1:"), "expected 24 fields")
  movies = d / "ml-1m" / "movies.dat"
  write(movies, b"661::Title (1996)\n")
  assert_error(lambda: loaders.load_movielens(d / "ml-1m"),
               re.escape(f"{movies}:1:"), "expected 3 fields")
  latest = d / "ml-latest-small" / "movies.csv"
  write(latest, "movieId,title,genres\n1,A (1995),Drama\nx,B (1996),Drama\n")
  assert_error(lambda: loaders.load_movielens(d / "ml-latest-small"),
               re.escape(f"{latest}:3:"), "movieId", "non-integer")
  write(latest, "movieId,title,genres\n1,A (1995),Drama\n1,B,Drama\n")
  assert_error(lambda: loaders.load_movielens(d / "ml-latest-small"),
               re.escape(f"{latest}:3:"), "repeated id")
  assert_error(lambda: loaders.load_movielens(d / "ml-latest-small",
                                              min_rating=9),
               "ratings.csv", "min_rating=9")


def test_csv_item_texts():
  d = TEXT_DATA / "csv"
  with pytest.warns(DataWarning, match="1 of 3 items have no text"):
    ds = loaders.load_csv(d / "inter.csv", item_text_col="title")
  assert texts_by_id(ds) == {100: "Heat (1995)", 200: "",
                             300: "Casino (1995)"}
  with pytest.warns(DataWarning, match="1 of 3 items have no text"):
    ds = loaders.load_csv(d / "inter.csv", item_text_path=d / "items.tsv")
  assert texts_by_id(ds) == {100: "Heat (1995). Genres: Action",
                             200: "Casino (1995)", 300: ""}
  assert loaders.load_csv(d / "inter.csv").item_texts is None


def test_csv_item_text_errors(tmp_path):
  write(tmp_path / "i.csv", "user,item\n1,2\n")
  path = write(tmp_path / "t.csv", "id,text\n2,a\nq,b\n")
  assert_error(lambda: loaders.load_csv(
      tmp_path / "i.csv", item_text_path=path, item_id_col="id"),
               re.escape(f"{path}:3:"), "'id'", "non-integer")
  assert_error(lambda: loaders.load_csv(tmp_path / "i.csv",
                                        item_text_path=path),
               "t.csv", "missing column 'item'")
  write(path, "id,text\n2,a\n2,b\n")
  assert_error(lambda: loaders.load_csv(
      tmp_path / "i.csv", item_text_path=path, item_id_col="id"),
               re.escape(f"{path}:3:"), "repeated id")
  assert_error(lambda: loaders.load_csv(tmp_path / "i.csv",
                                        item_text_col="nope"),
               "i.csv", "missing column 'nope'")


def test_registry_csv_and_movielens_text_kwargs():
  d = TEXT_DATA / "csv"
  with pytest.warns(DataWarning):
    ds = registry.load_dataset("csv", path=d / "inter.csv",
                               item_text_path=d / "items.tsv",
                               valid_ratio=0.0, test_ratio=0.0)
  assert texts_by_id(ds)[100] == "Heat (1995). Genres: Action"
  ds = registry.load_dataset(
      "movielens", path=TEXT_DATA / "movielens" / "ml-latest-small",
      min_rating=4.0, max_tags=1, valid_ratio=0.0, test_ratio=0.0)
  assert texts_by_id(ds)[1].endswith("Tags: pixar")
  assert_error(lambda: registry.load_dataset("movielens", path="x", tags=1),
               "unexpected", "min_rating", "with_text")


def test_recbole_item_file():
  with pytest.warns(DataWarning, match="1 of 3 items have no text"):
    ds = loaders.load_recbole(TEXT_DATA / "recbole" / "ml")
  assert texts_by_id(ds) == {
      "w": "", "x": "Toy Story. release year: 1995. genre: Animation Comedy",
      "y": '"Quoted" Title. release year: 1999'}  # empty genre left out
  with pytest.warns(DataWarning):
    ds = loaders.load_recbole(TEXT_DATA / "recbole" / "ml" / "ml.inter",
                              text_fields=["movie_title"])
  assert texts_by_id(ds)["x"] == "Toy Story"
  assert_error(lambda: loaders.load_recbole(
      TEXT_DATA / "recbole" / "ml", text_fields=["nope"]),
               "ml.item:1:", "text_fields", "movie_title")


def test_recbole_item_file_beside_splits(tmp_path):
  write(tmp_path / "b.train.inter", "user_id:token\titem_id:token\n1\t2\n3\t4\n")
  write(tmp_path / "b.test.inter", "user_id:token\titem_id:token\n1\t4\n")
  write(tmp_path / "b.item", "item_id:token\ttitle:token_seq\n4\tFour\n2\tTwo\n")
  ds = loaders.load_recbole(tmp_path)
  assert texts_by_id(ds) == {2: "Two", 4: "Four"}


HETREC_TEXTS = {1: "Björk. Tags: rock, español", 2: "Line Tab Band",
                3: "Sep Artist. Tags: español", 4: "CR Name", 5: "Plain"}


def test_hetrec_fixture_line_breaks_latin1_tags():
  with pytest.warns(DataWarning, match="no train interaction"):
    ds = registry.load_dataset("hetrec_lastfm", data_root=TEXT_DATA)
  assert (ds.num_users, ds.num_items) == (3, 5)  # artist 6: no listen
  assert len(ds.train) + len(ds.valid) + len(ds.test) == 7
  assert texts_by_id(ds) == HETREC_TEXTS
  np.testing.assert_array_equal(ds.item_num_tags, [2, 0, 1, 0, 0])
  np.testing.assert_array_equal(ds.user_ids.original, [2, 3, 4])
  every = loaders.load_hetrec_lastfm(TEXT_DATA / "hetrec" / "lastfm-2k",
                                     valid_ratio=0.0, test_ratio=0.0)
  listens = dict(zip(zip(every.user_ids.to_original(every.train.users).tolist(),
                         every.item_ids.to_original(every.train.items).tolist()),
                     every.train.ratings.tolist()))
  assert listens[(2, 1)] == 100 and listens[(4, 5)] == 1


def test_ml_latest_small_fixture():
  ds = registry.load_dataset("ml_latest_small", data_root=TEXT_DATA)
  assert (ds.num_users, ds.num_items) == (3, 3)  # movies 4, 5: no positive
  assert len(ds.train) + len(ds.valid) + len(ds.test) == 5
  assert texts_by_id(ds)[3] == "Empty Genre Film (2000)"
  np.testing.assert_array_equal(ds.item_num_tags, [2, 1, 0])
  ds = registry.load_dataset("ml_latest_small", data_root=TEXT_DATA,
                             min_rating=2.0)
  assert ds.num_items == 4
  assert_error(lambda: registry.load_dataset(
      "ml_latest_small", data_root=TEXT_DATA, min_rting=3),
               "unexpected", "min_rating", "k_core", "seed")


def big_hetrec(root: Path, num_users=30, num_artists=40, seed=0) -> Path:
  """A HetRec-format folder with random listens (for split statistics)."""
  d = root / "hetrec" / "lastfm-2k"
  rng = np.random.default_rng(seed)
  listens = rng.random((num_users, num_artists)) < 0.4
  listens[:, 0] = True
  rows = [f"{u + 2}\t{a + 1}\t{rng.integers(1, 999)}\n"
          for u, a in np.argwhere(listens)]
  write(d / "user_artists.dat", "userID\tartistID\tweight\n" + "".join(rows))
  write(d / "artists.dat", "id\tname\turl\tpictureURL\n" + "".join(
      f"{a + 1}\tArtist {a + 1:03d}\tu\tp\n" for a in range(num_artists)))
  write(d / "tags.dat", "tagID\ttagValue\n1\trock\n2\tpop\n")
  write(d / "user_taggedartists.dat",
        "userID\tartistID\ttagID\tday\tmonth\tyear\n2\t1\t1\t1\t1\t2009\n"
        "2\t1\t2\t1\t1\t2009\n3\t1\t1\t1\t1\t2009\n")
  return d, int(listens.sum())


@pytest.mark.filterwarnings("ignore::jaxrec.data.preprocess.DataWarning")
def test_text_sets_split_per_user_and_by_seed(tmp_path):
  _, total = big_hetrec(tmp_path)
  a = registry.load_dataset("hetrec_lastfm", data_root=tmp_path, seed=0)
  b = registry.load_dataset("hetrec_lastfm", data_root=tmp_path, seed=0)
  c = registry.load_dataset("hetrec_lastfm", data_root=tmp_path, seed=1)
  assert pairs(a.test) == pairs(b.test) and pairs(a.valid) == pairs(b.valid)
  assert pairs(a.test) != pairs(c.test)
  for ds in (a, c):
    assert len(ds.train) + len(ds.valid) + len(ds.test) == total
    every = set(pairs(ds.train)) | set(pairs(ds.valid)) | set(pairs(ds.test))
    assert len(every) == total  # disjoint
    assert (np.bincount(ds.train.users, minlength=ds.num_users) >= 1).all()
    assert 0.06 < len(ds.test) / total < 0.14
    assert 0.06 < len(ds.valid) / total < 0.14
  assert a.item_num_tags[0] == 2 and a.item_texts[0] == "Artist 001. Tags: rock, pop"
  k = registry.load_dataset("hetrec_lastfm", data_root=tmp_path, k_core=9,
                            valid_ratio=0.0, test_ratio=0.0)
  assert np.bincount(k.train.users).min() >= 9
  assert np.bincount(k.train.items).min() >= 9
  assert k.num_items < a.num_items


def test_text_sets_data_errors(tmp_path):
  d = copy_tree(TEXT_DATA / "hetrec", tmp_path / "hetrec")
  d = d / "lastfm-2k"
  load = lambda: loaders.load_hetrec_lastfm(d)
  art = d / "artists.dat"
  good = art.read_bytes()
  write(art, good.replace(b"\thttp://www.last.fm/music/p", b"", 1))
  assert_error(load, re.escape(f"{art}:6:"), "expected 4 fields")
  write(art, good.replace("Björk".encode(), b"Bj\xf6rk"))
  assert_error(load, re.escape(f"{art}:2:"), "utf-8")
  write(art, b"id\tname\n" + good.split(b"\n", 1)[1])
  assert_error(load, re.escape(f"{art}:1:"), "header")
  write(art, good)
  tagged = d / "user_taggedartists.dat"
  good = tagged.read_bytes()
  write(tagged, good + b"2\t1\t77\t1\t4\t2009\n")
  assert_error(load, re.escape(f"{tagged}:7:"), "tagID", "77")
  write(tagged, good + b"2\t1\t1\t1\t4\n")
  assert_error(load, re.escape(f"{tagged}:7:"), "6 integer fields")
  write(tagged, good + b"2\t1\tx\t1\t4\t2009\n")
  assert_error(load, re.escape(f"{tagged}:7:"), "integer")
  tagged.unlink()
  assert_error(load, "user_taggedartists.dat", "not found")
  ml = copy_tree(TEXT_DATA / "movielens" / "ml-latest-small",
                 tmp_path / "ml")
  (ml / "tags.csv").unlink()
  assert_error(lambda: loaders.load_ml_latest_small(ml), "tags.csv",
               "not found")
  assert_error(lambda: registry.load_dataset("hetrec_lastfm",
                                             data_root=tmp_path / "none"),
               "hetrec_lastfm", "lastfm-2k", "grouplens")


# ------------------------------------------------- property-based (fuzzing)

_MAX_ID = 2**31 - 2


def reference_lines(data: bytes, colon: bool):
  """Pure-Python reference parser: (users, items) or None if invalid."""
  allowed = set(b"0123456789 \t\r\n" + (b":" if colon else b""))
  if any(c not in allowed for c in data):
    return None
  users, items, any_token = [], [], False
  for line in data.split(b"\n"):
    if colon:
      if not line.strip():
        continue
      if line.count(b":") != 1:
        return None
      head, tail = line.split(b":")
      if len(head.split()) != 1:
        return None
      toks = head.split() + tail.split()
    else:
      toks = line.split()
    if not toks:
      continue
    any_token = True
    if any(len(t) > 10 or int(t) > _MAX_ID for t in toks):
      return None
    users += [int(toks[0])] * (len(toks) - 1)
    items += [int(t) for t in toks[1:]]
  if not any_token or not items:
    return None
  return users, items


@st.composite
def user_files(draw, colon: bool) -> str:
  """Well-formed per-user files with a few random insertions."""
  lines = draw(st.lists(st.tuples(
      st.integers(0, 60), st.lists(st.integers(0, 60), max_size=5)),
      max_size=6))
  sep = ":" if colon else " "
  text = "\n".join(f"{u}{sep}{' '.join(map(str, its))}" for u, its in lines)
  for pos, piece in draw(st.lists(st.tuples(
      st.integers(0, 400), st.sampled_from(
          list(" \t\r\n:-.a,é\x0b0") + ["99999999999", ""])), max_size=3)):
    pos %= len(text) + 1
    text = text[:pos] + piece + text[pos:]
  return text


def _texts(colon):
  noise = st.text(alphabet=st.sampled_from(list("0123456789 \n:\t\r-.aé")),
                  max_size=40)
  return st.one_of(user_files(colon), noise)


_QUIET = pytest.mark.filterwarnings(
    "ignore::jaxrec.data.preprocess.DataWarning")
_SETTINGS = hypothesis.settings(max_examples=150, deadline=None,
                                suppress_health_check=list(
                                    hypothesis.HealthCheck))


@_QUIET
@_SETTINGS
@hypothesis.given(data=st.data(), colon=st.booleans())
def test_fuzz_user_lines_match_reference(data, colon):
  data = data.draw(_texts(colon)).encode()
  with tempfile.TemporaryDirectory() as d:
    path = write(Path(d) / "f.txt", data)
    expected = reference_lines(data, colon)
    try:
      got = loaders.read_user_lines(path, colon=colon)
    except DataError as e:
      assert expected is None, (data, str(e))
      assert str(path) in str(e)
      return
    assert expected is not None, data
    assert got.users.tolist() == expected[0]
    assert got.items.tolist() == expected[1]


@_QUIET
@_SETTINGS
@hypothesis.given(data=st.data(), colon=st.booleans())
def test_fuzz_dataset_loaders_raise_only_data_error(data, colon):
  train = data.draw(_texts(colon))
  with tempfile.TemporaryDirectory() as d:
    write(Path(d) / "train.txt", train.encode())
    write(Path(d) / "test.txt", "1:2\n" if colon else "1 2\n")
    try:
      ds = (loaders.load_selfrec if colon else loaders.load_lightgcn)(d)
    except DataError:
      return
    assert isinstance(ds, Dataset) and len(ds.train) > 0


@_QUIET
@_SETTINGS
@hypothesis.given(
    text=st.text(alphabet=st.sampled_from(list("01239 ,;\t\r\n-.aE\"'é#")),
                 max_size=60),
    header=st.booleans(), id_type=st.sampled_from(["int", "str", "auto"]))
def test_fuzz_csv_raises_only_data_error(text, header, id_type):
  with tempfile.TemporaryDirectory() as d:
    path = write(Path(d) / "f.csv", text.encode("utf-8"))
    kwargs = dict(header=header, id_type=id_type)
    if header:
      kwargs.update(user_col=0, item_col=1)
    try:
      ds = loaders.load_csv(path, **kwargs)
    except DataError:
      return
    assert len(ds.train) > 0 and ds.num_users == len(ds.user_ids)


# --------------------------------------------------- integration (real data)


def _real(*parts):
  if DATA_ROOT is None or not DATA_ROOT.joinpath(*parts).exists():
    pytest.skip(f"real data {'/'.join(parts)} not found under "
                f"{DATA_ROOT} (set {registry.ENV_VAR})")
  return DATA_ROOT.joinpath(*parts)


def test_real_gowalla_counts_and_speed():
  d = _real("lightgcn", "gowalla", "s_adj_mat.npz")
  start = time.perf_counter()
  ds = loaders.load_lightgcn_adj(d.parent)
  seconds = time.perf_counter() - start
  assert (ds.num_users, ds.num_items) == (29858, 40981)
  assert (len(ds.train), len(ds.test)) == (810128, 217242)
  assert seconds < 5.0, seconds


def test_real_lastfm_counts():
  d = _real("lightgcn", "lastfm", "data1.txt")
  ds = loaders.load_lastfm(d.parent)
  assert (ds.num_users, ds.num_items) == (1892, 4489)
  assert (len(ds.train), len(ds.test)) == (42135, 10533)


def test_real_amazon_beauty_counts():
  d = _real("selfrec", "amazon-beauty", "train.txt")
  with pytest.warns(DataWarning, match="dropped 52 of 22363"):
    ds = loaders.load_selfrec(d.parent)
  assert (ds.num_users, ds.num_items) == (22363, 12092)
  assert (len(ds.train), len(ds.test)) == (176139, 22311)


def test_real_registry_carves_validation():
  _real("lightgcn", "lastfm", "data1.txt")
  ds = registry.load_dataset("lastfm", seed=1)
  assert len(ds.train) + len(ds.valid) == 42135
  assert 0.08 < len(ds.valid) / 42135 < 0.12

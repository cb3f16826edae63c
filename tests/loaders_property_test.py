"""Property-based tests: every loader, on randomly damaged input, either
returns a valid Dataset or raises DataError naming the file -- never another
exception.

Inputs are valid files of each format with random mutations (inserted bytes
from an alphabet of separators, signs, letters, non-ASCII and huge numbers;
deleted ranges; truncation; duplicated lines), or random pickled objects for
the RLMRec / npz formats.
"""

import os
import pickle
import tempfile

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.sparse as sp

from jaxrec.data import loaders
from jaxrec.data.dataset import DataError, Dataset

_SETTINGS = hypothesis.settings(max_examples=60, deadline=None,
                                suppress_health_check=list(
                                    hypothesis.HealthCheck))
pytestmark = pytest.mark.filterwarnings(
    "ignore::jaxrec.data.preprocess.DataWarning")

_PIECES = list(" \t\r\n:,;-.+eaé\x00\"#") + [
    "::", "nan", "inf", "1e400", "99999999999", "2147483647", "-1", "0", "",
    "\ufeff"]


@st.composite
def mutated(draw, text: str) -> bytes:
  """`text` with 0-4 random insertions / deletions / truncation / repeats."""
  data = text
  for _ in range(draw(st.integers(0, 4))):
    op = draw(st.sampled_from(["insert", "delete", "truncate", "repeat"]))
    pos = draw(st.integers(0, max(len(data), 1))) % (len(data) + 1)
    if op == "insert":
      data = data[:pos] + draw(st.sampled_from(_PIECES)) + data[pos:]
    elif op == "delete":
      data = data[:pos] + data[pos + draw(st.integers(1, 5)):]
    elif op == "truncate":
      data = data[:pos]
    else:
      lines = data.split("\n")
      k = pos % len(lines)
      data = "\n".join(lines[:k + 1] + lines[k:])
  return data.encode("utf-8", "surrogatepass")


def _user_lines(rng: np.random.Generator, colon: bool, users=8,
                items=12) -> str:
  sep = ":" if colon else " "
  lines = []
  for u in range(users):
    its = rng.choice(items, size=rng.integers(1, 5), replace=False)
    lines.append(f"{u}{sep}" + " ".join(map(str, its)))
  return "\n".join(lines) + "\n"


def _rows(rng, sep, one_based=False, extra=True, n=20) -> str:
  off = 1 if one_based else 0
  out = []
  for _ in range(n):
    row = [str(rng.integers(0, 8) + off), str(rng.integers(0, 12) + off)]
    if extra:
      row += [str(int(rng.integers(1, 6))), str(int(rng.integers(0, 10**9)))]
    out.append(sep.join(row))
  return "\n".join(out) + "\n"


def check_dataset(ds: Dataset) -> None:
  """The Dataset contract: contiguous int32 ids in range, unique train pairs."""
  assert isinstance(ds, Dataset)
  assert ds.num_users >= 1 and ds.num_items >= 1 and len(ds.train) > 0
  for split in ("train", "valid", "test"):
    inter = getattr(ds, split)
    assert inter.users.dtype == np.int32 and inter.items.dtype == np.int32
    if len(inter):
      assert 0 <= inter.users.min() and inter.users.max() < ds.num_users
      assert 0 <= inter.items.min() and inter.items.max() < ds.num_items
  codes = ds.train.users.astype(np.int64) * ds.num_items + ds.train.items
  assert len(np.unique(codes)) == len(codes)
  if ds.user_ids is not None:
    assert len(ds.user_ids) == ds.num_users
    assert len(ds.item_ids) == ds.num_items


def run_loader(load, directory: str, files: dict) -> None:
  """Writes `files` into `directory`, calls `load()`, checks the outcome."""
  for name, content in files.items():
    with open(os.path.join(directory, name), "wb") as f:
      f.write(content)
  try:
    ds = load()
  except DataError as err:
    message = str(err)
    assert directory in message or any(n in message for n in files), message
    return
  check_dataset(ds)


def _two_files(draw, train_name, test_name, make):
  rng = np.random.default_rng(draw(st.integers(0, 2**16)))
  which = draw(st.sampled_from([train_name, test_name]))
  files = {train_name: make(rng).encode(), test_name: make(rng).encode()}
  files[which] = draw(mutated(files[which].decode()))
  return files


@_SETTINGS
@hypothesis.given(data=st.data())
def test_lightgcn(data):
  files = _two_files(data.draw, "train.txt", "test.txt",
                     lambda rng: _user_lines(rng, colon=False))
  with tempfile.TemporaryDirectory() as d:
    run_loader(lambda: loaders.load_lightgcn(d), d, files)


@_SETTINGS
@hypothesis.given(data=st.data())
def test_selfrec(data):
  files = _two_files(data.draw, "train.txt", "test.txt",
                     lambda rng: _user_lines(rng, colon=True))
  with tempfile.TemporaryDirectory() as d:
    run_loader(lambda: loaders.load_selfrec(d), d, files)


@_SETTINGS
@hypothesis.given(data=st.data())
def test_lastfm(data):
  files = _two_files(data.draw, "data1.txt", "test1.txt",
                     lambda rng: _rows(rng, "\t", one_based=True,
                                       extra=False))
  with tempfile.TemporaryDirectory() as d:
    run_loader(lambda: loaders.load_lastfm(d), d, files)


@_SETTINGS
@hypothesis.given(data=st.data(), id_type=st.sampled_from(["int", "str",
                                                          "auto"]),
                  with_test=st.booleans())
def test_csv(data, id_type, with_test):
  header = "user,item,rating,timestamp\n"
  files = _two_files(data.draw, "train.csv", "test.csv",
                     lambda rng: header + _rows(rng, ","))
  if not with_test:
    del files["test.csv"]
  with tempfile.TemporaryDirectory() as d:
    kwargs = dict(rating_col="rating", timestamp_col="timestamp",
                  id_type=id_type)
    if with_test:
      kwargs["test_path"] = os.path.join(d, "test.csv")
    run_loader(lambda: loaders.load_csv(os.path.join(d, "train.csv"),
                                        **kwargs), d, files)


@_SETTINGS
@hypothesis.given(data=st.data(), kind=st.sampled_from(["ratings.dat",
                                                       "u.data"]))
def test_movielens(data, kind):
  rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
  text = _rows(rng, "::" if kind == "ratings.dat" else "\t", one_based=True)
  files = {kind: data.draw(mutated(text))}
  with tempfile.TemporaryDirectory() as d:
    run_loader(lambda: loaders.load_movielens(d), d, files)


@_SETTINGS
@hypothesis.given(data=st.data())
def test_recbole(data):
  rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
  header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
  files = {"x.inter": data.draw(mutated(header + _rows(rng, "\t")))}
  with tempfile.TemporaryDirectory() as d:
    run_loader(lambda: loaders.load_recbole(d), d, files)


# ----------------------------------------------------------------------------
# Binary formats: random objects in place of the expected ones.


def _npz_bytes(matrix) -> bytes:
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "m.npz")
    sp.save_npz(path, matrix)
    with open(path, "rb") as f:
      return f.read()


@_SETTINGS
@hypothesis.given(data=st.data())
def test_lightgcn_adj(data):
  draw = data.draw
  rng = np.random.default_rng(draw(st.integers(0, 2**16)))
  users, items = draw(st.integers(1, 5)), draw(st.integers(1, 6))
  block = sp.csr_matrix((rng.random((users, items)) < 0.5).astype(np.float32))
  adj = sp.bmat([[sp.csr_matrix((users, users)), block],
                 [block.T, sp.csr_matrix((items, items))]], format="csr")
  kind = draw(st.sampled_from(["ok", "asymmetric", "rectangular", "garbage",
                               "truncated"]))
  if kind == "asymmetric":
    adj = adj.tolil()
    adj[0, 0] = 1.0
    adj = adj.tocsr()
  elif kind == "rectangular":
    adj = adj[:, :-1]
  content = _npz_bytes(adj)
  if kind == "garbage":
    content = bytes(rng.integers(0, 256, 64, dtype=np.uint8))
  elif kind == "truncated":
    content = content[:len(content) // 2]
  test = "\n".join(f"{u} {rng.integers(0, items)}" for u in range(users))
  files = {"s_adj_mat.npz": content, "test.txt": draw(mutated(test))}
  with tempfile.TemporaryDirectory() as d:
    run_loader(lambda: loaders.load_lightgcn_adj(d), d, files)


_OBJECTS = st.one_of(
    st.none(), st.integers(), st.text(max_size=5),
    st.lists(st.floats(allow_nan=True), max_size=4),
    st.dictionaries(st.integers(-2, 6), st.one_of(
        st.text(max_size=4), st.dictionaries(
            st.sampled_from(["profile", "x"]),
            st.one_of(st.text(max_size=4), st.integers())))),
    st.tuples(st.integers(0, 6), st.integers(0, 4),
              st.sampled_from(["float", "nan", "inf", "sparse", "obj"])))


def _materialise(obj, rng):
  """Tuples describe arrays: (rows, cols, kind)."""
  if not isinstance(obj, tuple):
    return obj
  rows, cols, kind = obj
  arr = rng.random((rows, cols))
  if kind == "nan" and arr.size:
    arr.flat[0] = np.nan
  elif kind == "inf" and arr.size:
    arr.flat[-1] = np.inf
  elif kind == "sparse":
    return sp.coo_matrix((arr < 0.5).astype(np.float32))
  elif kind == "obj":
    return np.array([["a"] * cols] * rows, dtype=object)
  return arr


@_SETTINGS
@hypothesis.given(data=st.data())
def test_rlmrec(data):
  draw = data.draw
  rng = np.random.default_rng(draw(st.integers(0, 2**16)))
  mats = (rng.random((3, 4, 5)) < 0.5).astype(np.float32)
  mats[:, :, 0] = 1
  objects = {f"{n}_mat.pkl": sp.coo_matrix(m)
             for n, m in zip(("trn", "val", "tst"), mats)}
  objects.update({"usr_prf.pkl": {u: f"user {u}" for u in range(4)},
                  "itm_prf.pkl": {i: {"profile": f"i{i}"} for i in range(5)},
                  "usr_emb_np.pkl": rng.random((4, 3)),
                  "itm_emb_np.pkl": rng.random((5, 3))})
  victim = draw(st.sampled_from(sorted(objects)))
  files = {k: pickle.dumps(v) for k, v in objects.items()}
  how = draw(st.sampled_from(["object", "garbage"]))
  if how == "object":
    files[victim] = pickle.dumps(_materialise(draw(_OBJECTS), rng))
  else:
    files[victim] = files[victim][:draw(st.integers(0, 40))]
  with tempfile.TemporaryDirectory() as d:
    run_loader(lambda: loaders.load_rlmrec(d), d, files)

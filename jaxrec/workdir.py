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
  run.lock         LOCK_FILE: the id of the process training into the
                   workdir, present while it runs (`WorkdirLock`; process 0
                   of a multi-process job, `JobLock`).

This module is the one place that names these files and reads or writes the
first three; training writes them and the tools (`jaxrec.recommend`,
`jaxrec.report`) read them, so neither imports the other for them. It also
guards a workdir before training writes to it: `check_workdir` (a directory
that can be written, holding no run of another config) and `WorkdirLock`
(one training process at a time).
"""

from __future__ import annotations

import json
import os
import re
import socket
from typing import Any, Iterable

import ml_collections
import numpy as np

from jaxrec import checkpoint as checkpoint_lib
from jaxrec import files
from jaxrec.config_utils import with_defaults
from jaxrec.data.dataset import DataError, Dataset, IdMap, Interactions
from jaxrec.errors import WorkdirError

CONFIG_FILE = "config.json"
DATASET_FILE = "dataset.npz"
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
LOCK_FILE = "run.lock"
# Config keys a resumed run may change without `allow_config_change`: they
# decide where a run stops, how it is run or logged and where its inputs are
# found, not what it trains (so extending a capped run with a larger
# num_epochs, or re-running a finished one with eval_test=True, is allowed).
# A prefix covers every key under it. refit_epochs may also change between
# positive values (a longer refit), not to or from 0 (another protocol).
HARMLESS_CONFIG_KEYS = (
    "num_epochs", "patience", "min_epochs", "relative_patience", "eval_test",
    "progress", "tensorboard", "max_checkpoints", "eval_memory_bytes",
    "steps_per_call", "sharding", "dataset.data_root", "graph.text_cache_dir")
_SPLITS = ("train", "valid", "test")
_TEXT_FEATURES = ("user_embeddings", "item_embeddings")


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
    if inter.ratings is not None:  # the rating task's graph and targets
      arrays[f"{split}_ratings"] = np.asarray(inter.ratings, np.float32)
  for field in ("user_ids", "item_ids"):
    idmap = getattr(dataset, field)
    if idmap is not None:
      arrays[field] = np.asarray(idmap.original)
  for field in ("item_categories", "item_num_tags"):
    if getattr(dataset, field) is not None:
      arrays[field] = np.asarray(getattr(dataset, field))
  if config.graph.text_features:
    if dataset.item_embeddings is None or dataset.user_embeddings is None:
      raise ValueError(
          f"save_artifacts: config.graph.text_features is on but dataset "
          f"{dataset.name!r} carries no user/item text features; pass it "
          "through input_pipeline.with_text_features first")
    for field in _TEXT_FEATURES:
      arrays[field] = np.asarray(getattr(dataset, field), np.float32)
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  files.atomic_write(os.path.join(workdir, CONFIG_FILE),
                     lambda f: f.write(text.encode()))
  files.atomic_write(os.path.join(workdir, DATASET_FILE),
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
  """The resolved config saved by `save_artifacts`, over the base config.

  A config saved before a key existed takes that key's base-config default
  (`config_utils.with_defaults`), so older runs still load.

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
      saved = json.load(f)
  except ValueError as err:
    raise DataError(f"{path}: not a JSON config ({err})") from err
  if not isinstance(saved, dict):
    raise DataError(f"{path}: not a JSON config (expected an object, got "
                    f"{type(saved).__name__})")
  return with_defaults(saved)


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
    splits = {s: Interactions(data[f"{s}_users"], data[f"{s}_items"],
                              data.get(f"{s}_ratings"))
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


def _nearest_existing(path: str) -> str:
  """`path` or its closest ancestor that exists."""
  path = os.path.abspath(path)
  while not os.path.exists(path):
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  return path


def check_writable(workdir: str) -> None:
  """Checks that training can create or write `workdir`; writes nothing.

  Args:
    workdir: the output directory of a run (it may not exist yet).

  Raises:
    WorkdirError: `workdir` (or the ancestor it would be created in) is a
      file, or is not writable.
  """
  existing = _nearest_existing(workdir)
  if not os.path.isdir(existing):
    what = ("is a file" if existing == os.path.abspath(workdir)
            else f"cannot be created: {existing} is a file")
    raise WorkdirError(f"workdir {workdir} {what}; expected a directory (new, "
                       "or the workdir of an earlier run)")
  if not os.access(existing, os.W_OK | os.X_OK):
    where = ("" if existing == os.path.abspath(workdir)
             else f" (it would be created in {existing})")
    raise WorkdirError(f"workdir {workdir}{where} is not writable; expected a "
                       "directory this user can write")


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """{'a.b': leaf} of a nested dict of JSON values."""
  if not isinstance(tree, dict):
    return {prefix: tree}
  out = {}
  for key, value in tree.items():
    out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
  return out


def _harmless(key: str, harmless: Iterable[str]) -> bool:
  return any(key == h or key.startswith(h + ".") for h in harmless)


def config_changes(workdir: str, config: ml_collections.ConfigDict,
                   harmless: Iterable[str] = HARMLESS_CONFIG_KEYS
                   ) -> list[str]:
  """Keys whose value differs between `config` and the workdir's config.json.

  Values are compared as JSON (tuples and lists are equal). Keys present on
  one side only (a config saved by a version with other defaults) and keys
  in `harmless` are not reported.

  Args:
    workdir: a directory that may hold an earlier run.
    config: the config of the run about to start.
    harmless: keys (or prefixes) that may change on resume.

  Returns:
    Sorted dotted keys, e.g. ['model.embed_dim', 'optimizer.learning_rate'];
    [] when the workdir holds no config.json.

  Raises:
    DataError: config.json is not valid JSON.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    return []
  try:
    with open(path) as f:
      saved = _flatten(json.load(f))
  except ValueError as err:
    raise DataError(f"{path}: not a JSON config ({err})") from err
  current = _flatten(json.loads(config.to_json_best_effort()))
  changed = []
  for key in sorted(saved.keys() & current.keys()):
    old, new = _comparable(saved[key]), _comparable(current[key])
    # (old != old: NaN, equal to itself here)
    if old == new or old != old and new != new or _harmless(key, harmless):
      continue
    if key == "refit_epochs" and old > 0 and new > 0:
      continue  # a longer (or shorter) refit, as num_epochs for a run
    changed.append(key)
  return changed


def _comparable(value: Any) -> Any:
  """A saved value without the parts that differ between processes."""
  if isinstance(value, str) and value.startswith("unserializable object"):
    # A callable's repr ("<function f at 0x7f...>"): its address varies.
    return re.sub(r" at 0x[0-9a-fA-F]+", "", value)
  return value


def check_workdir(workdir: str, config: ml_collections.ConfigDict,
                  allow_config_change: bool = False) -> None:
  """Checks, before any work, that a run of `config` may write `workdir`.

  Args:
    workdir: the run's output directory (new, or of an earlier run).
    config: the config of the run about to start.
    allow_config_change: resume even if the saved config differs in keys
      outside `HARMLESS_CONFIG_KEYS`.

  Raises:
    WorkdirError: `workdir` is a file or not writable, or holds a run whose
      config differs (the keys are named) and `allow_config_change` is off.
  """
  check_writable(workdir)
  changed = [] if allow_config_change else config_changes(workdir, config)
  if changed:
    raise WorkdirError(
        f"workdir {workdir} holds a run of another config: {changed} differ "
        f"from {os.path.join(workdir, CONFIG_FILE)}; use a new workdir, or "
        "resume anyway with --allow_config_change (Python: "
        "allow_config_change=True). Keys that may change on resume: "
        f"{list(HARMLESS_CONFIG_KEYS)}")


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's live process
    return True
  return True


def _read_lock(path: str) -> tuple[str, int]:
  """(host, pid) recorded in a lock file; pid -1 when unreadable."""
  try:
    with open(path) as f:
      host, _, pid = f.read().strip().rpartition(" ")
    return host, int(pid)
  except (OSError, ValueError):
    return "", -1


class WorkdirLock:
  """One training process per workdir: a lock file holding 'host pid'.

  The file is created atomically (`O_CREAT | O_EXCL`); a second process
  finding it refuses to start while the recorded process is alive. A lock
  left by a process that died (killed, out of memory) is taken over. Used as
  a context manager; creates `workdir` if needed and removes the lock on
  exit.

  Args:
    workdir: the run's output directory.
  """

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, LOCK_FILE)
    self._held = False

  def _stale(self) -> bool:
    """Whether the existing lock belongs to no live process (or to us)."""
    return self._stale_file(self.path)

  @staticmethod
  def _stale_file(path: str) -> bool:
    host, pid = _read_lock(path)
    if pid < 0:  # empty or half-written: its writer died before finishing
      return True
    if host and host != socket.gethostname():
      return False  # a process on another machine: cannot tell, keep it
    return pid == os.getpid() or not _pid_alive(pid)

  def acquire(self) -> None:
    """Takes the lock.

    Raises:
      WorkdirError: another live process holds it, or the workdir cannot be
        written.
    """
    record = f"{socket.gethostname()} {os.getpid()}\n".encode()
    for _ in range(3):
      try:
        os.makedirs(self.workdir, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
      except FileExistsError:
        if not self._stale():
          host, pid = _read_lock(self.path)
          raise WorkdirError(
              f"workdir {self.workdir} is in use by process {pid} on {host} "
              f"(lock file {self.path}); wait for it to finish or use another "
              "workdir (remove the lock file only if that process is gone)"
          ) from None
        # Dead owner: move its lock aside (atomic, so only one of several
        # starting processes gets it) and try again.
        aside = f"{self.path}.stale{os.getpid()}"
        try:
          os.replace(self.path, aside)
        except FileNotFoundError:
          continue
        if not self._stale_file(aside):
          # Another starter took the lock between our check and the move:
          # put its lock back; the next try refuses.
          try:
            os.link(aside, self.path)
          except FileExistsError:
            pass
        os.remove(aside)
        continue
      except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise WorkdirError(
            f"workdir {self.workdir} cannot be written ({reason}); expected a "
            "writable directory") from err
      with os.fdopen(fd, "wb") as f:
        f.write(record)
      self._held = True
      return
    raise WorkdirError(f"workdir {self.workdir}: could not take the lock "
                       f"{self.path} (other processes keep replacing it)")

  def release(self) -> None:
    if self._held:
      self._held = False
      try:
        os.remove(self.path)
      except OSError:  # the workdir was removed or made read-only meanwhile
        pass

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()


class JobLock(WorkdirLock):
  """`WorkdirLock` for every process of a (possibly multi-process) JAX job.

  One process: a plain `WorkdirLock`. In a multi-process job
  (`jax.distributed`) process 0 alone holds the lock file, for the whole
  job, and broadcasts whether it got it, so every process starts or every
  process raises (no process waits for a partner that has given up).

  Args:
    workdir: the run's output directory (shared by all processes).
  """

  def acquire(self) -> None:
    """Takes the lock (process 0) and agrees on the outcome.

    Raises:
      WorkdirError: the lock is held by another live run (process 0 names
        it; the other processes say that process 0 could not take it).
    """
    # pylint: disable=g-import-not-at-top
    import jax
    from jax.experimental import multihost_utils
    # pylint: enable=g-import-not-at-top
    if jax.process_count() == 1:
      super().acquire()
      return
    error = None
    if jax.process_index() == 0:
      try:
        super().acquire()
      except WorkdirError as err:
        error = err
    taken = multihost_utils.broadcast_one_to_all(np.int32(error is None))
    if error is not None:
      raise error
    if not int(taken):
      raise WorkdirError(
          f"workdir {self.workdir}: process 0 of this job could not take the "
          f"lock {self.path} (its error names the holder); nothing was run")

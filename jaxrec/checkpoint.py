"""Orbax checkpointing with exact resume and fallback past corrupt checkpoints.

A checkpoint holds the whole training state pytree (params, optimiser state,
step, best params) plus a JSON `meta` record (epoch, early-stopping counters,
metric history).

Fault model:
  * Killed mid-write: Orbax writes into `<step>.orbax-checkpoint-tmp*` and
    finalises by an atomic rename, so a killed write never looks complete.
    Left-over temporary directories are reported (warning) and removed when
    the next `Checkpointer` opens the directory.
  * Corrupted after the write (truncated, garbled or deleted file): after
    each save a manifest `jaxrec_manifest.json` (size + SHA-256 of every file,
    written atomically) is stored in the step directory. `restore` verifies it
    and also catches any Orbax read error; a bad checkpoint is reported with a
    warning naming the file, moved to `<directory>.corrupt/` (so the step can
    be written again) and the next older checkpoint is used.

  * Checkpoint folder removed while the run is using it: the next save
    raises `CheckpointError` naming the folder (Orbax would silently
    recreate it, and the lost epochs would go unnoticed until a resume).

Multi-process jobs (`jax.distributed`, docs/distributed.md): every process
calls `save` and `restore` with the same steps (Orbax writes each process's
shards of globally sharded arrays and synchronises the processes); process 0
alone writes the manifest, reports left-over temporary directories and moves
corrupt checkpoints aside, between barriers, so all processes see the same
checkpoints and choose the same step. The checkpoint directory must be on a
file system every process reads and writes (one host, NFS, GCS).

Writes can be observed: `Checkpointer(..., write_hook=fn)` calls
`fn(step, directory)` inside the Orbax write (state written, meta not yet,
the temporary directory not yet renamed), so a test can stop or kill a
process in the middle of a checkpoint write (tests/faults_test.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from typing import Any, Callable, Optional

import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

from jaxrec import files as files_lib

logger = logging.getLogger(__name__)

MANIFEST = "jaxrec_manifest.json"
TMP_MARKER = ".orbax-checkpoint-tmp"
# fn(step, temporary directory) called during a checkpoint write.
WriteHook = Callable[[int, str], None]


class CheckpointError(RuntimeError):
  """Checkpoints exist but none can be restored (and not proven corrupt), or
  the checkpoint folder was removed while a run was using it."""


class _HookedJsonHandler(ocp.JsonCheckpointHandler):
  """JSON handler that calls a `WriteHook` before writing the meta record."""

  def __init__(self, hook: WriteHook):
    super().__init__()
    self._hook = hook
    self.step = -1  # set by Checkpointer.save before each write

  async def _save_fn(self, x, directory):
    self._hook(self.step, str(directory))
    await super()._save_fn(x, directory)


def _primary() -> bool:
  """Whether this process writes the files every process shares."""
  return jax.process_index() == 0


def _sync(name: str) -> None:
  """Barrier over all processes of a multi-process job (no-op otherwise)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"jaxrec.checkpoint.{name}")


def _file_digest(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _list_files(root: str) -> list[str]:
  out = []
  for base, _, files in os.walk(root):
    for name in files:
      rel = os.path.relpath(os.path.join(base, name), root)
      if rel != MANIFEST:
        out.append(rel)
  return sorted(out)


def write_manifest(step_dir: str) -> None:
  """Records size and SHA-256 of every file of a finished checkpoint."""
  files = {rel: [os.path.getsize(os.path.join(step_dir, rel)),
                 _file_digest(os.path.join(step_dir, rel))]
           for rel in _list_files(step_dir)}
  path = os.path.join(step_dir, MANIFEST)
  files_lib.write_json(path, {"version": 1, "files": files}, indent=1)


def verify_manifest(step_dir: str) -> Optional[str]:
  """Checks a checkpoint directory against its manifest.

  Args:
    step_dir: one checkpoint's directory.

  Returns:
    None if every file matches (or there is no manifest: a process killed
    between Orbax's final rename and the manifest write leaves a complete
    but unverified checkpoint), else a message naming the first bad file.
  """
  path = os.path.join(step_dir, MANIFEST)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      files = json.load(f)["files"]
  except (OSError, ValueError, KeyError, TypeError) as err:
    return f"{path}: unreadable manifest ({type(err).__name__}: {err})"
  for rel, (size, digest) in sorted(files.items()):
    full = os.path.join(step_dir, rel)
    if not os.path.exists(full):
      return f"{full}: file missing"
    actual = os.path.getsize(full)
    if actual != size:
      return f"{full}: size {actual} bytes, expected {size} (truncated?)"
    if _file_digest(full) != digest:
      return f"{full}: SHA-256 mismatch (garbled contents)"
  return None


def _with_sharding(leaf: Any) -> Any:
  """An abstract leaf with a sharding (this process's first device if none).

  Orbax restores a checkpoint written by another process count (a
  multi-process job read by a one-process tool) only into explicit
  shardings.
  """
  if isinstance(leaf, jax.ShapeDtypeStruct) and leaf.sharding is None:
    return jax.ShapeDtypeStruct(
        leaf.shape, leaf.dtype,
        sharding=jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
  return leaf


class Checkpointer:
  """Saves/restores (state pytree, meta dict) pairs under `directory`.

  Args:
    directory: checkpoint root (created if missing).
    max_to_keep: number of most recent checkpoints kept on disk.
    read_only: only restore; never create, clean up or move anything (for
      inference while a run may still be writing).
    write_hook: optional `fn(step, directory)` called inside every write
      (see the module docstring).
  """

  def __init__(self, directory: str, max_to_keep: int = 2,
               read_only: bool = False,
               write_hook: Optional[WriteHook] = None):
    self.directory = os.path.abspath(directory)
    self.quarantine = self.directory + ".corrupt"
    self.read_only = read_only
    if not read_only and _primary():
      self._report_unfinished()
    registry = None
    self._hooked = None
    if write_hook is not None and not read_only:
      registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
      state_handler = ocp.StandardCheckpointHandler()
      meta_handler = self._hooked = _HookedJsonHandler(write_hook)
      for args in (ocp.args.StandardSave, ocp.args.StandardRestore):
        registry.add("state", args, state_handler)
      for args in (ocp.args.JsonSave, ocp.args.JsonRestore):
        registry.add("meta", args, meta_handler)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else max_to_keep,
            save_interval_steps=0 if read_only else 1, create=not read_only,
            cleanup_tmp_directories=not read_only, read_only=read_only),
        handler_registry=registry)

  def _report_unfinished(self) -> None:
    if not os.path.isdir(self.directory):
      return
    for name in sorted(os.listdir(self.directory)):
      if TMP_MARKER in name:
        logger.warning(
            "checkpoint write %s was never finished (process killed while "
            "saving?); it is ignored and removed, resuming from the last "
            "complete checkpoint", os.path.join(self.directory, name))

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Writes a checkpoint synchronously (returns once it is final on disk).

    Raises:
      CheckpointError: the checkpoint folder was removed since it was opened.
    """
    self._check_present(step)
    if self._hooked is not None:
      self._hooked.step = step
    try:
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                         force=True)
      self._manager.wait_until_finished()
    except Exception:  # pylint: disable=broad-except
      self._check_present(step)  # a removed folder is the likely cause
      raise
    if _primary() and os.path.isdir(self.step_dir(step)):
      write_manifest(self.step_dir(step))
    # The manifest is part of a finished checkpoint for every process.
    _sync(f"manifest.{step}")

  def _check_present(self, step: int) -> None:
    if not os.path.isdir(self.directory):
      raise CheckpointError(
          f"checkpoint folder {self.directory} was removed while the run was "
          f"using it; checkpoint {step} cannot be saved and the earlier ones "
          "are lost. Run the command again to train from the start.")

  def _quarantine(self, step: int) -> str:
    """Moves a bad checkpoint out of the managed directory; returns its path."""
    os.makedirs(self.quarantine, exist_ok=True)
    dest = os.path.join(self.quarantine, str(step))
    n = 1
    while os.path.exists(dest):
      dest = os.path.join(self.quarantine, f"{step}.{n}")
      n += 1
    shutil.move(self.step_dir(step), dest)
    return dest

  def restore(self, target: Any) -> Optional[tuple[int, Any, dict]]:
    """Restores the newest readable checkpoint.

    Args:
      target: a state pytree with the right structure, shapes and dtypes
        (concrete or abstract); optimiser states keep their types only when
        restored against such a target.

    Returns:
      (step, state, meta) or None when no usable checkpoint exists. Corrupt
      checkpoints are reported (warning naming the file), moved to
      `<directory>.corrupt/` and skipped in favour of older ones.

    Raises:
      CheckpointError: (a RuntimeError) checkpoints exist but none can be
        restored and at least one failure is not proven corruption (e.g. a
        config change that altered parameter shapes): nothing is moved.
    """
    abstract = jax.tree.map(_with_sharding,
                            jax.tree.map(ocp.utils.to_shape_dtype_struct,
                                         target))
    steps = self.all_steps()
    bad: list[tuple[int, str, bool]] = []  # (step, message, proven corrupt)
    for step in reversed(steps):
      problem = verify_manifest(self.step_dir(step))
      if problem is None:
        try:
          restored = self._manager.restore(step, args=ocp.args.Composite(
              state=ocp.args.StandardRestore(abstract),
              meta=ocp.args.JsonRestore()))
        except Exception as err:  # pylint: disable=broad-except
          bad.append((step, f"{type(err).__name__}: {str(err)[:300]}", False))
          logger.warning("checkpoint %s is unreadable (%s); trying the "
                         "previous one", self.step_dir(step), bad[-1][1])
          continue
        self._set_aside(bad)
        return step, restored["state"], dict(restored["meta"])
      bad.append((step, problem, True))
      logger.warning("checkpoint %s is corrupt: %s; trying the previous one",
                     self.step_dir(step), problem)
    if bad and not all(proven for _, _, proven in bad):
      raise CheckpointError(
          f"no readable checkpoint in {self.directory}: " + " | ".join(
              f"step {s}: {m}" for s, m, _ in bad) + ". If the config changed "
          "(model size, optimiser), use a new workdir.")
    self._set_aside(bad)
    return None

  def _set_aside(self, bad: list[tuple[int, str, bool]]) -> None:
    """Moves skipped (newer) checkpoints away so their steps can be rewritten."""
    if self.read_only or not bad:
      return
    _sync("verified")  # every process has checked before any is moved
    if _primary():
      for step, message, _ in bad:
        dest = self._quarantine(step)
        logger.warning("checkpoint %d (%s) moved to %s; resuming from an "
                       "older checkpoint", step, message, dest)
    _sync("set_aside")
    self._manager.reload()

  def close(self) -> None:
    self._manager.close()

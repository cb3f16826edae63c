"""Orbax checkpointing with exact resume and fallback past corrupt checkpoints.

A checkpoint holds the whole training state pytree (params, optimiser state,
step, best params) plus a JSON `meta` record (epoch, early-stopping counters,
metric history). Orbax finalises a checkpoint by renaming a temporary
directory, so a process killed mid-write leaves no checkpoint that looks
complete; a finished checkpoint that later fails to restore (truncated or
corrupted file) is reported and the next older one is used.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves/restores (state pytree, meta dict) pairs under `directory`.

  Args:
    directory: checkpoint root (created if missing).
    max_to_keep: number of most recent checkpoints kept on disk.
  """

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True))

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Writes a checkpoint synchronously (returns once it is final on disk)."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                       force=True)
    self._manager.wait_until_finished()

  def restore(self, target: Any) -> Optional[tuple[int, Any, dict]]:
    """Restores the newest readable checkpoint.

    Args:
      target: a state pytree with the right structure, shapes and dtypes
        (concrete or abstract); optimiser states keep their types only when
        restored against such a target.

    Returns:
      (step, state, meta) or None when no checkpoint exists. Corrupt
      checkpoints are logged and skipped in favour of older ones.

    Raises:
      RuntimeError: checkpoints exist but none can be restored.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    steps = self.all_steps()
    errors = []
    for step in reversed(steps):
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract),
            meta=ocp.args.JsonRestore()))
        return step, restored["state"], dict(restored["meta"])
      except Exception as err:  # pylint: disable=broad-except
        message = (f"checkpoint {step} in {self.directory} is unreadable "
                   f"({type(err).__name__}: {str(err)[:200]}); "
                   "falling back to the previous one")
        logging.warning(message)
        errors.append(message)
    if steps:
      raise RuntimeError("no readable checkpoint in "
                         f"{self.directory}: " + " | ".join(errors))
    return None

  def close(self) -> None:
    self._manager.close()

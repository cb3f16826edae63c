"""Files a training run writes besides its checkpoints.

metrics.jsonl is replaced atomically (`jaxrec.files`), so a killed run never
leaves a half-written one; TensorBoard event files are optional
(`config.tensorboard`).
"""

from __future__ import annotations

import json
import os

from jaxrec import files


def write_history(path: str, history: list[dict]) -> None:
  """Writes one JSON record per line to `path` atomically.

  Args:
    path: destination file (metrics.jsonl).
    history: the records, in order.
  """
  files.write_text(path, "".join(json.dumps(record, sort_keys=True) + "\n"
                                  for record in history))


def tensorboard_writer(config, workdir: str, start_epoch: int):
  """tensorboardX writer in workdir/tensorboard if `config.tensorboard`.

  Args:
    config: experiment configuration.
    workdir: the run directory.
    start_epoch: epochs already done (a resumed run); later events are purged.

  Returns:
    A `SummaryWriter`, or None when TensorBoard logging is off.
  """
  if not config.tensorboard:
    return None
  from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  # purge_step drops events of epochs after the restored checkpoint (re-run).
  return SummaryWriter(os.path.join(workdir, "tensorboard"),
                       purge_step=start_epoch + 1)


def log_scalars(writer, record: dict, step: int) -> None:
  """Adds every scalar of `record` but 'epoch' (no-op without a writer)."""
  if writer is None:
    return
  for key, value in record.items():
    if key != "epoch":
      writer.add_scalar(key if "/" in key else f"train/{key}", value, step)
  writer.flush()

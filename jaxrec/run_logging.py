"""Files a training run writes besides its checkpoints.

results.json and metrics.jsonl are replaced atomically (write a temporary
file, then `os.replace`), so a killed run never leaves a half-written one;
TensorBoard event files are optional (`config.tensorboard`).
"""

from __future__ import annotations

import json
import os
from typing import Any


def write_json_atomic(path: str, payload: Any) -> None:
  """Writes `payload` as JSON to `path` atomically (temp file + rename).

  Args:
    path: destination file.
    payload: a JSON-serialisable value.
  """
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def write_history(path: str, history: list[dict]) -> None:
  """Writes one JSON record per line to `path` atomically.

  Args:
    path: destination file (metrics.jsonl).
    history: the records, in order.
  """
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    for record in history:
      f.write(json.dumps(record, sort_keys=True) + "\n")
  os.replace(tmp, path)


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

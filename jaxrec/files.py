"""Atomic file writes: the one way jaxrec writes a file others may read.

Every writer goes through a temporary file in the destination's directory,
flushed to disk and then renamed over the destination (`os.replace` is
atomic on POSIX), so a reader, a crash or a kill sees either the old file or
the new one, never a half-written one, and no temporary file is left behind.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable


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


def write_text(path: str, text: str) -> None:
  """Writes `text` (UTF-8) to `path` atomically.

  Args:
    path: destination file; its directory must exist.
    text: the contents.
  """
  atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: str, payload: Any, indent: int = 2) -> None:
  """Writes `payload` as JSON (sorted keys) to `path` atomically.

  Args:
    path: destination file; its directory must exist.
    payload: a JSON-serialisable value.
    indent: JSON indentation.
  """
  write_text(path, json.dumps(payload, indent=indent, sort_keys=True))

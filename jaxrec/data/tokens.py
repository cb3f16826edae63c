"""Vectorised byte tokenizer of whitespace-separated integer files.

Shared by the line-oriented loaders (`loaders`: LightGCN, SELFRec) and the
HetRec tables (`textsets`); errors name the file and the 1-based line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxrec.data.dataset import DataError

_MAX_ID = 2**31 - 2  # ids + 1 must fit in int32
_POW10 = 10 ** np.arange(19, dtype=np.int64)

@dataclasses.dataclass
class _Tokens:
  values: np.ndarray  # int64 [t]
  starts: np.ndarray  # byte offset of each token [t]
  lines: np.ndarray  # 0-based line of each token [t]
  newlines: np.ndarray  # byte offsets of b"\n"
  data: bytes


def _line_error(path: Path, data: bytes, newlines: np.ndarray, line0: int,
                expected: str) -> DataError:
  """DataError for 0-based `line0`, quoting the offending line."""
  start = 0 if line0 == 0 else int(newlines[line0 - 1]) + 1
  end = int(newlines[line0]) if line0 < len(newlines) else len(data)
  text = data[start:end].rstrip(b"\r").decode("utf-8", "replace")
  if len(text) > 80:
    text = text[:77] + "..."
  return DataError(f"{path}:{line0 + 1}: expected {expected}; got {text!r}")


def _tokenize(path: Path, data: bytes, extra: bytes = b"") -> _Tokens:
  """Splits `data` into non-negative integer tokens (whitespace separated).

  Allowed bytes are ASCII digits, space, tab, CR, LF and `extra`.
  """
  buf = np.frombuffer(data, np.uint8)
  digit = (buf >= 48) & (buf <= 57)
  ok = digit | (buf == 32) | (buf == 9) | (buf == 10) | (buf == 13)
  for ch in extra:
    ok |= buf == ch
  newlines = np.flatnonzero(buf == 10)
  bad = np.flatnonzero(~ok)
  if len(bad):
    pos = int(bad[0])
    ch = data[pos:pos + 1]
    if ch == b"-":
      what = "non-negative integer ids (found a negative id)"
    elif ch in b".eE+,":
      what = "integer ids (found a non-integer number)"
    else:
      what = f"integer ids separated by whitespace (found byte {ch!r})"
    raise _line_error(path, data, newlines,
                      int(np.searchsorted(newlines, pos)), what)
  prev = np.concatenate([[False], digit[:-1]])
  nxt = np.concatenate([digit[1:], [False]])
  starts = np.flatnonzero(digit & ~prev)
  ends = np.flatnonzero(digit & ~nxt) + 1
  lengths = ends - starts  # [t]
  lines = np.searchsorted(newlines, starts)
  if len(starts) and lengths.max() > 10:
    line0 = int(lines[np.argmax(lengths > 10)])
    raise _line_error(path, data, newlines, line0, f"ids <= {_MAX_ID}")
  pos = np.flatnonzero(digit)
  exp = np.repeat(ends - 1, lengths) - pos
  contrib = (buf[pos].astype(np.int64) - 48) * _POW10[exp]
  offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
  values = (np.add.reduceat(contrib, offsets) if len(starts)
            else np.zeros(0, np.int64))
  if len(values) and values.max() > _MAX_ID:
    line0 = int(lines[np.argmax(values > _MAX_ID)])
    raise _line_error(path, data, newlines, line0, f"ids <= {_MAX_ID}")
  return _Tokens(values, starts, lines, newlines, data)

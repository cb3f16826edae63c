"""`python -m jaxrec.main` is quiet by default: no absl / Orbax INFO lines.

Runs the command line on the tiny MF config in a subprocess. Without
`--verbosity` only warnings, errors and the results reach the terminal;
`--verbosity=1` (absl's flag) brings the INFO messages back.
"""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# absl's log prefix: level letter, MMDD, time (e.g. `I1206 05:00:03.897168`).
INFO_LINE = re.compile(r"^I\d{4} \d\d:\d\d:\d\d")


def _run(workdir, *extra):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
  out = subprocess.run(
      [sys.executable, "-m", "jaxrec.main", "--config", "configs/test.py:mf",
       f"--workdir={workdir}", *extra],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  return (out.stdout + out.stderr).split("\n")


def _info_lines(lines):
  return [l for l in lines if INFO_LINE.match(l)]


def test_cli_prints_no_info_lines_by_default(tmp_path):
  lines = _run(tmp_path / "wd")
  assert not _info_lines(lines), "\n".join(_info_lines(lines)[:5])
  assert len(lines) <= 20, "\n".join(lines[:40])
  assert (tmp_path / "wd" / "results.json").exists()


def test_cli_verbosity_1_brings_back_info_lines(tmp_path):
  lines = _run(tmp_path / "wd", "--verbosity=1")
  info = _info_lines(lines)
  assert any("synthetic" in l for l in info), "\n".join(lines[:40])

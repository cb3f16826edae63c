"""What every benchmark script shares: command line, machine, result files.

* `command(name, argv)`: the exact command of a run, as it is typed from the
  repository root (`python -m benchmarks.<name> ...`), for results pages;
  `as_module_command(recorded)`: the same form for a command recorded as
  `python benchmarks/<name>.py ...`.
* `machine()` / `today()` / `hardware_line()`: the hardware line of a page.
* `run_in_checkout(repo, name, argv)`: the same script of another checkout,
  in a child process, for A/B timings (--repo).
* `add_result_args(parser, name, page)`: the --json / --out / --render flags
  of a script that keeps its measurements in benchmarks/results/<name>.json
  and renders docs/results/<page>.md from them; `render_page(json_path, out,
  render)`: what --render does (the page from the saved JSON, no measuring).
* `write_json` / `write_page`: result files, written atomically through
  `jaxrec.files` (the one home of atomic writes), parent folders created.
* `markdown_table(header, rows)`: a Markdown table of already formatted cells.
* `paired_interval(diffs, level)`: mean of paired differences with its t
  confidence interval (pages format it with `real_text_report.interval`).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from typing import Any, Callable, Optional, Sequence

import numpy as np
from scipy import stats

from jaxrec import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO, "benchmarks", "results")
DOCS_RESULTS_DIR = os.path.join(REPO, "docs", "results")


def command(name: str, argv: Optional[Sequence[str]] = None) -> str:
  """The command line of this run: `python -m benchmarks.<name> <args>`.

  Args:
    name: the script's module name inside `benchmarks` (e.g. 'speed').
    argv: its arguments (default: sys.argv[1:]); shell-quoted where needed,
      so the line can be pasted back into a shell.

  Returns:
    The command as one string.
  """
  args = sys.argv[1:] if argv is None else list(argv)
  return " ".join(["python", "-m", f"benchmarks.{name}"]
                  + [shlex.quote(str(a)) for a in args])


def as_module_command(recorded: str) -> str:
  """A command recorded as `python benchmarks/<name>.py ...`, as a module run.

  For results recorded before the scripts ran as modules: the arguments are
  kept as they are, only the way the script is named changes.

  Args:
    recorded: a command line from a results JSON.

  Returns:
    `python -m benchmarks.<name> ...` for such a command, else `recorded`.
  """
  return re.sub(r"^python3? benchmarks/(\w+)\.py(?= |$)",
                r"python -m benchmarks.\1", recorded)


def machine(shared: bool = True) -> str:
  """This machine in words, e.g. '2-core x86_64 CPU, shared'.

  Args:
    shared: whether other jobs ran on the machine during the measurement
      (timings on a shared machine are only comparable side by side).

  Returns:
    '<cores>-core <architecture> CPU[, shared]'.
  """
  text = f"{os.cpu_count()}-core {platform.machine() or 'unknown'} CPU"
  return text + (", shared" if shared else "")


def today() -> str:
  """Today's date, ISO format (YYYY-MM-DD)."""
  return datetime.date.today().isoformat()


def hardware_line(shared: bool = True) -> str:
  """'Hardware: <machine()>, load average <1-min>; date <today()>'.

  Args:
    shared: passed to `machine`.

  Returns:
    The line, without a trailing newline.
  """
  return (f"Hardware: {machine(shared)}, load average "
          f"{os.getloadavg()[0]:.1f}; date {today()}")


def run_in_checkout(repo: str, name: str,
                    argv: Optional[Sequence[str]] = None) -> Optional[int]:
  """Runs `benchmarks.<name>` of another checkout, for A/B timings.

  The child imports jaxrec and the benchmark from `repo`: it runs with
  PYTHONPATH=repo and `python -P` (the working directory, usually this
  checkout, is not searched for modules), in the caller's working directory
  so relative paths in the arguments mean what they meant here. Its --repo
  arguments are dropped (the child times its own checkout).

  Args:
    repo: root of the checkout to time.
    name: the script's module name inside `benchmarks`.
    argv: the arguments as given here (default: sys.argv[1:]).

  Returns:
    None when `repo` is this checkout (the caller runs in-process), else the
    child's exit status.
  """
  if os.path.samefile(repo, REPO):
    return None
  args, rest = [], list(sys.argv[1:] if argv is None else argv)
  while rest:
    arg = rest.pop(0)
    if arg == "--repo":
      rest = rest[1:]
    elif not arg.startswith("--repo="):
      args.append(arg)
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [os.path.abspath(repo)] + ([env["PYTHONPATH"]]
                                 if env.get("PYTHONPATH") else []))
  return subprocess.call(
      [sys.executable, "-P", "-m", f"benchmarks.{name}", *args], env=env)


def add_result_args(parser: argparse.ArgumentParser, name: str,
                    page: Optional[str] = None) -> None:
  """Adds --json, --out and --render to a script's parser.

  Args:
    parser: the script's argument parser.
    name: the results file is benchmarks/results/<name>.json.
    page: the page is docs/results/<page>.md (default: `name`).
  """
  parser.add_argument(
      "--json", default=os.path.join("benchmarks", "results", f"{name}.json"),
      help="measurements (JSON, written atomically)")
  parser.add_argument(
      "--out", default=os.path.join("docs", "results", f"{page or name}.md"),
      help="results page (Markdown, rendered from the JSON)")
  parser.add_argument("--render", action="store_true",
                      help="only re-render --out from --json; measure nothing")


def render_page(json_path: str, out: str, render: Callable[[Any], str]) -> Any:
  """Re-renders a results page from its saved JSON (a script's --render).

  Args:
    json_path: the measurements (`--json`).
    out: the page to write (`--out`), atomically.
    render: the script's page function of the loaded JSON.

  Returns:
    The loaded JSON.
  """
  with open(json_path, encoding="utf-8") as f:
    results = json.load(f)
  write_page(out, render(results))
  return results


def paired_interval(diffs: Sequence[float], level: float = 0.95) -> dict:
  """Mean of paired differences with a two-sided t confidence interval.

  Args:
    diffs: one difference per pair (e.g. per seed: a - b).
    level: confidence level of the interval.

  Returns:
    {'mean', 'lo', 'hi', 'n'}; lo and hi are NaN for fewer than 2 pairs.
  """
  d = np.asarray(diffs, dtype=np.float64)
  n = len(d)
  mean = float(d.mean()) if n else float("nan")
  if n < 2:
    return {"mean": mean, "lo": float("nan"), "hi": float("nan"), "n": n}
  half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1)
               / np.sqrt(n))
  return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}


def _parent(path: str) -> None:
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)


def write_json(path: str, payload: Any) -> None:
  """Writes `payload` as indented JSON (sorted keys) to `path`, atomically.

  Args:
    path: destination; missing parent folders are created.
    payload: a JSON-serialisable value.
  """
  _parent(path)
  files.write_json(path, payload)


def write_page(path: str, text: str) -> None:
  """Writes a Markdown page (or any text) to `path`, atomically.

  Args:
    path: destination; missing parent folders are created.
    text: the contents, written as given.
  """
  _parent(path)
  files.write_text(path, text)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]],
                   align: Optional[Sequence[str]] = None) -> list[str]:
  """Lines of a Markdown table.

  Args:
    header: column titles.
    rows: one sequence of cells per row, formatted by the caller (a cell is
      written with `str`).
    align: one separator per column ('---' left, '---:' right); default
      '---' for every column.

  Returns:
    The header line, the separator line and one line per row.

  Raises:
    ValueError: a row or `align` whose length differs from the header's.
  """
  align = list(align) if align is not None else ["---"] * len(header)
  if len(align) != len(header):
    raise ValueError(f"markdown_table: {len(align)} alignments for "
                     f"{len(header)} columns")
  lines = ["| " + " | ".join(str(h) for h in header) + " |",
           "|" + "|".join(align) + "|"]
  for n, row in enumerate(rows):
    if len(row) != len(header):
      raise ValueError(f"markdown_table: row {n} has {len(row)} cells, the "
                       f"header {len(header)}")
    lines.append("| " + " | ".join(str(c) for c in row) + " |")
  return lines


def cpu_model() -> str:
  """The CPU model line of /proc/cpuinfo (else `platform.processor()`)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def package_versions(names: Sequence[str]) -> dict:
  """Python's and the installed distributions' versions (absent ones left out).

  Args:
    names: distribution names ('_' is read as '-').

  Returns:
    {'python': ..., name: version, ...}.
  """
  out = {"python": platform.python_version()}
  for name in names:
    try:
      out[name] = importlib.metadata.version(name.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
      pass
  return out


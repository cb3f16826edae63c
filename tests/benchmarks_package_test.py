"""benchmarks/ is a package: no sys.path edits, every script imports as
`benchmarks.<name>`, and the docs run the scripts as modules."""

import glob
import importlib
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "benchmarks")

# Scripts outside this test's scope: they are maintained (and run) separately
# and still use their own import set-up, so neither check below applies to
# them. A script leaves this list once it runs as `python -m benchmarks.<name>`.
NOT_YET_MODULES = frozenset({
    "encoder_throughput",
    "finetune_layers",
    "lm_throughput",
    "multiprocess",
    "rating",
    "real_text",
    "real_text_report",
    "text_finetune",
    "warm_start",
})


def _scripts() -> list[str]:
  names = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(BENCH, "*.py")))
  return [n for n in names if n != "__init__"]


MODULES = [n for n in _scripts() if n not in NOT_YET_MODULES]


def test_the_package_and_its_common_module_exist():
  assert os.path.isfile(os.path.join(BENCH, "__init__.py"))
  assert "common" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_no_sys_path_edits(name):
  with open(os.path.join(BENCH, f"{name}.py"), encoding="utf-8") as f:
    text = f.read()
  assert "sys.path" not in text, (
      f"benchmarks/{name}.py edits sys.path; import jaxrec as the installed "
      "package and siblings as `from benchmarks import ...`")


@pytest.mark.parametrize("name", MODULES)
def test_imports_as_a_module_of_the_package(name):
  try:
    module = importlib.import_module(f"benchmarks.{name}")
  except ModuleNotFoundError as e:
    top = (e.name or "").split(".")[0]
    if top in ("benchmarks", "jaxrec"):
      raise
    pytest.skip(f"benchmarks.{name} needs the optional package {e.name!r}")
  assert module.__name__ == f"benchmarks.{name}"


def test_docs_run_the_scripts_as_modules():
  """No `python benchmarks/<name>.py` left for scripts that are modules."""
  pattern = re.compile(r"python3? benchmarks/(\w+)\.py")
  paths = ([os.path.join(REPO, "README.md")]
           + glob.glob(os.path.join(REPO, "docs", "**", "*.md"),
                       recursive=True)
           + [os.path.join(BENCH, f"{n}.py") for n in MODULES])
  stale = []
  for path in paths:
    with open(path, encoding="utf-8") as f:
      for lineno, line in enumerate(f, 1):
        stale += [f"{os.path.relpath(path, REPO)}:{lineno}: {m.group(0)}"
                  for m in pattern.finditer(line)
                  if m.group(1) in MODULES]
  assert not stale, "\n".join(stale)

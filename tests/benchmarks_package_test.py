"""benchmarks/ is a package: no sys.path edits, every script imports as
`benchmarks.<name>`, and the docs run the scripts as modules."""

import glob
import importlib
import json
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "benchmarks")

# Scripts outside this test's scope: they are maintained (and run) separately
# and still use their own import set-up, so neither check below applies to
# them. A script leaves this list once it runs as `python -m benchmarks.<name>`.
NOT_YET_MODULES = frozenset()


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


def test_command_is_the_module_form_shell_quoted():
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  assert common.command("speed", ["--sizes", "", "--gowalla"]) == (
      "python -m benchmarks.speed --sizes '' --gowalla")
  assert common.as_module_command(
      "python benchmarks/ann_search.py --sizes 10") == (
          "python -m benchmarks.ann_search --sizes 10")
  assert common.as_module_command("python -m jaxrec.main") == (
      "python -m jaxrec.main")


def test_markdown_table_and_result_files(tmp_path):
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  assert common.markdown_table(["a", "b"], [[1, "x"]], ["---", "---:"]) == [
      "| a | b |", "|---|---:|", "| 1 | x |"]
  with pytest.raises(ValueError, match="row 0 has 1 cells"):
    common.markdown_table(["a", "b"], [[1]])
  path = tmp_path / "new" / "r.json"
  common.write_json(str(path), {"b": 1, "a": [2]})
  assert json.loads(path.read_text()) == {"b": 1, "a": [2]}
  common.write_page(str(tmp_path / "p.md"), "# t\n")
  assert (tmp_path / "p.md").read_text() == "# t\n"
  assert sorted(os.listdir(tmp_path)) == ["new", "p.md"]  # no temp files
  assert common.machine().endswith("CPU, shared")


def test_a_page_recorded_with_the_script_path_renders_the_module_command():
  ann_search = importlib.import_module("benchmarks.ann_search")
  page = ann_search.render({
      "command": "python benchmarks/ann_search.py --sizes 100", "machine": "m",
      "date": "2026-01-01", "batch": 8, "synthetic": []})
  assert "Command: `python -m benchmarks.ann_search --sizes 100`" in page


# Scripts with --render (`common.render_page`) and their page's name.
RENDERED = {"ann_search": "ann_search", "encoder_throughput":
            "encoder_throughput", "fold_in": "fold_in",
            "lm_throughput": "lm_throughput", "multiprocess": "multiprocess",
            "rating": "rating", "search_budget": "search",
            "search_fidelity": "search_fidelity",
            "search_throughput": "search_throughput", "serve_load": "serving",
            "warm_start": "warm_start"}


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_render_rewrites_the_committed_page_from_the_saved_json(
    name, tmp_path, monkeypatch, capsys):
  """`--render` gives docs/results/<page>.md from benchmarks/results/<name>.json."""
  try:
    module = importlib.import_module(f"benchmarks.{name}")
  except ModuleNotFoundError as e:
    if (e.name or "").split(".")[0] in ("benchmarks", "jaxrec"):
      raise
    pytest.skip(f"benchmarks.{name} needs the optional package {e.name!r}")
  monkeypatch.chdir(REPO)  # the page names the JSON by its relative path
  json_path = os.path.join("benchmarks", "results", f"{name}.json")
  out = tmp_path / f"{RENDERED[name]}.md"
  module.main(["--render", "--json", json_path, "--out", str(out)])
  capsys.readouterr()  # fold_in prints its page
  with open(os.path.join("docs", "results", f"{RENDERED[name]}.md"),
            encoding="utf-8") as f:
    assert out.read_text(encoding="utf-8") == f.read()


def test_text_model_speed_renders_its_page_from_the_json_at_out(tmp_path,
                                                                monkeypatch):
  """text_model_speed keeps its JSON at --out and its page at --md."""
  module = importlib.import_module("benchmarks.text_model_speed")
  monkeypatch.chdir(REPO)
  md = tmp_path / "text_model_speed.md"
  module.main(["--render", "--out",
               os.path.join("benchmarks", "results", "text_model_speed.json"),
               "--md", str(md)])
  with open(os.path.join("docs", "results", "text_model_speed.md"),
            encoding="utf-8") as f:
    assert md.read_text(encoding="utf-8") == f.read()


def test_render_page_reads_the_json_and_writes_the_page(tmp_path):
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  (tmp_path / "r.json").write_text(json.dumps({"x": 2}))
  got = common.render_page(str(tmp_path / "r.json"),
                           str(tmp_path / "docs" / "p.md"),
                           lambda r: f"x = {r['x']}\n")
  assert got == {"x": 2}
  assert (tmp_path / "docs" / "p.md").read_text() == "x = 2\n"


def test_encoder_throughput_page_of_jaxrec_alone():
  """--baseline none (jaxrec alone, e.g. on synthetic texts) renders a page
  without the sentence-transformers columns."""
  encoder_throughput = importlib.import_module("benchmarks.encoder_throughput")
  side = {"median_texts_per_s": 15.6, "compile_s": 2.4, "padded_lengths": [128],
          "cold_end_to_end_s": 4.4, "median_texts_per_cpu_s": 31.25,
          "buckets": [16, 32, 128], "fine_buckets": [],
          "fine_min_saved_tokens": 4096, "chunk_tokens": 512}
  page = encoder_throughput.render({
      "command": "python -m benchmarks.encoder_throughput --datasets synthetic "
                 "--baseline none", "date": "2026-01-01", "json_path": "r.json",
      "hardware": {"cpu": "cpu", "logical_cpus": 2, "jax_backend": "cpu"},
      "versions": {"jax": "0"},
      "settings": {"baseline": "none", "dtypes": ["float32"], "max_length": 128,
                   "rounds": 1, "threads": 2, "model_dir": "m"},
      "datasets": {"synthetic": {
          "source": "s", "catalogue": 8, "n": 8,
          "tokens": {"mean": 24.8, "median": 21.5, "p90": 38.5, "max": 42,
                     "truncated_frac": 0.0}}},
      "blocks": [{"dataset": "synthetic", "batch_size": 8, "jaxrec": side,
                  "padded_per_real_token": {"jaxrec": 5.17,
                                            "sentence-transformers": 1.7},
                  "loadavg_before": 4.4, "loadavg_after": 4.6}]})
  assert page.startswith("# Encoder throughput: jaxrec\n")
  assert ("| synthetic | 8 | jaxrec | 15.6 | 2.4 (1 shapes) | 4.4 |"
          in page.splitlines())
  assert "sentence-transformers texts/s" not in page
  assert "pip install" not in page

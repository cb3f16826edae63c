"""Static import graph of jaxrec/: no import cycles, no upward imports.

Every `import` / `from ... import` in jaxrec/ counts, including those inside
functions (a deferred import still ties the modules together). Layers point
one way, bottom to top:

  base -> data -> graphs -> models -> objectives -> train -> evaluation
  -> tools

A module may import modules of its own layer or of lower layers only.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "jaxrec"

# Bottom to top: (layer, modules). A name covers the module and, for a
# package, every module under it.
LAYERS = (
    # Leaves that import no jaxrec module outside this layer: shared
    # exceptions, atomic file writes, the Orbax checkpoint and run-log
    # writers, huge-page setup, chunked top-k, hash-based random draws (graph
    # dropout masks and model noise), the typed train batches, and the pure
    # loss functions that every model's `loss` method calls (so they sit
    # below the models, not above them).
    ("base", ("jaxrec", "jaxrec.errors", "jaxrec.files", "jaxrec.checkpoint",
              "jaxrec.run_logging", "jaxrec.hugepages", "jaxrec.topk",
              "jaxrec.fast_random", "jaxrec.batches", "jaxrec.losses")),
    # Datasets, loaders, splits (cold-start ones included), samplers.
    ("data", ("jaxrec.data",)),
    # The bipartite graph, its padding, subgraph masks and normalisations,
    # propagation kernels and its layout over devices.
    ("graphs", ("jaxrec.graphs", "jaxrec.sharding")),
    # Flax recommenders, jaxrec's own language models (jaxrec.lm) and the
    # text encoder that turns item/user texts into node features.
    ("models", ("jaxrec.models", "jaxrec.lm", "jaxrec.text", "jaxrec.text_loading",
                "jaxrec.text_finetune")),
    # What training optimises and measures: the optimiser and the ranking
    # metrics.
    ("objectives", ("jaxrec.optimizers", "jaxrec.metrics")),
    # The trainer, its config validation, input pipeline, workdir files and
    # warm starts.
    ("train", ("jaxrec.train", "jaxrec.config_utils",
               "jaxrec.input_pipeline", "jaxrec.workdir",
               "jaxrec.warm_start")),
    # Reading trained runs: recommendations, reports, cold-start evaluation.
    ("evaluation", ("jaxrec.recommend", "jaxrec.report",
                    "jaxrec.coldstart_eval")),
    # Entry points driving training and evaluation (the command-line error
    # handling they share, comparisons of several configs, the local
    # multi-process launcher, LLM-written profiles), and deployment: the
    # serving bundle format, its export and the HTTP service.
    ("tools", ("jaxrec.main", "jaxrec.cli", "jaxrec.compare", "jaxrec.search",
               "jaxrec.launch", "jaxrec.profiles", "jaxrec.bundle",
               "jaxrec.export", "jaxrec.serve")),
)

# (importer, imported) pairs the checks leave out: none. A pair may be named
# here, with the issue that removes it, while a fix is under way.
KNOWN_EXCEPTIONS = frozenset()


def module_files(root: pathlib.Path) -> dict[str, pathlib.Path]:
  """Dotted module name -> file, for every .py file of the package.

  Args:
    root: the directory holding the `jaxrec` package.

  Returns:
    {'jaxrec.data.sampler': path, 'jaxrec.data': path of its __init__, ...}.
  """
  mods = {}
  for path in sorted((root / PACKAGE).rglob("*.py")):
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    mods[".".join(parts)] = path
  return mods


def _resolve(name: str, mods: dict) -> str | None:
  """The longest known module that `name` (a module or module.attr) is in."""
  while name and name not in mods:
    name = name.rpartition(".")[0]
  return name or None


def import_graph(root: pathlib.Path) -> dict[str, set[str]]:
  """Module -> the jaxrec modules it imports anywhere in its file.

  `from pkg import sub` counts as an import of `pkg.sub` when that is a
  module, else of `pkg`; relative imports are resolved against the package.

  Args:
    root: the directory holding the `jaxrec` package.

  Returns:
    The import graph over the package's modules (no self edges).
  """
  mods = module_files(root)
  graph = {m: set() for m in mods}
  for mod, path in mods.items():
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          anchor = package
          for _ in range(node.level - 1):
            anchor = anchor.rpartition(".")[0]
          base = f"{anchor}.{base}" if base else anchor
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods
                   else base for alias in node.names]
      else:
        continue
      for target in targets:
        if target == PACKAGE or target.startswith(PACKAGE + "."):
          resolved = _resolve(target, mods)
          if resolved and resolved != mod:
            graph[mod].add(resolved)
  return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components of more than one node (Tarjan).

  Args:
    graph: node -> successors.

  Returns:
    Each cycle's nodes, sorted; cycles sorted.
  """
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        out.append(sorted(comp))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return sorted(out)


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
  """The graph between top-level units (jaxrec.data, jaxrec.train, ...)."""
  unit = lambda m: ".".join(m.split(".")[:2])
  units = {}
  for mod, targets in graph.items():
    units.setdefault(unit(mod), set()).update(
        unit(t) for t in targets if unit(t) != unit(mod))
  return units


def layer_of(mod: str, layers=LAYERS) -> int | None:
  """Index of the layer whose most specific entry covers `mod`, or None."""
  best, level = "", None
  for i, (_, names) in enumerate(layers):
    for name in names:
      covers = mod == name or (name != PACKAGE and
                               mod.startswith(name + "."))
      if covers and len(name) > len(best):
        best, level = name, i
  return level


def upward_imports(graph: dict[str, set[str]],
                   layers=LAYERS) -> list[str]:
  """'a (layer) -> b (higher layer)' for every import into a higher layer."""
  out = []
  for mod in sorted(graph):
    for target in sorted(graph[mod]):
      src, dst = layer_of(mod, layers), layer_of(target, layers)
      if src is not None and dst is not None and dst > src:
        out.append(f"{mod} ({layers[src][0]}) -> {target} "
                   f"({layers[dst][0]})")
  return out


def without(graph: dict[str, set[str]],
            edges=KNOWN_EXCEPTIONS) -> dict[str, set[str]]:
  """`graph` less the (importer, imported) pairs in `edges`."""
  return {m: {t for t in ts if (m, t) not in edges}
          for m, ts in graph.items()}


@pytest.fixture(scope="module")
def graph():
  return without(import_graph(ROOT))


def test_every_module_has_a_layer(graph):
  missing = sorted(m for m in graph if layer_of(m) is None)
  assert not missing, f"modules missing from LAYERS: {missing}"


def test_no_module_cycles(graph):
  assert cycles(graph) == []


def test_no_package_level_cycles(graph):
  assert cycles(package_graph(graph)) == []


def test_no_upward_imports(graph):
  assert upward_imports(graph) == []


def test_checker_sees_function_level_and_relative_imports(tmp_path):
  """A planted cycle and upward import, both hidden in ways it must see."""
  pkg = tmp_path / PACKAGE
  for sub in ("data", "models"):
    (pkg / sub).mkdir(parents=True)
    (pkg / sub / "__init__.py").write_text("")
  (pkg / "__init__.py").write_text("")
  (pkg / "data" / "split.py").write_text(
      "def f():\n  from jaxrec.models import net\n  return net\n")
  (pkg / "models" / "net.py").write_text("from ..data import split\n")
  (pkg / "models" / "other.py").write_text("from . import net\n")
  found = import_graph(tmp_path)
  assert found["jaxrec.data.split"] == {"jaxrec.models.net"}
  assert found["jaxrec.models.net"] == {"jaxrec.data.split"}
  assert found["jaxrec.models.other"] == {"jaxrec.models.net"}
  assert cycles(found) == [["jaxrec.data.split", "jaxrec.models.net"]]
  assert cycles(package_graph(found)) == [["jaxrec.data", "jaxrec.models"]]
  layers = (("base", ("jaxrec",)), ("data", ("jaxrec.data",)),
            ("models", ("jaxrec.models",)))
  assert upward_imports(found, layers) == [
      "jaxrec.data.split (data) -> jaxrec.models.net (models)"]

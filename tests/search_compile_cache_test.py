"""config.search.compile_cache: a promoted trial resumes without compiling.

Trains a tiny LightGCN-point trial for 2 epochs, then extends it to 4 (as
successive halving does) inside `runner.compile_cache`: the extension loads
every executable from the cache (no new entry), which needs the resumed
state placed like a fresh one (`sharding.shard_state`).
"""

import os

import jax
import pytest

from jaxrec.data.synthetic import make_synthetic
from jaxrec.search import __main__ as search_main
from jaxrec.search import runner as runner_lib
from jaxrec.search import space as space_lib
from jaxrec.search import strategies
from tests import config_loader
from tests.search_warm_start_test import config_from_flags


@pytest.fixture(scope="module")
def tiny():
  return make_synthetic(num_users=40, num_items=50, num_interactions=500,
                        seed=0)


def _entries(directory):
  return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_extended_trial_loads_every_executable_from_the_cache(
    tmp_path, tiny, monkeypatch):
  monkeypatch.setattr(runner_lib, "_CACHE_MIN_COMPILE_SECONDS", 0.0)
  config = config_loader.load("search.py", "synthetic_small")
  space = space_lib.Space.from_overrides(config.search.space or {})
  base = strategies.warm_start_architectures(space, config, ["base"])[0]
  cache = str(tmp_path / "xla_cache")
  before = jax.config.jax_compilation_cache_dir
  with runner_lib.compile_cache(cache):
    runner = runner_lib.Runner(space, config, str(tmp_path / "search"), 1,
                               dataset=tiny)
    trial = runner.run(base, 2)
    trained = _entries(cache)
    runner.extend(trial, 4, 1)
    extended = _entries(cache)
  assert trial.epochs_run == 4
  assert any(e.startswith("jit_train_steps") for e in trained)
  assert extended == trained  # nothing compiled anew
  assert jax.config.jax_compilation_cache_dir == before  # restored


def test_search_uses_the_workdir_cache_when_configured(tmp_path, tiny,
                                                       monkeypatch):
  seen = []

  class Stop(Exception):
    pass

  def fake_search(config, workdir, dataset, command):
    seen.append(jax.config.jax_compilation_cache_dir)
    raise Stop

  monkeypatch.setattr(search_main, "_search", fake_search)
  config = config_loader.load("search.py", "synthetic_small")
  for enabled in (True, False):
    config.search.compile_cache = enabled
    with pytest.raises(Stop):
      search_main.search(config, str(tmp_path), dataset=tiny)
  assert seen == [os.path.join(str(tmp_path), "xla_cache"),
                  jax.config.jax_compilation_cache_dir]


@pytest.mark.parametrize("flag, expected", [("on", True), ("off", False)])
def test_compile_cache_flag(tmp_path, monkeypatch, flag, expected):
  config = config_from_flags(tmp_path, monkeypatch, "--compile-cache", flag)
  assert config.search.compile_cache is expected

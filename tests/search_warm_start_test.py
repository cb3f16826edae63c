"""config.search.warm_start: known designs trained before the random samples.

Fake training (a hash of the architecture), no JAX work.
"""

import json

import numpy as np
import pytest

from jaxrec.data.synthetic import make_synthetic
from jaxrec.errors import ConfigError
from jaxrec.search import __main__ as search_main
from jaxrec.search import space as space_lib
from jaxrec.search import strategies
from tests import config_loader
from tests.search_test import FakeRunner  # scores by a hash; trains nothing

LIGHTGCN = dict(message="identity", aggregation="lightgcn", num_layers=3,
                combine="mean", interaction="dot", embed_dim=64,
                learning_rate=1e-3, l2_reg=1e-4)


@pytest.fixture(scope="module")
def tiny():
  return make_synthetic(num_users=40, num_items=50, num_interactions=500,
                        seed=0)


def _config():
  config = config_loader.load("search.py", "synthetic_small")
  config.selection_metric = "recall@20"
  return config


def _runner(tmp_path, tiny, trials):
  return FakeRunner(space_lib.Space(), _config(), str(tmp_path), trials,
                    dataset=tiny)


def test_base_is_the_configs_own_lightgcn_point():
  config = _config()
  space = space_lib.Space()
  assert strategies.base_architecture(space, config) == LIGHTGCN
  archs = strategies.warm_start_architectures(space, config, ["base"])
  assert archs == [LIGHTGCN]


def test_entries_dicts_summaries_and_dedup(tmp_path):
  summary = tmp_path / "summary.json"
  best = dict(LIGHTGCN, aggregation="gat", message="hadamard")
  summary.write_text(json.dumps({"best_arch": best}))
  archs = strategies.warm_start_architectures(
      space_lib.Space(), _config(),
      ["base", {"aggregation": "gcn", "combine": "concat"}, str(summary),
       "base"])
  assert archs == [LIGHTGCN,
                   dict(LIGHTGCN, aggregation="gcn", combine="concat"), best]


@pytest.mark.parametrize("entry, match", [
    ("lightgcn", r"warm_start\[0\]: expected 'base'"),
    ({"num_layers": 9}, r"warm_start\[0\]: architecture: num_layers=9"),
    ("/no/such/summary.json", r"warm_start\[0\]: '/no/such/summary.json' is "
     "not a readable"),
])
def test_bad_entries_name_the_field(entry, match):
  with pytest.raises(ConfigError, match=match):
    strategies.warm_start_architectures(space_lib.Space(), _config(), [entry])


def test_restricted_space_rejects_a_point_outside_it():
  space = space_lib.Space.from_overrides({"embed_dim": [32]})
  with pytest.raises(ConfigError, match=r"embed_dim=64 is not one of"):
    strategies.warm_start_architectures(space, _config(),
                                        [{"aggregation": "gat"}])
  # The config's own point is only left out: the space excludes it.
  assert strategies.warm_start_architectures(space, _config(), ["base"]) == []
  assert strategies.warm_start_architectures(
      space, _config(), ["base", {"embed_dim": 32}]) == [
          dict(LIGHTGCN, embed_dim=32)]


@pytest.mark.parametrize("name", strategies.STRATEGIES)
def test_warm_start_trains_first_then_the_same_random_draws(tmp_path, tiny,
                                                            name):
  def go(sub, initial):
    runner = _runner(tmp_path / sub, tiny, trials=6)
    rng = np.random.default_rng(0)
    if name == "random":
      strategies.random_search(runner, rng, 2, initial)
    elif name == "evolution":
      strategies.regularized_evolution(runner, rng, 2, 3, 2, initial)
    else:
      strategies.successive_halving(runner, rng, 1, 3.0, 9, initial)
    return [t.arch for t in runner.trials]
  cold, warm = go("cold", ()), go("warm", [LIGHTGCN])
  assert warm[0] == LIGHTGCN
  assert LIGHTGCN not in cold
  if name != "evolution":  # evolution's later children depend on scores
    assert warm[1:] == cold[:5]
  else:
    assert warm[1:3] == cold[:2]  # the rest of the initial population


def test_halving_promotes_the_warm_start_by_its_score(tmp_path, tiny):
  runner = _runner(tmp_path, tiny, trials=9)
  strategies.successive_halving(runner, np.random.default_rng(0), 1, 3.0, 9,
                                [LIGHTGCN])
  assert runner.trials[0].arch == LIGHTGCN
  rung0 = sorted(runner.trials, key=lambda t: (-t.valid, t.index))
  promoted = {r["trial"] for r in runner.records if r["rung"] == 1}
  assert promoted == {t.index for t in rung0[:3]}


def test_search_passes_the_configured_warm_start(tmp_path, tiny, monkeypatch):
  seen = {}

  class Stop(Exception):
    pass

  def fake_halving(runner, rng, min_epochs, eta, max_epochs, initial=(),
                   promote_initial=False):
    seen["initial"], seen["promote"] = initial, promote_initial
    raise Stop

  monkeypatch.setattr(strategies, "successive_halving", fake_halving)
  config = _config()
  config.search.warm_start = ["base"]
  config.search.promote_warm_start = True
  with pytest.raises(Stop):
    search_main.search(config, str(tmp_path), dataset=tiny)
  assert seen == {"initial": [LIGHTGCN], "promote": True}


@pytest.mark.parametrize("flag, expected", [
    ("base", ["base"]), ("none", []), ("base,prev/summary.json",
                                        ["base", "prev/summary.json"])])
def test_warm_start_flag(tmp_path, monkeypatch, flag, expected):
  config = config_from_flags(tmp_path, monkeypatch, "--warm-start", flag)
  assert list(config.search.warm_start) == expected


def config_from_flags(tmp_path, monkeypatch, *flags):
  """The config `python -m jaxrec.search` hands to `search` for these flags
  (on configs/search.py:synthetic_small; nothing is trained)."""
  seen = {}

  def fake_search(config, workdir, dataset=None, command=""):
    seen["config"] = config
    raise SystemExit(0)

  monkeypatch.setattr(search_main, "search", fake_search)
  with pytest.raises(SystemExit):
    search_main.main(["--config",
                      f"{config_loader.CONFIG_DIR}/search.py:synthetic_small",
                      "--workdir", str(tmp_path), *flags])
  return seen["config"]


def test_promote_initial_carries_the_warm_start_to_the_top_rung(tmp_path,
                                                                tiny):
  slow = dict(LIGHTGCN, num_layers=4, learning_rate=5e-4)  # low fake score

  def go(sub, promote):
    runner = _runner(tmp_path / sub, tiny, trials=9)
    strategies.successive_halving(runner, np.random.default_rng(0), 1, 3.0,
                                  9, [slow], promote_initial=promote)
    return runner
  cut, kept = go("cut", False), go("kept", True)
  # Its fake score puts the warm start outside rung 0's top 3 of 9 ...
  rung0 = sorted(cut.trials, key=lambda t: (-t.valid, t.index))
  assert 0 not in {t.index for t in rung0[:3]}
  assert {r["rung"] for r in cut.records if r["trial"] == 0} == {0}
  # ... promoted anyway: each rung holds the top 1/eta and it.
  rungs = {}
  for r in kept.records:
    rungs.setdefault(r["rung"], set()).add(r["trial"])
  assert rungs[1] == {t.index for t in rung0[:3]} | {0}
  rung1 = sorted((r for r in kept.records if r["rung"] == 1),
                 key=lambda r: (-r["valid_recall@20"], r["trial"]))
  assert rungs[2] == {r["trial"] for r in rung1[:2]} | {0}  # ceil(4 / 3)
  assert kept.trials[0].epochs == 9
  assert kept.best().rung == 2

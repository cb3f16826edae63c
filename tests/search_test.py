"""Architecture search: space, strategies, runner, vmap-parallel candidates."""

import collections
import csv
import hashlib
import importlib.util

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import train
from jaxrec.data.synthetic import make_synthetic
from jaxrec.models import designgnn
from jaxrec.search import parallel
from jaxrec.search import runner as runner_lib
from jaxrec.search import space as space_lib
from jaxrec.search import strategies
from jaxrec.search.__main__ import search
from jaxrec import input_pipeline
from jaxrec import models
from jaxrec import optimizers
from jaxrec.data import sampler
from tests import config_loader


@pytest.fixture(scope="module")
def tiny():
  return make_synthetic(num_users=40, num_items=50, num_interactions=500, seed=0)


def _tiny_config(**search_overrides):
  config = config_loader.load("search.py", "synthetic_small")
  config.batch_size = 128
  config.model.embed_dim = 8
  config.eval_ks = (10, 20)
  config.progress = False
  config.search.update(search_overrides)
  return config


# ----------------------------------------------------------------------------
# Space.


def test_sampling_covers_exactly_the_declared_values():
  space = space_lib.Space()
  rng = np.random.default_rng(0)
  seen = collections.defaultdict(set)
  for _ in range(400):
    arch = space.sample(rng)
    assert set(arch) == {c.name for c in space.choices}
    for name, value in arch.items():
      assert value in space.by_name[name].values
      seen[name].add(value)
  for c in space.choices:  # 400 draws hit every value (p(miss) < 1e-15)
    assert seen[c.name] == set(c.values)


def test_declared_space_follows_the_design_space():
  dims = {c.name: c.values for c in space_lib.DEFAULT_SPACE}
  assert set(dims["message"]) == {"identity", "hadamard"}
  assert set(dims["aggregation"]) == {"lightgcn", "gcn", "gat", "gin", "sage",
                                      "none"}
  assert dims["num_layers"] == (1, 2, 3, 4)
  assert set(dims["combine"]) == {"last", "mean", "sum", "concat", "attention"}
  assert set(dims["interaction"]) == {"dot", "concat_mlp"}
  assert {"embed_dim", "learning_rate", "l2_reg"} <= set(dims)


def test_overrides_restrict_and_validate():
  space = space_lib.Space.from_overrides({"embed_dim": [16], "aggregation":
                                          ["gat", "gin"]})
  rng = np.random.default_rng(1)
  archs = [space.sample(rng) for _ in range(50)]
  assert {a["embed_dim"] for a in archs} == {16}
  assert {a["aggregation"] for a in archs} == {"gat", "gin"}
  with pytest.raises(ValueError, match="unknown dimension"):
    space_lib.Space.from_overrides({"depth": [1]})
  with pytest.raises(ValueError, match="not in"):
    space_lib.Space.from_overrides({"aggregation": ["gatv2"]})


def test_lightgcn_subspace_config_samples_only_lightgcn():
  config = config_loader.load("search.py", "lastfm,lightgcn")
  assert config.dataset.name == "lastfm"
  space = space_lib.Space.from_overrides(config.search.space.to_dict())
  rng = np.random.default_rng(0)
  archs = [space.sample(rng) for _ in range(40)]
  for key, value in dict(message="identity", aggregation="lightgcn",
                         combine="mean", interaction="dot").items():
    assert {a[key] for a in archs} == {value}
  assert {a["num_layers"] for a in archs} == {1, 2, 3, 4}
  with pytest.raises(ValueError, match="dataset,lightgcn"):
    config_loader.load("search.py", "lastfm,gat")


def test_mutation_changes_exactly_one_choice():
  space = space_lib.Space.from_overrides({"embed_dim": [32]})  # fixed dim
  rng = np.random.default_rng(0)
  changed = collections.Counter()
  for _ in range(300):
    parent = space.sample(rng)
    child = space.mutate(parent, rng)
    space.validate(child)
    diff = [k for k in parent if parent[k] != child[k]]
    assert len(diff) == 1
    changed[diff[0]] += 1
  assert "embed_dim" not in changed  # a one-value dimension cannot change
  assert set(changed) == {c.name for c in space.choices} - {"embed_dim"}


def test_to_config_builds_and_runs_a_train_step_through_the_registry(tiny):
  space = space_lib.Space()
  arch = {"message": "hadamard", "aggregation": "gat", "num_layers": 2,
          "combine": "attention", "interaction": "concat_mlp", "embed_dim": 32,
          "learning_rate": 5e-3, "l2_reg": 1e-5}
  base = _tiny_config()
  config = space.to_config(arch, base)
  assert "search" not in config and "search" in base  # base untouched
  assert config.model_name == "designgnn"
  assert config.optimizer.learning_rate == 5e-3
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, tiny))
  model = models.get_model(config.model_name, tiny.num_users, tiny.num_items,
                          **config.model.to_dict())
  assert isinstance(model, designgnn.DesignGNN)
  for name in ("message", "aggregation", "num_layers", "combine",
               "interaction", "embed_dim", "l2_reg"):
    assert getattr(model, name) == arch[name]
  params = train.init_params(model, graph, 32, jax.random.key(0))
  state = train.TrainState.create(apply_fn=model.apply, params=params,
                                  tx=optimizers.make_optimizer(config))
  rows = input_pipeline.stack_batches(sampler.epoch_triples(
      tiny.train, tiny.num_users, tiny.num_items, 0, 0), 32)
  batch = jax.tree.map(lambda v: v[0], rows)
  new, metrics = jax.jit(lambda s, b: train.train_step(
      s, graph, b, jax.random.key(0), model=model))(state, batch)
  assert jnp.isfinite(metrics["loss"])
  assert int(new.step) == 1
  with pytest.raises(ValueError, match="not one of"):
    space.to_config(dict(arch, num_layers=7), base)


# ----------------------------------------------------------------------------
# Strategies (fake training: valid = a fixed function of the architecture).


class FakeRunner(runner_lib.Runner):
  """Runner whose 'training' scores an arch by a hash (+ epochs); no JAX."""

  def _train(self, trial, epochs):
    h = hashlib.sha256(space_lib.arch_key(trial.arch).encode()).digest()
    trial.epochs = epochs
    trial.valid = h[0] / 255.0 + 0.001 * epochs
    trial.valid_metrics = {"recall@20": trial.valid}
    trial.best_epoch = trial.epochs_run = epochs
    self._record(trial, 0.0)
    return trial


def _fake(tmp_path, tiny, trials=10, seconds=None, clock=None):
  config = _tiny_config()
  config.selection_metric = "recall@20"
  kwargs = {"clock": clock} if clock else {}
  return FakeRunner(space_lib.Space(), config, str(tmp_path), trials, seconds,
                    dataset=tiny, **kwargs)


def test_halving_keeps_the_top_fraction_by_valid_metric():
  vals = [0.3, 0.9, 0.1, 0.5, 0.9, 0.7, 0.2]
  trials = [runner_lib.Trial(i, {}, 0, 1, v, {}, 1, 1, 0.0, "")
            for i, v in enumerate(vals)]
  kept = strategies.halving_survivors(trials, 1 / 3)
  assert [t.index for t in kept] == [1, 4, 5]  # ceil(7/3)=3, tie -> earlier
  assert [t.index for t in strategies.halving_survivors(trials, 0.5)] == [
      1, 4, 5, 3]
  assert len(strategies.halving_survivors(trials[:1], 0.1)) == 1
  assert strategies.rung_epochs(2, 3, 20, 1) == [2, 6, 18, 20]
  assert strategies.rung_epochs(10, 3, 90, 5) == [10, 30, 90]
  assert strategies.rung_epochs(3, 2, 8, 5) == [5, 10]  # eval_every multiples


def test_successive_halving_promotes_top_third(tmp_path, tiny):
  runner = _fake(tmp_path, tiny, trials=9)
  strategies.successive_halving(runner, np.random.default_rng(0), 1, 3.0, 9)
  rung0 = [r for r in runner.records if r["rung"] == 0]
  rung1 = [r for r in runner.records if r["rung"] == 1]
  rung2 = [r for r in runner.records if r["rung"] == 2]
  assert (len(rung0), len(rung1), len(rung2)) == (9, 3, 1)
  top3 = sorted(rung0, key=lambda r: -r["valid_recall@20"])[:3]
  assert {r["trial"] for r in rung1} == {r["trial"] for r in top3}
  assert {r["epochs"] for r in rung1} == {3} and rung2[0]["epochs"] == 9
  assert runner.best().index == rung2[0]["trial"]


def test_evolution_mutates_tournament_winners_and_ages(tmp_path, tiny):
  runner = _fake(tmp_path, tiny, trials=14)
  strategies.regularized_evolution(runner, np.random.default_rng(0), 1,
                                   population_size=4, sample_size=2)
  assert len(runner.trials) == 14
  keys = [space_lib.arch_key(t.arch) for t in runner.trials]
  assert len(set(keys)) == 14  # every trial is a new architecture
  for child in runner.trials[4:]:  # each child is one mutation from a trial
    dists = [sum(child.arch[k] != t.arch[k] for k in child.arch)
             for t in runner.trials[:child.index]]
    assert min(dists) == 1


@pytest.mark.parametrize("name", strategies.STRATEGIES)
def test_same_seed_same_trials_fake(tmp_path, tiny, name):
  def go(seed, sub):
    runner = _fake(tmp_path / sub, tiny, trials=8)
    rng = np.random.default_rng(seed)
    if name == "random":
      strategies.random_search(runner, rng, 2)
    elif name == "evolution":
      strategies.regularized_evolution(runner, rng, 2, 3, 2)
    else:
      strategies.successive_halving(runner, rng, 1, 2.0, 4)
    return runner.records, runner.best().arch
  a, b, c = go(0, "a"), go(0, "b"), go(1, "c")
  assert a == b
  assert a[0] != c[0]


def test_budget_of_seconds_stops_new_trials(tmp_path, tiny):
  ticks = iter(range(1000))
  runner = _fake(tmp_path, tiny, trials=50, seconds=5.5,
                 clock=lambda: float(next(ticks)))
  strategies.random_search(runner, np.random.default_rng(0), 1)
  assert 0 < len(runner.trials) < 50
  assert all(r["elapsed"] <= 5.5 + 2 for r in runner.records)


# ----------------------------------------------------------------------------
# Real training on tiny synthetic data.


def test_search_reproducible_and_writes_a_runnable_best_config(tmp_path):
  """Same seed -> same trials, same validation metrics, same best."""
  def go(sub):
    config = _tiny_config(strategy="halving", budget_trials=3, min_epochs=1,
                          max_epochs=2, eta=3.0, seed=3,
                          space=dict(embed_dim=[8], num_layers=[1, 2],
                                     aggregation=["lightgcn", "gcn", "none"]))
    return search(config, str(tmp_path / sub)), tmp_path / sub

  (s1, d1), (s2, d2) = go("a"), go("b")
  rows = [list(csv.DictReader(open(d / "results.csv"))) for d in (d1, d2)]
  for r in rows:
    for row in r:
      del row["seconds"], row["elapsed"]
  assert rows[0] == rows[1] and len(rows[0]) == 3 + 1
  assert s1["best_arch"] == s2["best_arch"]
  assert s1["best_valid"] == s2["best_valid"]
  assert s1["best_test"] == s2["best_test"]
  assert "test" not in open(d1 / "results.csv").read()
  # best_config.py is a get_config() file of a designgnn training config
  # whose re-training reproduces the selected trial's validation metric.
  spec = importlib.util.spec_from_file_location("best", d1 / "best_config.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  assert config.model_name == "designgnn" and "search" not in config
  assert config.num_epochs == s1["best_epochs"]
  config.progress = False
  again = train.train_and_evaluate(config, str(tmp_path / "retrain"))
  assert again["valid"]["recall@20"] == pytest.approx(
      s1["best_valid"]["recall@20"], abs=1e-6)


def test_vmap_parallel_training_equals_sequential(tiny):
  config = _tiny_config()
  config.model.update(aggregation="gcn", message="hadamard", num_layers=2,
                      combine="attention", interaction="concat_mlp")
  config.batch_size = 64
  config.steps_per_call = 3
  cands = [parallel.Candidate(1e-3, 1e-4, 0), parallel.Candidate(5e-3, 0.0, 1),
           parallel.Candidate(2e-3, 1e-3, 0)]
  par = parallel.train_candidates(config, cands, tiny, num_epochs=2,
                                  evaluate=False)
  seq = parallel.train_sequential(config, cands, tiny, num_epochs=2,
                                  evaluate=False)
  for i in range(len(cands)):
    chex.assert_trees_all_close(parallel.unstack(par["states"].params, i),
                                seq["params"][i], atol=2e-5, rtol=1e-4)
  # Candidates really differ (different lr / l2 / seed).
  p0 = parallel.unstack(par["states"].params, 0)["user_embedding"]
  p1 = parallel.unstack(par["states"].params, 1)["user_embedding"]
  assert not np.allclose(p0, p1)
  assert list(par["states"].opt_state.hyperparams["learning_rate"]) == [
      pytest.approx(c.learning_rate) for c in cands]


def test_parallel_training_follows_the_configured_sampler(tiny):
  """Search trials sample as the trainer does (config.sampling, negatives)."""
  config = _tiny_config()
  config.model.update(num_layers=1)
  config.batch_size = 64
  cands = [parallel.Candidate(5e-3, 1e-4, 0)]
  config.update(sampling="user", num_negatives=2)
  par = parallel.train_candidates(config, cands, tiny, num_epochs=1,
                                  evaluate=False)
  seq = parallel.train_sequential(config, cands, tiny, num_epochs=1,
                                  evaluate=False)
  chex.assert_trees_all_close(parallel.unstack(par["states"].params, 0),
                              seq["params"][0], atol=2e-5, rtol=1e-4)
  config.update(sampling="interaction", num_negatives=1)
  default = parallel.train_sequential(config, cands, tiny, num_epochs=1,
                                      evaluate=False)
  assert not np.allclose(seq["params"][0]["user_embedding"],
                         default["params"][0]["user_embedding"])

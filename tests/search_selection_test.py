"""The final pick of a search is compared with the others at one fidelity.

Scripted training: each architecture's validation score is a fixed learning
curve of the epochs trained, and every training costs one second of a fake
clock, so a seconds budget ends a rung at a chosen training. No JAX work.
"""

import json
import os

import pytest

from jaxrec.data.synthetic import make_synthetic
from jaxrec.search import runner as runner_lib
from jaxrec.search import space as space_lib
from jaxrec.search import strategies
from tests import config_loader

BASE = dict(message="identity", aggregation="lightgcn", num_layers=3,
            combine="mean", interaction="dot", embed_dim=64,
            learning_rate=1e-3, l2_reg=1e-4)


def _arch(i: int) -> dict:
  """A distinct architecture per index (layers x aggregation)."""
  aggregation = ("lightgcn", "gcn", "sage", "gat", "gin", "none")[i // 4]
  return dict(BASE, num_layers=1 + i % 4, aggregation=aggregation)


class CurveRunner(runner_lib.Runner):
  """Training reads `curves[i](epochs)` for the i-th architecture of `archs`."""

  def __init__(self, archs, curves, tmp_path, dataset, budget_seconds=None):
    self.now = 0.0
    self.curves = {space_lib.arch_key(a): c for a, c in zip(archs, curves)}
    config = config_loader.load("search.py", "synthetic_small")
    config.selection_metric = "recall@20"
    super().__init__(space_lib.Space(), config, str(tmp_path), len(archs),
                     budget_seconds, dataset=dataset, clock=lambda: self.now)

  def _train(self, trial, epochs):
    self.now += 1.0
    trial.epochs = trial.best_epoch = trial.epochs_run = epochs
    trial.valid = self.curves[space_lib.arch_key(trial.arch)](epochs)
    trial.valid_metrics = {"recall@20": trial.valid}
    os.makedirs(trial.workdir, exist_ok=True)
    with open(os.path.join(trial.workdir, "results.json"), "w") as f:
      json.dump({"test": {"recall@20": trial.valid, "ndcg@20": 0.0}}, f)
    self._record(trial, 1.0)
    return trial


def _line(start, slope):
  return lambda epochs: start + slope * epochs


def _top_rung_pick(runner):
  """The rule this module replaces: best latest score of the highest rung."""
  top = max(t.rung for t in runner.trials)
  return min((t for t in runner.trials if t.rung == top),
             key=lambda t: (-t.valid, t.index))


@pytest.fixture(scope="module")
def tiny():
  return make_synthetic(num_users=40, num_items=50, num_interactions=500,
                        seed=0)


def test_a_lone_trial_of_a_cut_rung_is_compared_at_the_rung_below(tmp_path,
                                                                   tiny):
  # Trial 0 is better than trial 2 at every epoch count, but trial 2's
  # 3-epoch score (0.37) beats trial 0's 1-epoch score (0.35).
  curves = [_line(0.30, 0.05), _line(0.10, 0.01), _line(0.25, 0.04),
            _line(0.05, 0.01)]
  archs = [_arch(i) for i in range(4)]
  runner = CurveRunner(archs, curves, tmp_path, tiny)
  trials = [runner.run(a, 1) for a in archs]
  # Trials 2 and 0 are promoted; the budget ends after trial 2 trained on.
  runner.plan_rung(1, [trials[2], trials[0]], 3)
  runner.extend(trials[2], 3, 1)
  assert _top_rung_pick(runner).index == 2  # alone at rung 1
  chosen = runner.selection()
  assert runner.best() is chosen.trial
  assert chosen.trial.index == 0
  assert (chosen.rung, chosen.epochs, chosen.compared) == (0, 1, 4)
  assert chosen.valid == pytest.approx(0.35)
  assert all(curves[0](e) > curves[2](e) for e in range(1, 10))


def test_halving_cut_short_compares_every_trial_of_the_complete_rung(
    tmp_path, tiny):
  # eta 2: rungs of 1 / 2 / 4 epochs; 6 trials, 3 go on, then 2 of those.
  curves = [_line(0.10 + 0.01 * i, 0.02 * (i % 3)) for i in range(6)]
  archs = [_arch(i) for i in range(6)]
  # 6 + 3 + 1 trainings of one second: the 2nd rung-2 training never starts.
  runner = CurveRunner(archs, curves, tmp_path, tiny, budget_seconds=10)
  strategies.successive_halving(runner, None, 1, 2.0, 4, archs)
  assert [len(runner.planned[r]) for r in (1, 2)] == [3, 2]
  lone = [t for t in runner.trials if t.rung == 2]
  assert len(lone) == 1 and runner.min_compared == 2
  chosen = runner.selection()
  # Rung 2 holds one of its two trials: rung 1 (complete, 3 trials) decides,
  # each trial by its 2-epoch score, the one trained on to 4 epochs too.
  assert (chosen.rung, chosen.epochs, chosen.compared) == (1, 2, 3)
  rung1 = [t for t in runner.trials if 1 in t.rung_valid]
  best = max(rung1, key=lambda t: t.rung_valid[1])
  assert chosen.trial is best
  assert chosen.valid == pytest.approx(curves[archs.index(best.arch)](2))
  assert chosen.trial.epochs == 4  # returned as far as it was trained


@pytest.mark.parametrize("min_compared, rung, compared", [
    (None, 0, 9),  # default ceil(eta) = 3: two finished trials do not decide
    (2, 1, 2)])
def test_a_cut_rung_decides_when_min_compared_trials_finished_it(
    tmp_path, tiny, min_compared, rung, compared):
  curves = [_line(0.05 * i, 0.03 * (9 - i)) for i in range(9)]
  archs = [_arch(i) for i in range(9)]
  # 9 rung-0 trainings, then 2 of the 3 promoted to rung 1.
  runner = CurveRunner(archs, curves, tmp_path, tiny, budget_seconds=11)
  strategies.successive_halving(runner, None, 1, 3.0, 9, archs,
                                min_compared=min_compared)
  assert sum(1 for t in runner.trials if t.rung == 1) == 2
  chosen = runner.selection()
  assert (chosen.rung, chosen.compared) == (rung, compared)
  pool = [t for t in runner.trials if rung in t.rung_valid]
  assert chosen.trial is max(pool, key=lambda t: t.rung_valid[rung])


def test_a_complete_halving_keeps_its_top_rung(tmp_path, tiny):
  curves = [_line(0.01 * i, 0.01) for i in range(9)]
  archs = [_arch(i) for i in range(9)]
  runner = CurveRunner(archs, curves, tmp_path, tiny)
  strategies.successive_halving(runner, None, 1, 3.0, 9, archs)
  chosen = runner.selection()
  # 9 -> 3 -> 1: the last survivor won every comparison below it.
  assert (chosen.rung, chosen.epochs, chosen.compared) == (2, 9, 1)
  assert chosen.trial is _top_rung_pick(runner)
  with pytest.raises(ValueError, match="min_compared"):
    strategies.successive_halving(runner, None, 1, 3.0, 9, archs,
                                  min_compared=0)


def test_summary_records_the_deciding_comparison(tmp_path, tiny):
  curves = [_line(0.30, 0.05), _line(0.10, 0.01), _line(0.25, 0.04)]
  archs = [_arch(i) for i in range(3)]
  runner = CurveRunner(archs, curves, tmp_path, tiny)
  trials = [runner.run(a, 1) for a in archs]
  runner.plan_rung(1, [trials[2], trials[0]], 3)
  runner.extend(trials[2], 3, 1)
  summary = runner_lib.write_outputs(runner, "halving", 1)
  assert summary["best_trial"] == 0
  assert summary["selection"] == {"rung": 0, "epochs": 1, "compared": 3,
                                  "valid": pytest.approx(0.35)}
  with open(tmp_path / "summary.json") as f:
    assert json.load(f)["selection"]["compared"] == 3
  assert "Compared at rung 0 (1 epoch) with every trial scored there " in (
      (tmp_path / "results.md").read_text())

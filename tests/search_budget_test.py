"""benchmarks/search_budget.py: pairing, t interval, verdict and page on fake runs.

No training: run records are made up; the interval is checked against
scipy's one-sample t test of the differences.
"""

import csv
import json
import os

import numpy as np
import pytest
from scipy import stats

from benchmarks import common
from benchmarks import search_budget as sb

ARCH = dict(message="identity", aggregation="lightgcn", num_layers=3,
            combine="mean", interaction="dot", embed_dim=64,
            learning_rate=1e-3, l2_reg=1e-4)


def _run(dataset, seed, arm, recall, ndcg=None):
  return {"dataset": dataset, "seed": seed, "arm": arm, "arch": dict(ARCH),
          "best_epochs": 30, "valid": {"recall@20": recall + 0.01,
                                       "ndcg@20": 0.1},
          "test": {"recall@20": recall,
                   "ndcg@20": ndcg if ndcg is not None else recall / 2},
          "search_s": 600.0, "overrun_s": 60.0, "trainings": 10,
          "architectures": 8, "epochs": 200, "trainings_per_h": 60.0,
          "epochs_per_h": 1200.0, "load_start": 5.0, "load_end": 6.0,
          "wall_s": 620.0}


SEARCHED = [0.20, 0.22, 0.25]
TUNED = [0.24, 0.23, 0.24]


def _runs(dataset="lastfm", searched=SEARCHED, tuned=TUNED):
  runs = []
  for seed, (a, b) in enumerate(zip(searched, tuned)):
    runs += [_run(dataset, seed, "searched", a), _run(dataset, seed,
                                                      "lightgcn", b)]
  return runs


def test_arm_order_alternates_between_seeds():
  assert sb.arm_order(0) == ("searched", "lightgcn")
  assert sb.arm_order(1) == ("lightgcn", "searched")
  assert sb.arm_order(2) == ("searched", "lightgcn")


def test_config_spec_names_the_lightgcn_subspace():
  assert sb.config_spec("lastfm", "searched") == "configs/search.py:lastfm"
  assert sb.config_spec("lastfm", "lightgcn") == (
      "configs/search.py:lastfm,lightgcn")


def test_per_hour():
  assert sb.per_hour(10, 1800) == pytest.approx(20.0)
  assert np.isnan(sb.per_hour(3, 0))


def test_paired_interval_matches_scipy_one_sample_t_test():
  diffs = [-0.04, -0.01, 0.01]
  got = common.paired_interval(diffs)
  ref = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
  assert (got["lo"], got["hi"]) == pytest.approx((ref.low, ref.high))
  assert got["mean"] == pytest.approx(np.mean(diffs)) and got["n"] == 3
  ref = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.9)
  got = common.paired_interval(diffs, level=0.9)
  assert (got["lo"], got["hi"]) == pytest.approx((ref.low, ref.high))
  one = common.paired_interval([0.1])
  assert one["mean"] == pytest.approx(0.1)
  assert np.isnan(one["lo"]) and np.isnan(one["hi"])


def test_pairs_only_seeds_with_both_arms():
  runs = _runs() + [_run("lastfm", 7, "searched", 0.5),
                    _run("other", 0, "lightgcn", 0.1)]
  pairs = sb.pair_runs(runs, "lastfm")
  assert [s for s, _, _ in pairs] == [0, 1, 2]
  assert all(a["arm"] == "searched" and b["arm"] == "lightgcn"
             for _, a, b in pairs)


def test_dataset_stats_means_stds_and_paired_differences():
  st = sb.dataset_stats(_runs() + [_run("lastfm", 7, "searched", 0.9)],
                        "lastfm")
  assert st["n"] == 3 and st["seeds"] == [0, 1, 2]  # seed 7 has no pair
  mean, std = st["arms"]["searched"]["recall@20"]
  assert mean == pytest.approx(np.mean(SEARCHED))
  assert std == pytest.approx(np.std(SEARCHED, ddof=1))
  diffs = np.subtract(SEARCHED, TUNED)
  p = st["paired"]["recall@20"]
  assert p["diffs"] == pytest.approx(list(diffs))
  assert p["mean"] == pytest.approx(diffs.mean())
  assert p["std"] == pytest.approx(diffs.std(ddof=1))
  assert st["paired"]["ndcg@20"]["mean"] == pytest.approx(diffs.mean() / 2)
  # Mean difference -0.0133 < 0: not at least as good, not better.
  assert not st["at_least"] and not st["better"]
  assert sb.dataset_stats(_runs(), "amazon_beauty")["n"] == 0


def test_better_means_beyond_the_searched_arms_std():
  # searched 0.30 +- 0.01 vs tuned 0.24: better by 0.06 > 0.01.
  st = sb.dataset_stats(_runs(searched=[0.29, 0.30, 0.31]), "lastfm")
  assert st["at_least"] and st["better"]
  # +0.005 on average but the searched std (0.03) is larger: at least, not
  # better.
  st = sb.dataset_stats(_runs(searched=[0.215, 0.245, 0.275]), "lastfm")
  assert st["at_least"] and not st["better"]


def test_verdict_needs_every_dataset():
  good = [0.29, 0.30, 0.31]
  one = _runs(searched=good)
  v = sb.verdict(one)
  assert v["run"] == ["lastfm"]
  assert v["missing"] == ["amazon_beauty", "ml_latest_small"]
  assert v["at_least_all"] and v["better_any"] and not v["met"]
  three = (one + _runs("amazon_beauty", tuned=SEARCHED)
           + _runs("ml_latest_small", tuned=SEARCHED))
  assert sb.verdict(three)["met"]
  # One dataset below: not met.
  below = one + _runs("amazon_beauty") + _runs("ml_latest_small",
                                                tuned=SEARCHED)
  assert not sb.verdict(below)["met"]


def _results(runs):
  desc = {"strategy": "halving", "budget_trials": 12, "min_epochs": 10,
          "max_epochs": 270, "eta": 3.0, "rungs": [10, 30, 90, 270],
          "warm_start": ["base"], "promote_warm_start": True,
          "min_compared": 3,
          "base_arch": dict(ARCH), "patience": 5,
          "selection_metric": "recall@20", "batch_size": 2048, "seed": 0}
  space = {k: [v] for k, v in ARCH.items()}
  space["aggregation"] = ["lightgcn", "gat"]
  lspace = {k: [v] for k, v in ARCH.items()}
  lspace["num_layers"] = [1, 2, 3, 4]
  return {"command": "python -m benchmarks.search_budget --datasets lastfm",
          "machine": "2-core x86_64 CPU, shared", "date": "2026-01-01",
          "budget_seconds": 540.0, "budget_trials": None, "seeds": [0, 1, 2],
          "json_path": "benchmarks/results/search_budget.json",
          "workdir": "workdirs/search_budget", "runs": runs,
          "search": {"lastfm": {
              "searched": dict(desc, space=space, space_size=2),
              "lightgcn": dict(desc, space=lspace, space_size=4)}}}


def test_page_renders_tables_verdict_and_the_commands_not_run():
  page = sb.render(_results(_runs()))
  assert "Command: `python -m benchmarks.search_budget --datasets lastfm`" in (
      page)
  assert "load average 5.0-6.0 at the runs' starts and ends" in page
  assert "aggregation {lightgcn, gat}" in page
  assert "num_layers {1, 2, 3, 4}" in page
  assert "rungs of 10 / 30 / 90 / 270 epochs" in page
  assert "540 s of wall time" in page
  assert "[search_fidelity.md](search_fidelity.md)" in page
  # Mean +- std per arm and the paired line with its interval.
  assert "**0.2233 ± 0.0252**" in page
  ci = common.paired_interval(np.subtract(SEARCHED, TUNED))
  assert (f"| lastfm | recall@20 | -0.0400, -0.0100, +0.0100 | -0.0133 ± "
          f"0.0252 | [{ci['lo']:+.4f}, {ci['hi']:+.4f}] |") in page
  assert "Not established: amazon_beauty, ml_latest_small not run" in page
  assert "on lastfm the searched arm is below tuned LightGCN" in page
  assert ("python -m benchmarks.search_budget --datasets amazon_beauty "
          "--seeds 0,1,2 --budget-seconds 540") in page
  assert "30 epochs" in page
  assert "same architecture at the same epochs" in page  # fake arms agree


def test_page_names_each_runs_comparison_and_the_rule_that_made_it():
  # Runs recorded with the highest rung's trials only: that rule is named.
  page = sb.render(_results([dict(r, max_rung=2, top_rung_trials=3)
                             for r in _runs()]))
  assert "| 3 at rung 2 (90 epochs) |" in page
  assert "among the trials of the highest rung reached, the rule of" in page
  assert "at one fidelity: the highest rung that every" not in page
  # Runs that record their deciding comparison (`Runner.selection`).
  sel = {"rung": 0, "epochs": 10, "compared": 12, "valid": 0.2}
  page = sb.render(_results([dict(r, max_rung=1, top_rung_trials=1,
                                  selection=sel) for r in _runs()]))
  assert "| 12 at rung 0 (10 epochs) |" in page
  assert ("at one fidelity: the highest rung that every trial promoted to it "
          "finished, or a rung the budget cut short that at least 3 trials "
          "finished") in page
  assert "highest rung reached" not in page
  assert sb.compared_text({}, [10]) == "-"


def test_collect_run_reads_a_search_workdir(tmp_path):
  wd = tmp_path / "run"
  for index, epochs_run in ((0, 30), (1, 10), (2, 8)):
    trial = wd / "trials" / f"{index:04d}"
    trial.mkdir(parents=True)
    (trial / "results.json").write_text(json.dumps({"epochs_run": epochs_run}))
  rows = [  # trial 0 promoted; trial 2 early-stopped, its extension is free
      {"trial": 0, "rung": 0, "epochs": 10, "seconds": 5.0, "elapsed": 5.0},
      {"trial": 1, "rung": 0, "epochs": 10, "seconds": 4.0, "elapsed": 9.0},
      {"trial": 2, "rung": 0, "epochs": 10, "seconds": 3.0, "elapsed": 12.0},
      {"trial": 0, "rung": 1, "epochs": 30, "seconds": 9.0, "elapsed": 21.0},
      {"trial": 2, "rung": 1, "epochs": 30, "seconds": 0.0, "elapsed": 21.0}]
  with open(wd / "results.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  (wd / "summary.json").write_text(json.dumps({
      "best_arch": ARCH, "best_epochs": 30, "best_trial": 0,
      "best_valid": {"recall@20": 0.2, "ndcg@20": 0.1, "precision@20": 0.0},
      "best_test": {"recall@20": 0.19, "ndcg@20": 0.09},
      "search_seconds": 21.04, "trials": 3,
      "selection": {"rung": 0, "epochs": 10, "compared": 3, "valid": 0.2}}))
  rec = sb.collect_run(str(wd))
  assert rec["trainings"] == 4 and rec["architectures"] == 3
  assert rec["epochs"] == 48
  assert rec["last_start_s"] == pytest.approx(12.0)
  assert rec["max_rung"] == 1 and rec["search_s"] == 21.0
  # Trial 2 reached rung 1 without training (early-stopped): it competes.
  assert rec["top_rung_trials"] == 2
  assert rec["valid"] == {"recall@20": 0.2, "ndcg@20": 0.1}
  assert rec["test"] == {"recall@20": 0.19, "ndcg@20": 0.09}
  assert rec["selection"]["compared"] == 3 and rec["selection"]["rung"] == 0
  assert os.path.exists(wd / "summary.json")

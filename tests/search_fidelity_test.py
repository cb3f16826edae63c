"""benchmarks/search_fidelity.py: tau, halving and profile tables vs hand counts.

No training: toy score tables whose Kendall tau, p-values, cuts and ranks
are worked out by hand below.
"""

import numpy as np
import pytest

from benchmarks import search_fidelity as sf

# 4 candidates x 3 rungs (the last column is the final score).
SCORES = np.array([[0.1, 0.3, 0.4],
                   [0.4, 0.4, 0.3],
                   [0.3, 0.2, 0.2],
                   [0.2, 0.1, 0.1]])


def test_rung_scores_are_the_best_so_far():
  curve = {10: 0.1, 20: 0.3, 30: 0.2, 90: 0.25}
  assert sf.rung_scores(curve, [10, 30, 90]) == [0.1, 0.3, 0.3]


def test_tau_against_hand_counted_pairs():
  table = sf.tau_table(SCORES)
  # Rung 0 vs final: pairs (0,1) (0,2) (0,3) discordant, the other three
  # concordant -> (3 - 3) / 6 = 0; exact two-sided p = 1.
  assert table[0]["tau"] == pytest.approx(0.0)
  assert table[0]["p"] == pytest.approx(1.0)
  # Rung 1: only (0,1) discordant -> (5 - 1) / 6 = 2/3. One inversion among
  # 4: P(inv <= 1) + P(inv >= 5) = (1 + 3 + 3 + 1) / 24 = 1/3.
  assert table[1]["tau"] == pytest.approx(2 / 3)
  assert table[1]["p"] == pytest.approx(1 / 3)
  assert table[2]["tau"] == pytest.approx(1.0)


def test_halving_cuts_and_chain():
  h = sf.halving_table(SCORES, eta=3.0)
  assert h["final_top"] == [0, 1, 2]
  # ceil(4 / 3) = 2 kept per single cut: rung 0 keeps {1, 2}, rung 1
  # {1, 0}, the final rung {0, 1}; all inside the final top 3.
  assert [p["keep"] for p in h["per_rung"]] == [2, 2, 2]
  assert [p["kept_of_top"] for p in h["per_rung"]] == [2, 2, 2]
  # Successive: rung 0 -> [1, 2]; rung 1 keeps ceil(2 / 3) = 1 -> [1].
  assert h["chain"] == [{"rung": 0, "survivors": [1, 2]},
                        {"rung": 1, "survivors": [1]}]
  assert h["pick"] == 1


def test_halving_misses_the_final_best():
  scores = np.array([[0.1, 0.9], [0.5, 0.2], [0.4, 0.3], [0.3, 0.1],
                     [0.2, 0.4]])
  h = sf.halving_table(scores, eta=3.0)
  assert h["final_top"] == [0, 4, 2]
  assert h["per_rung"][0] == {"rung": 0, "keep": 2, "kept_of_top": 1}
  assert h["pick"] == 2  # survivors [1, 2] of rung 0; 2 is better at the end


def test_final_ranks_share_ties():
  np.testing.assert_allclose(sf.final_ranks([0.3, 0.3, 0.1]), [1.5, 1.5, 3])


def test_profile_ranks_per_value():
  archs = [{"aggregation": "a", "lr": 1}, {"aggregation": "b", "lr": 1},
           {"aggregation": "a", "lr": 2}, {"aggregation": "b", "lr": 1}]
  ranks = sf.final_ranks(SCORES[:, -1])  # 1, 2, 3, 4
  rows = sf.profile(archs, ranks, ["aggregation", "lr"])
  got = {(r["dimension"], r["value"]): (r["n"], r["median_rank"], r["ranks"])
         for r in rows}
  assert got == {("aggregation", "a"): (2, 2.0, [1.0, 3.0]),
                 ("aggregation", "b"): (2, 3.0, [2.0, 4.0]),
                 ("lr", 1): (3, 2.0, [1.0, 2.0, 4.0]),
                 ("lr", 2): (1, 3.0, [3.0])}


def test_cost_by_aggregation():
  archs = [{"aggregation": "gat"}, {"aggregation": "lightgcn"},
           {"aggregation": "gat"}]
  rows = sf.cost_by(archs, [3.0, 0.1, 2.0])
  assert rows == [{"aggregation": "gat", "n": 2, "median_s_per_epoch": 2.5,
                   "min": 2.0, "max": 3.0},
                  {"aggregation": "lightgcn", "n": 1,
                   "median_s_per_epoch": 0.1, "min": 0.1, "max": 0.1}]


def test_render_from_a_toy_results_file():
  # Non-decreasing curves, so each rung's best-so-far is the value there.
  # Rung 1 vs final: (0,1), (0,2) discordant -> (4 - 2) / 6 = 1/3; two
  # inversions: p = (1 + 3 + 5 + 5 + 3 + 1) / 24 = 0.75.
  table = np.array([[0.1, 0.3, 0.5], [0.4, 0.4, 0.45], [0.3, 0.35, 0.35],
                    [0.2, 0.2, 0.25]])
  arch = dict(sf.LIGHTGCN)
  cands = []
  for i, row in enumerate(table):
    a = dict(arch, learning_rate=[1e-3, 5e-3][i % 2],
             aggregation=["lightgcn", "gat"][i // 2])
    if i == 0:
      a = dict(sf.LIGHTGCN)
    cands.append({"index": i, "arch": a, "seconds": 10.0,
                  "s_per_epoch": 0.1 * (i + 1),
                  "curve": {str(e): float(v) for e, v in zip((10, 30, 90), row)}})
  results = {"command": "python -m benchmarks.search_fidelity --num 4",
             "hardware": "Hardware: test", "dataset": "lastfm",
             "dataset_summary": "toy", "seed": 0, "rungs": [10, 30, 90],
             "eta": 3.0, "eval_epochs": [10, 30, 90], "metric": "recall@20",
             "sampled": 4, "budget_seconds": 0.0, "elapsed_s": 40.0,
             "dimensions": list(sf.LIGHTGCN), "candidates": cands,
             "load": [1.0] * 4}
  page = sf.render(results)
  assert "| 10 | +0.000 | 1 | 2 of 3 (top 2 of 4) |" in page
  assert "| 30 | +0.333 | 0.75 | 2 of 3 (top 2 of 4) |" in page
  assert ("LightGCN's point (lr 1e-3) ranks 4 of 4 after 10 epochs and 1 of "
          "4 after 90") in page
  assert "test split is never evaluated" in page


def test_halving_with_a_protected_candidate():
  scores = np.array([[0.1, 0.9], [0.5, 0.2], [0.4, 0.3], [0.3, 0.1],
                     [0.2, 0.4]])
  h = sf.halving_table(scores, eta=3.0, protected=[0])
  # Rung 0 keeps the top ceil(5 / 3) = 2, [1, 2], plus the protected 0.
  assert h["chain"] == [{"rung": 0, "survivors": [1, 2, 0]}]
  assert h["pick"] == 0

"""benchmarks/real_text_report.py: paired intervals and the rendered page."""

import numpy as np
import pytest
from scipy import stats

from tests import config_loader


@pytest.fixture(scope="module")
def report():
  return config_loader.load_benchmark("real_text_report")


def test_paired_interval_matches_scipy(report):
  rng = np.random.default_rng(0)
  for n in (2, 3, 5, 8):
    a, b = rng.normal(size=n), rng.normal(size=n)
    got = report.paired(list(a), list(b))
    d = a - b
    lo, hi = stats.t.interval(0.95, n - 1, loc=d.mean(), scale=stats.sem(d))
    assert got["n"] == n
    np.testing.assert_allclose([got["mean"], got["lo"], got["hi"]],
                               [d.mean(), lo, hi], rtol=1e-3)
  single = report.paired([0.3], [0.1])
  assert single["mean"] == pytest.approx(0.2) and np.isnan(single["lo"])


def _runs(values: dict) -> dict:
  return {"runs": [{"seed": s, "test": {"recall@20": v, "ndcg@20": v / 2,
                                        "coverage@20": 0.1},
                    "best_epoch": 10, "epochs_run": 20, "stopped_early": True,
                    "seconds_per_epoch": 0.1, "fit_seconds": None}
                   for s, v in values.items()], "selected": "-"}


def test_paired_runs_pairs_by_seed(report):
  out = {"lightgcn": _runs({0: 0.20, 1: 0.22, 2: 0.24, 3: 0.30}),
         "alpharec": _runs({2: 0.25, 0: 0.23, 1: 0.21})}
  got = report.paired_runs(out, "alpharec", "lightgcn", "recall@20")
  # Seeds 0, 1, 2 only: differences +0.03, -0.01, +0.01.
  assert got["n"] == 3
  assert got["mean"] == pytest.approx(0.01)


def test_page_lists_missing_datasets_models_and_baseline_comparisons(report):
  out = {"ease": _runs({0: 0.30, 1: 0.31}),
         "lightgcn": _runs({0: 0.28, 1: 0.27}),
         "_command": "python -m benchmarks.real_text --datasets "
                     "ml_latest_small --cold 0 --models ease,lightgcn",
         "_learning_rate": 0.01,
         "_lr_check": {"learning_rate": 0.001, "valid": 0.25,
                       "best_epoch": 900, "epochs_run": 1350,
                       "stopped_early": True, "protocol_learning_rate": 0.01,
                       "protocol_valid": 0.26}}
  results = {"protocol": {"datasets": "ml_latest_small", "seeds": "0,1",
                          "max_epochs": 10, "workdir": "w", "json": "j",
                          "out": "o", "cold": 0, "eval_every": 1,
                          "patience": 1, "min_epochs": 1,
                          "relative_patience": 0.5, "models": "ease,lightgcn"},
             "grid": {"ease": ["l2=1"], "lightgcn": ["l2_reg=0.001"]},
             "machine": "test", "datasets": {"ml_latest_small": out}}
  page = report.render(results)
  assert "Not run yet: hetrec_lastfm" in page
  assert "Not run on this dataset: " in page and "AlphaRec" in page
  assert "| EASE - LightGCN | +0.0300 " in page
  # The section names the command and learning rate that produced it.
  section = page.split("## ml_latest_small")[1]
  assert "    python -m benchmarks.real_text --datasets " \
         "ml_latest_small --cold 0 --models ease,lightgcn\n" in section
  assert "Adam learning rate of every gradient-trained model: 0.01" in section
  assert ("reaches 0.2500 at learning rate 0.001 (best epoch 900 of 1350, "
          "stopped by the rule) against 0.2600 at 0.01") in section


def test_section_names_each_stage_command_and_a_smaller_grid(report):
  out = {"lightgcn": dict(_runs({0: 0.28, 1: 0.27}), command="cmd A",
                          grid=["l2_reg=0.001"]),
         "alpharec": dict(_runs({0: 0.29}), command="cmd B",
                          grid=["temperature=0.1"])}
  grids = {"lightgcn": ["l2_reg=0.001"],
           "alpharec": ["temperature=0.1", "temperature=0.2"]}
  lines = report.dataset_section("hetrec_lastfm", out, grids)
  text = "\n".join(lines)
  assert "Commands:\n\n    cmd A\n    cmd B\n" in text
  assert "Grid of AlphaRec on this dataset: temperature=0.1 " in text
  assert "Grid of LightGCN" not in text


def test_committed_page_renders_from_its_json(report, tmp_path):
  """docs/results/real_text.md is `main` of benchmarks/results/real_text.json."""
  root = config_loader.REPO
  out = tmp_path / "real_text.md"
  report.main(["--json", f"{root}/benchmarks/results/real_text.json",
               "--out", str(out)])
  with open(f"{root}/docs/results/real_text.md", encoding="utf-8") as f:
    assert out.read_text(encoding="utf-8") == f.read()


def test_interval_formats_mean_bounds_and_zero(report):
  g = {"mean": 0.0123, "lo": 0.001, "hi": 0.0236}
  assert report.interval(g) == "+0.0123 [+0.0010, +0.0236] (> 0)"
  assert report.interval(g, zero=False) == "+0.0123 [+0.0010, +0.0236]"
  assert report.interval(g, mean=False, zero=False) == "[+0.0010, +0.0236]"
  assert report.interval(dict(g, lo=-0.001)).endswith("(includes 0)")
  assert report.interval({"mean": -0.2, "lo": -0.3, "hi": -0.1}).endswith(
      "(< 0)")

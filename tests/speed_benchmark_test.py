"""Tests of benchmarks/speed.py's measurement helpers on a tiny graph."""

import numpy as np
import pytest

from tests import config_loader


@pytest.fixture(scope="module")
def speed():
  return config_loader.load_benchmark("speed")


def test_fit_exponent_recovers_a_power_law(speed):
  edges = np.array([1e5, 1e6, 3e6, 1e7])
  np.testing.assert_allclose(speed.fit_exponent(edges, 2e-8 * edges**1.07),
                             1.07, rtol=1e-9)
  assert np.isnan(speed.fit_exponent([1e5], [0.1]))


def test_measure_repeats_short_epochs_and_reports_medians(speed):
  res = speed.measure("1e4", max_epoch_steps=40, timed_steps=2, timed_calls=1,
                      steps_per_epoch=8, min_epoch_seconds=0.3)
  assert not res["extrapolated"]
  assert res["steps_per_epoch"] == 8
  times = res["epoch_seconds_all"]
  assert res["epoch_repeats"] == len(times) >= 2
  assert sum(times) >= 0.3
  assert res["epoch_seconds"] == pytest.approx(float(np.median(times)))
  # Step time excludes sampling, so it is below an epoch's share.
  assert 0 < res["step_seconds"] <= max(times) / 8
  assert np.isfinite(res["epoch_loss"])
  assert 0 <= res["eval_recall"] <= 1


def test_load_applies_the_configured_node_order(speed):
  config, ds, _ = speed.load("1e4", node_order="degree")
  assert config.graph.node_order == "degree"
  assert np.all(np.diff(np.bincount(ds.train.users,
                                    minlength=ds.num_users)) <= 0)
  assert np.all(np.diff(np.bincount(ds.train.items,
                                    minlength=ds.num_items)) <= 0)
  with pytest.raises(ValueError, match="node_order.*'sorted'"):
    speed.load("1e4", node_order="sorted")

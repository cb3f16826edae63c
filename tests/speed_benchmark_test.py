"""Tests of benchmarks/speed.py's measurement helpers on a tiny graph."""

import os

import numpy as np
import pytest

from tests import config_loader


@pytest.fixture(scope="module")
def speed():
  return config_loader.load_benchmark("speed")


@pytest.fixture(scope="module")
def speed_report():
  return config_loader.load_benchmark("speed_report")


def test_fit_exponent_recovers_a_power_law(speed_report):
  edges = np.array([1e5, 1e6, 3e6, 1e7])
  np.testing.assert_allclose(
      speed_report.fit_exponent(edges, 2e-8 * edges**1.07), 1.07, rtol=1e-9)
  assert np.isnan(speed_report.fit_exponent([1e5], [0.1]))


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


def test_rounds_report_the_median_run_and_per_round_exponents(speed_report):
  edges = {"1e5": 1e5, "1e6": 1e6}
  runs = {size: [dict(size=size, edges=e, step_seconds=t * e, epoch_seconds=
                      32 * t * e, tag=k) for k, t in enumerate(ts)]
          for (size, e), ts in zip(edges.items(),
                                   ([3e-8, 1e-8, 2e-8], [2e-8, 2e-8, 5e-8]))}
  merged = [speed_report.median_round(runs[s]) for s in edges]
  assert merged[0]["tag"] == 2  # the median round, all its fields
  np.testing.assert_allclose(merged[0]["rounds_step_seconds"],
                             [3e-3, 1e-3, 2e-3])
  assert merged[1]["step_seconds"] == pytest.approx(2e-2)
  # Per round: (3e-8 -> 2e-8), (1e-8 -> 2e-8), (2e-8 -> 5e-8) per edge.
  np.testing.assert_allclose(
      speed_report.round_exponents(merged),
      [1 + np.log10(2 / 3), 1 + np.log10(2), 1 + np.log10(2.5)], rtol=1e-9)
  assert speed_report.round_exponents(
      [dict(merged[0], rounds_step_seconds=[1.0]), merged[1]]) == [
          speed_report.fit_exponent([1e5, 1e6], [1.0, 2e-2])]


def test_bfloat16_gather_is_configured_and_in_the_roofline(speed,
                                                          speed_report):
  """--gather_dtype bfloat16 reaches config.graph.gather_dtype, and the
  roofline counts 2-byte gathered rows."""
  config, _, _ = speed.load("1e4", gather_dtype="bfloat16")
  assert config.graph.gather_dtype == "bfloat16"
  assert speed_report.prop_bytes(1000, 64) - speed_report.prop_bytes(
      1000, 64, gather_bytes=2) == 1000 * 64 * 2
  assert speed_report._gather_bytes({"gather_dtype": "bfloat16"}) == 2
  assert speed_report._gather_bytes({}) == 4


def test_csr_roofline_counts_rows_outputs_and_the_reuse_floor(speed_report):
  """CSR kernels: E gathered rows + columns/weights + N output rows and
  pointers; the floor gathers each of the N rows once; scatter kernels keep
  the gather + scatter count."""
  e, n, d = 1000, 50, 64
  assert speed_report.prop_bytes(e, d, nodes=n, csr=True) == (
      e * d * 4 + e * 8 + n * (d * 4 + 4))
  assert speed_report.prop_bytes(e, d, 2, nodes=n, csr=True, reuse=True) == (
      n * d * 2 + e * 8 + n * (d * 4 + 4))
  assert speed_report.prop_bytes(e, d, nodes=n) == e * d * 8 + e * 12
  native = {"edges": e, "nodes": n, "kernel": "native_symmetric"}
  tiled = {"edges": e, "nodes": n, "kernel": "native tiled (64-node blocks)"}
  layer_bytes = speed_report._layer_bytes
  assert layer_bytes(native) == speed_report.prop_bytes(e, d, nodes=n,
                                                        csr=True)
  assert layer_bytes(native, reuse=True) < layer_bytes(native)
  assert layer_bytes(tiled) == speed_report.prop_bytes(e, d)


def test_step_time_prints_one_result_line(capsys):
  """benchmarks/step_time.py (the A/B timer) times this checkout's step."""
  step_time = config_loader.load_benchmark("step_time")
  step_time.main(["--size", "1e4", "--steps", "2", "--calls", "2"])
  lines = [l for l in capsys.readouterr().out.splitlines()
           if l.startswith("RESULT ")]
  assert len(lines) == 1
  _, repo, size, dtype, seconds, label, loss = lines[0].split()
  assert (size, dtype, label) == ("1e4", "float32", "loss")
  assert os.path.samefile(repo, config_loader.REPO)
  assert 0 < float(seconds) < 60 and np.isfinite(float(loss))


def test_step_windows_are_full_and_wrap_past_the_epoch():
  step_time = config_loader.load_benchmark("step_time")
  rows = {"users": np.arange(5)[:, None] * np.ones((1, 3), int)}  # 5 steps
  steps, window = step_time.step_windows(rows, 2)
  assert steps == 2
  starts = [int(window(c)["users"][0, 0]) for c in range(6)]
  assert starts == [0, 2, 0, 2, 0, 2]  # windows [0, 2), [2, 4); span 4
  assert all(window(c)["users"].shape == (2, 3) for c in range(6))
  steps, window = step_time.step_windows(rows, 9)  # clamped to the epoch
  assert steps == 5
  np.testing.assert_array_equal(window(3)["users"], rows["users"])
  with pytest.raises(ValueError, match="no steps"):
    step_time.step_windows({"users": np.zeros((0, 3))}, 2)


def test_measure_extrapolates_with_full_windows_on_a_short_epoch(
    speed, speed_report, monkeypatch):
  """More timed steps than the epoch has: the windows wrap instead of
  running past the rows (empty or short batches, a recompilation)."""
  shapes, time_calls = [], speed.step_time.time_calls

  def spy(step_fn, state, graph, chunk, rng, calls):
    def recorded(c):
      rows = chunk(c)
      shapes.append(rows.users.shape[0])
      return rows
    return time_calls(step_fn, state, graph, recorded, rng, calls)

  monkeypatch.setattr(speed.step_time, "time_calls", spy)
  res = speed.measure("1e4", max_epoch_steps=0, timed_steps=2, timed_calls=4,
                      steps_per_epoch=3)
  assert shapes == [2] * 5  # the compiling call and 4 timed ones
  assert res["extrapolated"]
  assert res["steps_per_epoch"] == 3
  assert res["timed_steps"] == 8
  assert 0 < res["step_seconds"] < 60
  assert res["epoch_seconds"] == pytest.approx(
      res["sample_seconds"] + 3 * res["step_seconds"])
  # The report renders the extrapolated row and the checks.
  machine = dict(bandwidth=40e9, peak_flops=2e11, cpus=2, device="cpu:0",
                 copy_1thread=20e9, copy_2threads=40e9, bw_load=0.1,
                 matmul_n=4096, flops_load=0.1)
  text = speed_report.report([res], machine, "speed.py --sizes 1e4", 8.0)
  assert "(extrapolated from 8 steps)" in text
  assert "| 1e4 |" in text
  assert "RSS check: largest synthetic size (1e4)" in text and "PASS" in text

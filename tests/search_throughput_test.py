"""benchmarks.search_throughput: pairing, the identical-results check, the page (fake runs)."""

from benchmarks import search_throughput as st


def _run(arm, seconds, rows=((0, 0, 10, 0.1), (0, 1, 30, 0.2))):
  return {"arm": arm, "search_seconds": seconds, "cpu_seconds": 2 * seconds,
          "trainings": len(rows),
          "trials": 1, "rows": [list(r) for r in rows], "load": [1.0, 2.0]}


def test_summarise_pairs_repeats_in_run_order():
  runs = [_run("off", 120.0), _run("on", 60.0), _run("on", 40.0),
          _run("off", 100.0)]
  s = st.summarise(runs)
  assert s["ratio"] == [2.0, 2.5] and s["cpu_ratio"] == [2.0, 2.5]
  assert s["off"]["trainings_per_hour"] == [60.0, 72.0]
  assert s["on"]["trainings_per_hour"] == [120.0, 180.0]
  assert s["identical"]


def test_differing_scores_are_reported():
  runs = [_run("off", 10.0), _run("on", 5.0, rows=((0, 0, 10, 0.3),))]
  assert not st.summarise(runs)["identical"]
  page = st.render({"command": "python -m benchmarks.search_throughput",
                    "hardware": "Hardware: test", "dataset": "lastfm",
                    "trials": 1, "seed": 0, "runs": runs})
  assert "NOT identical" in page and "2.00x" in page
  assert "| 0 | off | 2 | 1 | 10 | 20 | 720 | 1.0 / 2.0 |" in page

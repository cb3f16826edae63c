"""Smoke test of benchmarks/dynamics.py (sub-epoch training records)."""

import json

import pytest

from tests import config_loader


@pytest.fixture(scope="module")
def script():
  return config_loader.load_benchmark("dynamics")


def test_apply_settings_sets_nested_and_new_keys(script):
  config = config_loader.load("simgcl.py", "synthetic_small")
  script.apply_settings(config, ["model.init_std=0.008", "batch_size=128",
                                 "sampling=user"])
  assert config.model.init_std == 0.008 and config.batch_size == 128
  assert config.sampling == "user"
  with pytest.raises(ValueError, match="key=value"):
    script.apply_settings(config, ["model.init_std"])


def test_records_every_n_steps_and_writes_them(script, tmp_path):
  out = tmp_path / "dyn.jsonl"
  records = script.main(["--config", "simgcl", "--dataset", "synthetic_small",
                         "--set", "model.ssl_weight=0.02", "--every", "3",
                         "--steps", "7", "--out", str(out)])
  assert [r["step"] for r in records] == [3, 6, 7]
  with open(out) as f:
    assert [json.loads(line) for line in f] == records
  for r in records:
    assert 0.0 <= r["valid_recall@20"] <= 1.0
    assert r["user_norm"] > 0 and r["item_ego_norm"] > 0
    assert {"bpr", "ssl", "reg", "loss"} <= set(r)
  assert records[0]["epoch"] < records[-1]["epoch"] < 1.0  # 13 steps/epoch

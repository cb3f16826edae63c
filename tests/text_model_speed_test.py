"""benchmarks/text_model_speed.py: a tiny interleaved run and its outputs."""

import json
import os

import pytest

from tests import config_loader


@pytest.fixture(scope="module")
def script():
  return config_loader.load_benchmark("text_model_speed")


def test_parse_variant_and_overrides(script):
  name, base, over = script.parse_variant(
      "a_row=alpharec:model.negative_sharing='row',num_negatives=256")
  assert (name, base) == ("a_row", "alpharec")
  assert over == {"model.negative_sharing": "row", "num_negatives": 256}
  config, label = script.model_config("alpharec", "lastfm", None)
  assert label == "configs/alpharec.py:lastfm"
  script.apply_overrides(config, over)
  assert config.model.negative_sharing == "row" and config.num_negatives == 256
  with pytest.raises(ValueError, match="NAME=MODEL"):
    script.parse_variant("alpharec")


def test_tiny_run_writes_json_and_table(script, tmp_path):
  out = tmp_path / "speed.json"
  results = script.main(
      ["--dataset", "tiny", "--models", "textgnn", "--epochs", "2",
       "--variant", "textgnn_f32=textgnn:model.matmul_dtype='float32'",
       "--out", str(out)])
  with open(out) as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(results))
  assert sorted(os.listdir(tmp_path)) == ["speed.json", "speed.md"]  # no temps
  (ds,) = saved["datasets"]
  assert (ds["dataset"], ds["num_users"], ds["num_items"]) == ("tiny", 60, 80)
  assert list(ds["models"]) == ["lightgcn", "textgnn", "textgnn_f32"]
  for name in ("textgnn", "textgnn_f32"):
    m = ds["models"][name]
    assert m["backbone"] == "lightgcn" and len(m["epoch_seconds"]) == 2
    assert m["seconds_per_epoch"] > 0 and m["steps_per_epoch"] >= 1
    base = ds["models"]["lightgcn"]["seconds_per_epoch"]
    assert m["backbone_seconds_per_epoch"] == base
    assert m["ratio"] == pytest.approx(m["seconds_per_epoch"] / base)
  assert "matmul_dtype='float32'" in ds["models"]["textgnn_f32"]["config"]
  table = (tmp_path / "speed.md").read_text()
  assert table == script.render_markdown(saved)
  assert "| textgnn | lightgcn |" in table and "| textgnn_f32 |" in table


def test_unknown_model_names_the_valid_ones(script):
  with pytest.raises(ValueError, match="valid"):
    script.measure("tiny", ["nope"], 1, "lastfm")

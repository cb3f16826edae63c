"""End-to-end test of benchmarks/text_alignment.py on a tiny synthetic set.

Needs the bundled all-MiniLM-L6-v2 (skipped without it). Checks the noisy
training data of `--train_noise` (warm train only, same pairs in the warm and
full datasets, evaluation splits untouched) and that a short LightGCN + Gen
run writes its table with the paired gain.
"""

import os

import numpy as np
import pytest

from tests import config_loader

TINY = ["--num_users", "60", "--num_items", "250", "--num_interactions",
        "1500", "--dim", "8", "--text_dim", "8", "--batch_size", "128"]


@pytest.fixture(scope="module")
def script(bundled_model_path):  # pylint: disable=unused-argument
  return config_loader.load_benchmark("text_alignment")


def _keys(inter, num_items):
  return inter.users.astype(np.int64) * num_items + inter.items


def test_train_noise_touches_only_warm_train(script, tmp_path):
  cache = {}
  common = TINY + ["--cache_dir", str(tmp_path / "cache")]
  clean, _ = script.make_data(0, script.parse_args(common), cache)
  noisy, _ = script.make_data(
      0, script.parse_args(common + ["--train_noise", "0.25"]), cache)
  warm_c, warm_n = clean.warm, noisy.warm
  np.testing.assert_array_equal(warm_n.train.users, warm_c.train.users)
  changed = warm_n.train.items != warm_c.train.items
  assert changed.sum() == round(0.25 * len(warm_c.train))
  assert warm_n.train.items.max() < warm_n.num_items  # warm items only
  np.testing.assert_array_equal(noisy.full.train.items, warm_n.train.items)
  for split in ("valid", "test"):
    np.testing.assert_array_equal(getattr(warm_n, split).items,
                                  getattr(warm_c, split).items)
  np.testing.assert_array_equal(noisy.cold_item_test.items,
                                clean.cold_item_test.items)
  real = np.concatenate([_keys(getattr(warm_c, s), warm_c.num_items)
                         for s in ("train", "valid", "test")])
  fake = _keys(warm_n.train, warm_n.num_items)[changed]
  assert not np.isin(fake, real).any()


def test_short_run_writes_the_table(script, tmp_path):
  out = tmp_path / "report.md"
  report = script.main(TINY + [
      "--seeds", "0", "--models", "lightgcn,gen", "--epochs", "2",
      "--eval_every", "1", "--train_noise", "0.2",
      "--cache_dir", str(tmp_path / "cache"), "--workdir", str(tmp_path / "wd"),
      "--out", str(out)])
  assert os.path.exists(out) and out.read_text() == report
  assert "20% of the warm train interactions replaced" in report
  rows = [l for l in report.splitlines() if l.startswith("| LightGCN")]
  assert len(rows) == 3  # LightGCN, + Gen, and Gen's paired-gain row
  gain = [l for l in rows if l.count("±") == 4 and "Gen" in l]
  assert gain, report

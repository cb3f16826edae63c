"""End-to-end test of benchmarks/reproduce_lightgcn.py on a tiny fixture.

The fixture is a LightGCN-format dataset (`user item item ...` lines in
lightgcn/gowalla/train.txt + test.txt) written by the test under a temporary
data root, so no real data is needed. The script runs in-process (its
`main(argv)`), trains LightGCN for 2 epochs, is then re-invoked with
--epochs 3 and must RESUME: the first two epochs' history records (losses and
measured epoch wall times) are restored bit-for-bit from the checkpoint
rather than recomputed, and only epoch 3 is new. A third invocation with the
same target reuses the finished run without training.
"""

import argparse
import json
import os

import numpy as np
import pytest

from tests import config_loader

NUM_USERS, NUM_ITEMS = 24, 40


@pytest.fixture(scope="module")
def script():
  return config_loader.load_benchmark("reproduce_lightgcn")


def _write_fixture(root):
  """Tiny LightGCN-format Gowalla folder: 24 users x 40 items."""
  rng = np.random.default_rng(0)
  folder = os.path.join(root, "lightgcn", "gowalla")
  os.makedirs(folder)
  train_lines, test_lines = [], []
  for u in range(NUM_USERS):
    # Users prefer the item block of their group, so ranking is learnable.
    block = (u % 4) * 10 + np.arange(10)
    items = rng.permutation(block)
    train_lines.append(" ".join(map(str, [u, *items[:7]])))
    test_lines.append(" ".join(map(str, [u, *items[7:9]])))
  with open(os.path.join(folder, "train.txt"), "w") as f:
    f.write("\n".join(train_lines) + "\n")
  with open(os.path.join(folder, "test.txt"), "w") as f:
    f.write("\n".join(test_lines) + "\n")


def _history(run_dir):
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def test_reproduce_runs_and_resumes(script, tmp_path):
  data_root, workdir = tmp_path / "data", tmp_path / "work"
  _write_fixture(str(data_root))
  out = tmp_path / "table.md"
  argv = ["--models", "lightgcn", "--datasets", "gowalla,yelp2018",
          "--data_root", str(data_root), "--workdir", str(workdir),
          "--eval_every", "1", "--out", str(out)]
  rows = script.main(argv + ["--epochs", "2"])
  # The paper protocol samples LightGCN's BPR triples user-uniformly ('_su').
  run_dir = os.path.join(workdir, "lightgcn_gowalla_su")
  assert len(rows) == 1 and rows[0]["epochs_run"] == 2
  assert rows[0]["sampling"] == "user"
  first = _history(run_dir)
  assert [r["epoch"] for r in first] == [1, 2]
  # Paper protocol applied on top of configs/lightgcn.py.
  assert (rows[0]["lr"], rows[0]["batch_size"], rows[0]["l2_reg"],
          rows[0]["embed_dim"]) == (1e-3, 2048, 1e-4, 64)
  with open(os.path.join(run_dir, "results.json")) as f:
    results = json.load(f)
  assert results["epochs_run"] == 2
  assert 0.0 <= results["test"]["recall@20"] <= 1.0
  assert results["valid"]["num_users_evaluated"] > 0
  table = out.read_text()
  assert "| LightGCN (3 layers) | gowalla | 2 / 2 |" in table
  assert (f"{results['test']['recall@20']:.4f} | "
          f"{results['test']['ndcg@20']:.4f} | 0.1823 | 0.1555 |") in table
  assert "Skipped (data not found under --data_root): yelp2018" in table

  # Second invocation continues from the epoch-2 checkpoint.
  rows = script.main(argv + ["--epochs", "3"])
  second = _history(run_dir)
  assert [r["epoch"] for r in second] == [1, 2, 3]
  assert second[:2] == first  # restored (same measured wall times), not rerun
  assert rows[0]["epochs_run"] == 3 and rows[0]["status"] == "trained"

  # Third invocation: target reached, the run is reused without training.
  rows = script.main(argv + ["--epochs", "3"])
  assert rows[0]["status"] == "done (reused)"
  assert _history(run_dir) == second
  with open(os.path.join(run_dir, "reproduce_log.jsonl")) as f:
    log = [json.loads(line) for line in f]
  assert [r["epochs_run"] for r in log] == [2, 3, 3]


def test_refit_uses_the_validation_selected_epoch(script, tmp_path):
  """--refit retrains on train + valid for the validation run's best epoch."""
  data_root, workdir = tmp_path / "data", tmp_path / "work"
  _write_fixture(str(data_root))
  argv = ["--models", "lightgcn", "--datasets", "gowalla", "--data_root",
          str(data_root), "--workdir", str(workdir), "--eval_every", "1",
          "--epochs", "3", "--out", str(tmp_path / "table.md")]
  with pytest.raises(FileNotFoundError, match="validation run first"):
    script.main(argv + ["--refit"])
  (valid_row,) = script.main(argv)
  (refit_row,) = script.main(argv + ["--refit"])
  assert refit_row["refit"] and not valid_row["refit"]
  assert refit_row["epochs_run"] == valid_row["best_epoch"]
  assert refit_row["valid_recall@20"] is None
  assert refit_row["num_train"] == NUM_USERS * 7  # every train row, no valid
  assert valid_row["num_train"] < NUM_USERS * 7
  run_dir = os.path.join(workdir, "lightgcn_gowalla_su_refit")
  with open(os.path.join(run_dir, "results.json")) as f:
    assert json.load(f)["test"]["recall@20"] == refit_row["test_recall@20"]
  table = (tmp_path / "table.md").read_text()
  assert "| LightGCN (3 layers) refit on train+valid | gowalla |" in table
  # A fixed refit length needs no validation run and reuses the directory.
  argv[argv.index("--workdir") + 1] = str(tmp_path / "fixed")
  (fixed,) = script.main(argv + ["--refit_epochs", "2"])
  assert fixed["refit"] and fixed["epochs_run"] == 2
  assert os.path.exists(tmp_path / "fixed" / "lightgcn_gowalla_su_refit")
  assert not os.path.exists(tmp_path / "fixed" / "lightgcn_gowalla_su")


def test_finished_detects_early_stop(script, tmp_path):
  """A run stopped by patience counts as finished; an interrupted one not."""
  config = script.make_config("lightgcn", "gowalla", argparse.Namespace(
      protocol="paper", data_root=None, epochs=100, eval_every=1, patience=2,
      progress=False))
  run = tmp_path / "run"
  run.mkdir()
  assert not script.finished(str(run), config)  # no results.json yet

  def write(best, epochs):
    (run / "results.json").write_text(json.dumps(
        {"epochs_run": epochs, "best_epoch": best}))
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "valid/recall@20": 0.1}) + "\n"
        for e in range(1, epochs + 1)))
  write(best=3, epochs=5)  # 2 evaluations after the best: patience reached
  assert script.finished(str(run), config)
  write(best=4, epochs=5)  # 1 evaluation after the best: would train on
  assert not script.finished(str(run), config)


def test_batch_and_lr_overrides_get_their_own_run(script):
  """--batch_size / --learning_rate override the paper protocol and name a
  separate run directory, so they never resume a paper-protocol run."""
  base = dict(protocol="paper", data_root=None, epochs=10, eval_every=1,
              patience=2, progress=False)
  paper = argparse.Namespace(**base, batch_size=0, learning_rate=0.0)
  large = argparse.Namespace(**base, batch_size=16384, learning_rate=5e-3,
                             contrast_rows=4096)
  config = script.make_config("lightgcn", "gowalla", paper)
  assert (config.batch_size, config.optimizer.learning_rate) == (2048, 1e-3)
  config = script.make_config("lightgcn", "gowalla", large)
  assert (config.batch_size, config.optimizer.learning_rate) == (16384, 5e-3)
  assert config.model.num_layers == 3 and config.model.embed_dim == 64
  assert script.run_name("lightgcn", "gowalla", paper) == "lightgcn_gowalla_su"
  assert (script.run_name("lightgcn", "gowalla", large)
          == "lightgcn_gowalla_b16384_lr0.005_su")  # no InfoNCE: no '_c'
  interaction = argparse.Namespace(**base, batch_size=0, learning_rate=0.0,
                                   sampling="interaction")
  assert script.run_name("lightgcn", "gowalla", interaction) == "lightgcn_gowalla"
  assert script.make_config("lightgcn", "gowalla",
                            interaction).sampling == "interaction"
  assert script.make_config("sgl", "gowalla", paper).sampling == "interaction"
  assert "contrast_rows" not in config.model
  simgcl = script.make_config("simgcl", "gowalla", large)
  assert simgcl.model.contrast_rows == 4096 and simgcl.batch_size == 16384
  assert (script.run_name("simgcl", "gowalla", large)
          == "simgcl_gowalla_b16384_lr0.005_c4096")
  # SGL's all-node negatives are applied and named for SGL only.
  all_neg = argparse.Namespace(**base, batch_size=16384, learning_rate=5e-3,
                               contrast_rows=4096, contrast_negatives="all")
  assert script.make_config("sgl", "gowalla",
                            all_neg).model.contrast_negatives == "all"
  assert (script.run_name("sgl", "gowalla", all_neg)
          == "sgl_gowalla_b16384_lr0.005_c4096_negall")
  assert (script.run_name("simgcl", "gowalla", all_neg)
          == "simgcl_gowalla_b16384_lr0.005_c4096")
  assert "contrast_negatives" not in script.make_config("simgcl", "gowalla",
                                                        all_neg).model
  # A cosine schedule is applied and named; its options alone are ignored.
  cosine = argparse.Namespace(**base, batch_size=16384, learning_rate=2e-2,
                              hold_epochs=20, decay_epochs=100,
                              final_lr_ratio=0.0)
  config = script.make_config("lightgcn", "gowalla", cosine)
  assert (config.optimizer.schedule, config.optimizer.hold_epochs,
          config.optimizer.decay_epochs) == ("cosine", 20, 100)
  # final_lr_ratio=0.0 is "not given": the base config's default stays.
  assert config.optimizer.final_lr_ratio == 0.01
  assert (script.run_name("lightgcn", "gowalla", cosine)
          == "lightgcn_gowalla_b16384_lr0.02_h20_d100_su")
  hold_only = argparse.Namespace(**base, batch_size=0, learning_rate=0.0,
                                 hold_epochs=20, decay_epochs=0)
  assert script.run_name("lightgcn", "gowalla", hold_only) == "lightgcn_gowalla_su"
  assert script.make_config("lightgcn", "gowalla",
                            hold_only).optimizer.schedule == "constant"


def test_ssl_weight_and_temperature_flags(script):
  """--ssl_weight / --temperature set lambda / tau of the contrastive models
  only and name their run directories ('_l', '_t')."""
  args = argparse.Namespace(protocol="paper", data_root=None, epochs=10,
                            eval_every=1, patience=2, progress=False,
                            ssl_weight=0.5, temperature=0.1)
  config = script.make_config("sgl", "gowalla", args)
  assert (config.model.ssl_weight, config.model.ssl_temperature) == (0.5, 0.1)
  assert script.run_name("sgl", "gowalla", args) == "sgl_gowalla_l0.5_t0.1"
  assert (script.make_config("xsimgcl", "gowalla", args).model.ssl_temperature
          == 0.1)
  lightgcn = script.make_config("lightgcn", "gowalla", args)
  assert "ssl_weight" not in lightgcn.model
  assert script.run_name("lightgcn", "gowalla", args) == "lightgcn_gowalla_su"
  unset = argparse.Namespace(**{**vars(args), "ssl_weight": 0.0,
                                "temperature": 0.0})
  assert script.make_config("sgl", "gowalla", unset).model.ssl_weight == 0.2
  assert script.run_name("sgl", "gowalla", unset) == "sgl_gowalla"
  per_epoch = argparse.Namespace(**{**vars(unset), "view_period": "epoch"})
  assert script.make_config("sgl", "gowalla",
                            per_epoch).model.view_period == "epoch"
  assert script.run_name("sgl", "gowalla", per_epoch) == "sgl_gowalla_vepoch"
  assert "view_period" not in script.make_config("simgcl", "gowalla",
                                                 per_epoch).model
  rho = argparse.Namespace(**{**vars(unset), "drop_rate": 0.3})
  assert script.make_config("sgl", "gowalla", rho).model.drop_rate == 0.3
  assert script.run_name("sgl", "gowalla", rho) == "sgl_gowalla_r0.3"
  assert script.make_config("simgcl", "gowalla", rho).model.to_dict() == (
      script.make_config("simgcl", "gowalla", unset).model.to_dict())


def _run_tune(tmp_path, argv):
  """benchmarks/tune_ssl.py on the fixture data, evaluating every epoch.

  Returns:
    (the tune_ssl module, its result, the written table path, workdir).
  """
  tune = config_loader.load_benchmark("tune_ssl")
  data_root, workdir = tmp_path / "data", tmp_path / "work"
  _write_fixture(str(data_root))
  out = tmp_path / "tune.md"
  result = tune.main(argv + [
      "--out", str(out), "--data_root", str(data_root), "--workdir",
      str(workdir), "--eval_every", "1"])
  return tune, result, out, workdir


def test_tune_ssl_selects_on_validation_and_refits(tmp_path):
  """benchmarks/tune_ssl.py: one validation run per grid point, the best
  validation Recall@20 is refit on train + valid, only the refit is tested."""
  tune, result, out, workdir = _run_tune(tmp_path, [
      "--model", "sgl", "--dataset", "gowalla", "--ssl_weights", "0.1,0.5",
      "--temperatures", "0.2", "--epochs", "2"])
  grid, refit = result["grid"], result["refit"]
  assert [(r["ssl_weight"], r["temperature"]) for r in grid] == [(0.1, 0.2),
                                                                  (0.5, 0.2)]
  best = max(grid, key=lambda r: r["valid_recall@20"])
  assert (refit["ssl_weight"], refit["refit"]) == (best["ssl_weight"], True)
  assert refit["epochs_run"] == best["best_epoch"]
  lam = f"{best['ssl_weight']:g}"
  assert os.path.isdir(workdir / f"sgl_gowalla_l{lam}_t0.2_refit")
  table = out.read_text()
  assert f"| {lam} | 0.2 | config | {best['best_epoch']} |" in table
  assert f"{refit['test_recall@20']:.4f}" in table
  with pytest.raises(SystemExit, match="--ssl_weights"):
    tune.main(["--ssl_weights", "0.1,x"])
  with pytest.raises(SystemExit, match="--drop_rates: only SGL"):
    tune.main(["--model", "simgcl", "--drop_rates", "0.2"])


def test_tune_ssl_drop_rate_grid(tmp_path):
  """--drop_rates adds SGL's rho to the grid; each point trains with its own
  rho (run directory '_r<rho>') and the refit keeps the selected one."""
  _, result, out, workdir = _run_tune(tmp_path, [
      "--model", "sgl", "--ssl_weights", "0.1", "--temperatures", "0.2",
      "--drop_rates", "0.2,0.3", "--epochs", "1"])
  assert [r["drop_rate"] for r in result["grid"]] == [0.2, 0.3]
  for rho in ("0.2", "0.3"):
    saved = json.loads((workdir / f"sgl_gowalla_l0.1_t0.2_r{rho}" /
                        "config.json").read_text())
    assert saved["model"]["drop_rate"] == float(rho)
  best = max(result["grid"], key=lambda r: r["valid_recall@20"])
  assert result["refit"]["drop_rate"] == best["drop_rate"]
  assert f"| 0.1 | 0.2 | {best['drop_rate']:g} | {best['best_epoch']} |" in (
      out.read_text())


def test_run_with_other_model_settings_is_not_resumed(script, tmp_path):
  """A run directory trained with other model settings (e.g. a config
  default changed since) is refused with the differing keys named."""
  data_root, workdir = tmp_path / "data", tmp_path / "work"
  _write_fixture(str(data_root))
  argv = ["--models", "lightgcn", "--datasets", "gowalla", "--data_root",
          str(data_root), "--workdir", str(workdir), "--eval_every", "1",
          "--epochs", "1", "--out", str(tmp_path / "table.md")]
  script.main(argv)
  path = workdir / "lightgcn_gowalla_su" / "config.json"
  saved = json.loads(path.read_text())
  saved["model"]["l2_reg"] = 0.5
  path.write_text(json.dumps(saved))
  with pytest.raises(ValueError, match="l2_reg: 0.5 there, 0.0001 now"):
    script.main(argv + ["--epochs", "2"])


def test_tune_ssl_deadline_skips_points_but_keeps_the_refit(tmp_path):
  """Once the time left cannot cover another run plus the refit, the other
  grid points are skipped and listed; the best point run is still refit."""
  _, result, out, _ = _run_tune(tmp_path, [
      "--model", "sgl", "--ssl_weights", "0.1,0.5,1.0", "--deadline_seconds",
      "1e-3", "--epochs", "1"])
  assert [r["ssl_weight"] for r in result["grid"]] == [0.1]
  assert result["skipped"] == [(0.5, 0.2, None), (1.0, 0.2, None)]
  assert result["refit"]["ssl_weight"] == 0.1 and result["refit"]["refit"]
  table = out.read_text()
  assert "| 0.5 | 0.2 | config | not run (deadline) |" in table
  assert "| 1 | 0.2 | config | not run (deadline) |" in table

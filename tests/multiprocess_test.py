"""Two real JAX processes train like one process with two devices.

`python -m jaxrec.launch --processes 2` starts two CPU processes (one device
each, coordinator on localhost, collectives over gloo) running
tests/multiprocess_driver.py, i.e. `jaxrec.main` on configs/test.py:lightgcn
(3 epochs, an evaluation and a checkpoint after each) plus a per-step loss
record. Process 1 SIGKILLs itself after the first dispatch of epoch 2: the
launch must fail with one error line within a bound, and the same launch
command, run again, resumes from checkpoint 1 and finishes. The reference is
one process with two CPU devices (`data_devices=-1`), started alongside.

Compared: every per-step loss (epoch 1 from the killed job, epochs 2-3 from
the resumed one) and the final parameters and optimiser state, which agree
exactly here (a 2-way gradient all-reduce adds the same two partial sums on
either path; tolerance rtol 1e-6 / atol 1e-7 for other platforms), and the
validation / test metrics within rtol 1e-5 (users are split over the
processes, so per-batch float32 metric sums are added in another grouping).
A slow-marked test does the same for a ('data' 1, 'model' 2) mesh, whose
embedding tables and their Adam moments are row-sharded across the two
processes (one epoch, no fault).

With `config.sampler='counter'` each process samples only the rows of the
global batches its device holds: a 2-process run (2 epochs, no fault) is
compared with one process with two devices and the same sampler (per-step
losses, final parameters and optimiser state within rtol 1e-6 / atol 1e-7),
and the rows each process passed to `sampler.epoch_triples` (recorded by
the driver) are disjoint halves of every batch that together cover the
epoch.
"""

import json
import os
import re
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxrec import checkpoint
from jaxrec import input_pipeline
from jaxrec import launch
from jaxrec import models
from jaxrec import optimizers
from jaxrec import train
from jaxrec import workdir as workdir_lib
from jaxrec.recommend import TrainedModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3
ARGS = ["--config", "configs/test.py:lightgcn",
        f"--config.num_epochs={EPOCHS}"]
TIMEOUT = 300
# Seconds from the death of process 1 to the launcher's exit: the launcher
# polls every 0.2 s and gives the survivor --grace (5 s) after SIGTERM.
FAIL_BOUND = 15.0


def _env(devices: int) -> dict:
  path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
  return dict(os.environ, PYTHONPATH=path, JAXREC_HUGE_PAGES="0",
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def _launch(workdir, losses, *extra):
  return [sys.executable, "-m", "jaxrec.launch", "--processes", "2",
          "--devices_per_process", "1", "--module", "tests.multiprocess_driver",
          "--", *ARGS, f"--workdir={workdir}", f"--losses_out={losses}",
          *extra]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  base = tmp_path_factory.mktemp("multiprocess")
  ref_dir, mp_dir = base / "ref", base / "mp"
  ref = subprocess.Popen(
      [sys.executable, "-m", "tests.multiprocess_driver", *ARGS,
       f"--workdir={ref_dir}", f"--losses_out={base / 'ref.jsonl'}",
       "--config.sharding.data_devices=-1"],
      cwd=REPO, env=_env(2), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
      text=True)
  killed = subprocess.run(_launch(mp_dir, base / "mp.jsonl", "--die_at=1:2"),
                          cwd=REPO, env=_env(1), capture_output=True, text=True,
                          timeout=TIMEOUT)
  killed_end = time.time()
  ckpt_dir = mp_dir / workdir_lib.CHECKPOINT_DIR
  after_kill = (sorted(os.listdir(ckpt_dir)),
                (mp_dir / workdir_lib.RESULTS_FILE).exists())
  resumed = subprocess.run(_launch(mp_dir, base / "mp.jsonl"), cwd=REPO,
                           env=_env(1), capture_output=True, text=True,
                           timeout=TIMEOUT)
  _, ref_err = ref.communicate(timeout=TIMEOUT)
  assert ref.returncode == 0, ref_err[-3000:]
  return dict(base=base, ref_dir=str(ref_dir), mp_dir=str(mp_dir),
              killed=killed, killed_end=killed_end, after_kill=after_kill,
              resumed=resumed)


def _losses(path) -> dict:
  """{(epoch, chunk): per-step losses}, the last record of each dispatch."""
  out = {}
  with open(path) as f:
    for line in f:
      record = json.loads(line)
      out[record["epoch"], record["chunk"]] = record["losses"]
  return out


def _final_state(workdir: str):
  """(state, best_params) of the newest checkpoint, read by one process."""
  config = workdir_lib.load_config(workdir)
  dataset = workdir_lib.load_dataset_snapshot(workdir)
  graph = input_pipeline.build_graph(config, dataset)
  model = models.get_model(config.model_name, dataset.num_users,
                           dataset.num_items, **config.model.to_dict())

  def bundle():
    params = train.init_params(model, graph, config.batch_size,
                               jax.random.key(0), config.num_negatives)
    state = train.TrainState.create(apply_fn=model.apply, params=params,
                                    tx=optimizers.make_optimizer(config))
    return {"state": state, "best_params": params}
  ckpt = checkpoint.Checkpointer(
      os.path.join(workdir, workdir_lib.CHECKPOINT_DIR), read_only=True)
  try:
    step, tree, _ = ckpt.restore(jax.eval_shape(bundle))
  finally:
    ckpt.close()
  return step, tree


def test_a_killed_process_fails_the_launch_within_a_bound(runs):
  killed = runs["killed"]
  assert killed.returncode == 1, killed.stderr[-3000:]
  errors = [line for line in killed.stderr.splitlines()
            if line.startswith("error: ")]
  assert len(errors) == 1, killed.stderr[-3000:]
  assert re.match(r"error: process 1 of 2 exited with signal 9", errors[0])
  died = re.search(r"\[p1\] jaxrec-test: process 1 dies at ([0-9.]+)",
                   killed.stdout)
  assert died, killed.stdout[-3000:]
  assert runs["killed_end"] - float(died.group(1)) < FAIL_BOUND
  # Checkpoint 1 was complete; nothing of epoch 2 was finished.
  assert runs["after_kill"] == (["1"], False)


def test_rerunning_the_launch_resumes_and_finishes(runs):
  resumed = runs["resumed"]
  assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr
  with open(os.path.join(runs["mp_dir"], workdir_lib.RESULTS_FILE)) as f:
    results = json.load(f)
  assert results["epochs_run"] == EPOCHS
  mp_losses = _losses(runs["base"] / "mp.jsonl")
  # The resumed job trained epochs 2 and 3 only.
  assert min(e for e, _ in mp_losses) == 1
  assert not os.path.exists(os.path.join(runs["mp_dir"],
                                         workdir_lib.LOCK_FILE))
  with open(os.path.join(runs["mp_dir"], workdir_lib.METRICS_FILE)) as f:
    assert [json.loads(l)["epoch"] for l in f] == list(range(1, EPOCHS + 1))


def test_per_step_losses_match_one_process(runs):
  ref = _losses(runs["base"] / "ref.jsonl")
  mp = _losses(runs["base"] / "mp.jsonl")
  assert sorted(mp) == sorted(ref)
  assert {e for e, _ in ref} == set(range(1, EPOCHS + 1))
  for key in ref:
    np.testing.assert_allclose(mp[key], ref[key], rtol=1e-6, atol=1e-7,
                               err_msg=f"epoch/chunk {key}")


def test_final_parameters_and_optimiser_state_match_one_process(runs):
  ref_step, ref = _final_state(runs["ref_dir"])
  mp_step, mp = _final_state(runs["mp_dir"])
  assert ref_step == mp_step == EPOCHS
  assert int(mp["state"].step) == int(ref["state"].step)
  trees = {"params": lambda t: t["state"].params,
           "opt_state": lambda t: t["state"].opt_state,
           "best_params": lambda t: t["best_params"]}
  for name, get in trees.items():
    ref_leaves = jax.tree.leaves_with_path(get(ref))
    mp_leaves = jax.tree.leaves(get(mp))
    assert len(mp_leaves) == len(ref_leaves) > 0
    for (path, want), got in zip(ref_leaves, mp_leaves):
      np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6,
                                 atol=1e-7, err_msg=f"{name}{path}")
  # A single-process tool reads the job's checkpoint.
  trained = TrainedModel.load(runs["mp_dir"])
  assert trained.user_emb.shape[0] > 0


def test_evaluation_metrics_match_one_process(runs):
  with open(os.path.join(runs["ref_dir"], workdir_lib.RESULTS_FILE)) as f:
    ref = json.load(f)
  with open(os.path.join(runs["mp_dir"], workdir_lib.RESULTS_FILE)) as f:
    mp = json.load(f)
  assert mp["best_epoch"] == ref["best_epoch"]
  np.testing.assert_allclose(mp["epoch_losses"], ref["epoch_losses"],
                             rtol=1e-6)
  for split in ("valid", "test"):
    assert mp[split].keys() == ref[split].keys()
    assert mp[split]["num_users_evaluated"] == ref[split]["num_users_evaluated"]
    for key, value in ref[split].items():
      np.testing.assert_allclose(mp[split][key], value, rtol=1e-5, atol=1e-7,
                                 err_msg=f"{split}/{key}")


@pytest.mark.slow
def test_row_sharded_tables_across_processes_match_one_process(tmp_path):
  """A ('data' 1, 'model' 2) mesh: each process holds half of every table."""
  mesh = ["--config.sharding.data_devices=1",
          "--config.sharding.model_devices=2", "--config.num_epochs=1"]
  ref = subprocess.Popen(
      [sys.executable, "-m", "tests.multiprocess_driver", *ARGS, *mesh,
       f"--workdir={tmp_path / 'ref'}", f"--losses_out={tmp_path / 'ref.jsonl'}"],
      cwd=REPO, env=_env(2), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
      text=True)
  job = subprocess.run(_launch(tmp_path / "mp", tmp_path / "mp.jsonl", *mesh),
                       cwd=REPO, env=_env(1), capture_output=True, text=True,
                       timeout=TIMEOUT)
  _, ref_err = ref.communicate(timeout=TIMEOUT)
  assert ref.returncode == 0, ref_err[-3000:]
  assert job.returncode == 0, job.stdout[-3000:] + job.stderr
  ref_losses, mp_losses = (_losses(tmp_path / f"{n}.jsonl")
                           for n in ("ref", "mp"))
  assert sorted(mp_losses) == sorted(ref_losses)
  for key, want in ref_losses.items():
    np.testing.assert_allclose(mp_losses[key], want, rtol=1e-6, atol=1e-7)
  results = []
  for name in ("ref", "mp"):
    with open(tmp_path / name / workdir_lib.RESULTS_FILE) as f:
      results.append(json.load(f))
  for split in ("valid", "test"):
    for key, value in results[0][split].items():
      np.testing.assert_allclose(results[1][split][key], value, rtol=1e-5,
                                 atol=1e-7, err_msg=f"{split}/{key}")


COUNTER = ["--config.sampler=counter", "--config.num_epochs=2"]


@pytest.fixture(scope="module")
def counter_runs(tmp_path_factory):
  base = tmp_path_factory.mktemp("counter")
  ref = subprocess.Popen(
      [sys.executable, "-m", "tests.multiprocess_driver", *ARGS, *COUNTER,
       f"--workdir={base / 'ref'}", f"--losses_out={base / 'ref.jsonl'}",
       f"--sampled_out={base / 'ref_rows'}",
       "--config.sharding.data_devices=-1"],
      cwd=REPO, env=_env(2), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
      text=True)
  job = subprocess.run(_launch(base / "mp", base / "mp.jsonl", *COUNTER,
                               f"--sampled_out={base / 'mp_rows'}"),
                       cwd=REPO, env=_env(1), capture_output=True, text=True,
                       timeout=TIMEOUT)
  _, ref_err = ref.communicate(timeout=TIMEOUT)
  assert ref.returncode == 0, ref_err[-3000:]
  assert job.returncode == 0, job.stdout[-3000:] + job.stderr
  return base


def _sampled(path) -> dict:
  """{epoch: rows} from the driver's --sampled_out file of one process."""
  with open(path) as f:
    return {r["epoch"]: r["rows"] for r in map(json.loads, f)}


def test_counter_sampler_processes_sample_only_their_rows(counter_runs):
  base = counter_runs
  config = workdir_lib.load_config(str(base / "mp"))
  n = len(workdir_lib.load_dataset_snapshot(str(base / "mp")).train)
  size = config.batch_size
  # One process with two devices samples every row of each epoch at once.
  assert _sampled(base / "ref_rows.p0") == {0: None, 1: None}
  mine = [_sampled(base / f"mp_rows.p{i}") for i in (0, 1)]
  for epoch in (0, 1):
    rows = [np.array(m[epoch]) for m in mine]
    assert all(0 < len(r) < n for r in rows)
    np.testing.assert_array_equal(np.sort(np.concatenate(rows)), np.arange(n))
    # Each process holds its own half of the batch columns.
    columns = [set((r % size).tolist()) for r in rows]
    assert not columns[0] & columns[1]
    assert all(len(c) == size // 2 for c in columns)


def test_counter_sampler_processes_train_like_one_process(counter_runs):
  base = counter_runs
  ref, mp = _losses(base / "ref.jsonl"), _losses(base / "mp.jsonl")
  assert sorted(mp) == sorted(ref) and {e for e, _ in ref} == {1, 2}
  for key in ref:
    np.testing.assert_allclose(mp[key], ref[key], rtol=1e-6, atol=1e-7,
                               err_msg=f"epoch/chunk {key}")
  (ref_step, ref_tree), (mp_step, mp_tree) = (
      _final_state(str(base / name)) for name in ("ref", "mp"))
  assert ref_step == mp_step == 2
  for (path, want), got in zip(jax.tree.leaves_with_path(ref_tree),
                               jax.tree.leaves(mp_tree)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6,
                               atol=1e-7, err_msg=str(path))


def test_worker_command_sets_the_distributed_config():
  argv = launch.worker_command(["--config", "c.py", "--workdir", "w"], 1, 4,
                               1234, heartbeat_seconds=7)
  assert argv[1:4] == ["-u", "-m", "jaxrec.main"]
  joined = " ".join(argv)
  for flag in ("enabled=True", "coordinator_address=localhost:1234",
               "num_processes=4", "process_id=1",
               "heartbeat_timeout_seconds=7"):
    assert f"--config.sharding.distributed.{flag}" in joined
  assert "--config.sharding.data_devices=-1" in argv
  own = launch.worker_command(["--config.sharding.data_devices=2"], 0, 2, 1)
  assert own.count("--config.sharding.data_devices=2") == 1
  assert "--config.sharding.data_devices=-1" not in own


def test_launcher_rejects_bad_arguments(capsys):
  assert launch.launch(["--config", "c.py"], 0) == 1
  assert capsys.readouterr().err.startswith("error: --processes must be >= 1")


def test_a_failing_program_stops_the_launch_with_one_error_line():
  # `python -m tarfile --no-such-flag` exits with status 2 at once.
  out = subprocess.run(
      [sys.executable, "-m", "jaxrec.launch", "--processes", "2", "--module",
       "tarfile", "--", "--no-such-flag"], cwd=REPO, capture_output=True,
      text=True, timeout=60)
  assert out.returncode == 1
  errors = [l for l in out.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1, out.stderr
  assert re.match(r"error: process [01] of 2 exited with status 2", errors[0])

"""Fault tolerance: SIGKILLed runs, corrupt checkpoints, NaN loss, atomic files.

The kill tests train the command line's config (`python -m jaxrec.main
--config configs/test.py:lightgcn --config.num_epochs=4`) in a subprocess
(tests/fault_driver.py) and SIGKILL it at a known point, where a
`train.TrainHooks` hook announces itself on stderr and sleeps:
  * `after_steps` of an epoch: after a dispatch of train steps of that epoch,
    i.e. mid-epoch, with the epoch's progress only in memory;
  * `checkpoint_write` of a step: inside the Orbax write of that checkpoint
    (temporary directory not yet renamed).
The real command line then resumes the run, which must reproduce the uninterrupted run EXACTLY (bitwise-equal
metrics and losses): every epoch's samples come from (seed, epoch), the
dropout key is folded with the step, and the restored state is the saved
bytes, so no tolerance is needed on one machine.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from jaxrec import checkpoint as checkpoint_lib
from jaxrec import files
from jaxrec import run_logging
from jaxrec import text
from jaxrec import train
from jaxrec import workdir as workdir_lib
from tests import config_loader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 4
_TIMING = ("epoch_seconds", "eval_seconds")


def _config(epochs=EPOCHS):
  config = config_loader.load("test.py", "lightgcn")
  config.num_epochs = epochs
  return config


def _history(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [{k: v for k, v in json.loads(line).items() if k not in _TIMING}
            for line in f]


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def _steps(workdir):
  names = os.listdir(os.path.join(workdir, "checkpoints"))
  return sorted(int(n) for n in names if n.isdigit())


def _assert_same_run(workdir, reference):
  """Results and metric history equal the uninterrupted run's exactly."""
  ref_dir, ref = reference
  got = _results(workdir)
  for key in ("best_epoch", "epochs_run", "valid", "test", "epoch_losses"):
    assert got[key] == ref[key], key
  assert _history(workdir) == _history(ref_dir)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted 4-epoch run (in-process, same config as the CLI)."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  train.train_and_evaluate(_config(), workdir)
  return workdir, _results(workdir)


# ----------------------------------------------------------------------------
# Real processes, SIGKILL.


def _cli(workdir):
  return [sys.executable, "-m", "jaxrec.main", "--config",
          os.path.join(REPO, "configs", "test.py") + ":lightgcn",
          f"--config.num_epochs={EPOCHS}", f"--workdir={workdir}"]


def _env(**extra):
  path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
  return dict(os.environ, PYTHONPATH=path, **extra)


def _driver(workdir, point, at):
  return [sys.executable, "-m", "tests.fault_driver", str(workdir),
          str(EPOCHS), point, str(at)]


def _kill_at_marker(workdir, marker, point, at, timeout=240):
  """Starts a paused run, SIGKILLs it once stderr shows `marker`.

  Args:
    workdir: the run's workdir.
    marker: the start of the hook's stderr line.
    point, at: where tests/fault_driver.py pauses ('steps' of epoch `at`, or
      'checkpoint' write of step `at`).
    timeout: seconds before the process is killed regardless.

  Returns:
    The process's stderr.
  """
  proc = subprocess.Popen(_driver(workdir, point, at), cwd=REPO, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
  timer = threading.Timer(timeout, proc.kill)
  timer.start()
  lines = []
  try:
    for line in proc.stderr:  # until the hook announces the pause
      lines.append(line)
      if line.startswith(marker):
        os.kill(proc.pid, signal.SIGKILL)
        break
  finally:
    timer.cancel()
    proc.wait()
    proc.stderr.close()
  assert proc.returncode == -signal.SIGKILL, "".join(lines[-30:])
  assert lines and lines[-1].startswith(marker), "".join(lines[-30:])
  return "".join(lines)


def _resume(workdir):
  # INFO logs on: the resume messages checked below are INFO lines.
  out = subprocess.run(_cli(workdir) + ["--verbosity=1"], cwd=REPO,
                       env=_env(), text=True, capture_output=True,
                       timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stderr


def test_sigkill_during_training_steps_resumes_exactly(reference, tmp_path):
  workdir = str(tmp_path / "run")
  _kill_at_marker(workdir, "jaxrec-test: epoch 3 chunk 0 trained", "steps", 3)
  # Killed in epoch 3: epochs 1-2 are checkpointed, nothing of epoch 3 is.
  assert _steps(workdir) == [1, 2]
  assert [h["epoch"] for h in _history(workdir)] == [1, 2]
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  log = _resume(workdir)
  assert "resumed from epoch 2" in log
  _assert_same_run(workdir, reference)


def test_sigkill_during_checkpoint_write_resumes_exactly(reference, tmp_path):
  workdir = str(tmp_path / "run")
  _kill_at_marker(workdir, "jaxrec-test: checkpoint 2 write paused",
                  "checkpoint", 2)
  names = os.listdir(os.path.join(workdir, "checkpoints"))
  unfinished = [n for n in names if n.startswith("2" + checkpoint_lib.TMP_MARKER)]
  assert unfinished and "2" not in names and "1" in names, names
  log = _resume(workdir)
  assert "was never finished" in log and unfinished[0] in log
  assert "resumed from epoch 1" in log
  _assert_same_run(workdir, reference)
  assert not any(checkpoint_lib.TMP_MARKER in n
                 for n in os.listdir(os.path.join(workdir, "checkpoints")))


# ----------------------------------------------------------------------------
# Corrupt checkpoints (in-process: same code path, no process start-up).


def _largest_state_file(step_dir):
  files = [os.path.join(b, f) for b, _, fs in os.walk(step_dir) for f in fs
           if os.sep + "state" + os.sep in os.path.join(b, f)]
  return max(files, key=os.path.getsize)


# Orbax leaves an un-awaited coroutine behind when a read fails.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("damage", ["truncate", "garble",
                                    "truncate_without_manifest"])
def test_corrupt_latest_checkpoint_falls_back(reference, tmp_path, caplog,
                                              damage):
  workdir = str(tmp_path / "run")
  shutil.copytree(reference[0], workdir)
  assert _steps(workdir) == [3, 4]
  step_dir = os.path.join(workdir, "checkpoints", "4")
  victim = _largest_state_file(step_dir)
  size = os.path.getsize(victim)
  if damage == "garble":  # same size, flipped bytes: only the hash sees it
    with open(victim, "r+b") as f:
      f.seek(size // 3)
      chunk = f.read(64)
      f.seek(size // 3)
      f.write(bytes(b ^ 0xFF for b in chunk))
  else:
    if damage == "truncate_without_manifest":  # killed before the manifest
      os.remove(os.path.join(step_dir, checkpoint_lib.MANIFEST))
    with open(victim, "r+b") as f:
      f.truncate(size // 2)
  expected = {"truncate": "truncated", "garble": "SHA-256 mismatch",
              "truncate_without_manifest": "unreadable"}[damage]
  caplog.set_level("INFO")
  train.train_and_evaluate(_config(), workdir)
  warnings = [r.getMessage() for r in caplog.records
              if r.levelname == "WARNING" and expected in r.getMessage()]
  assert warnings and step_dir in warnings[0], caplog.text[-2000:]
  if damage != "truncate_without_manifest":
    assert os.path.basename(victim) in warnings[0]
  assert any("resumed from epoch 3" in r.getMessage() for r in caplog.records)
  # The bad step is set aside (not deleted) and written again from epoch 3.
  assert os.path.isdir(os.path.join(workdir, "checkpoints.corrupt", "4"))
  assert _steps(workdir) == [3, 4]
  assert checkpoint_lib.verify_manifest(step_dir) is None
  _assert_same_run(workdir, reference)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_unrestorable_checkpoints_are_an_error_not_a_restart(reference,
                                                            tmp_path):
  """A config change (other shapes) must not silently start from scratch."""
  workdir = str(tmp_path / "run")
  shutil.copytree(reference[0], workdir)
  config = _config()
  config.model.embed_dim = 8
  with pytest.raises(checkpoint_lib.CheckpointError,
                     match="no readable checkpoint"):
    train.train_and_evaluate(config, workdir, allow_config_change=True)
  assert _steps(workdir) == [3, 4]  # nothing moved


# ----------------------------------------------------------------------------
# Non-finite loss.


def test_nan_loss_keeps_last_good_checkpoint_and_resume_works(reference,
                                                              tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(_config(epochs=2), workdir)
  bad = _config()
  bad.optimizer.learning_rate = float("nan")
  with pytest.raises(FloatingPointError,
                     match=r"in epoch 3; stopping.*last good checkpoint \(epoch 2\)"):
    train.train_and_evaluate(bad, workdir, allow_config_change=True)
  assert _steps(workdir) == [1, 2]
  for step in (1, 2):
    assert checkpoint_lib.verify_manifest(
        os.path.join(workdir, "checkpoints", str(step))) is None
  assert [h["epoch"] for h in _history(workdir)] == [1, 2]
  # The fixed config: resumes (learning_rate differs from the NaN run's).
  train.train_and_evaluate(_config(), workdir, allow_config_change=True)
  _assert_same_run(workdir, reference)


# ----------------------------------------------------------------------------
# Atomic writes: a failure in the middle of a write never leaves a partial
# file under the final name (the old version stays intact).


class _Boom(Exception):
  pass


def _half_then_fail(real, file_arg=0):
  """Wraps a writer `real`: writes half of its bytes to the file, then raises.

  Args:
    real: e.g. np.save (file is argument 0) or json.dump (argument 1).
    file_arg: position of the file argument.
  """
  def write(*args, **kwargs):
    args = list(args)
    f = args[file_arg]
    buf = io.StringIO() if isinstance(f, io.TextIOBase) else io.BytesIO()
    args[file_arg] = buf
    real(*args, **kwargs)
    data = buf.getvalue()
    f.write(data[:len(data) // 2])
    f.flush()
    raise _Boom()
  return write


def _no_temp_files(directory, final_names):
  return sorted(set(os.listdir(directory)) - set(final_names))


def test_results_and_history_writes_are_atomic(tmp_path, monkeypatch):
  path = str(tmp_path / "results.json")
  files.write_json(path, {"a": 1})
  def fail(_):  # the contents are in the temporary file, not yet renamed
    raise _Boom()
  monkeypatch.setattr(files.os, "fsync", fail)
  with pytest.raises(_Boom):
    files.write_json(path, {"a": 2, "b": list(range(100))})
  monkeypatch.undo()
  assert json.load(open(path)) == {"a": 1}
  hist = str(tmp_path / "metrics.jsonl")
  run_logging.write_history(hist, [{"epoch": 1}])
  calls = []
  def dumps(obj, **kwargs):
    calls.append(obj)
    if len(calls) == 2:
      raise _Boom()
    return json.dumps(obj, **kwargs)
  monkeypatch.setattr(run_logging.json, "dumps", dumps)
  with pytest.raises(_Boom):
    run_logging.write_history(hist, [{"epoch": 1}, {"epoch": 2}])
  monkeypatch.undo()
  assert [json.loads(l) for l in open(hist)] == [{"epoch": 1}]


def test_dataset_snapshot_write_is_atomic(tmp_path, monkeypatch):
  from jaxrec.data.synthetic import make_synthetic  # pylint: disable=g-import-not-at-top
  ds = make_synthetic(num_users=20, num_items=30, num_interactions=200, seed=0)
  config = _config()
  workdir_lib.save_artifacts(str(tmp_path), config, ds)
  before = open(tmp_path / workdir_lib.DATASET_FILE, "rb").read()
  monkeypatch.setattr(np, "savez_compressed",
                      _half_then_fail(np.savez_compressed))
  other = make_synthetic(num_users=25, num_items=30, num_interactions=200,
                         seed=1)
  with pytest.raises(_Boom):
    workdir_lib.save_artifacts(str(tmp_path), config, other)
  monkeypatch.undo()
  assert open(tmp_path / workdir_lib.DATASET_FILE, "rb").read() == before
  assert workdir_lib.load_dataset_snapshot(str(tmp_path)).num_users == 20
  assert _no_temp_files(tmp_path, [workdir_lib.DATASET_FILE,
                                   workdir_lib.CONFIG_FILE]) == []


class _FakeEncoder:
  """Duck-typed TextEncoder: deterministic unit vectors, no model download."""
  fingerprint, max_length, dim = "fake-encoder-v1", 16, 4

  def encode(self, texts):
    rng = np.random.default_rng(len(texts))
    emb = rng.normal(size=(len(texts), self.dim)).astype(np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def test_text_cache_write_is_atomic(tmp_path, monkeypatch):
  texts = ["a song", "another song", "a third"]
  cache = str(tmp_path / "cache")
  monkeypatch.setattr(np, "save", _half_then_fail(np.save))
  with pytest.raises(_Boom):
    text.encode_cached(texts, cache, encoder=_FakeEncoder())
  monkeypatch.undo()
  assert os.listdir(cache) == []  # no partial cache file, no temp file
  emb = text.encode_cached(texts, cache, encoder=_FakeEncoder())
  (name,) = os.listdir(cache)
  np.testing.assert_array_equal(np.load(os.path.join(cache, name)), emb)
  # A truncated cache file (e.g. copied half-way) is detected and recomputed.
  with open(os.path.join(cache, name), "r+b") as f:
    f.truncate(20)
  with pytest.warns(RuntimeWarning, match="corrupt"):
    again = text.encode_cached(texts, cache, encoder=_FakeEncoder())
  np.testing.assert_array_equal(again, emb)

"""The command line's bad-input cases: one `error:` line, exit 1, nothing written.

Each case of CASES runs `python -m jaxrec.main` in-process (the flag parser
and the error reporting of `jaxrec.cli`, then `jaxrec.main.main`) and checks
the exact last stderr line, exit status 1 and that the workdir holds nothing
new. docs/errors.md is the table of these cases; `test_docs_table_is_current`
fails when it differs from what the cases print (rewrite it with
`python -m tests.cli_errors_test`). A few cases also run as real processes.
The validation and workdir functions are tested directly below.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import sys
from typing import Callable, NamedTuple

from absl import flags
import pytest

from jaxrec import checkpoint as checkpoint_lib
from jaxrec import cli
from jaxrec import config_utils
from jaxrec import main as main_lib
from jaxrec import train
from jaxrec import workdir as workdir_lib
from jaxrec.errors import ConfigError
from jaxrec.errors import WorkdirError
from tests import config_loader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, "docs", "errors.md")
# Placeholders of the table: the workdir and a scratch folder of the case
# (and HOST for the machine's name).
WD, TMP = "WORKDIR", "TMP"


class Case(NamedTuple):
  """A bad command line.

  Attributes:
    name: what is wrong (the table's first column).
    args: the flags; WORKDIR and TMP are replaced by the case's folders.
    setup: `fn(workdir, tmp, monkeypatch)` preparing files or faults.
    error: the expected stderr line, with WORKDIR / TMP placeholders.
  """
  name: str
  args: tuple
  setup: Callable
  error: str


def _none(workdir, tmp, monkeypatch):
  del workdir, tmp, monkeypatch


def _syntax_error(workdir, tmp, monkeypatch):
  del workdir, monkeypatch
  with open(os.path.join(tmp, "bad.py"), "w") as f:
    f.write("def get_config(:\n  pass\n")


def _workdir_file(workdir, tmp, monkeypatch):
  del tmp, monkeypatch
  with open(workdir, "w") as f:
    f.write("not a folder\n")


def _read_only(workdir, tmp, monkeypatch):
  del tmp
  os.makedirs(workdir)
  os.chmod(workdir, 0o555)
  # root may write anyway: answer as the kernel does for other users.
  real = os.access
  monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
      False if os.path.abspath(p) == os.path.abspath(workdir)
      else real(p, mode, **kw)))


def _locked(workdir, tmp, monkeypatch):
  del tmp, monkeypatch
  os.makedirs(workdir)
  # pid 1 is always alive: a run of another process holds the workdir.
  with open(os.path.join(workdir, workdir_lib.LOCK_FILE), "w") as f:
    f.write(f"{workdir_lib.socket.gethostname()} 1\n")


def _changed_config(workdir, tmp, monkeypatch):
  del tmp, monkeypatch
  os.makedirs(workdir)
  config = config_loader.load("test.py", "mf")
  config.optimizer.learning_rate = 0.01
  config.model.embed_dim = 8
  with open(os.path.join(workdir, workdir_lib.CONFIG_FILE), "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def _checkpoints_deleted(workdir, tmp, monkeypatch):
  del tmp
  def after_steps(epoch, chunk):
    if epoch == 2 and chunk == 0:
      shutil.rmtree(os.path.join(workdir, workdir_lib.CHECKPOINT_DIR))
  monkeypatch.setattr(train, "train_and_evaluate", functools.partial(
      train.train_and_evaluate, hooks=train.TrainHooks(after_steps=after_steps)))


_MF = ("--config=configs/test.py:mf",)
_LR = "config.optimizer.learning_rate: expected a positive number, got "
CASES = (
    Case("Config file missing", ("--config=TMP/nope.py",), _none,
         "error: --config=TMP/nope.py: cannot load the config file ([Errno 2] "
         "No such file or directory: 'TMP/nope.py'); expected "
         "path/to/config.py[:argument]"),
    Case("Syntax error in the config file", ("--config=TMP/bad.py",),
         _syntax_error,
         "error: TMP/bad.py:1: syntax error in the config file (invalid "
         "syntax); expected a Python file defining get_config()"),
    Case("Unknown dataset preset", ("--config=configs/lightgcn.py:nope",),
         _none,
         "error: --config=configs/lightgcn.py:nope: get_config failed: "
         "ValueError: unknown dataset 'nope'; presets: " +
         str(sorted(config_utils.DATASETS))),
    Case("Override of a field the config lacks", _MF + ("--config.foo=1",),
         _none,
         "error: --config.foo: the config has no field 'foo'; an override can "
         "only set a field that configs/test.py:mf defines"),
    Case("Override of the wrong type (int field)",
         _MF + ("--config.batch_size=abc",), _none,
         "error: flag --config.batch_size=abc: invalid literal for int() with "
         "base 10: 'abc'"),
    Case("Override of the wrong type (list field)",
         _MF + ("--config.eval_ks=abc",), _none,
         "error: config.eval_ks: expected a list of positive integers "
         "(cut-offs K, e.g. (10, 20)), got ('abc',)"),
    Case("batch_size=0", _MF + ("--config.batch_size=0",), _none,
         "error: config.batch_size: expected a positive integer, got 0"),
    Case("num_epochs=0", _MF + ("--config.num_epochs=0",), _none,
         "error: config.num_epochs: expected a positive integer, got 0"),
    Case("Negative num_epochs", _MF + ("--config.num_epochs=-5",), _none,
         "error: config.num_epochs: expected a positive integer, got -5"),
    Case("Zero learning rate", _MF + ("--config.optimizer.learning_rate=0",),
         _none, "error: " + _LR + "0.0"),
    Case("Negative learning rate",
         _MF + ("--config.optimizer.learning_rate=-0.001",), _none,
         "error: " + _LR + "-0.001"),
    Case("embed_dim=0", _MF + ("--config.model.embed_dim=0",), _none,
         "error: config.model.embed_dim: expected a positive integer, got 0"),
    Case("Workdir is a file", _MF, _workdir_file,
         "error: workdir WORKDIR is a file; expected a directory (new, or the "
         "workdir of an earlier run)"),
    Case("Read-only workdir", _MF, _read_only,
         "error: workdir WORKDIR is not writable; expected a directory this "
         "user can write"),
    Case("Workdir in use by a running process", _MF, _locked,
         "error: workdir WORKDIR is in use by process 1 on HOST (lock file "
         "WORKDIR/run.lock); "
         "wait for it to finish or use another workdir (remove the lock file "
         "only if that process is gone)"),
    Case("Resuming a run of another config", _MF, _changed_config,
         "error: workdir WORKDIR holds a run of another config: "
         "['model.embed_dim', 'optimizer.learning_rate'] differ from "
         "WORKDIR/config.json; use a new workdir, or resume anyway with "
         "--allow_config_change (Python: allow_config_change=True). Keys that "
         "may change on resume: " + str(list(workdir_lib.HARMLESS_CONFIG_KEYS))),
    Case("Checkpoint folder deleted during the run",
         _MF + ("--config.num_epochs=3",), _checkpoints_deleted,
         "error: checkpoint folder WORKDIR/checkpoints was removed while the "
         "run was using it; checkpoint 2 cannot be saved and the earlier ones "
         "are lost. Run the command again to train from the start."),
)


def _listing(path):
  if not os.path.isdir(path):
    return None if not os.path.exists(path) else "file"
  return sorted(os.path.relpath(os.path.join(b, n), path)
                for b, ds, fs in os.walk(path) for n in ds + fs)


def run_case(case: Case, root: str, monkeypatch) -> tuple[int, str, str]:
  """Runs one case in-process; returns (exit status, stderr, workdir).

  Args:
    case: the case.
    root: an empty scratch folder.
    monkeypatch: pytest's monkeypatch (undone by the caller).

  Returns:
    (exit status, last stderr line with placeholders, workdir path).
  """
  workdir, tmp = os.path.join(root, "wd"), os.path.join(root, "tmp")
  os.makedirs(tmp)
  case.setup(workdir, tmp, monkeypatch)
  args = [a.replace(WD, workdir).replace(TMP, tmp) for a in case.args]
  argv = ["jaxrec.main", *args, f"--workdir={workdir}"]
  monkeypatch.chdir(REPO)
  err = io.StringIO()
  monkeypatch.setattr(sys, "stderr", err)
  status = 0
  flag_values = flags.FlagValues()  # a fresh parse, as in a new process
  cli.define_run_flags(flag_values, argv)
  try:
    rest = cli.parse_flags(argv, flag_values)
    flag_values.config.progress = False
    cli.reporting_errors(functools.partial(main_lib.main,
                                           flag_values=flag_values))(rest)
  except SystemExit as exit_:
    status = exit_.code
  lines = err.getvalue().strip().splitlines()
  last = lines[-1] if lines else ""
  last = last.replace(workdir, WD).replace(tmp, TMP)
  last = last.replace(f" on {workdir_lib.socket.gethostname()} (", " on HOST (")
  return status, last, workdir


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_case(case, tmp_path, monkeypatch):
  before = None
  if case.setup in (_read_only, _locked, _changed_config, _workdir_file):
    case.setup(str(tmp_path / "probe"), str(tmp_path), monkeypatch)
    before = _listing(str(tmp_path / "probe"))
    monkeypatch.undo()
  status, line, workdir = run_case(case, str(tmp_path / "run"), monkeypatch)
  monkeypatch.undo()
  assert status == 1, line
  assert line == case.error
  if case.setup is _checkpoints_deleted:  # failed mid-run: no results
    assert not os.path.exists(os.path.join(workdir, workdir_lib.RESULTS_FILE))
    assert not os.path.exists(os.path.join(workdir, workdir_lib.LOCK_FILE))
  else:
    assert _listing(workdir) == before  # nothing written
  if os.path.isdir(workdir):
    os.chmod(workdir, 0o755)


def docs_table(root: str) -> str:
  """docs/errors.md as the cases produce it (runs every case)."""
  rows = []
  for n, case in enumerate(CASES):
    with pytest.MonkeyPatch.context() as monkeypatch:
      _, line, workdir = run_case(case, os.path.join(root, str(n)), monkeypatch)
    if os.path.isdir(workdir):
      os.chmod(workdir, 0o755)
    flags_ = " ".join(case.args + (f"--workdir={WD}",))
    rows.append(f"| {case.name} | `{flags_}` | `{line}` |")
  return _DOC_HEAD + "\n".join(rows) + "\n"


_DOC_HEAD = """# Command-line errors

`python -m jaxrec.main` (and `python -m jaxrec.compare`) end every case
below with ONE line on stderr, exit status 1, and nothing written to the
workdir (a run stopped by a removed checkpoint folder keeps what it wrote
before). Configs are validated before any work; flag errors are caught
while the flags are parsed. WORKDIR, TMP and HOST stand for your paths and
machine name. The table
is checked against the real output by `tests/cli_errors_test.py`
(`python -m tests.cli_errors_test` rewrites it). Errors in data files and
unknown config keys are listed in [troubleshooting.md](troubleshooting.md).

A resumed run may change these keys without `--allow_config_change`: they
decide where a run stops, how it runs or logs and where its inputs are,
not what it trains: """ + ", ".join(
    f"`{k}`" for k in workdir_lib.HARMLESS_CONFIG_KEYS) + """ (and
`refit_epochs` between positive values).

| Case | Flags (`python -m jaxrec.main ...`) | Output |
|---|---|---|
"""


def test_docs_table_is_current(tmp_path):
  with open(DOC) as f:
    current = f.read()
  expected = docs_table(str(tmp_path))
  assert current == expected, (
      "docs/errors.md is out of date; run `python -m tests.cli_errors_test`")


# ----------------------------------------------------------------------------
# Real processes (slow: a process start each).


def _cli(args, module="jaxrec.main"):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=300,
                        check=False)


@pytest.mark.parametrize("case", [CASES[0], CASES[6]],
                         ids=["missing_config", "batch_size_0"])
def test_cli_process_prints_one_error_line(case, tmp_path):
  workdir = tmp_path / "wd"
  args = [a.replace(TMP, str(tmp_path)) for a in case.args]
  out = _cli(args + [f"--workdir={workdir}"])
  assert out.returncode == 1, out.stderr[-2000:]
  assert out.stderr.strip().splitlines() == [
      case.error.replace(TMP, str(tmp_path))]
  assert not workdir.exists()


def test_second_process_into_a_running_workdir_is_refused(tmp_path):
  """A run paused mid-epoch holds the lock; the CLI into its workdir stops."""
  workdir = tmp_path / "wd"
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
  first = subprocess.Popen(
      [sys.executable, "-m", "tests.fault_driver", str(workdir), "4", "steps",
       "1"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE, text=True)
  try:
    for line in first.stderr:  # until the first run is paused, lock held
      if line.startswith("jaxrec-test: epoch 1 chunk 0 trained"):
        break
    before = _listing(str(workdir))
    out = _cli(["--config=configs/test.py:lightgcn", "--config.num_epochs=4",
                f"--workdir={workdir}"])
  finally:
    first.kill()
    first.wait()
    first.stderr.close()
  assert out.returncode == 1, out.stderr[-2000:]
  assert out.stderr.strip().splitlines() == [
      f"error: workdir {workdir} is in use by process {first.pid} on "
      f"{workdir_lib.socket.gethostname()} (lock file {workdir}/run.lock); "
      "wait for it to finish or use another workdir (remove the lock file "
      "only if that process is gone)"]
  assert _listing(str(workdir)) == before


def test_compare_rejects_a_bad_entry_before_any_work(tmp_path):
  config = tmp_path / "cmp.py"
  config.write_text(f"""
import sys
sys.path.insert(0, {REPO!r})
from tests import config_loader

def get_config(arg=None):
  config = config_loader.load("test.py", "mf")
  config.compare = [dict(name="a"), dict(name="b", batch_size=0)]
  return config
""")
  workdir = tmp_path / "wd"
  out = _cli([f"--config={config}", f"--workdir={workdir}"], "jaxrec.compare")
  assert out.returncode == 1, out.stderr[-2000:]
  assert out.stderr.strip().splitlines() == [
      "error: config.compare[1] ('b'): config.batch_size: expected a positive "
      "integer, got 0"]
  assert not workdir.exists()


# ----------------------------------------------------------------------------
# The functions behind the cases.


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 0, "config.batch_size: expected a positive integer, got 0"),
    ("num_epochs", -1, "config.num_epochs: expected a positive integer, got -1"),
    ("eval_every", 0, "config.eval_every: expected a positive integer, got 0"),
    ("refit_epochs", -2,
     "config.refit_epochs: expected an integer >= 0, got -2"),
    ("eval_ks", (10, 0), "config.eval_ks: expected a list of positive integers"),
    ("eval_ks", (), "config.eval_ks: expected a list of positive integers"),
    ("model.embed_dim", 0,
     "config.model.embed_dim: expected a positive integer, got 0"),
    ("optimizer.learning_rate", -0.1,
     "config.optimizer.learning_rate: expected a positive number, got -0.1"),
    ("optimizer.learning_rate", 0,
     "config.optimizer.learning_rate: expected a positive number, got 0"),
])
def test_validate_config_rejects_numbers_that_cannot_train(field, value,
                                                           message):
  config = config_loader.load("test.py", "mf")
  parent, _, key = field.rpartition(".")
  (config[parent] if parent else config)[key] = value
  with pytest.raises(ConfigError) as info:
    config_utils.validate_config(config)
  assert str(info.value).startswith(message), str(info.value)


def test_validate_config_checks_the_backbone_embed_dim():
  config = config_loader.load("rlmrec_con.py")
  config.model.backbone_kwargs.embed_dim = 0
  with pytest.raises(ConfigError, match=r"config\.model\.backbone_kwargs\."
                     r"embed_dim: expected a positive integer, got 0"):
    config_utils.validate_config(config)


def test_comparison_config_is_refused_by_the_trainer():
  config = config_loader.load("quickstart.py")
  with pytest.raises(ConfigError, match=r"python -m jaxrec\.compare"):
    config_utils.validate_config(config)


def test_check_writable(tmp_path):
  workdir_lib.check_writable(str(tmp_path / "new" / "deeper"))  # creatable
  (tmp_path / "f").write_text("x")
  with pytest.raises(WorkdirError, match="is a file"):
    workdir_lib.check_writable(str(tmp_path / "f"))
  with pytest.raises(WorkdirError, match=r"cannot be created: .*/f is a file"):
    workdir_lib.check_writable(str(tmp_path / "f" / "run"))


def test_lock_refuses_a_live_owner_and_takes_over_a_dead_one(tmp_path):
  workdir = str(tmp_path / "wd")
  with workdir_lib.WorkdirLock(workdir) as lock:
    with open(lock.path) as f:
      assert f.read().split() == [workdir_lib.socket.gethostname(),
                                  str(os.getpid())]
    # A second process (pid 1 here) would be refused while we hold it.
    with open(lock.path, "w") as f:
      f.write(f"{workdir_lib.socket.gethostname()} 1\n")
    with pytest.raises(WorkdirError, match="in use by process 1"):
      workdir_lib.WorkdirLock(workdir).acquire()
  assert not os.path.exists(os.path.join(workdir, workdir_lib.LOCK_FILE))
  # A lock left by a process that died is taken over.
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  path = os.path.join(workdir, workdir_lib.LOCK_FILE)
  with open(path, "w") as f:
    f.write(f"{workdir_lib.socket.gethostname()} {dead.stdout.strip()}\n")
  with workdir_lib.WorkdirLock(workdir):
    with open(path) as f:
      assert f.read().split()[1] == str(os.getpid())
  with open(path, "w") as f:  # empty: its writer died before writing
    f.write("")
  with workdir_lib.WorkdirLock(workdir):
    pass
  assert not os.path.exists(path)


def test_config_changes_names_keys_and_ignores_harmless_ones(tmp_path):
  config = config_loader.load("test.py", "mf")
  workdir = str(tmp_path)
  assert workdir_lib.config_changes(workdir, config) == []  # no run yet
  with open(tmp_path / workdir_lib.CONFIG_FILE, "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  changed = config_loader.load("test.py", "mf")
  changed.num_epochs += 100  # extending a capped run
  changed.eval_test = not changed.eval_test
  changed.progress = False
  changed.dataset.data_root = "/elsewhere"
  assert workdir_lib.config_changes(workdir, changed) == []
  changed.seed = 7
  changed.model.l2_reg = 0.5
  assert workdir_lib.config_changes(workdir, changed) == ["model.l2_reg",
                                                          "seed"]
  with pytest.raises(WorkdirError, match=r"\['model\.l2_reg', 'seed'\]"):
    workdir_lib.check_workdir(workdir, changed)
  workdir_lib.check_workdir(workdir, changed, allow_config_change=True)


def test_resume_with_larger_num_epochs_and_allowed_change(tmp_path):
  """The benchmarks' path: train_and_evaluate resumes a capped run."""
  config = config_loader.load("test.py", "mf")
  config.num_epochs, config.progress = 1, False
  workdir = str(tmp_path / "wd")
  train.train_and_evaluate(config, workdir)
  config.num_epochs = 2
  assert train.train_and_evaluate(config, workdir)["epochs_run"] == 2
  config.num_epochs, config.seed = 3, 1
  with pytest.raises(WorkdirError, match=r"\['seed'\]"):
    train.train_and_evaluate(config, workdir)
  result = train.train_and_evaluate(config, workdir, allow_config_change=True)
  assert result["epochs_run"] == 3
  assert not os.path.exists(os.path.join(workdir, workdir_lib.LOCK_FILE))


def test_checkpoint_save_after_folder_removed_is_a_checkpoint_error(tmp_path):
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path / "ckpt"))
  shutil.rmtree(tmp_path / "ckpt")
  with pytest.raises(checkpoint_lib.CheckpointError, match="was removed"):
    ckpt.save(1, {"a": 1}, {"epoch": 1})
  ckpt.close()


if __name__ == "__main__":
  import tempfile  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as scratch:
    text = docs_table(scratch)
  with open(DOC, "w") as f:
    f.write(text)
  print(f"wrote {DOC}")

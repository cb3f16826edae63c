"""Starts a multi-process JAX job on this machine: one command, N processes.

  python -m jaxrec.launch --processes 2 -- \\
      --config configs/lightgcn.py:lastfm --workdir workdirs/lastfm_2p

runs `python -m jaxrec.main <args>` N times, process i with
  --config.sharding.distributed.enabled=True
  --config.sharding.distributed.coordinator_address=localhost:<port>
  --config.sharding.distributed.num_processes=N
  --config.sharding.distributed.process_id=i
  --config.sharding.distributed.heartbeat_timeout_seconds=<heartbeat>
  --config.sharding.distributed.shutdown_timeout_seconds=<shutdown>
  --config.sharding.data_devices=-1   (unless the arguments set it)
so the processes form one JAX job (coordinator on localhost, CPU collectives
over gloo) whose mesh spans every process's devices. Each output line is
forwarded with a `[p<i>] ` prefix.

Failure: when a process exits with a non-zero status the launcher stops the
others (SIGTERM, then SIGKILL after --grace seconds), prints one line
`error: process <i> exited with status <s>: <its last error line>` on stderr
(a process killed by a signal first, else the lowest rank that failed) and
exits 1; a process that would otherwise wait for a dead partner in a
collective is therefore stopped within about --grace seconds, and the JAX
heartbeat timeout bounds the wait of processes started without this
launcher. Running the same command again resumes from the last complete
checkpoint in the workdir (`jaxrec.train`). Several hosts: see
docs/distributed.md (SLURM, Kubernetes).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

_FLAG = "--config.sharding.distributed."


def free_port() -> int:
  """A TCP port on localhost that was free a moment ago."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(("localhost", 0))
    return int(sock.getsockname()[1])


def worker_command(args: Sequence[str], process_id: int, num_processes: int,
                   port: int, module: str = "jaxrec.main",
                   heartbeat_seconds: int = 20,
                   shutdown_seconds: int = 60) -> list[str]:
  """The command line of process `process_id` of an N-process job.

  Args:
    args: the program's own arguments (`jaxrec.main`: --config, --workdir,
      --config.* overrides).
    process_id: rank of this process, 0..num_processes - 1.
    num_processes: processes in the job.
    port: coordinator port on localhost (process 0 serves it).
    module: the Python module run with `python -m`.
    heartbeat_seconds: JAX's heartbeat timeout (a silent process fails the
      job after this long).
    shutdown_seconds: how long a finished process waits for the others.

  Returns:
    The argv list.
  """
  args = list(args)
  extra = [f"{_FLAG}enabled=True",
           f"{_FLAG}coordinator_address=localhost:{port}",
           f"{_FLAG}num_processes={num_processes}",
           f"{_FLAG}process_id={process_id}",
           f"{_FLAG}heartbeat_timeout_seconds={heartbeat_seconds}",
           f"{_FLAG}shutdown_timeout_seconds={shutdown_seconds}"]
  if not any(a.startswith("--config.sharding.data_devices") for a in args):
    extra.append("--config.sharding.data_devices=-1")
  return [sys.executable, "-u", "-m", module] + args + extra


class _Worker:
  """One child process and the thread forwarding its output."""

  def __init__(self, index: int, argv: list[str], env: dict):
    self.index = index
    self.last_error = ""
    self.proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True)
    self.thread = threading.Thread(target=self._forward, daemon=True)
    self.thread.start()

  def _forward(self) -> None:
    prefix = f"[p{self.index}] "
    for raw in iter(self.proc.stdout.readline, b""):
      line = raw.decode(errors="replace").rstrip("\n")
      if line.startswith("error: ") or "Error: " in line:
        self.last_error = line
      sys.stdout.write(prefix + line + "\n")
      sys.stdout.flush()

  def stop(self, sig: int) -> None:
    if self.proc.poll() is None:
      try:
        os.killpg(self.proc.pid, sig)
      except ProcessLookupError:
        pass


def launch(args: Sequence[str], num_processes: int,
           port: Optional[int] = None, module: str = "jaxrec.main",
           devices_per_process: int = 0, heartbeat_seconds: int = 20,
           shutdown_seconds: int = 60, grace_seconds: float = 5.0,
           poll_seconds: float = 0.2, settle_seconds: float = 1.0) -> int:
  """Runs the N processes of one job to the end, or stops them all.

  Args:
    args: arguments of `module` (see `worker_command`).
    num_processes: N >= 1.
    port: coordinator port (default: a free one).
    module: the program each process runs.
    devices_per_process: CPU devices per process (XLA_FLAGS
      --xla_force_host_platform_device_count); 0 keeps the environment's.
    heartbeat_seconds / shutdown_seconds: JAX's timeouts (`worker_command`).
    grace_seconds: after SIGTERM, seconds before SIGKILL.
    poll_seconds: how often the processes are checked.
    settle_seconds: after the first failure, how long the others may take to
      exit on their own before the one to report is chosen.

  Returns:
    0 when every process exited with 0, else 1 (after printing one
    `error: ...` line naming the first process that failed).
  """
  if num_processes < 1:
    print(f"error: --processes must be >= 1, got {num_processes}",
          file=sys.stderr)
    return 1
  port = port or free_port()
  env = dict(os.environ)
  if devices_per_process > 0:
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    flags.append(f"--xla_force_host_platform_device_count={devices_per_process}")
    env["XLA_FLAGS"] = " ".join(flags)
  workers = [_Worker(i, worker_command(args, i, num_processes, port, module,
                                       heartbeat_seconds, shutdown_seconds),
                     env) for i in range(num_processes)]

  def stop_all(sig=signal.SIGTERM):
    for w in workers:
      w.stop(sig)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(
        w.proc.poll() is None for w in workers):
      time.sleep(poll_seconds / 2)
    for w in workers:
      w.stop(signal.SIGKILL)
      w.proc.wait()

  def on_signal(signum, _frame):
    stop_all()
    raise SystemExit(128 + signum)
  previous = {s: signal.signal(s, on_signal)
              for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    failed = None
    while True:
      codes = [w.proc.poll() for w in workers]
      failed = next((w for w, c in zip(workers, codes) if c not in (None, 0)),
                    None)
      if failed is not None or all(c == 0 for c in codes):
        break
      time.sleep(poll_seconds)
    if failed is None:
      for w in workers:
        w.thread.join()
      return 0
    # Partners that fail with it (the same bad input) exit within a moment:
    # report a crash (a signal) first, else the lowest rank, whose error is
    # the cause (process 0 names a busy workdir, the others only follow).
    deadline = time.monotonic() + settle_seconds
    while time.monotonic() < deadline and any(
        w.proc.poll() is None for w in workers):
      time.sleep(poll_seconds / 2)
    exited = [w for w in workers if w.proc.poll() not in (None, 0)]
    failed = min(exited, key=lambda w: (w.proc.returncode >= 0, w.index))
    code = failed.proc.returncode
    stop_all()
    for w in workers:
      w.thread.join(timeout=1.0)
    status = (f"signal {-code}" if code < 0 else f"status {code}")
    reported = failed.last_error.startswith("error: ")
    if reported:  # the program's own one-line error (bad input)
      detail = f": {failed.last_error[len('error: '):]}"
      hint = ""
    else:
      detail = f": {failed.last_error}" if failed.last_error else ""
      hint = (" (run the same command again to resume from the last "
              "checkpoint)")
    print(f"error: process {failed.index} of {num_processes} exited with "
          f"{status}{detail}; stopped the other processes{hint}",
          file=sys.stderr, flush=True)
    return 1
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Command line: `[options] -- <arguments of the program>`.

  Args:
    argv: the arguments (default sys.argv[1:]).

  Returns:
    The exit status of `launch` (0 or 1).
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  if "--" in argv:
    split = argv.index("--")
    own, rest = argv[:split], argv[split + 1:]
  else:
    own, rest = argv, []
  parser = argparse.ArgumentParser(
      prog="python -m jaxrec.launch",
      description="Run N local processes of one multi-process JAX job: "
      "python -m jaxrec.launch --processes N -- <jaxrec.main arguments>")
  parser.add_argument("--processes", type=int, required=True,
                      help="number of processes N")
  parser.add_argument("--port", type=int, default=0,
                      help="coordinator port on localhost (default: free)")
  parser.add_argument("--module", default="jaxrec.main",
                      help="program run by each process (python -m MODULE)")
  parser.add_argument("--devices_per_process", type=int, default=0,
                      help="CPU devices per process (0: XLA_FLAGS as set)")
  parser.add_argument("--heartbeat_timeout", type=int, default=20,
                      help="seconds of silence before JAX fails the job")
  parser.add_argument("--shutdown_timeout", type=int, default=60,
                      help="seconds a finished process waits for the others")
  parser.add_argument("--grace", type=float, default=5.0,
                      help="seconds between SIGTERM and SIGKILL when stopping")
  opts = parser.parse_args(own)
  if not rest:
    parser.error("expected `-- <arguments of the program>`")
  return launch(rest, opts.processes, opts.port or None, opts.module,
                opts.devices_per_process, opts.heartbeat_timeout,
                opts.shutdown_timeout, opts.grace)


if __name__ == "__main__":
  sys.exit(main())

"""`python -m jaxrec.main` with per-step loss records and a fault, for tests.

  python -m jaxrec.launch --processes 2 --module tests.multiprocess_driver \\
      -- --config configs/test.py:lightgcn --workdir W \\
      --losses_out L.jsonl [--die_at PROCESS:EPOCH]

Takes the flags of `jaxrec.main` plus:
  --losses_out  process 0 appends one JSON line {"epoch", "chunk", "losses"}
                per dispatch of train steps (the per-step losses of the global
                batches), flushed at once so a killed run keeps its lines;
  --die_at      process PROCESS SIGKILLs itself after the first dispatch of
                epoch EPOCH (1-based), as a crashed host would vanish;
  --sampled_out process i appends one JSON line {"epoch", "rows"} per call
                of `sampler.epoch_triples` to SAMPLED_OUT.p<i>: the global
                epoch rows it sampled (null: the whole epoch).
The loss record wraps `sharding.jit_train_steps`, the sampled rows
`sampler.epoch_triples`, and the fault is a `train.TrainHooks` hook: all
live here, not in the training loop.
"""

import json
import os
import signal
import time

from absl import flags
import jax
import numpy as np

from jaxrec import cli
from jaxrec import sharding
from jaxrec import train
from jaxrec.data import sampler

FLAGS = flags.FLAGS
cli.define_run_flags()
flags.DEFINE_string("losses_out", None, "JSON-lines file of per-step losses.")
flags.DEFINE_string("die_at", "", "PROCESS:EPOCH at which a process dies.")
flags.DEFINE_string("sampled_out", None,
                    "Prefix of per-process JSON-lines files of sampled rows.")


def _recording_rows(epoch_triples, prefix: str):
  """`sampler.epoch_triples` that appends the rows it samples to a file."""
  def call(*args, **kwargs):
    rows = kwargs.get("rows")
    # Called after jax.distributed.initialize (process_index before it
    # would start a one-process backend).
    with open(f"{prefix}.p{jax.process_index()}", "a") as f:
      f.write(json.dumps({"epoch": kwargs.get("epoch"), "rows": None
                          if rows is None else np.asarray(rows).tolist()})
              + "\n")
    return epoch_triples(*args, **kwargs)
  return call


def _recording(jit_train_steps, last: dict):
  """`sharding.jit_train_steps` whose step functions keep their last losses."""
  def make(fn, mesh):
    step = jit_train_steps(fn, mesh)

    def call(*args):
      state, metrics = step(*args)
      last["losses"] = metrics["loss"]
      return state, metrics
    return call
  return make


def main(argv):
  del argv
  last = {}
  sharding.jit_train_steps = _recording(sharding.jit_train_steps, last)
  if FLAGS.sampled_out:
    sampler.epoch_triples = _recording_rows(sampler.epoch_triples,
                                            FLAGS.sampled_out)
  die_process, die_epoch = ((int(x) for x in FLAGS.die_at.split(":"))
                            if FLAGS.die_at else (-1, -1))

  def after_steps(epoch, chunk):
    if FLAGS.losses_out and jax.process_index() == 0:
      record = {"epoch": epoch, "chunk": chunk,
                "losses": np.asarray(last["losses"]).tolist()}
      with open(FLAGS.losses_out, "a") as f:
        f.write(json.dumps(record) + "\n")
    if jax.process_index() == die_process and epoch == die_epoch:
      print(f"jaxrec-test: process {die_process} dies at {time.time():.3f}",
            flush=True)
      os.kill(os.getpid(), signal.SIGKILL)

  train.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                           hooks=train.TrainHooks(after_steps=after_steps))


if __name__ == "__main__":
  cli.run(main)

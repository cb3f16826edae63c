"""Trains as the command line does, pausing at a known point to be killed.

  python -m tests.fault_driver WORKDIR EPOCHS (steps|checkpoint) AT

Trains configs/test.py:lightgcn with num_epochs=EPOCHS (the config of
`python -m jaxrec.main --config configs/test.py:lightgcn
--config.num_epochs=EPOCHS`) through `train.train_and_evaluate` with a
`train.TrainHooks` hook that prints a marker line to stderr and sleeps, so
tests/faults_test.py can SIGKILL the process there:
  steps       after each dispatch of train steps of epoch AT:
              `jaxrec-test: epoch AT chunk C trained`;
  checkpoint  inside the write of checkpoint AT (state written, meta not yet,
              temporary directory not renamed):
              `jaxrec-test: checkpoint AT write paused in DIR`.
"""

import sys
import time

from jaxrec import train
from tests import config_loader

PAUSE_SECONDS = 300


def _pause(marker: str) -> None:
  print(marker, file=sys.stderr, flush=True)
  time.sleep(PAUSE_SECONDS)


def hooks_for(point: str, at: int) -> train.TrainHooks:
  """TrainHooks that pause at `point` ('steps' or 'checkpoint') number `at`."""
  if point == "steps":
    def after_steps(epoch, chunk):
      if epoch == at:
        _pause(f"jaxrec-test: epoch {epoch} chunk {chunk} trained")
    return train.TrainHooks(after_steps=after_steps)
  if point == "checkpoint":
    def checkpoint_write(step, directory):
      if step == at:
        _pause(f"jaxrec-test: checkpoint {step} write paused in {directory}")
    return train.TrainHooks(checkpoint_write=checkpoint_write)
  raise ValueError(f"pause point {point!r}: expected 'steps' or 'checkpoint'")


def main(argv):
  workdir, epochs, point, at = argv[1:]
  config = config_loader.load("test.py", "lightgcn")
  config.num_epochs = int(epochs)
  train.train_and_evaluate(config, workdir, hooks=hooks_for(point, int(at)))


if __name__ == "__main__":
  main(sys.argv)

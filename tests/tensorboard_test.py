"""TensorBoard logging (tensorboardX): off by default; when on, the event
files hold the same numbers as metrics.jsonl / results.json."""

import glob
import json
import os
import struct

import pytest

from jaxrec import config_utils
from jaxrec import run_logging
from jaxrec import train
from tests import config_loader

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")


def read_scalars(directory):
  """{tag: {step: value}} from TFRecord event files (no TensorBoard needed).

  A record is: uint64 length, uint32 masked CRC, `length` bytes of a
  serialised `Event`, uint32 masked CRC.
  """
  out = {}
  for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4
      for value in event.summary.value:
        out.setdefault(value.tag, {})[event.step] = value.simple_value
  return out


def test_off_by_default(tmp_path):
  assert config_utils.base_config().tensorboard is False
  assert config_loader.load("test.py").tensorboard is False
  assert run_logging.tensorboard_writer(config_utils.base_config(),
                                        str(tmp_path), 0) is None
  assert os.listdir(tmp_path) == []


def test_event_files_when_on(tmp_path):
  config = config_loader.load("test.py", "mf")
  config.num_epochs = 3
  config.tensorboard = True
  results = train.train_and_evaluate(config, str(tmp_path))
  events = glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))
  assert events
  scalars = read_scalars(str(tmp_path / "tensorboard"))
  with open(tmp_path / "metrics.jsonl") as f:
    history = [json.loads(line) for line in f]
  assert sorted(scalars["train/loss"]) == [1, 2, 3]
  # tensorboardX turns '@' into '_' in tags: valid/recall@20 -> valid/recall_20.
  for record in history:
    step = record["epoch"]
    assert scalars["train/loss"][step] == pytest.approx(record["loss"],
                                                        rel=1e-6)
    assert scalars["valid/recall_20"][step] == pytest.approx(
        record["valid/recall@20"], rel=1e-6)
  best = results["best_epoch"]
  assert scalars["test/ndcg_20"] == {best: pytest.approx(
      results["test"]["ndcg@20"], rel=1e-6)}

"""Tiny config for tests and smoke runs (seconds on a CPU).

  python -m jaxrec.main --config configs/test.py:lightgcn --workdir /tmp/t

The argument names a model; its own config file configs/<model>.py supplies
the model kwargs, shrunk here to a tiny synthetic dataset and 2 epochs.
"""

import os

from jaxrec import config_utils


def model_config(model_name: str):
  """Loads configs/<model_name>.py:get_config('synthetic_small')."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      f"{model_name}.py")
  return config_utils.load_config_file(path, "synthetic_small")


def get_config(arg=None):
  """Args: arg: model name with a config file in configs/ (default lightgcn)."""
  config = model_config(arg or "lightgcn")
  small = config_utils.base_config("synthetic_small")
  config.dataset = small.dataset
  config.batch_size = small.batch_size
  if "embed_dim" in config.model:
    config.model.embed_dim = 16
  if "num_layers" in config.model:
    config.model.num_layers = min(config.model.num_layers, 2)
  config.num_epochs = 2
  config.steps_per_call = 4
  config.eval_every = 1
  config.progress = False
  return config

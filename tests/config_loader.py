"""Loads configs/<file>.py:get_config(arg) the way `--config` does, and
benchmarks/<name>.py scripts as modules (they are not a package)."""

import importlib.util
import os

from jaxrec import config_utils

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO, "configs")


def load(filename: str, arg=None):
  return config_utils.load_config_file(os.path.join(CONFIG_DIR, filename), arg)


def load_benchmark(name: str):
  """The module benchmarks/<name>.py, freshly executed."""
  path = os.path.join(REPO, "benchmarks", f"{name}.py")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def ranking_models() -> list:
  """Registered models whose configs/test.py config is a ranking task.

  Rating-prediction models (config.task='rating') are not served as top-K
  lists: `recommend` / `export` refuse their runs (tests/rating_test.py).
  """
  from jaxrec.models import MODELS  # pylint: disable=import-outside-toplevel
  return [name for name in sorted(MODELS) if load("test.py", name).task == "ranking"]

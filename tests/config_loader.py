"""Loads configs/<file>.py:get_config(arg) the way `--config` does."""

import importlib.util
import os

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "configs")


def load(filename: str, arg=None):
  path = os.path.join(CONFIG_DIR, filename)
  spec = importlib.util.spec_from_file_location(
      "config_" + filename.replace(".py", ""), path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)

"""Loads configs/<file>.py:get_config(arg) the way `--config` does."""

import os

from jaxrec import config_utils

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "configs")


def load(filename: str, arg=None):
  return config_utils.load_config_file(os.path.join(CONFIG_DIR, filename), arg)

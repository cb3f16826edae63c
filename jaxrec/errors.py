"""Exceptions shared across layers, in a module that imports no jaxrec code.

`ConfigError` is raised by every module that reads a part of the experiment
config (config_utils, optimizers, train); keeping it here lets them raise it
without importing one another.
"""


class ConfigError(ValueError):
  """Invalid experiment config; the message names the key and valid values."""

"""Exceptions shared across layers, in a module that imports no jaxrec code.

`ConfigError` is raised by every module that reads a part of the experiment
config (config_utils, optimizers, train); keeping it here lets them raise it
without importing one another. `WorkdirError` is raised by `jaxrec.workdir`
when a run's output directory cannot be used (a file, read-only, locked by a
running process, or holding a run of another config).
"""


class ConfigError(ValueError):
  """Invalid experiment config; the message names the key and valid values."""


class WorkdirError(RuntimeError):
  """Unusable workdir; the message names the path and what was expected."""

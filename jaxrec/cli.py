"""Command-line handling shared by the training programs (main, compare).

Bad input ends a program with ONE line `error: <message>` on stderr and exit
status 1, never a traceback, and nothing written to the workdir:

  * flag errors, raised by absl and ml_collections while the flags are parsed
    (before any jaxrec code runs): a missing or unreadable config file, a
    syntax error in it, a `get_config` argument it rejects (an unknown
    dataset preset), an override of a field the config lacks or of the
    wrong type, an unknown flag;
  * `USER_ERRORS` raised by the run: bad data (`DataError`), a bad config
    (`ConfigError`: unknown keys, non-positive sizes or rates), an unusable
    workdir (`WorkdirError`: a file, read-only, in use by another process,
    holding a run of another config), unusable checkpoints
    (`CheckpointError`) and a non-finite training loss.

Logs show warnings and errors only; absl's `--verbosity=1` adds the INFO
messages.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable, NoReturn, Optional, Sequence

from absl import app
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from jaxrec import checkpoint
from jaxrec.data.dataset import DataError
from jaxrec.errors import ConfigError
from jaxrec.errors import WorkdirError

FLAGS = flags.FLAGS
# Errors of the user's input or environment, reported as one line.
USER_ERRORS = (DataError, ConfigError, WorkdirError, checkpoint.CheckpointError,
               FloatingPointError)


def define_run_flags(flag_values: flags.FlagValues = FLAGS,
                     argv: Optional[list[str]] = None) -> None:
  """Defines --config, --workdir and --allow_config_change.

  Args:
    flag_values: where to define them (the global FLAGS; tests pass a fresh
      FlagValues to parse several command lines in one process).
    argv: the command line the `--config.<field>` overrides are read from
      (default sys.argv), for such a FlagValues.
  """
  config_flags.DEFINE_config_file(
      "config", None, "Experiment config file: path[:argument] (e.g. "
      "configs/lightgcn.py:lastfm); override fields with --config.<field>=.",
      flag_values=flag_values, lock_config=False, sys_argv=argv)
  flags.DEFINE_string("workdir", None, "Output directory (checkpoints, logs).",
                      flag_values=flag_values)
  flags.DEFINE_bool(
      "allow_config_change", False,
      "Resume a workdir whose saved config.json differs from --config in keys "
      "other than the harmless ones (jaxrec.workdir.HARMLESS_CONFIG_KEYS).",
      flag_values=flag_values)
  flags.mark_flags_as_required(["config", "workdir"], flag_values=flag_values)


def fail(message: str) -> NoReturn:
  """Prints `error: <message>` as one line on stderr and exits with 1."""
  print("error: " + " ".join(str(message).split()), file=sys.stderr)
  sys.exit(1)


def _config_arg(argv: Sequence[str]) -> str:
  """The value given to --config in `argv` ('' if none)."""
  for n, arg in enumerate(argv):
    for name in ("--config", "-config"):
      if arg.startswith(name + "="):
        return arg[len(name) + 1:]
      if arg == name and n + 1 < len(argv):
        return argv[n + 1]
  return ""


def _last_line(text: str) -> str:
  lines = [l.strip() for l in str(text).strip().splitlines() if l.strip()]
  return lines[-1] if lines else ""


def flag_error_message(err: Exception, argv: Sequence[str]) -> str:
  """One-line message for an exception raised while parsing the flags.

  Args:
    err: what absl / ml_collections raised.
    argv: the command line.

  Returns:
    The message (without the 'error: ' prefix), naming the flag or file.
  """
  config = _config_arg(argv)
  text = str(err)
  if isinstance(err, SyntaxError):
    return (f"{err.filename}:{err.lineno}: syntax error in the config file "
            f"({err.msg}); expected a Python file defining get_config()")
  if "Error whilst parsing config file" in text:
    # ml_collections wraps the traceback of `get_config`; its last line is
    # the error (e.g. an unknown dataset preset).
    return f"--config={config}: get_config failed: {_last_line(text)}"
  if "Failed loading config file" in text:
    return (f"--config={config}: cannot load the config file "
            f"({_last_line(text)}); expected path/to/config.py[:argument]")
  if isinstance(err, (AttributeError, KeyError)):
    # An override of a field the config lacks: the message is the field name.
    field = text.strip("\"' ")
    overrides = [a.split("=")[0] for a in argv if a.startswith("--config.")]
    named = [o for o in overrides if o.split(".")[-1] == field] or overrides
    flag = named[0] if named else "--config"
    return (f"{flag}: the config has no field {field!r}; an override can "
            f"only set a field that {config or 'the config'} defines")
  if isinstance(err, flags.Error):
    return " ".join(text.split())
  return f"--config={config}: {type(err).__name__}: {' '.join(text.split())}"


def parse_flags(argv: list[str],
                flag_values: flags.FlagValues = FLAGS) -> list[str]:
  """absl flags parser that reports bad flags as one `error:` line.

  Args:
    argv: the command line (program name first).
    flag_values: the flags to parse (see `define_run_flags`).

  Returns:
    The arguments left after the flags (the program name).
  """
  try:
    rest = flag_values(argv)
    # A config file that failed to load raises on first use, not in parsing.
    flag_values.config.keys()
  except Exception as err:  # pylint: disable=broad-except
    logging.debug("flag parsing failed", exc_info=True)
    fail(flag_error_message(err, argv))
  if len(rest) > 1:
    fail(f"unexpected arguments {rest[1:]}; expected only flags "
         "(--config=..., --workdir=...)")
  return rest


def quiet_logs() -> None:
  """absl / Orbax INFO messages off unless `--verbosity` was passed.

  Progress bars (stderr), the results and `error: ...` lines still show;
  `--verbosity=1` (absl's flag) brings back INFO logs.
  """
  if not FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)


def reporting_errors(main: Callable[[list[str]], None]
                     ) -> Callable[[list[str]], None]:
  """`main` with logs quietened and `USER_ERRORS` reported by `fail`."""
  def guarded(argv):
    quiet_logs()
    try:
      main(argv)
    except USER_ERRORS as err:
      logging.debug("failed", exc_info=True)
      fail(str(err))
  return guarded


def run(main: Callable[[list[str]], None]) -> None:
  """`app.run(main)` with one-line errors for bad flags and `USER_ERRORS`.

  Args:
    main: the program, called with the remaining argv after the flags are
      parsed (and the config loaded).
  """
  app.run(reporting_errors(main), flags_parser=parse_flags)

"""Command-line entry point: trains one config into one workdir.

  python -m jaxrec.main --config configs/lightgcn.py:lastfm --workdir workdirs/x

Runs `train.train_and_evaluate(config, workdir)` and prints the test
metrics. A workdir holding a run of the same config resumes it; one holding
a run of another config is refused unless --allow_config_change. Bad input
ends the run with one line `error: <message>` on stderr and exit status 1,
nothing written (`jaxrec.cli`; the cases are listed in docs/errors.md).
Several configs on the same data: `python -m jaxrec.compare`.

Started as a program, it first re-executes itself once with glibc's
transparent-huge-page tunable for XLA's buffers (`jaxrec.hugepages`;
`JAXREC_HUGE_PAGES=0` turns it off).
"""

from __future__ import annotations

if __name__ == "__main__":
  # Re-executes once with transparent huge pages (jaxrec.hugepages), before
  # the imports below load jax: a second load would cost seconds.
  from jaxrec import hugepages  # pylint: disable=g-import-not-at-top
  hugepages.reexec_with_huge_pages()

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from jaxrec import cli  # pylint: disable=wrong-import-position
from jaxrec import train  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
cli.define_run_flags()


def main(argv, flag_values: flags.FlagValues = FLAGS):
  del argv  # cli.parse_flags rejects extra arguments
  result = train.train_and_evaluate(
      flag_values.config, flag_values.workdir,
      allow_config_change=flag_values.allow_config_change)
  print({k: round(v, 4) for k, v in result["test"].items() if "@" in k})


if __name__ == "__main__":
  cli.run(main)

"""Transparent huge pages for XLA's host buffers (Linux, glibc >= 2.35).

Propagation gathers rows of the node table at random. Beyond a few MB of
table each gather then also misses the TLB when the buffers sit in 4 KiB
pages, and every fresh temporary buffer is faulted in page by page. glibc's
`glibc.malloc.hugetlb=1` tunable makes malloc ask the kernel for
transparent huge pages (madvise) on the large blocks XLA allocates; on the
2-core benchmark host (THP mode 'madvise') a float32 LightGCN step on the
1e7-edge graph went from 0.51-0.52 to 0.43-0.48 s, on Gowalla from
0.064-0.069 to 0.058-0.060 s, and the 1e5 step was unchanged
(docs/results/speed.md).

glibc reads tunables once, at process start, so the entry points
(`jaxrec.main`, `benchmarks/reproduce_lightgcn.py`) re-execute themselves
once with the tunable added (`reexec_with_huge_pages`) and `speed.py` starts
its workers with it (`huge_pages_env`). Where glibc lacks the tunable, THP
is off ('never') or the C library is not glibc, the variable is ignored and
nothing changes. `JAXREC_HUGE_PAGES=0` turns this off.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Mapping, Optional

TUNABLE = "glibc.malloc.hugetlb"
SETTING = f"{TUNABLE}=1"
OPT_OUT = "JAXREC_HUGE_PAGES"  # '0' disables


def huge_pages_env(env: Optional[Mapping[str, str]] = None) -> dict:
  """A copy of `env` (default os.environ) with SETTING in GLIBC_TUNABLES.

  Unchanged when `JAXREC_HUGE_PAGES=0`, off Linux, or when GLIBC_TUNABLES
  already sets TUNABLE (the user's value wins).
  """
  env = dict(os.environ if env is None else env)
  if env.get(OPT_OUT, "1") == "0" or not sys.platform.startswith("linux"):
    return env
  tunables = env.get("GLIBC_TUNABLES", "")
  if TUNABLE in tunables:
    return env
  env["GLIBC_TUNABLES"] = f"{tunables}:{SETTING}" if tunables else SETTING
  return env


def reexec_with_huge_pages() -> None:
  """Replaces this process by itself with `huge_pages_env()`, if it differs.

  Call first thing in a `__main__` block: the command line is re-run
  unchanged (`sys.orig_argv`); the new process finds the setting and goes
  on. A failed exec is logged and the run goes on without huge pages.
  """
  env = huge_pages_env()
  if env.get("GLIBC_TUNABLES") == os.environ.get("GLIBC_TUNABLES"):
    return
  try:
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
  except OSError as e:  # pragma: no cover - exec of the running interpreter
    logging.warning("jaxrec: could not re-execute with %s (%s)", SETTING, e)

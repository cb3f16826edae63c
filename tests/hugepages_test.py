"""Tests of jaxrec.hugepages (the glibc tunable for transparent huge pages)."""

import os
import subprocess
import sys

import pytest

from jaxrec import hugepages


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_env_adds_the_tunable_once_and_keeps_the_users():
  env = hugepages.huge_pages_env({"PATH": "/bin"})
  assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
  assert env["PATH"] == "/bin"
  assert hugepages.huge_pages_env(env) == env  # idempotent
  other = hugepages.huge_pages_env(
      {"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"})
  assert other["GLIBC_TUNABLES"] == (
      "glibc.malloc.mmap_max=0:glibc.malloc.hugetlb=1")
  mine = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}  # the user's wins
  assert hugepages.huge_pages_env(mine) == mine
  off = {"JAXREC_HUGE_PAGES": "0"}
  assert hugepages.huge_pages_env(off) == off


def test_reexec_only_when_the_environment_changes(monkeypatch):
  calls = []
  monkeypatch.setattr(os, "execve", lambda *a: calls.append(a))
  monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
  hugepages.reexec_with_huge_pages()
  monkeypatch.setenv("JAXREC_HUGE_PAGES", "0")
  monkeypatch.delenv("GLIBC_TUNABLES")
  hugepages.reexec_with_huge_pages()
  assert not calls
  if sys.platform.startswith("linux"):
    monkeypatch.delenv("JAXREC_HUGE_PAGES")
    hugepages.reexec_with_huge_pages()
    (executable, argv, env), = calls
    assert executable == sys.executable and argv[0] == sys.executable
    assert argv[1:] == sys.orig_argv[1:]
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_a_module_run_restarts_once_with_the_tunable():
  """`python -m` with the call first: one re-exec, same argv, tunable set."""
  code = ("import os, sys; from jaxrec import hugepages; "
          "print('start', os.environ.get('GLIBC_TUNABLES'), sys.argv[1:]); "
          "hugepages.reexec_with_huge_pages(); print('run')")
  env = {k: v for k, v in os.environ.items()
         if k not in ("GLIBC_TUNABLES", "JAXREC_HUGE_PAGES")}
  out = subprocess.run([sys.executable, "-c", code, "x", "--y=1"], env=env,
                       capture_output=True, text=True, check=True).stdout
  assert out.splitlines() == [
      "start None ['x', '--y=1']",
      "start glibc.malloc.hugetlb=1 ['x', '--y=1']", "run"]

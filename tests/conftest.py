"""Pytest set-up shared by every test module.

Eight virtual CPU devices for tests/sharding_test.py: XLA reads XLA_FLAGS when
JAX creates its CPU backend, so the flag is set here, before any test module
imports JAX. Other tests are unaffected: computations still run on device 0
unless they ask for a mesh, and all virtual devices share the same host
threads. An XLA_FLAGS that already sets the device count is kept.
"""

import os

import pytest

_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" {_FLAG}=8").strip()


@pytest.fixture(scope="session")
def bundled_model_path():
  """Path of the bundled all-MiniLM-L6-v2; skips the test without it."""
  from jaxrec import text  # pylint: disable=g-import-not-at-top
  try:
    return text.default_model_path()
  except FileNotFoundError as e:
    pytest.skip(f"bundled model unavailable: {e}")

"""Pytest set-up shared by every test module.

Eight virtual CPU devices for tests/sharding_test.py: XLA reads XLA_FLAGS when
JAX creates its CPU backend, so the flag is set here, before any test module
imports JAX. Other tests are unaffected: computations still run on device 0
unless they ask for a mesh, and all virtual devices share the same host
threads. An XLA_FLAGS that already sets the device count is kept.
"""

import os

_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" {_FLAG}=8").strip()

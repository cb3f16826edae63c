"""Device meshes and sharded jit of the train step (data parallel).

Batches are sharded over the 'data' mesh axis, parameters, optimiser state and
the graph are replicated; because the loss is a (masked) mean over the global
batch, XLA's partitioner inserts the gradient all-reduce, so N devices compute
exactly the single-device update.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import ml_collections
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def make_mesh(config: ml_collections.ConfigDict) -> Optional[Mesh]:
  """A ('data',) mesh from `config.sharding.data_devices`, or None for 1 device.

  Args:
    config: experiment config; `config.sharding.data_devices` = number of
      devices on the 'data' axis (0 or -1 = all local devices).

  Returns:
    A Mesh, or None when training on a single device.
  """
  scfg = config.get("sharding", ml_collections.ConfigDict())
  n = scfg.get("data_devices", 1)
  if n in (0, -1):
    n = jax.device_count()
  if n == 1:
    return None
  if n > jax.device_count():
    raise ValueError(f"config.sharding.data_devices={n} but only "
                     f"{jax.device_count()} devices are visible")
  return jax.make_mesh((n,), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:n])


def jit_train_steps(fn: Callable, mesh: Optional[Mesh]) -> Callable:
  """Jits `fn(state, graph, rows, rng)` with the state donated.

  With a mesh, rows ([S, B] stacked batches) are sharded over 'data' along the
  batch axis and everything else is replicated.
  """
  if mesh is None:
    return jax.jit(fn, donate_argnums=0)
  replicated = NamedSharding(mesh, P())
  batch_sharded = NamedSharding(mesh, P(None, "data"))
  jitted = jax.jit(fn, donate_argnums=0,
                   in_shardings=(replicated, replicated, batch_sharded,
                                 replicated),
                   out_shardings=(replicated, replicated))

  def call(state, graph, rows, rng):
    rows = jax.device_put(rows, batch_sharded)
    return jitted(state, graph, rows, rng)
  return call

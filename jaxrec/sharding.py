"""Device meshes, sharding rules and the sharded train step (JAX's own GSPMD).

Nothing here partitions by hand: arrays are placed with `NamedSharding`s on a
`jax.sharding.Mesh` and `jax.jit` (XLA's SPMD partitioner) splits the work and
inserts the collectives.

Meshes, from `config.sharding` (defaults in `config_utils.base_config`):
  data_devices   devices on the 'data' axis (0 or -1: all devices not used by
                 'model').
  model_devices  devices on the 'model' axis; > 1 gives a ('data', 'model')
                 mesh, else a ('data',) mesh. data_devices * model_devices = 1
                 means no mesh (plain single-device `jax.jit`).
  table_sharding layout of the embedding tables over 'model' (see
                 `PARAM_RULES`): 'rows' (row-wise, P('model', None); a table
                 whose row count the 'model' axis does not divide falls back to
                 'columns' with a logged warning, because `NamedSharding`
                 needs even shards), 'columns' (P(None, 'model')) or
                 'replicated'.
  shard_edges    shard the graph's edge arrays over every mesh device, so
                 propagation is edge-parallel (each device gathers and
                 scatters its E/n edges; XLA all-reduces the [N, d] partial
                 sums) instead of every device propagating the whole graph.
                 The graph gets zero-weight padding edges up to a multiple of
                 the device count (and one padding node if it has none).
  distributed    dict(enabled, coordinator_address, num_processes,
                 process_id, heartbeat_timeout_seconds,
                 shutdown_timeout_seconds) for multi-process runs (below).

What goes where:
  * stacked batch rows [S, B]: P(None, 'data'), the batch axis split over
    'data' (B is padded with mask-0 rows up to a multiple of the 'data' size;
    masked rows leave the masked-mean losses and their gradients unchanged).
  * parameters and optimiser state: replicated, except leaves whose path
    matches a rule of `PARAM_RULES` ('user_embedding' / 'item_embedding',
    including Adam's mu/nu of those tables) on a mesh with a 'model' axis.
  * graph: replicated, or edge-sharded with `shard_edges`.
  * step metrics: replicated.
Gradients are averaged over the GLOBAL batch: the loss is a masked mean over
all B rows, so the partitioned program computes exactly the single-device
gradient (XLA inserts the all-reduce of the per-device partial sums). N
devices therefore reproduce the 1-device run up to float summation order,
which `tests/sharding_test.py` checks for 1, 2, 4, 8 devices and the
('data', 'model') mesh.

Multi-process (docs/distributed.md; `python -m jaxrec.launch --processes N
-- <jaxrec.main args>` on one machine, JAX's cluster auto-detection under
SLURM or Kubernetes): `setup_experiment` calls `initialize_distributed`
before any JAX computation; `jax.devices()` then lists every process's
devices and the mesh must span them all (data_devices=-1). Every process
samples the same seeded epoch batches and places only its own devices'
rows (`jax.make_array_from_callback`), or, with config.sampler='counter',
samples only those rows (`local_batch_columns`, `shard_local_batch`);
process-local arrays (the initial state, the PRNG key) reach the
process-spanning mesh through the host (`_put`). Evaluation ranks each process's share of the users on that
process (`host_local` copies of the parameters) and adds the metric sums
over processes. Orbax writes each process's shards; process 0 alone writes
the other workdir files. `tests/multiprocess_test.py` runs 2 real CPU
processes (gloo collectives) against one process with 2 devices: equal
per-step losses and final parameters, metrics within rtol 1e-5, a killed
process failing the launch and an exact resume.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Optional

import jax
import jraph
import ml_collections
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrec.errors import ConfigError

DATA = "data"
MODEL = "model"
# (regex on the '/'-joined pytree path, spec over 'model') for parameters and
# every optimiser-state leaf that mirrors them (e.g. opt_state/0/mu/...).
PARAM_RULES = (
    (r"(^|/)user_embedding$", P(MODEL, None)),
    (r"(^|/)item_embedding$", P(MODEL, None)),
)
TABLE_SHARDINGS = ("rows", "columns", "replicated")


# ----------------------------------------------------------------------------
# Multi-host start-up and meshes.


def initialize_distributed(config: ml_collections.ConfigDict) -> bool:
  """Calls `jax.distributed.initialize` when config.sharding.distributed asks.

  Must run before any JAX computation in the process (train_and_evaluate
  calls it first). Fields: enabled (bool), coordinator_address ('host:port'),
  num_processes, process_id (empty / non-positive / negative values are left
  to JAX's cluster auto-detection: SLURM, Open MPI, Kubernetes, Cloud TPU),
  heartbeat_timeout_seconds and shutdown_timeout_seconds (how long the
  coordination service waits for a silent process before it fails every
  process, and how long a finishing process waits for the others).
  CPU collectives go through gloo (the default CPU client has none across
  processes); the setting only affects the CPU backend.

  Args:
    config: experiment config.

  Returns:
    True when the process is part of a multi-process JAX job.
  """
  dcfg = config.sharding.distributed
  if not dcfg.enabled:
    return False
  if jax.distributed.is_initialized():
    return True
  kwargs = {}
  if dcfg.coordinator_address:
    kwargs["coordinator_address"] = str(dcfg.coordinator_address)
  if (dcfg.num_processes or 0) > 0:
    kwargs["num_processes"] = int(dcfg.num_processes)
  process_id = dcfg.process_id
  if process_id is not None and process_id >= 0:
    kwargs["process_id"] = int(process_id)
  for key in ("heartbeat_timeout_seconds", "shutdown_timeout_seconds"):
    if (dcfg.get(key) or 0) > 0:
      kwargs[key] = int(dcfg[key])
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  logging.info("jax.distributed: process %d of %d, %d global devices",
               jax.process_index(), jax.process_count(), jax.device_count())
  return True


def make_mesh(config: ml_collections.ConfigDict) -> Optional[Mesh]:
  """A ('data',) or ('data', 'model') mesh from `config.sharding`.

  Args:
    config: experiment config; `config.sharding.data_devices` (0 or -1 = all
      devices left by 'model') and `config.sharding.model_devices`.

  Returns:
    A Mesh with Auto axes, or None when training on a single device.

  Raises:
    ValueError: more devices requested than visible, or bad counts.
    ConfigError: a multi-process job whose mesh leaves out devices.
  """
  model = int(config.sharding.model_devices)
  data = int(config.sharding.data_devices)
  available = jax.device_count()
  if model < 1 or model > available:
    raise ValueError(f"config.sharding.model_devices={model} must lie in "
                     f"[1, {available}] ({available} devices visible)")
  if data in (0, -1):
    data = available // model
  if data < 1:
    raise ValueError(f"config.sharding.data_devices={data} must be >= 1, "
                     "or 0 / -1 for all devices")
  if jax.process_count() > 1 and data * model != available:
    raise ConfigError(
        f"config.sharding: a {jax.process_count()}-process job needs a mesh "
        f"over all {available} devices, got data_devices={data} x "
        f"model_devices={model}; set config.sharding.data_devices=-1")
  if data * model == 1:
    return None
  if data * model > available:
    raise ValueError(f"config.sharding.data_devices={data} x model_devices="
                     f"{model} needs {data * model} devices but only "
                     f"{available} are visible (on CPU, set XLA_FLAGS="
                     "--xla_force_host_platform_device_count=N before JAX "
                     "starts)")
  shape, names = ((data, model), (DATA, MODEL)) if model > 1 else ((data,),
                                                                   (DATA,))
  # All devices: let make_mesh order them by topology (and across hosts).
  devices = None if data * model == available else jax.devices()[:data * model]
  return jax.make_mesh(shape, names,
                       axis_types=(jax.sharding.AxisType.Auto,) * len(names),
                       devices=devices)


def _axis_size(mesh: Mesh, name: str) -> int:
  return int(mesh.shape[name]) if name in mesh.axis_names else 1


# ----------------------------------------------------------------------------
# Placement rules.


def _path_str(path) -> str:
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def _table_spec(shape, rule_spec: P, mesh: Mesh, layout: str, name: str) -> P:
  """The rule's spec if the 'model' axis divides the table, else a fallback."""
  size = _axis_size(mesh, MODEL)
  if size == 1 or layout == "replicated" or len(shape) != 2:
    return P()
  if layout == "rows" and shape[0] % size == 0:
    return rule_spec
  if shape[1] % size == 0:
    if layout == "rows":
      logging.warning("sharding: %s has %d rows, not divisible by the 'model' "
                      "axis (%d); sharding it column-wise instead", name,
                      shape[0], size)
    return P(None, MODEL)
  logging.warning("sharding: %s %s divides over 'model'=%d neither by rows "
                  "nor by columns; replicating it", name, tuple(shape), size)
  return P()


def state_shardings(tree: Any, mesh: Mesh, table_sharding: str = "rows",
                    rules=PARAM_RULES) -> Any:
  """NamedShardings for a params / TrainState pytree, by parameter name.

  Args:
    tree: pytree of arrays (params, a TrainState, ...).
    mesh: the mesh.
    table_sharding: 'rows', 'columns' or 'replicated' (see module docstring);
      only used when the mesh has a 'model' axis.
    rules: (regex, PartitionSpec) pairs matched against '/'-joined paths.

  Returns:
    A pytree of NamedSharding with the structure of `tree`.
  """
  if table_sharding not in TABLE_SHARDINGS:
    raise ValueError(f"config.sharding.table_sharding must be one of "
                     f"{TABLE_SHARDINGS}, got {table_sharding!r}")

  def leaf(path, x):
    name = _path_str(path)
    for pattern, spec in rules:
      if re.search(pattern, name):
        return NamedSharding(mesh, _table_spec(np.shape(x), spec, mesh,
                                               table_sharding, name))
    return NamedSharding(mesh, P())
  return jax.tree_util.tree_map_with_path(leaf, tree)


def _put(tree: Any, shardings: Any) -> Any:
  """Places a pytree; host arrays go through make_array_from_callback.

  `jax.make_array_from_callback` only materialises each device's own slice,
  which is also what multi-host runs need (every process holds the same
  host arrays).
  """
  def put(x, sharding):
    if isinstance(x, jax.Array):
      if x.sharding == sharding:
        return x
      if sharding.is_fully_addressable or not x.is_fully_addressable:
        return jax.device_put(x, sharding)
      # A process-local array onto a mesh spanning processes (device_put
      # refuses): through the host, from this process's equal copy.
      if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(
            put(np.asarray(jax.random.key_data(x)), sharding),
            impl=jax.random.key_impl(x))
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding,
                                        lambda index: x[index])
  return jax.tree.map(put, tree, shardings)


def host_local(tree: Any) -> Any:
  """Every leaf as a NumPy array of its global value, on every process.

  Arrays that span several processes (multi-process meshes) are gathered
  with `multihost_utils.process_allgather`, a collective: every process must
  call this with the same tree. Other leaves are returned unchanged.

  Args:
    tree: pytree of arrays.

  Returns:
    The pytree with process-spanning arrays replaced by NumPy arrays.
  """
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  def local(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return x
  return jax.tree.map(local, tree)


def shard_state(tree: Any, mesh: Optional[Mesh],
                config: ml_collections.ConfigDict) -> Any:
  """Places params / a TrainState on the mesh by `state_shardings` rules.

  Args:
    tree: params or TrainState.
    mesh: mesh, or None (placed on this process's first device).
    config: experiment config (for config.sharding.table_sharding).

  Returns:
    The same pytree with every array placed.
  """
  if mesh is None:
    # Committed to the device, as a state restored from a checkpoint is: a
    # resumed run then compiles the same train step as a fresh one (with a
    # persistent compilation cache, a cache hit instead of a recompile).
    return jax.device_put(tree, jax.local_devices()[0])
  layout = config.sharding.table_sharding
  return _put(tree, state_shardings(tree, mesh, layout))


def edge_axes(mesh: Mesh):
  """Mesh axes the edge dimension is split over (all of them)."""
  names = tuple(mesh.axis_names)
  return names[0] if len(names) == 1 else names


def graph_shardings(graph: jraph.GraphsTuple, mesh: Mesh,
                    shard_edges: bool = False) -> jraph.GraphsTuple:
  """Replicated graph, or edge arrays ([E] edges/senders/receivers) sharded."""
  replicated = NamedSharding(mesh, P())
  out = jax.tree.map(lambda _: replicated, graph)
  if not shard_edges:
    return out
  edges = NamedSharding(mesh, P(edge_axes(mesh)))

  def edge_spec(x):
    return NamedSharding(mesh, P(edge_axes(mesh), *([None] * (np.ndim(x) - 1))))
  return out._replace(
      edges=jax.tree.map(edge_spec, graph.edges),
      senders=edges, receivers=edges)


def pad_edges_for(graph: jraph.GraphsTuple, multiple: int) -> jraph.GraphsTuple:
  """Pads the edge count up to a multiple (zero-weight edges to a pad node).

  Padding edges join the (first) padding node to itself with weight 0, after
  every real edge, so receiver order and propagation results are unchanged.
  """
  # pylint: disable=g-import-not-at-top
  from jaxrec.graphs import padding as padding_lib
  num_edges = int(np.shape(graph.senders)[0])
  target = padding_lib.round_up(num_edges, multiple)
  if target == num_edges:
    return graph
  host = jax.tree.map(np.asarray, graph)
  if len(host.n_node) > 1:  # already padded: reuse the first padding node
    pad_node = int(host.n_node[0])
    extra = target - num_edges
    index = np.full(extra, pad_node, host.senders.dtype)
    edges = jax.tree.map(
        lambda e: np.concatenate([e, np.zeros((extra,) + e.shape[1:], e.dtype)]),
        host.edges)
    n_edge = host.n_edge.copy()
    n_edge[-1] += extra
    return host._replace(edges=edges,
                         senders=np.concatenate([host.senders, index]),
                         receivers=np.concatenate([host.receivers, index]),
                         n_edge=n_edge)
  nodes = int(np.sum(host.n_node))
  return padding_lib.pad_graph(host, nodes + 1, target)


def place_graph(graph: jraph.GraphsTuple, mesh: Optional[Mesh],
                config: ml_collections.ConfigDict) -> jraph.GraphsTuple:
  """Puts the training graph on the mesh once (replicated or edge-sharded).

  Args:
    graph: graph with NumPy or JAX arrays.
    mesh: mesh, or None (returned unchanged).
    config: experiment config (config.sharding.shard_edges).

  Returns:
    The placed graph (padded with zero-weight edges when edge-sharded).
  """
  if mesh is None:
    return graph
  shard_edges = bool(config.sharding.shard_edges)
  if shard_edges:
    # Tiles index the unsharded edge order; sharded edges use plain kernels.
    from jaxrec.graphs import tiling  # pylint: disable=g-import-not-at-top
    graph = pad_edges_for(tiling.untile(graph), mesh.size)
  return _put(graph, graph_shardings(graph, mesh, shard_edges))


def shard_batch(rows: Any, mesh: Mesh) -> Any:
  """Places stacked rows [S, B, ...] with B split over 'data'.

  B is padded with zero rows (mask 0) up to a multiple of the 'data' size.

  Args:
    rows: stacked batches (a `batches.Batch` or `RatingBatch`, or any pytree
      whose leaves are [S, B, ...]; None fields stay None).
    mesh: the device mesh.

  Returns:
    The same pytree with every leaf placed on `mesh`.
  """
  n = _axis_size(mesh, DATA)
  batch = int(np.shape(jax.tree.leaves(rows)[0])[1])
  pad = -batch % n
  if pad:
    rows = jax.tree.map(lambda v: np.concatenate([np.asarray(v), np.zeros(
        (np.shape(v)[0], pad) + np.shape(v)[2:], np.asarray(v).dtype)],
                                                 axis=1), rows)
  shardings = jax.tree.map(lambda v: _rows_sharding(mesh, np.ndim(v)), rows)
  return _put(rows, shardings)


def _rows_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
  """Stacked rows [S, B, ...]: B split over 'data'."""
  return NamedSharding(mesh, P(None, DATA, *([None] * (ndim - 2))))


def local_batch_columns(mesh: Mesh, batch_size: int) -> np.ndarray:
  """The batch columns this process's devices hold under `shard_batch`.

  Args:
    mesh: the device mesh.
    batch_size: rows per batch B (before `shard_batch` pads it to a
      multiple of the 'data' size).

  Returns:
    Sorted int64 column indices in [0, B padded); those >= B are padding.
  """
  width = batch_size + (-batch_size % _axis_size(mesh, DATA))
  indices = _rows_sharding(mesh, 2).addressable_devices_indices_map(
      (1, width))
  columns = set()
  for index in indices.values():
    columns.update(range(*index[1].indices(width)))
  return np.array(sorted(columns), np.int64)


def shard_local_batch(rows: Any, mesh: Mesh, columns: np.ndarray,
                      batch_size: int) -> Any:
  """`shard_batch` of a batch of which this process holds only `columns`.

  Each process passes the rows of its own columns (`local_batch_columns`,
  e.g. from `input_pipeline.epoch_batches(..., columns=...)`); together
  they make the global batch [S, B padded, ...] that `shard_batch` would
  place, with the same shardings.

  Args:
    rows: stacked batches whose leaves are [S, C, ...], column j holding
      global column `columns[j]`.
    mesh: the device mesh.
    columns: this process's columns, sorted. # [C]
    batch_size: rows per batch B.

  Returns:
    The pytree with every leaf a global array [S, B padded, ...] on `mesh`.
  """
  width = batch_size + (-batch_size % _axis_size(mesh, DATA))

  def put(x):
    x = np.asarray(x)

    def local(index):
      wanted = np.arange(width)[index[1]]
      return x[(index[0], np.searchsorted(columns, wanted)) + index[2:]]
    return jax.make_array_from_callback(
        (x.shape[0], width) + x.shape[2:], _rows_sharding(mesh, x.ndim), local)
  return jax.tree.map(put, rows)


# ----------------------------------------------------------------------------
# The sharded step.


def _on_mesh(tree: Any, mesh: Mesh) -> Any:
  """Each leaf's NamedSharding if it is on `mesh`, else replicated."""
  replicated = NamedSharding(mesh, P())

  def pick(x):
    sharding = getattr(x, "sharding", None)
    if isinstance(sharding, NamedSharding) and sharding.mesh == mesh:
      return sharding
    return replicated
  return jax.tree.map(pick, tree)


def jit_train_steps(fn: Callable, mesh: Optional[Mesh]) -> Callable:
  """Jits `fn(state, graph, rows, rng) -> (state, metrics)`, state donated.

  With a mesh, every argument gets an explicit NamedSharding: rows are split
  over 'data' on the batch axis (`shard_batch`); state and graph keep the
  shardings they were placed with (`shard_state`, `place_graph`; anything not
  yet on the mesh is replicated), and the new state is returned with the same
  shardings, so consecutive calls neither reshard nor recompile. Metrics come
  back replicated.

  Args:
    fn: e.g. `functools.partial(train.train_steps, model=..., loss_fn=...)`.
    mesh: from `make_mesh`, or None for single-device `jax.jit`.

  Returns:
    A callable with the signature of `fn`.
  """
  if mesh is None:
    return jax.jit(fn, donate_argnums=0)
  replicated = NamedSharding(mesh, P())
  cache = {}

  def call(state, graph, rows, rng):
    state_sh, graph_sh = _on_mesh(state, mesh), _on_mesh(graph, mesh)
    state, graph = _put(state, state_sh), _put(graph, graph_sh)
    rng = _put(rng, replicated)
    rows = shard_batch(rows, mesh)
    rows_sh = jax.tree.map(lambda x: x.sharding, rows)
    key = (jax.tree.structure(state), tuple(jax.tree.leaves(state_sh)),
           jax.tree.structure(graph), tuple(jax.tree.leaves(graph_sh)),
           jax.tree.structure(rows), tuple(jax.tree.leaves(rows_sh)))
    if key not in cache:
      cache[key] = jax.jit(fn, donate_argnums=0,
                           in_shardings=(state_sh, graph_sh, rows_sh,
                                         replicated),
                           out_shardings=(state_sh, replicated))
    return cache[key](state, graph, rows, rng)
  return call


def describe(mesh: Optional[Mesh]) -> str:
  """One line naming the mesh, for logs."""
  if mesh is None:
    return f"single device ({jax.devices()[0].platform})"
  axes = ", ".join(f"{n}={s}" for n, s in mesh.shape.items())
  return f"mesh({axes}) over {mesh.size} {mesh.devices.flat[0].platform} devices"


__all__ = [
    "PARAM_RULES", "describe", "edge_axes", "graph_shardings", "host_local",
    "initialize_distributed", "jit_train_steps", "make_mesh", "pad_edges_for",
    "place_graph", "shard_batch", "shard_state", "state_shardings",
]

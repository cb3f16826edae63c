"""Sharded training equals single-device training (8 virtual CPU devices).

tests/conftest.py sets XLA_FLAGS=--xla_force_host_platform_device_count=8
before JAX starts, so `jax.devices()` lists 8 CPU devices here. Every
equivalence test runs the real `train.train_steps` (lax.scan of the pure
`train_step`) through `sharding.jit_train_steps`, or the whole
`train.train_and_evaluate`, and compares with the unsharded run.
"""

import functools
import tracemalloc

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxrec import batches
from jaxrec import metrics
from jaxrec import sharding
from jaxrec.batches import Batch
from jaxrec import train
from jaxrec.data.dataset import Interactions
from jaxrec.data.synthetic import make_synthetic
from jaxrec.errors import ConfigError
from jaxrec.graphs import bipartite_graph
from jaxrec import input_pipeline
from jaxrec import models
from jaxrec import optimizers
from jaxrec.data import sampler
from tests import config_loader

NUM_DEVICES = 8
pytestmark = pytest.mark.skipif(
    jax.device_count() < NUM_DEVICES,
    reason=f"needs {NUM_DEVICES} devices: JAX started before tests/conftest.py "
           "could set XLA_FLAGS=--xla_force_host_platform_device_count=8")

BATCH, STEPS, CALLS = 64, 2, 2
# 160 users and 200 items: every 'model' axis size used here divides both, so
# the tables are really row-sharded (not the column fallback).
NUM_USERS, NUM_ITEMS = 160, 200


@pytest.fixture(scope="module")
def dataset():
  return make_synthetic(num_users=NUM_USERS, num_items=NUM_ITEMS,
                        num_interactions=2400, seed=3, with_texts=False)


def _config(model_name: str, **sharding_cfg) -> ml_collections.ConfigDict:
  config = config_loader.load("test.py", model_name)
  config.model.embed_dim = 8
  config.sharding.update(sharding_cfg)
  return config


def _train(dataset, model_name: str, tile_nodes=-1, **sharding_cfg):
  """CALLS calls of the jitted `train_steps` over STEPS stacked batches each.

  Returns:
    (final state, losses [CALLS * STEPS], the mesh).
  """
  config = _config(model_name, **sharding_cfg)
  config.graph.tile_nodes = tile_nodes
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, dataset))
  model = models.get_model(model_name, dataset.num_users, dataset.num_items,
                          **config.model.to_dict())
  mesh = sharding.make_mesh(config)
  graph = sharding.place_graph(graph, mesh, config)
  params = train.init_params(model, graph, BATCH, jax.random.key(0))
  state = train.TrainState.create(apply_fn=model.apply, params=params,
                                  tx=optimizers.make_optimizer(config))
  state = sharding.shard_state(state, mesh, config)
  rows = input_pipeline.stack_batches(sampler.epoch_triples(
      dataset.train, dataset.num_users, dataset.num_items, 0, 0), BATCH)
  step_fn = sharding.jit_train_steps(
      functools.partial(train.train_steps, model=model), mesh)
  losses = []
  for c in range(CALLS):
    chunk = batches.take_steps(rows, c * STEPS, (c + 1) * STEPS)
    state, step_metrics = step_fn(state, graph, chunk, jax.random.key(1))
    losses.append(np.asarray(step_metrics["loss"]))
  return state, np.concatenate(losses), mesh


_REFERENCE = {}


def _reference(dataset, model_name):
  if model_name not in _REFERENCE:
    state, losses, mesh = _train(dataset, model_name)
    assert mesh is None
    _REFERENCE[model_name] = (jax.device_get(state.params), losses,
                              int(state.step))
  return _REFERENCE[model_name]


def _assert_same_as_reference(dataset, model_name, state, losses):
  ref_params, ref_losses, ref_step = _reference(dataset, model_name)
  assert int(state.step) == ref_step == CALLS * STEPS
  np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(jax.device_get(state.params), ref_params,
                              rtol=1e-5, atol=1e-6)
  assert ref_losses[-1] < ref_losses[0]  # it did train


@pytest.mark.parametrize("model_name", ["mf", "lightgcn"])
@pytest.mark.parametrize("devices", [1, 2, 4, 8])
def test_data_parallel_equals_one_device(dataset, model_name, devices):
  state, losses, mesh = _train(dataset, model_name, data_devices=devices)
  if devices > 1:
    assert mesh.shape == {"data": devices}
    table = state.params["user_embedding"]
    assert table.sharding.spec == P() and len(table.sharding.device_set) == devices
  _assert_same_as_reference(dataset, model_name, state, losses)


@pytest.mark.parametrize("model_name", ["mf", "lightgcn"])
def test_row_sharded_tables_equal_one_device(dataset, model_name):
  state, losses, mesh = _train(dataset, model_name, data_devices=2,
                               model_devices=4)
  assert mesh.shape == {"data": 2, "model": 4}
  for name in ("user_embedding", "item_embedding"):
    table = state.params[name]
    assert table.sharding.spec == P("model", None), name
    # Each device holds a quarter of the rows, Adam's moments likewise.
    assert table.addressable_shards[0].data.shape[0] == table.shape[0] // 4
    mu = state.opt_state[0].mu[name]
    assert mu.sharding.spec == P("model", None), name
  _assert_same_as_reference(dataset, model_name, state, losses)


@pytest.mark.parametrize("shard_edges", [False, True])
def test_column_tiled_graph_trains_like_one_untiled_device(dataset, shard_edges):
  # 64-node column blocks: 6 tiles on this 360-node graph (edge-sharded
  # runs drop the tiles, which index the unsharded edge order).
  state, losses, _ = _train(dataset, "lightgcn", tile_nodes=64,
                            data_devices=4, model_devices=2,
                            shard_edges=shard_edges)
  _assert_same_as_reference(dataset, "lightgcn", state, losses)


def test_edge_parallel_propagation_equals_one_device(dataset):
  state, losses, mesh = _train(dataset, "lightgcn", data_devices=4,
                               model_devices=2, shard_edges=True)
  assert mesh.size == 8
  _assert_same_as_reference(dataset, "lightgcn", state, losses)


def test_batch_not_divisible_by_devices_is_padded(dataset):
  # 64 rows over 'data'=8 divide evenly; 60 rows need 4 mask-0 padding rows.
  config = _config("mf", data_devices=8)
  mesh = sharding.make_mesh(config)
  ones = np.ones((2, 60), np.int32)
  rows = Batch(users=ones, pos_items=ones, neg_items=np.ones((2, 60, 3),
                                                             np.int32),
               mask=np.ones((2, 60), np.float32))
  placed = sharding.shard_batch(rows, mesh)
  assert isinstance(placed, Batch) and placed.epoch is None
  assert placed.users.shape == (2, 64)
  assert placed.users.sharding.spec == P(None, "data")
  assert placed.neg_items.sharding.spec == P(None, "data", None)
  np.testing.assert_array_equal(np.asarray(placed.mask)[:, 60:], 0.0)
  np.testing.assert_array_equal(np.asarray(placed.mask).sum(), 120.0)


def test_train_and_evaluate_sharded_equals_one_device(dataset, tmp_path):
  def run(name, **sharding_cfg):
    config = _config("lightgcn", **sharding_cfg)
    config.num_epochs = 1
    return train.train_and_evaluate(config, str(tmp_path / name), dataset)
  single = run("single")
  sharded = run("sharded", data_devices=4, model_devices=2)
  assert sharded["best_epoch"] == single["best_epoch"]
  chex.assert_trees_all_close(sharded["valid"], single["valid"], rtol=1e-5)
  chex.assert_trees_all_close(sharded["test"], single["test"], rtol=1e-5)


def test_evaluation_of_sharded_model_equals_one_device(dataset):
  config = _config("lightgcn", data_devices=2, model_devices=4,
                   shard_edges=True)
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, dataset))
  model = models.get_model("lightgcn", dataset.num_users, dataset.num_items,
                          **config.model.to_dict())
  params = train.init_params(model, graph, BATCH, jax.random.key(2))
  single = train.Evaluator(model, graph, dataset, config)(params, "test")
  mesh = sharding.make_mesh(config)
  sharded_graph = sharding.place_graph(graph, mesh, config)
  sharded_params = sharding.shard_state(params, mesh, config)
  assert sharded_params["item_embedding"].sharding.spec == P("model", None)
  assert sharded_graph.senders.sharding.spec == P(("data", "model"))
  evaluator = train.Evaluator(model, sharded_graph, dataset, config)
  user_emb, _ = evaluator.embeddings(sharded_params)
  assert len(user_emb.sharding.device_set) == 8
  sharded = evaluator(sharded_params, "test")
  assert single["recall@20"] > 0
  chex.assert_trees_all_close(sharded, single, rtol=1e-5)


# ----------------------------------------------------------------------------
# Meshes, rules and configuration (no compilation).


def test_make_mesh_from_config():
  assert sharding.make_mesh(_config("mf")) is None
  assert sharding.make_mesh(_config("mf", data_devices=-1)).shape == {"data": 8}
  mesh = sharding.make_mesh(_config("mf", data_devices=0, model_devices=2))
  assert mesh.shape == {"data": 4, "model": 2}
  with pytest.raises(ValueError, match="needs 16 devices"):
    sharding.make_mesh(_config("mf", data_devices=16))
  with pytest.raises(ValueError, match="model_devices"):
    sharding.make_mesh(_config("mf", model_devices=0))


def test_rules_shard_tables_by_name_with_fallbacks():
  mesh = sharding.make_mesh(_config("mf", data_devices=2, model_devices=4))
  tree = {"user_embedding": np.zeros((8, 6)),   # rows divisible by 4
          "item_embedding": np.zeros((6, 8)),   # rows not: columns
          "encoder": {"item_embedding": np.zeros((5, 3))},  # neither
          "dense": {"kernel": np.zeros((8, 8))}}
  specs = jax.tree.map(lambda s: s.spec,
                       sharding.state_shardings(tree, mesh, "rows"))
  assert specs == {"user_embedding": P("model", None),
                   "item_embedding": P(None, "model"),
                   "encoder": {"item_embedding": P()},
                   "dense": {"kernel": P()}}
  specs = jax.tree.map(lambda s: s.spec,
                       sharding.state_shardings(tree, mesh, "replicated"))
  assert all(s == P() for s in jax.tree.leaves(specs))
  data_only = sharding.make_mesh(_config("mf", data_devices=8))
  specs = sharding.state_shardings(tree, data_only, "rows")
  assert all(s.spec == P() for s in jax.tree.leaves(specs))
  with pytest.raises(ValueError, match="table_sharding"):
    sharding.state_shardings(tree, mesh, "diagonal")


def test_distributed_initialize_is_wired_from_config(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize",
                      lambda **kwargs: calls.append(kwargs))
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  config = _config("mf")
  assert not sharding.initialize_distributed(config)  # off by default
  assert not calls
  config.sharding.distributed.update(
      enabled=True, coordinator_address="10.0.0.1:1234", num_processes=4,
      process_id=3)
  assert sharding.initialize_distributed(config)
  assert calls == [dict(coordinator_address="10.0.0.1:1234", num_processes=4,
                        process_id=3)]
  config.sharding.distributed.update(coordinator_address="", num_processes=0,
                                     process_id=-1)
  sharding.initialize_distributed(config)  # auto-detection: no arguments
  assert calls[-1] == {}
  config.sharding.distributed.update(heartbeat_timeout_seconds=7,
                                     shutdown_timeout_seconds=9)
  sharding.initialize_distributed(config)
  assert calls[-1] == dict(heartbeat_timeout_seconds=7,
                           shutdown_timeout_seconds=9)
  assert jax.config.jax_cpu_collectives_implementation == "gloo"


def test_multi_process_mesh_must_span_every_device(monkeypatch):
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  with pytest.raises(ConfigError, match="data_devices=-1"):
    sharding.make_mesh(_config("mf", data_devices=2))
  assert sharding.make_mesh(_config("mf", data_devices=-1)).size == NUM_DEVICES


def test_host_local_keeps_process_local_leaves():
  tree = {"a": np.arange(3), "b": jnp.ones(2)}
  out = sharding.host_local(tree)
  assert out["a"] is tree["a"] and out["b"] is tree["b"]


# ----------------------------------------------------------------------------
# Nothing O(N^2): graph construction, the training program, evaluation.


def test_graph_construction_memory_is_linear_at_1e5_nodes():
  rng = np.random.default_rng(0)
  num_users, num_items, num_edges = 50_000, 50_000, 200_000
  train_split = Interactions(rng.integers(0, num_users, num_edges),
                             rng.integers(0, num_items, num_edges))
  tracemalloc.start()
  graph = bipartite_graph(train_split, num_users, num_items)
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  n = num_users + num_items
  # A dense N x N adjacency would need 4e10 bytes; O(E + N) is a few MB.
  assert peak < 200 * (num_edges + n), peak
  assert graph.senders.shape == (2 * len(np.unique(
      train_split.users.astype(np.int64) * num_items + train_split.items)),)


def test_training_program_has_no_quadratic_array():
  """Every intermediate of LightGCN's loss + gradient is O(E*d + N*d)."""
  num_users, num_items, num_edges = 3000, 4000, 20_000
  rng = np.random.default_rng(0)
  split = Interactions(rng.integers(0, num_users, num_edges),
                       rng.integers(0, num_items, num_edges))
  graph = bipartite_graph(split, num_users, num_items)
  model = models.get_model("lightgcn", num_users, num_items, embed_dim=8,
                          num_layers=2)
  batch = train.dummy_batch(32)
  params = jax.eval_shape(lambda: model.init(
      {"params": jax.random.key(0), "dropout": jax.random.key(0)}, graph,
      batch, method="loss")["params"])
  loss = lambda p: train.model_loss(p, graph, batch, jax.random.key(0),
                                    model=model)[0]
  jaxpr = jax.make_jaxpr(jax.grad(loss))(params)
  n = num_users + num_items

  def sizes(jpr):  # every equation output, inside jit/scan/custom_vjp too
    for eqn in jpr.eqns:
      for var in eqn.outvars:
        yield int(np.prod(getattr(var.aval, "shape", ())))
      for value in eqn.params.values():
        for sub in value if isinstance(value, (tuple, list)) else [value]:
          sub = getattr(sub, "jaxpr", sub)
          if hasattr(sub, "eqns"):
            yield from sizes(sub)
  largest = max(sizes(jaxpr.jaxpr))
  assert largest <= 2 * len(graph.senders) * 8, largest  # [2E, d] messages
  assert largest < n * n // 100


def test_evaluation_batches_respect_the_memory_budget():
  num_users, num_items = 100_000, 100_000
  budget = 64 << 20
  batch = metrics.user_batch_size_for(num_items, num_users, budget)
  assert batch * num_items * 4 * 4 <= budget  # 4 live float32 [B, I] buffers
  rng = np.random.default_rng(0)
  user_emb = rng.normal(size=(64, 8)).astype(np.float32)
  item_emb = rng.normal(size=(500, 8)).astype(np.float32)
  import scipy.sparse as sp  # pylint: disable=g-import-not-at-top
  target = sp.random(64, 500, density=0.02, random_state=0, format="csr")
  small = metrics.evaluate_embeddings(user_emb, item_emb, target, ks=(5, 20),
                                      memory_budget_bytes=16 * 500 * 4 * 4)
  whole = metrics.evaluate_embeddings(user_emb, item_emb, target, ks=(5, 20))
  chex.assert_trees_all_close(small, whole, rtol=1e-6)

"""Every registered model has a config; every config builds and runs a step."""

import glob
import os

import jax
import jax.numpy as jnp
import pytest

from jaxrec import config_utils
from jaxrec import train
from jaxrec.data.synthetic import make_synthetic
from jaxrec.data.synthetic import make_synthetic_ratings
from jaxrec.models import MODELS
from jaxrec import input_pipeline
from jaxrec import models
from jaxrec import optimizers
from jaxrec.data import sampler
from tests import config_loader

CONFIG_FILES = sorted(os.path.basename(p) for p in glob.glob(
    os.path.join(config_loader.CONFIG_DIR, "*.py")))
# Config files that describe something other than one model run.
NON_MODEL_CONFIGS = {"default.py", "test.py", "quickstart.py"}


@pytest.fixture(scope="module")
def tiny():
  return make_synthetic(num_users=60, num_items=80, num_interactions=900, seed=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_has_a_config(name):
  assert f"{name}.py" in CONFIG_FILES, f"configs/{name}.py is missing"
  assert config_loader.load(f"{name}.py").model_name == name


def _one_step(config, dataset):
  if config.task == "rating":  # rating models train on rated rows
    dataset = make_synthetic_ratings(num_users=60, num_items=80,
                                     num_ratings=900, seed=0)
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, dataset))
  model = models.get_model(config.model_name, dataset.num_users,
                          dataset.num_items, **config.model.to_dict())
  num_neg = config.get("num_negatives", 1)
  params = train.init_params(model, graph, 32, jax.random.key(0), num_neg)
  state = train.TrainState.create(apply_fn=model.apply, params=params,
                                  tx=optimizers.make_optimizer(config))
  rows = input_pipeline.stack_batches(sampler.epoch_triples(
      dataset.train, dataset.num_users, dataset.num_items, 0, 0,
      num_negatives=num_neg), 32)
  if config.task == "rating":
    rows = input_pipeline.epoch_batches(config, dataset, 0)
  batch = jax.tree.map(lambda v: v[0], rows)
  state, metrics = jax.jit(lambda s, b: train.train_step(
      s, graph, b, jax.random.key(0), model=model))(state, batch)
  assert jnp.isfinite(metrics["loss"])
  user_emb, item_emb = train.embed(state.params, graph, model=model)
  assert user_emb.shape[0] == dataset.num_users
  assert item_emb.shape[0] == dataset.num_items


@pytest.mark.parametrize("filename", CONFIG_FILES)
def test_config_builds_and_runs_a_step(filename, tiny):
  config = config_loader.load(filename)
  assert config.dataset.name in {"synthetic", *config_utils.DATASETS}
  for entry in config.get("compare", [dict(model_name=config.model_name,
                                           model=config.model)]):
    run = config.copy_and_resolve_references()
    run.model_name = entry["model_name"]
    run.model = dict(entry["model"])
    if run.graph.get("text_features", False) and tiny.item_embeddings is None:
      pytest.skip("needs text embeddings (covered by the text-model tests)")
    _one_step(run, tiny)


@pytest.mark.parametrize("preset", sorted(config_utils.DATASETS))
def test_dataset_presets_resolve(preset):
  config = config_loader.load("lightgcn.py", preset)
  assert config.dataset.name in preset or preset.startswith("synthetic")


def test_unknown_model_key_lists_valid_ones():
  with pytest.raises(ValueError, match="valid keys"):
    models.get_model("lightgcn", 3, 4, num_layer=3)
  with pytest.raises(ValueError, match="registered models"):
    models.get_model("nope", 3, 4)

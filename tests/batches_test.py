"""Typed train batches: step slicing, optional fields a model declares."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrec import batches
from jaxrec import input_pipeline
from jaxrec import models
from jaxrec import train
from jaxrec.batches import Batch
from jaxrec.batches import RatingBatch
from jaxrec.data.synthetic import make_synthetic
from tests import config_loader


def _stacked(steps=5, b=4, epoch=False) -> Batch:
  ids = np.arange(steps * b, dtype=np.int32).reshape(steps, b)  # [S, B]
  return Batch(users=ids, pos_items=ids + 1,
               neg_items=np.stack([ids, ids], -1),  # [S, B, 2]
               mask=np.ones((steps, b), np.float32),
               epoch=np.full((steps, b), 3, np.int32) if epoch else None)


def test_take_steps_keeps_type_and_none_fields():
  rows = _stacked()
  part = batches.take_steps(rows, 1, 3)
  assert isinstance(part, Batch) and part.epoch is None
  assert batches.num_steps(rows) == 5 and batches.num_steps(part) == 2
  np.testing.assert_array_equal(part.users, rows.users[1:3])
  chex.assert_shape(part.neg_items, (2, 4, 2))
  # A None field is no pytree leaf: the structure fixes what jit compiles.
  assert len(jax.tree.leaves(rows)) == 4
  assert len(jax.tree.leaves(_stacked(epoch=True))) == 5
  rating = RatingBatch(users=rows.users, items=rows.pos_items,
                       ratings=rows.mask, mask=rows.mask)
  assert isinstance(batches.take_steps(rating, 0, 1), RatingBatch)


def test_unknown_field_is_refused():
  assert batches.check_fields(["epoch"]) == ("epoch",)
  with pytest.raises(ValueError, match="unknown batch field"):
    batches.check_fields(("epoch", "day"))


def test_dummy_batch_matches_the_model_batch_type():
  plain = train.dummy_batch(8, 3)
  assert isinstance(plain, Batch) and plain.epoch is None
  chex.assert_shape(plain.neg_items, (8, 3))
  assert train.dummy_batch(8, fields=("epoch",)).epoch.shape == (8,)
  assert isinstance(train.dummy_batch(8, ratings=True), RatingBatch)


@pytest.mark.parametrize("view_period", ["step", "epoch"])
def test_declared_epoch_field_reaches_the_jitted_steps(view_period):
  """SGL declares 'epoch' only with view_period='epoch'; the pipeline fills
  it from that declaration, and the scanned, donated step consumes it."""
  ds = make_synthetic(num_users=30, num_items=20, num_interactions=200,
                      with_texts=False)
  config = config_loader.load("sgl.py", "synthetic")
  config.batch_size = 32
  config.model.embed_dim = 8
  config.model.view_period = view_period
  model = models.get_model("sgl", ds.num_users, ds.num_items,
                           **config.model.to_dict())
  fields = model.batch_fields
  assert fields == (("epoch",) if view_period == "epoch" else ())
  graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, ds))
  params = train.init_params(model, graph, 32, jax.random.key(0))
  state = train.TrainState.create(apply_fn=model.apply, params=params,
                                  tx=optax.adam(1e-3))
  rows = input_pipeline.epoch_batches(config, ds, 2, fields=fields)
  assert (rows.epoch is not None) == (view_period == "epoch")
  step = jax.jit(functools.partial(train.train_steps, model=model),
                 donate_argnums=0)
  state, metrics = step(state, graph, rows, jax.random.key(1))
  chex.assert_shape(metrics["loss"], (batches.num_steps(rows),))
  assert np.all(np.isfinite(metrics["loss"]))
  if view_period == "epoch":  # a batch without the declared field
    with pytest.raises(ValueError, match="'epoch' field"):
      step(state, graph, rows._replace(epoch=None), jax.random.key(1))

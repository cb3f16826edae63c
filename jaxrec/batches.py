"""The batches a train step consumes: typed rows, one NamedTuple per task.

`input_pipeline.epoch_batches` builds one epoch of them with a leading step
axis (every field [S, B, ...]); `train.train_steps` scans over that axis and
hands each model's `loss` one batch (every field [B, ...]). Both are
NamedTuples, hence pytrees: `jax.jit`, `lax.scan`, buffer donation and
`sharding.shard_batch` see their array fields as leaves; an optional field
left at None is no leaf at all, so a batch's structure (and the compiled
step) is fixed for a run.

Padding rows (mask 0) repeat id 0; every loss averages over real rows only.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

# Array-like fields: NumPy arrays in the pipeline, jax.Arrays inside the step.
Array = Any


class Batch(NamedTuple):
  """BPR triples of the ranking task (`config.task = 'ranking'`).

  The shapes below are one batch's; stacked epoch batches add a leading
  step axis [S].
  """
  users: Array  # int32 [B]
  pos_items: Array  # int32 [B]: an observed item of each user
  neg_items: Array  # int32 [B], or [B, k] with config.num_negatives = k > 1
  mask: Array  # float32 [B]: 1 real row, 0 padding
  # The epoch index, the same in every slot, for models whose augmentations
  # are drawn once per epoch; None unless the model's `batch_fields` names
  # it (see OPTIONAL_FIELDS).
  epoch: Optional[Array] = None  # int32 [B]


class RatingBatch(NamedTuple):
  """Observed ratings of the rating task (`config.task = 'rating'`)."""
  users: Array  # int32 [B]
  items: Array  # int32 [B]
  ratings: Array  # float32 [B]
  mask: Array  # float32 [B]: 1 real row, 0 padding


AnyBatch = Union[Batch, RatingBatch]

# `Batch` fields a model may ask the input pipeline for (its `batch_fields`);
# the pipeline leaves every other optional field at None.
OPTIONAL_FIELDS = ("epoch",)


def check_fields(fields) -> tuple[str, ...]:
  """The optional fields a model declared, validated.

  Args:
    fields: names from a model's `batch_fields`.

  Returns:
    The names as a tuple.

  Raises:
    ValueError: a name that is not in `OPTIONAL_FIELDS`.
  """
  fields = tuple(fields)
  unknown = sorted(set(fields) - set(OPTIONAL_FIELDS))
  if unknown:
    raise ValueError(f"batch_fields: unknown batch field(s) {unknown}; "
                     f"optional fields: {list(OPTIONAL_FIELDS)}")
  return fields


def num_steps(rows: AnyBatch) -> int:
  """Steps S of stacked batches (every field [S, B, ...])."""
  return int(rows.mask.shape[0])


def take_steps(rows: AnyBatch, lo: int, hi: int) -> AnyBatch:
  """Steps [lo, hi) of stacked batches, same type (None fields kept)."""
  return type(rows)(*(None if v is None else v[lo:hi] for v in rows))

"""Scoring engine of the service: the loaded model, top-K and micro-batching.

No web framework here: `ServingModel` holds one bundle version ready to
score, `Scorer` answers a list of jobs with one jitted batched top-K call per
group, and `MicroBatcher` groups concurrent requests into such lists.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec import bundle as bundle_lib
from jaxrec import topk


class UnknownIdError(KeyError):
  """An original user or item id the model does not know (-> HTTP 404)."""

  def __init__(self, kind: str, value: Any, count: int):
    super().__init__(kind, value)
    self.message = (f"unknown {kind} id {value!r}: not one of the model's "
                    f"{count} {kind}s")

  def __str__(self) -> str:
    return self.message


def _id_key(value: Any, integer_ids: bool) -> Optional[str]:
  """Lookup key of an original id given as int or string (None: invalid)."""
  if isinstance(value, bool):
    return None
  if integer_ids:
    try:
      return str(int(str(value).strip()))
    except ValueError:
      return None
  return str(value)


class ServingModel(NamedTuple):
  """One bundle version, ready to score.

  Attributes:
    version: the bundle version every response carries.
    metadata: the bundle metadata.
    user_vectors: user representations. # [U, d]
    item_vectors: item representations. # [I, d]
    item_fold: fold-in terms, or None. # [I, d]
    items_device: item_vectors on the device. # [I, d]
    unit_device: L2-normalised item vectors (similar items). # [I, d]
    user_index: lookup key of an original user id -> row.
    item_index: lookup key of an original item id -> row.
    user_ids: original user ids, JSON-ready. # [U]
    item_ids: original item ids, JSON-ready. # [I]
    seen_indptr: CSR row pointers of each user's seen items. # [U + 1]
    seen_indices: seen item rows. # [nnz]
    integer_users: whether user ids are integers.
    integer_items: whether item ids are integers.
    source: the decoded bundle (fold-in terms, text map).
    ann: approximate index over item_vectors (`ann.HnswIndex`), or None for
      exact scoring.
  """
  version: str
  metadata: dict
  user_vectors: np.ndarray
  item_vectors: np.ndarray
  item_fold: Optional[np.ndarray]
  items_device: jax.Array
  unit_device: jax.Array
  user_index: dict
  item_index: dict
  user_ids: list
  item_ids: list
  seen_indptr: np.ndarray
  seen_indices: np.ndarray
  integer_users: bool
  integer_items: bool
  source: bundle_lib.Bundle
  ann: Optional[Any] = None

  @classmethod
  def from_bundle(cls, bundle: bundle_lib.Bundle) -> "ServingModel":
    """Builds the serving state (device arrays, id lookups) of a bundle."""
    items = np.ascontiguousarray(bundle.item_vectors, np.float32)
    norms = np.linalg.norm(items, axis=1, keepdims=True)
    unit = items / np.maximum(norms, 1e-12)
    int_users = np.issubdtype(bundle.user_ids.dtype, np.integer)
    int_items = np.issubdtype(bundle.item_ids.dtype, np.integer)
    user_ids = bundle.user_ids.tolist()
    item_ids = bundle.item_ids.tolist()
    return cls(
        bundle.version, bundle.metadata,
        np.ascontiguousarray(bundle.user_vectors, np.float32), items,
        bundle.item_fold, jax.device_put(items), jax.device_put(unit),
        {str(v): i for i, v in enumerate(user_ids)},
        {str(v): i for i, v in enumerate(item_ids)},
        user_ids, item_ids, bundle.seen_indptr, bundle.seen_indices,
        int_users, int_items, bundle)

  @property
  def num_items(self) -> int:
    return self.item_vectors.shape[0]

  def user_rows(self, users: Sequence[Any]) -> np.ndarray:
    """Rows of original user ids. # [n]

    Raises:
      UnknownIdError: the first unknown id.
    """
    return _rows("user", users, self.user_index, self.integer_users,
                 len(self.user_ids))

  def item_rows(self, items: Sequence[Any]) -> np.ndarray:
    """Rows of original item ids. # [n]

    Raises:
      UnknownIdError: the first unknown id.
    """
    return _rows("item", items, self.item_index, self.integer_items,
                 len(self.item_ids))

  def seen(self, user_row: int) -> np.ndarray:
    """Train + valid item rows of a user. # [n]"""
    return self.seen_indices[self.seen_indptr[user_row]:
                             self.seen_indptr[user_row + 1]]

  def fold_in(self, item_rows: np.ndarray,
              text: Optional[np.ndarray] = None) -> np.ndarray:
    """A new user's vector from its items / text (`bundle.fold_in`). # [d]

    Raises:
      ValueError: neither items nor a text the model can use.
    """
    return bundle_lib.fold_in(self.source, item_rows,
                              text).astype(np.float32)

  @property
  def text_dim(self) -> int:
    """Size of the text features the model maps (0: not a text model)."""
    ego = self.source.text_ego
    return 0 if ego is None else int(ego["item_text"].shape[1])


class Job(NamedTuple):
  """Top-k lists for a few query vectors against one model version.

  Attributes:
    queries: user vectors (or item vectors for similar items). # [n, d]
    exclude: item rows masked per query (each [m_j]).
    k: list length (1 <= k <= num_items).
    similar: rank by cosine over items (similar items) instead of the dot
      product with item vectors.
  """
  queries: np.ndarray
  exclude: list
  k: int
  similar: bool = False


class Ranked(NamedTuple):
  """One query's top-k: item rows and their scores, best first."""
  rows: np.ndarray  # [<= k]
  scores: np.ndarray  # [<= k]


@functools.partial(jax.jit, static_argnums=3)
def batched_top_k(queries: jax.Array, items: jax.Array, mask: jax.Array,
                  k: int) -> tuple[jax.Array, jax.Array]:
  """Masked top-k of queries x items. (values [B, k], rows [B, k])."""
  scores = queries @ items.T  # [B, I]
  scores = jnp.where(mask, -jnp.inf, scores)
  return topk.chunked_top_k(scores, k)


class Scorer:
  """Answers lists of jobs with one `batched_top_k` call per group.

  Rows are padded to a power of two and k rounded up to one, so a few
  compilations serve every batch (`warm_up` compiles the common ones).

  Attributes:
    max_rows: most query rows per jitted call.
  """

  def __init__(self, max_rows: int = 256):
    self.max_rows = int(topk.next_pow2(max_rows))

  def warm_up(self, model: ServingModel, k: int = 20) -> None:
    """Compiles `batched_top_k` for every row bucket at list length k."""
    dim = model.user_vectors.shape[1]
    rows = 1
    while rows <= self.max_rows:
      self.run(model, [Job(np.zeros((rows, dim), np.float32), [], k)])
      rows *= 2

  def run(self, model: ServingModel, jobs: Sequence[Job]) -> list[list[Ranked]]:
    """Top-k lists of every query of every job (one version: `model`).

    Args:
      model: the version all jobs were resolved against.
      jobs: the grouped requests.

    Returns:
      Per job, one `Ranked` per query; masked items never appear.
    """
    out: list[list[Optional[Ranked]]] = [[None] * len(j.queries) for j in jobs]
    for similar in (False, True):
      flat = [(j, r) for j, job in enumerate(jobs) if job.similar == similar
              for r in range(len(job.queries))]
      for lo in range(0, len(flat), self.max_rows):  # device-sized chunks
        self._run_chunk(model, jobs, flat[lo:lo + self.max_rows], similar,
                        out)
    return out

  def _run_chunk(self, model, jobs, chunk, similar, out) -> None:
    if model.ann is not None and not similar:
      self._run_ann(model, jobs, chunk, out)
      return
    num_items = model.num_items
    n = len(chunk)
    rows = topk.next_pow2(n)
    k = min(topk.next_pow2(max(jobs[j].k for j, _ in chunk)), num_items)
    queries = np.zeros((rows, model.user_vectors.shape[1]), np.float32)
    mask = np.zeros((rows, num_items), bool)  # [B, I]
    for b, (j, r) in enumerate(chunk):  # one row per query
      queries[b] = jobs[j].queries[r]
      if r < len(jobs[j].exclude):
        mask[b, jobs[j].exclude[r]] = True
    items = model.unit_device if similar else model.items_device
    values, idx = batched_top_k(queries, items, mask, k)
    values, idx = np.asarray(values), np.asarray(idx)
    for b, (j, r) in enumerate(chunk):
      keep = np.isfinite(values[b])[:jobs[j].k]
      out[j][r] = Ranked(idx[b, :jobs[j].k][keep],
                         values[b, :jobs[j].k][keep])

  def _run_ann(self, model, jobs, chunk, out) -> None:
    # Approximate recommendations; similar items stay exact (cosine).
    k = max(jobs[j].k for j, _ in chunk)
    queries = np.stack([jobs[j].queries[r] for j, r in chunk])
    exclude = [np.asarray(jobs[j].exclude[r]) if r < len(jobs[j].exclude)
               else np.zeros(0, np.int64) for j, r in chunk]
    rows, scores = model.ann.search(queries, k, exclude)
    for b, (j, r) in enumerate(chunk):
      keep = rows[b, :jobs[j].k] >= 0
      out[j][r] = Ranked(rows[b, :jobs[j].k][keep],
                         scores[b, :jobs[j].k][keep])


class MicroBatcher:
  """Groups concurrent requests into one `Scorer.run` call.

  A worker task takes every request already queued (up to `max_batch` jobs)
  and, when that is more than one (concurrent load) but the batch is not
  full, waits at most `max_wait_s` for more; the batch is then scored on one
  executor thread while new requests queue up. Jobs of different model
  versions (a reload in between) are scored in separate calls, each against
  its own version. `max_batch=1` scores every request on its own (no
  micro-batching).

  Attributes:
    scorer: the scorer.
    max_batch: most jobs per call.
    max_wait_s: longest wait for a batch to fill.
  """

  def __init__(self, scorer: Scorer, max_batch: int = 64,
               max_wait_s: float = 0.002):
    self.scorer = scorer
    self.max_batch = max(1, int(max_batch))
    self.max_wait_s = max(0.0, float(max_wait_s))
    self._queue: Optional[asyncio.Queue] = None
    self._task: Optional[asyncio.Task] = None
    self._executor = concurrent.futures.ThreadPoolExecutor(
        1, thread_name_prefix="jaxrec-scorer")
    self.batches = 0
    self.jobs = 0

  def start(self) -> None:
    """Starts the worker task on the running event loop."""
    self._queue = asyncio.Queue()
    self._task = asyncio.get_running_loop().create_task(self._work())

  async def stop(self) -> None:
    """Cancels the worker task and releases the executor."""
    if self._task is not None:
      self._task.cancel()
      try:
        await self._task
      except asyncio.CancelledError:
        pass
    self._executor.shutdown(wait=False)

  async def submit(self, model: ServingModel, job: Job) -> list[Ranked]:
    """Scores one job in the next batch; returns its `Ranked` lists."""
    future = asyncio.get_running_loop().create_future()
    self._queue.put_nowait((model, job, future))
    return await future

  async def _collect(self) -> list:
    batch = [await self._queue.get()]
    while len(batch) < self.max_batch and not self._queue.empty():
      batch.append(self._queue.get_nowait())
    if len(batch) == 1:
      # A lone request means no concurrent load: waiting would only add
      # latency.
      return batch
    deadline = time.monotonic() + self.max_wait_s
    while len(batch) < self.max_batch:
      if not self._queue.empty():
        batch.append(self._queue.get_nowait())
        continue
      left = deadline - time.monotonic()
      if left <= 0:
        break
      try:
        batch.append(await asyncio.wait_for(self._queue.get(), left))
      except asyncio.TimeoutError:
        break
    return batch

  async def _work(self) -> None:
    loop = asyncio.get_running_loop()
    while True:
      batch = await self._collect()
      groups: dict[int, list] = {}
      for entry in batch:  # one group per model version
        groups.setdefault(id(entry[0]), []).append(entry)
      for group in groups.values():
        model = group[0][0]
        jobs = [job for _, job, _ in group]
        try:
          results = await loop.run_in_executor(self._executor,
                                               self.scorer.run, model, jobs)
        except Exception as err:  # pylint: disable=broad-except
          logging.exception("scoring failed")
          for _, _, future in group:
            if not future.done():
              future.set_exception(err)
          continue
        self.batches += 1
        self.jobs += len(jobs)
        for (_, _, future), result in zip(group, results):
          if not future.done():  # a cancelled (disconnected) request
            future.set_result(result)


def _rows(kind: str, ids: Sequence[Any], index: dict, integer: bool,
          total: int) -> np.ndarray:
  """Rows of original `kind` ids through `index`. # [n]

  Raises:
    UnknownIdError: the first unknown id.
  """
  rows = np.empty(len(ids), np.int64)
  for n, key in enumerate(ids):  # one entry per requested id
    row = index.get(_id_key(key, integer))
    if row is None:
      raise UnknownIdError(kind, key, total)
    rows[n] = row
  return rows

"""Exact top-K selection for wide score rows (full-ranking evaluation).

On CPU `jax.lax.top_k` is a single-threaded partial sort that dominates
evaluation time, so for wide rows `chunked_top_k` first takes the maximum of
each contiguous item chunk (a fast reduction), keeps the K chunks with the
largest maxima (the K best items must lie in them) and runs `lax.top_k` on
those K * chunk candidates only. It returns exactly what `jax.lax.top_k`
returns, ties included (lowest item index first).
"""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp


def next_pow2(n: int) -> int:
  """Smallest power of two >= n (1 for n <= 1)."""
  return 1 << max(0, int(n) - 1).bit_length()


def default_chunk_size(num_items: int, k: int) -> int:
  """Chunk size for `chunked_top_k` (0 = plain `lax.top_k` is cheaper).

  Args:
    num_items: row width I.
    k: number of items to select.

  Returns:
    A power of two near sqrt(I / k) (balancing the two top-k stages), or 0 when
    the rows are too narrow for the two-stage selection to pay off.
  """
  chunk = next_pow2(max(1, int(round(math.sqrt(num_items / max(k, 1))))))
  chunk = max(chunk, 8)
  if num_items < 4 * k * chunk:
    return 0
  return chunk


def chunked_top_k(scores: jax.Array, k: int,
                  chunk_size: Optional[int] = None) -> tuple[jax.Array, jax.Array]:
  """Exact row-wise top-k, equal to `jax.lax.top_k` (ties: lowest index first).

  The row is cut into contiguous chunks of `chunk_size` items. If v is the
  k-th largest chunk maximum, every one of the k best items is >= v, so its
  chunk's maximum is >= v: the k best items lie in the k chunks with the
  largest maxima (with ties between chunk maxima resolved towards lower chunk
  ids, which also reproduces lax.top_k's lowest-index tie-breaking).

  Args:
    scores: float scores. # [B, I]
    k: number of items to keep (k <= I).
    chunk_size: items per chunk; None picks `default_chunk_size`, 0 (or rows
      too narrow) falls back to `jax.lax.top_k`.

  Returns:
    (values, indices): top-k scores, descending, and their int32 column
    indices. # [B, k], [B, k]
  """
  batch, num_items = scores.shape
  if chunk_size is None:
    chunk_size = default_chunk_size(num_items, k)
  num_chunks = -(-num_items // max(chunk_size, 1))
  if chunk_size <= 0 or num_chunks <= k:
    return jax.lax.top_k(scores, k)
  pad = num_chunks * chunk_size - num_items
  neg_inf = jnp.array(-jnp.inf, scores.dtype)
  chunk_max = jax.lax.reduce_window(
      scores, neg_inf, jax.lax.max, (1, chunk_size), (1, chunk_size),
      padding=((0, 0), (0, pad)))  # [B, C]
  _, best_chunks = jax.lax.top_k(chunk_max, k)  # [B, k]
  best_chunks = jnp.sort(best_chunks, axis=1)  # ascending => ascending items
  cand_idx = (best_chunks[:, :, None] * chunk_size
              + jnp.arange(chunk_size, dtype=jnp.int32))  # [B, k, S]
  cand_idx = cand_idx.reshape(batch, k * chunk_size)  # [B, k*S]
  in_range = cand_idx < num_items
  cand = jnp.take_along_axis(
      scores, jnp.minimum(cand_idx, num_items - 1), axis=1)  # [B, k*S]
  cand = jnp.where(in_range, cand, neg_inf)
  values, pos = jax.lax.top_k(cand, k)  # [B, k]
  return values, jnp.take_along_axis(cand_idx, pos, axis=1)

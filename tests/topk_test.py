"""Tests for jaxrec.topk: the two-stage top-K equals jax.lax.top_k exactly."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import topk


@pytest.mark.parametrize("width,chunk", [(1000, 16), (997, 32), (333, 8)])
def test_chunked_top_k_equals_lax_top_k_with_ties(width, chunk):
  rng = np.random.default_rng(width)
  scores = rng.integers(0, 40, (12, width)).astype(np.float32)  # many ties
  scores[0, :] = -np.inf  # no finite score
  scores[1, 5:] = -np.inf  # fewer than k finite scores
  scores[2, :] = 1.0  # all tied
  values, idx = jax.jit(topk.chunked_top_k, static_argnums=(1, 2))(
      scores, 20, chunk)
  ref_values, ref_idx = jax.jit(jax.lax.top_k, static_argnums=1)(scores, 20)
  chex.assert_trees_all_equal((values, idx), (ref_values, ref_idx))
  chex.assert_type(idx, jnp.int32)


def test_default_chunk_size():
  assert topk.default_chunk_size(40981, 20) in (32, 64)
  assert topk.default_chunk_size(100, 20) == 0  # too narrow: plain lax.top_k


@pytest.mark.parametrize("n,want", [(0, 1), (1, 1), (2, 2), (3, 4), (64, 64), (65, 128)])
def test_next_pow2(n, want):
  assert topk.next_pow2(n) == want

"""Counter-based random numbers from an integer hash, cheaper than threefry.

`jax.random.uniform` (threefry) dominates the cost of SimGCL's noise, NGCF's
dropout and SGL's edge dropout on CPU; these draws hash a counter (or a pair
of ids) with two seeds taken from the key, so each is a pure function of the
key and its inputs. 24 random bits per number.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _hash32(x: jnp.ndarray) -> jnp.ndarray:
  """'lowbias32' integer hash (C. Wellons) on uint32. # same shape"""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def pair_uniform(rng: jax.Array, a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """Uniform [0, 1) numbers that are a function of (rng, a, b). # [E]

  Used to give the two directions of an undirected edge the same draw
  without knowing where the reverse edge is stored.
  """
  seed = jax.random.bits(rng, (2,), jnp.uint32)
  h = _hash32(a.astype(jnp.uint32) ^ seed[0])
  h = _hash32(h ^ (b.astype(jnp.uint32) * jnp.uint32(0x9E3779B9)) ^ seed[1])
  return (h >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def _counter_bits(rng: jax.Array, shape: tuple) -> jnp.ndarray:
  """24 random bits per element as int32: hash(hash(k ^ s0) ^ s1) >> 8.

  k is the element's row-major index, (s0, s1) two words drawn from `rng`.
  The counter is built from per-axis iotas (no flat array to reshape) and
  the bits leave as int32, whose conversion to float is one instruction
  (uint32's is not); both are exact, the values those of a flat counter.
  """
  seed = jax.random.bits(rng, (2,), jnp.uint32)
  counter = jnp.zeros(shape, jnp.uint32)
  stride = 1
  for axis in reversed(range(len(shape))):
    counter = counter + jax.lax.broadcasted_iota(
        jnp.uint32, shape, axis) * jnp.uint32(stride)
    stride *= shape[axis]
  h = _hash32(_hash32(counter ^ seed[0]) ^ seed[1])
  return (h >> 8).astype(jnp.int32)


def fast_uniform(rng: jax.Array, shape: tuple,
                 dtype=jnp.float32) -> jnp.ndarray:
  """Uniform [0, 1) array from a counter-based integer hash of `rng`.

  A cheap stand-in for `jax.random.uniform` (several times faster on CPU,
  where threefry dominates SimGCL's noise and NGCF's dropout): element k is
  hash(hash(k ^ s0) ^ s1) with (s0, s1) drawn from `rng`, so it is a pure
  function of (rng, shape). 24 random bits per number.
  """
  bits = _counter_bits(rng, tuple(shape))
  return (bits.astype(jnp.float32) * (1.0 / (1 << 24))).astype(dtype)


def fast_dropout(rng: jax.Array, x: jnp.ndarray, rate: float) -> jnp.ndarray:
  """Inverted dropout of x with `fast_uniform` draws. # same shape"""
  if rate <= 0.0:
    return x
  keep = fast_uniform(rng, x.shape) >= rate
  return jnp.where(keep, x / (1.0 - rate), 0.0)


def uniform_noise(rng: jax.Array, x: jnp.ndarray, eps: float) -> jnp.ndarray:
  """SimGCL noise: sign(x) * eps * u / ||u||, u ~ U(0, 1)^d per row. # [N, d]

  Every row has norm eps (where x has no zero entry) and lies in the same
  hyperoctant as x, so the perturbation rotates x by a small angle. u is
  `fast_uniform(rng, x.shape)`; since u / ||u|| does not depend on u's
  scale, the 24-bit integers 2^24 u are normalised directly (one fused
  pass, no [N, d] scale array).
  """
  v = _counter_bits(rng, x.shape).astype(jnp.float32)  # [N, d] = 2^24 u
  norm = jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True))  # [N, 1]
  scale = eps / jnp.maximum(norm, 1e-12 * (1 << 24))
  return (jnp.sign(x) * v * scale).astype(x.dtype)


__all__ = ["fast_dropout", "fast_uniform", "pair_uniform", "uniform_noise"]

"""A Llama-family decoder in Flax (SmolLM2, Llama 2/3, Qwen2-style), with a KV cache.

Pre-norm transformer blocks: RMSNorm -> grouped-query self-attention with
rotary position embeddings (RoPE, `rope_theta` from the checkpoint) ->
residual; RMSNorm -> SwiGLU feed-forward (`down(silu(gate(x)) * up(x))`) ->
residual; a final RMSNorm and the output projection (the token embedding
transposed when the checkpoint ties them). Q/K/V biases exist for
Qwen2-style checkpoints only.

The blocks are one `nn.scan` over layers (parameters stacked on a leading
[num_layers] axis), so a 30-layer model compiles as fast as a 1-layer one.
RoPE uses the Hugging Face layout (`rotate_half`: pairs (i, i + head_dim/2)),
so `jaxrec.lm.gguf` undoes llama.cpp's Q/K row permutation when loading.

The KV cache has a fixed number of slots; every row of a batch writes the
same slots (a prompt batch is left-padded), and each row has its own count
of leading pad slots: a row's RoPE position is `slot - pad`, and its queries
see the slots in [pad, own slot]. `jaxrec.lm.generate` drives it.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp


class LlamaConfig(NamedTuple):
  """Hyper-parameters of a Llama-family decoder (from GGUF metadata)."""
  vocab_size: int
  dim: int  # model width
  num_layers: int
  num_heads: int  # query heads
  num_kv_heads: int  # key/value heads (grouped-query attention)
  head_dim: int
  hidden_dim: int  # SwiGLU inner width
  rope_theta: float = 10000.0
  norm_eps: float = 1e-5
  tie_embeddings: bool = True  # no separate output projection
  qkv_bias: bool = False  # Qwen2-style biases on the Q/K/V projections
  max_positions: int = 2048  # context length the checkpoint was trained for


class KVCache(NamedTuple):
  """Keys and values of every layer, one slot per token position."""
  k: jax.Array  # [num_layers, B, S, num_kv_heads, head_dim]
  v: jax.Array  # [num_layers, B, S, num_kv_heads, head_dim]


def init_cache(config: LlamaConfig, batch: int, slots: int,
               dtype=jnp.float32) -> KVCache:
  """An empty cache of `slots` positions for `batch` rows.

  Args:
    config: the model's hyper-parameters.
    batch: rows.
    slots: token positions the cache holds (prompt + new tokens).
    dtype: storage dtype of keys and values.

  Returns:
    Zero keys and values.
  """
  shape = (config.num_layers, batch, slots, config.num_kv_heads,
           config.head_dim)
  return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


class RMSNorm(nn.Module):
  """x / rms(x) * scale, computed in float32."""
  eps: float
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", nn.initializers.ones, (x.shape[-1],),
                       jnp.float32)
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + self.eps)
    return (y * scale).astype(self.dtype)


def rope_tables(positions: jax.Array, head_dim: int, theta: float
                ) -> tuple[jax.Array, jax.Array]:
  """cos and sin of the rotary angles. # [B, T, head_dim] each

  Args:
    positions: token positions. # [B, T]
    head_dim: per-head width (even).
    theta: RoPE base frequency.

  Returns:
    (cos, sin), each repeated over the two halves of a head.
  """
  inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32)
                              / head_dim))  # [head_dim / 2]
  angles = positions.astype(jnp.float32)[..., None] * inv_freq
  angles = jnp.concatenate([angles, angles], -1)  # [B, T, head_dim]
  return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """Rotates pairs (i, i + head_dim/2) of every head. x: [B, T, H, head_dim]."""
  half = x.shape[-1] // 2
  x32 = x.astype(jnp.float32)
  rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], -1)
  out = x32 * cos[:, :, None] + rotated * sin[:, :, None]
  return out.astype(x.dtype)


class _Inputs(NamedTuple):
  """What every block sees besides the hidden states (broadcast over layers)."""
  cos: jax.Array  # [B, T, head_dim]
  sin: jax.Array  # [B, T, head_dim]
  mask: jax.Array  # [B, T, S] bool: query t may attend to cache slot s
  start: jax.Array  # [] int32: the cache slot of the first input token


class Block(nn.Module):
  """One pre-norm decoder layer; scanned over layers by `Llama`."""
  config: LlamaConfig
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, h, layer_cache, inputs: _Inputs):
    cfg = self.config
    dense = lambda n, name, bias=False: nn.Dense(  # noqa: E731
        n, use_bias=bias, dtype=self.dtype, param_dtype=jnp.float32, name=name)
    batch, length = h.shape[:2]
    k_cache, v_cache = layer_cache  # [B, S, Hkv, hd] each
    x = RMSNorm(cfg.norm_eps, self.dtype, name="attn_norm")(h)
    q = dense(cfg.num_heads * cfg.head_dim, "attn_q", cfg.qkv_bias)(x)
    k = dense(cfg.num_kv_heads * cfg.head_dim, "attn_k", cfg.qkv_bias)(x)
    v = dense(cfg.num_kv_heads * cfg.head_dim, "attn_v", cfg.qkv_bias)(x)
    q = q.reshape(batch, length, cfg.num_heads, cfg.head_dim)
    k = k.reshape(batch, length, cfg.num_kv_heads, cfg.head_dim)
    v = v.reshape(batch, length, cfg.num_kv_heads, cfg.head_dim)
    q = apply_rope(q, inputs.cos, inputs.sin)
    k = apply_rope(k, inputs.cos, inputs.sin)
    zero = jnp.zeros((), jnp.int32)
    at = (zero, inputs.start, zero, zero)
    k_cache = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), at)
    v_cache = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), at)
    group = cfg.num_heads // cfg.num_kv_heads
    q = q.reshape(batch, length, cfg.num_kv_heads, group, cfg.head_dim)
    scores = jnp.einsum("btkgd,bskd->bkgts", q, k_cache.astype(self.dtype),
                        preferred_element_type=jnp.float32)
    scores = scores / jnp.sqrt(jnp.float32(cfg.head_dim))
    # A large finite negative, not -inf: a pad query that sees no slot gets
    # a uniform (unused) distribution instead of NaNs.
    scores = jnp.where(inputs.mask[:, None, None], scores, -1e30)
    probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v_cache.astype(self.dtype))
    out = out.reshape(batch, length, cfg.num_heads * cfg.head_dim)
    h = h + dense(cfg.dim, "attn_output")(out)
    x = RMSNorm(cfg.norm_eps, self.dtype, name="ffn_norm")(h)
    gated = nn.silu(dense(cfg.hidden_dim, "ffn_gate")(x)) * dense(
        cfg.hidden_dim, "ffn_up")(x)
    h = h + dense(cfg.dim, "ffn_down")(gated)
    return h, (k_cache, v_cache)


class Llama(nn.Module):
  """The decoder: token ids -> next-token logits, reading and writing a cache.

  Parameter names follow GGUF's tensor names (`token_embd`, `blk.N.attn_q`,
  ... stacked under `blocks`, `output_norm`, `output`).
  """
  config: LlamaConfig
  dtype: jnp.dtype = jnp.float32  # compute dtype (float32 or bfloat16)

  @nn.compact
  def __call__(self, tokens: jax.Array, pad: jax.Array, start: jax.Array,
               cache: KVCache, last_only: bool = False
               ) -> tuple[jax.Array, KVCache]:
    """Runs tokens in cache slots [start, start + T).

    Args:
      tokens: input ids. # [B, T] int32
      pad: leading pad slots of each row (left padding). # [B] int32
      start: cache slot of tokens[:, 0] (the same for every row). # [] int32
      cache: keys/values of slots before `start` (later slots are ignored).
      last_only: logits of the last position only (a prompt pass needs no
        others; the output projection is the costliest matmul).

    Returns:
      (float32 logits # [B, T or 1, vocab], the cache with these tokens
      written).
    """
    cfg = self.config
    batch, length = tokens.shape
    slots = cache.k.shape[2]
    embed = nn.Embed(cfg.vocab_size, cfg.dim, dtype=self.dtype,
                     param_dtype=jnp.float32, name="token_embd")
    h = embed(tokens)
    query_slot = start + jnp.arange(length, dtype=jnp.int32)  # [T]
    positions = jnp.maximum(query_slot[None] - pad[:, None], 0)  # [B, T]
    cos, sin = rope_tables(positions, cfg.head_dim, cfg.rope_theta)
    key_slot = jnp.arange(slots, dtype=jnp.int32)  # [S]
    mask = ((key_slot[None, None] <= query_slot[None, :, None])
            & (key_slot[None, None] >= pad[:, None, None]))  # [B, T, S]
    blocks = nn.scan(Block, variable_axes={"params": 0},
                     split_rngs={"params": True}, in_axes=(0, nn.broadcast),
                     length=cfg.num_layers)
    h, (k, v) = blocks(cfg, self.dtype, name="blocks")(
        h, (cache.k, cache.v),
        _Inputs(cos, sin, mask, jnp.asarray(start, jnp.int32)))
    if last_only:
      h = h[:, -1:]
    h = RMSNorm(cfg.norm_eps, self.dtype, name="output_norm")(h)
    if cfg.tie_embeddings:
      logits = embed.attend(h)
    else:
      logits = nn.Dense(cfg.vocab_size, use_bias=False, dtype=self.dtype,
                        param_dtype=jnp.float32, name="output")(h)
    return logits.astype(jnp.float32), KVCache(k, v)


def init_params(config: LlamaConfig, seed: int = 0, scale: float = 0.02
                ) -> dict:
  """Random parameters (normal, std `scale`), for tests of tiny configs.

  Args:
    config: hyper-parameters.
    seed: PRNG seed.
    scale: standard deviation of the weight matrices.

  Returns:
    The Flax parameter tree {'params': ...}.
  """
  model = Llama(config)
  cache = init_cache(config, 1, 4)
  params = model.init(jax.random.key(seed), jnp.zeros((1, 4), jnp.int32),
                      jnp.zeros((1,), jnp.int32), jnp.int32(0), cache)
  leaves, tree = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  out = []
  for (path, leaf), key in zip(leaves, keys):
    name = jax.tree_util.keystr(path)
    if "scale" in name:  # RMSNorm weights near 1
      out.append(1.0 + 0.1 * jax.random.normal(key, leaf.shape, leaf.dtype))
    else:
      out.append(scale * jax.random.normal(key, leaf.shape, leaf.dtype))
  return jax.tree_util.tree_unflatten(tree, out)


@functools.partial(jax.jit, static_argnames=("config", "dtype"))
def forward(config: LlamaConfig, params: dict, tokens: jax.Array,
            pad: Optional[jax.Array] = None, dtype=jnp.float32
            ) -> jax.Array:
  """Logits of a whole sequence batch without a cache kept (for tests).

  Args:
    config: hyper-parameters.
    params: {'params': ...}.
    tokens: ids, left-padded. # [B, T]
    pad: leading pad tokens per row (default none). # [B]
    dtype: compute dtype.

  Returns:
    float32 logits. # [B, T, vocab]
  """
  batch, length = tokens.shape
  pad = jnp.zeros((batch,), jnp.int32) if pad is None else pad
  logits, _ = Llama(config, dtype).apply(
      params, tokens, pad, jnp.int32(0),
      init_cache(config, batch, length, dtype))
  return logits

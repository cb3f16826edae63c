"""Batched text generation with `jaxrec.lm.llama`: a KV cache and one jitted loop.

Prompts of different lengths are left-padded to a common length P (rounded
up to `PROMPT_BUCKET` so that few shapes compile); each row keeps its own
count of pad slots, which gives it its own RoPE positions and hides the pads
from its attention, so a row's tokens do not depend on the rest of its batch.
One jitted function runs the prompt pass (prefill) and then the decode steps
in a `lax.while_loop`: each step feeds the previous token at cache slot
P + step and samples the next one, greedily (`temperature == 0`) or from the
temperature-scaled distribution cut to its top-p nucleus, with a PRNG key
folded with the step. A row stops at its first end-of-sequence id (later
positions hold `pad_id`); the loop stops when every row has stopped or after
`max_new_tokens`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.lm.llama import Llama, LlamaConfig, init_cache

PROMPT_BUCKET = 32  # prompt lengths are padded up to a multiple of this


class Generation(NamedTuple):
  """New tokens of each prompt."""
  tokens: np.ndarray  # [B, max_new_tokens] int32; pad_id after a row stops
  lengths: np.ndarray  # [B] new tokens before the first EOS (EOS excluded)
  finished: np.ndarray  # [B] bool: the row produced an EOS


def sample_logits(logits: jax.Array, keys: jax.Array, temperature,
                  top_p, greedy: bool = False) -> jax.Array:
  """Next token of each row: argmax, or a nucleus sample.

  Args:
    logits: float32 next-token logits. # [B, vocab]
    keys: one PRNG key per row (unused when greedy). # [B]
    temperature: softmax temperature (> 0; may be traced).
    top_p: keep the smallest set of most likely tokens whose probability
      reaches top_p (1.0 keeps all; may be traced).
    greedy: argmax decoding (temperature and top_p ignored).

  Returns:
    Token ids. # [B] int32
  """
  if greedy:
    return jnp.argmax(logits, -1).astype(jnp.int32)
  scaled = logits / temperature
  order = jnp.argsort(-scaled, axis=-1)  # [B, V] most likely first
  sorted_logits = jnp.take_along_axis(scaled, order, -1)
  probs = jax.nn.softmax(sorted_logits, -1)
  # Keep a token when the mass before it is below top_p (the first always).
  keep_sorted = (jnp.cumsum(probs, -1) - probs) < top_p
  keep = jnp.zeros_like(keep_sorted).at[
      jnp.arange(scaled.shape[0])[:, None], order].set(keep_sorted)
  scaled = jnp.where(keep, scaled, -jnp.inf)
  draw = jax.vmap(lambda k, row: jax.random.categorical(k, row))
  return draw(keys, scaled).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=(
    "config", "max_new_tokens", "pad_id", "greedy", "dtype"))
def _generate(params, tokens, pad, eos, keys, temperature, top_p, *,
              config: LlamaConfig, max_new_tokens: int, pad_id: int,
              greedy: bool, dtype):
  """Prefill + while_loop decode; see `generate`. tokens: [B, P]."""
  model = Llama(config, dtype)
  batch, length = tokens.shape
  cache = init_cache(config, batch, length + max_new_tokens, dtype)
  logits, cache = model.apply(params, tokens, pad, jnp.int32(0), cache,
                              last_only=True)
  sample = functools.partial(sample_logits, temperature=temperature,
                             top_p=top_p, greedy=greedy)
  step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))
  first = sample(logits[:, -1], step_keys(keys, 0))
  out = jnp.full((batch, max_new_tokens), pad_id, jnp.int32)
  out = out.at[:, 0].set(first)
  done = jnp.isin(first, eos)

  def cond(state):
    step, _, _, done = state
    return (step < max_new_tokens) & ~jnp.all(done)

  def body(state):
    step, cache, out, done = state
    prev = jax.lax.dynamic_index_in_dim(out, step - 1, 1, keepdims=True)
    logits, cache = model.apply(params, prev, pad, length + step - 1, cache)
    nxt = sample(logits[:, 0], step_keys(keys, step))
    nxt = jnp.where(done, pad_id, nxt)
    out = jax.lax.dynamic_update_index_in_dim(out, nxt, step, 1)
    return step + 1, cache, out, done | jnp.isin(nxt, eos)

  _, _, out, done = jax.lax.while_loop(
      cond, body, (jnp.int32(1), cache, out, done))
  return out, done


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int,
             bucket: int = PROMPT_BUCKET) -> tuple[np.ndarray, np.ndarray]:
  """Left-pads token lists to a common length (a multiple of `bucket`).

  Args:
    prompts: token ids of each prompt (non-empty).
    pad_id: the id written in pad slots (never attended to).
    bucket: round the length up to a multiple of this.

  Returns:
    (tokens # [B, P] int32, pad slots per row # [B] int32).
  """
  lengths = [len(p) for p in prompts]
  if min(lengths) == 0:
    raise ValueError("generate: every prompt needs at least one token")
  width = -(-max(lengths) // bucket) * bucket
  tokens = np.full((len(prompts), width), pad_id, np.int32)
  for row, p in enumerate(prompts):
    tokens[row, width - len(p):] = p
  return tokens, np.asarray([width - n for n in lengths], np.int32)


def generate(config: LlamaConfig, params: dict,
             prompts: Sequence[Sequence[int]], max_new_tokens: int,
             eos_ids: Sequence[int], pad_id: int, temperature: float = 0.0,
             top_p: float = 1.0, key: Optional[jax.Array] = None,
             dtype=jnp.float32, bucket: int = PROMPT_BUCKET) -> Generation:
  """Continues a batch of prompts.

  Args:
    config: the model's hyper-parameters.
    params: its parameters ({'params': ...}).
    prompts: token ids of each prompt (lengths may differ).
    max_new_tokens: at most this many new tokens per prompt.
    eos_ids: ids that end a row's generation.
    pad_id: id of the pad slots and of the positions after a row stops.
    temperature: 0 = greedy; > 0 samples (then `key` is required).
    top_p: nucleus mass kept when sampling.
    key: PRNG key of the sampling: one key (split over the rows) or one
      per row # [B] (a row's sample then depends on its key only, not on
      the rest of the batch).
    dtype: compute (and cache) dtype.
    bucket: prompt lengths are padded up to a multiple of this.

  Returns:
    The Generation.
  """
  if temperature > 0 and key is None:
    raise ValueError("generate: temperature > 0 needs an explicit PRNG key")
  if max_new_tokens < 1:
    raise ValueError(f"generate: max_new_tokens must be >= 1, got "
                     f"{max_new_tokens}")
  tokens, pad = left_pad(prompts, pad_id, bucket)
  if tokens.shape[1] + max_new_tokens > config.max_positions:
    raise ValueError(f"generate: prompt ({tokens.shape[1]} slots) + "
                     f"{max_new_tokens} new tokens exceed the model's context "
                     f"of {config.max_positions}")
  key = jax.random.key(0) if key is None else key
  keys = jax.random.split(key, len(prompts)) if key.ndim == 0 else key
  if keys.shape != (len(prompts),):
    raise ValueError(f"generate: expected one key or {len(prompts)} keys, "
                     f"got shape {keys.shape}")
  # Temperature, top-p and the EOS ids are traced: one compiled loop per
  # (batch, prompt width, max_new_tokens, greedy or not).
  out, done = _generate(params, jnp.asarray(tokens), jnp.asarray(pad),
                        jnp.asarray(list(eos_ids), jnp.int32), keys,
                        jnp.float32(max(temperature, 1e-6)),
                        jnp.float32(top_p), config=config,
                        max_new_tokens=int(max_new_tokens), pad_id=int(pad_id),
                        greedy=temperature <= 0, dtype=dtype)
  out = np.asarray(out)
  is_eos = np.isin(out, np.asarray(list(eos_ids)))
  lengths = np.where(is_eos.any(1), is_eos.argmax(1), out.shape[1])
  return Generation(out, lengths.astype(np.int32), np.asarray(done))


class TextGeneration(NamedTuple):
  """Decoded generations."""
  texts: list  # one str per prompt (special tokens and EOS left out)
  lengths: np.ndarray  # [B] new tokens before the EOS
  finished: np.ndarray  # [B] bool: stopped at an EOS


class ChatModel:
  """A GGUF chat model: tokenizer + parameters + batched `generate`."""

  def __init__(self, path: str, dtype=jnp.float32):
    """Loads the model.

    Args:
      path: the .gguf file.
      dtype: parameter and compute dtype (float32 or jnp.bfloat16).
    """
    # pylint: disable=g-import-not-at-top
    from jaxrec.lm import gguf
    from jaxrec.lm import tokenizer
    checkpoint = gguf.load(path, dtype=dtype)
    self.path = path
    self.config = checkpoint.config
    self.params = jax.device_put(checkpoint.params)
    self.fingerprint = checkpoint.fingerprint
    self.metadata = checkpoint.metadata
    self.tokenizer = tokenizer.from_gguf(path)
    self.dtype = dtype

  def prompt_ids(self, messages: Sequence[dict]) -> list[int]:
    """Token ids of a chat (template applied, assistant turn opened)."""
    return self.tokenizer.encode(self.tokenizer.chat_prompt(messages))

  def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int,
               temperature: float = 0.0, top_p: float = 1.0,
               key: Optional[jax.Array] = None) -> "TextGeneration":
    """Generated texts with their token counts; see `complete`."""
    tok = self.tokenizer
    gen = generate(self.config, self.params, prompts, max_new_tokens,
                   tok.eos_ids, tok.pad_id, temperature, top_p, key,
                   self.dtype)
    texts = [tok.decode(row[:n].tolist()).strip()
             for row, n in zip(gen.tokens, gen.lengths)]
    return TextGeneration(texts, gen.lengths, gen.finished)

  def complete(self, prompts: Sequence[Sequence[int]], max_new_tokens: int,
               temperature: float = 0.0, top_p: float = 1.0,
               key: Optional[jax.Array] = None) -> list[str]:
    """Generated texts (special tokens and the EOS left out) of token prompts.

    Args:
      prompts: token ids of each prompt (e.g. `prompt_ids`).
      max_new_tokens: at most this many new tokens each.
      temperature: 0 = greedy.
      top_p: nucleus mass when sampling.
      key: PRNG key when sampling.

    Returns:
      One text per prompt.
    """
    return self.generate(prompts, max_new_tokens, temperature, top_p,
                         key).texts

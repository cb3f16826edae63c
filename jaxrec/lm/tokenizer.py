"""The tokenizer and chat template of a GGUF decoder, from its metadata.

A byte-level BPE (`tokenizer.ggml.model == 'gpt2'`) is rebuilt with the
`tokenizers` library from `tokenizer.ggml.tokens` (id = position) and
`tokenizer.ggml.merges`; control and user-defined tokens
(`tokenizer.ggml.token_type` 3 / 4, e.g. '<|im_start|>') become special
tokens that are matched whole. The pre-tokenizer follows
`tokenizer.ggml.pre`, as llama.cpp does:

  * 'smollm': every digit split off (`Digits(individual_digits=True)`), then
    GPT-2's byte-level split;
  * 'gpt2' / 'default' / absent: GPT-2's byte-level split;
  * 'llama-bpe' (Llama 3) and 'qwen2': their split regex, then byte-level.

BOS is prepended only when `tokenizer.ggml.add_bos_token` says so. The chat
template (`tokenizer.chat_template`) is rendered with jinja2 as Hugging Face
does (trim_blocks, lstrip_blocks, `add_generation_prompt`); without jinja2
installed, ChatML templates ('<|im_start|>' ... '<|im_end|>', SmolLM2's and
Qwen2's) are formatted directly and any other template is an error.
"""

from __future__ import annotations

from typing import Optional, Sequence

from jaxrec.data.dataset import DataError

_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types matched whole
# Split regexes of llama.cpp's pre-tokenizer types (before byte-level BPE).
_LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
                 r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|"
                 r"\s+")
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
                r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_TOKENIZERS = ("smollm", "gpt2", "default", "llama-bpe", "qwen2")


class GGUFTokenizer:
  """Encodes / decodes text and formats chats like the GGUF's model."""

  def __init__(self, tokenizer, bos_id: Optional[int], eos_id: int,
               add_bos: bool, chat_template: Optional[str], eos_ids,
               pad_id: int):
    self.tokenizer = tokenizer  # a tokenizers.Tokenizer
    self.bos_id = bos_id
    self.eos_id = eos_id
    self.add_bos = add_bos
    self.chat_template = chat_template
    self.eos_ids = tuple(eos_ids)  # ids that end a generation
    self.pad_id = pad_id

  def encode(self, text: str) -> list[int]:
    """Token ids of `text` (BOS first when the model adds one)."""
    ids = self.tokenizer.encode(text, add_special_tokens=False).ids
    return ([self.bos_id] + ids) if self.add_bos and self.bos_id is not None \
        else ids

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    """`encode` of every text (parallel in the tokenizers library)."""
    out = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
    prefix = [self.bos_id] if self.add_bos and self.bos_id is not None else []
    return [prefix + e.ids for e in out]

  def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
    """Text of token ids (special tokens left out by default)."""
    return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special)

  def chat_prompt(self, messages: Sequence[dict],
                  add_generation_prompt: bool = True) -> str:
    """The model's chat template applied to [{'role', 'content'}, ...].

    Args:
      messages: the conversation.
      add_generation_prompt: end with the assistant turn's opening.

    Returns:
      The prompt text (encode it with `encode`).
    """
    template = self.chat_template
    if not template:
      raise DataError("tokenizer.chat_template: the GGUF file has none; "
                      "expected a chat model")
    try:
      import jinja2.sandbox  # pylint: disable=g-import-not-at-top
    except ImportError:
      return _chatml(messages, template, add_generation_prompt)
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True)
    vocab = self.tokenizer
    tok = lambda i: vocab.id_to_token(i) if i is not None else ""  # noqa: E731
    return env.from_string(template).render(
        messages=list(messages), add_generation_prompt=add_generation_prompt,
        bos_token=tok(self.bos_id), eos_token=tok(self.eos_id))


def _chatml(messages, template: str, add_generation_prompt: bool) -> str:
  """ChatML formatting (no jinja2): SmolLM2's default system turn included."""
  if "<|im_start|>" not in template:
    raise DataError("tokenizer.chat_template: not ChatML; rendering it "
                    "needs jinja2 (pip install jinja2)")
  out = []
  if messages and messages[0]["role"] != "system" and \
      "You are a helpful AI assistant named SmolLM" in template:
    out.append("<|im_start|>system\nYou are a helpful AI assistant named "
               "SmolLM, trained by Hugging Face<|im_end|>\n")
  for m in messages:
    out.append(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
  if add_generation_prompt:
    out.append("<|im_start|>assistant\n")
  return "".join(out)


def from_gguf(path: str) -> GGUFTokenizer:
  """The tokenizer of a GGUF file, built from its metadata.

  Args:
    path: the .gguf file.

  Returns:
    The GGUFTokenizer.

  Raises:
    DataError: a tokenizer model or pre-tokenizer this module does not build
      (the message names the field and the supported values).
  """
  import gguf  # pylint: disable=g-import-not-at-top
  reader = gguf.GGUFReader(path)
  fields = reader.fields

  def get(key, default=None):
    return fields[key].contents() if key in fields else default

  kind = get("tokenizer.ggml.model")
  if kind != "gpt2":
    raise DataError(f"{path}: tokenizer.ggml.model is {kind!r}; expected "
                    f"'gpt2' (byte-level BPE)")
  pre = get("tokenizer.ggml.pre", "default")
  if pre not in PRE_TOKENIZERS:
    raise DataError(f"{path}: tokenizer.ggml.pre is {pre!r}; expected one of "
                    f"{list(PRE_TOKENIZERS)}")
  tokens = get("tokenizer.ggml.tokens")
  merges = get("tokenizer.ggml.merges")
  if not tokens or merges is None:
    raise DataError(f"{path}: tokenizer.ggml.tokens / tokenizer.ggml.merges "
                    f"missing; expected a BPE vocabulary")
  types = get("tokenizer.ggml.token_type", [1] * len(tokens))
  bos = get("tokenizer.ggml.bos_token_id")
  eos = int(get("tokenizer.ggml.eos_token_id"))
  eot = get("tokenizer.ggml.eot_token_id")
  pad = get("tokenizer.ggml.padding_token_id", eos)
  return GGUFTokenizer(
      _build(tokens, merges, types, pre), None if bos is None else int(bos),
      eos, bool(get("tokenizer.ggml.add_bos_token", False)),
      get("tokenizer.chat_template"),
      sorted({eos} | ({int(eot)} if eot is not None else set())), int(pad))


def _build(tokens, merges, types, pre: str):
  """A tokenizers.Tokenizer for a byte-level BPE vocabulary."""
  # pylint: disable=g-import-not-at-top
  from tokenizers import AddedToken, Regex, Tokenizer, decoders, models
  from tokenizers import pre_tokenizers as pt
  vocab = {tok: i for i, tok in enumerate(tokens)}
  pairs = [tuple(m.split(" ", 1)) for m in merges]
  tok = Tokenizer(models.BPE(vocab, pairs, fuse_unk=False,
                             byte_fallback=False))
  if pre in ("gpt2", "default"):
    tok.pre_tokenizer = pt.ByteLevel(add_prefix_space=False, use_regex=True)
  elif pre == "smollm":
    tok.pre_tokenizer = pt.Sequence([
        pt.Digits(individual_digits=True),
        pt.ByteLevel(add_prefix_space=False, use_regex=True)])
  else:
    regex = _LLAMA3_REGEX if pre == "llama-bpe" else _QWEN2_REGEX
    tok.pre_tokenizer = pt.Sequence([
        pt.Split(Regex(regex), behavior="isolated"),
        pt.ByteLevel(add_prefix_space=False, use_regex=False)])
  tok.decoder = decoders.ByteLevel()
  special = [t for t, k in zip(tokens, types) if k in (_CONTROL, _USER_DEFINED)]
  tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                          for t in special])
  return tok

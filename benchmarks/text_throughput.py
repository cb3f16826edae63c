"""Throughput of `jaxrec.text.TextEncoder.encode` on synthetic item descriptions.

For each batch size a fresh encoder first warms up: it encodes one text per
bucket length that the data needs, which compiles the (batch_size, length)
programs (reported as compile time; it includes running one batch per shape).
The timed pass then encodes all N texts with everything compiled.

Usage:
  python benchmarks/text_throughput.py [--n 2000] [--batch_sizes 32,128]
      [--max_length 128] [--dtype float32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position

from jaxrec import text  # pylint: disable=g-import-not-at-top,wrong-import-position

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


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=2000)
  parser.add_argument("--batch_sizes", default="32,128")
  parser.add_argument("--max_length", type=int, default=128)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--model", default=None, help="model dir/hub name (default bundled)")
  parser.add_argument("--buckets", default=None,
                      help="comma-separated padded lengths, e.g. 16,24,32,48,64,96,128")
  args = parser.parse_args()

  texts = synthetic_descriptions(args.n)
  t0 = time.perf_counter()
  buckets = None if args.buckets is None else [int(b) for b in args.buckets.split(",")]
  probe = text.TextEncoder(args.model, max_length=args.max_length, buckets=buckets)
  load_s = time.perf_counter() - t0
  lens = probe.tokenize(texts, pad_to="longest")["attention_mask"].sum(1)  # [n]
  print(f"load average before: {os.getloadavg()[0]:.1f}")
  print(f"device={jax.devices()[0].platform}:{jax.devices()[0].device_kind} "
        f"cpus={os.cpu_count()} jax={jax.__version__} model={probe.model_id}")
  print(f"n={args.n} texts, words 10-40, tokens min/mean/max="
        f"{lens.min()}/{lens.mean():.1f}/{lens.max()}, max_length={args.max_length}, "
        f"dtype={args.dtype}, model load {load_s:.1f}s")
  bucket_of = np.searchsorted(np.array(probe.buckets), lens)  # [n] bucket index per text
  warm_texts = [texts[int(np.flatnonzero(bucket_of == k)[0])] for k in np.unique(bucket_of)]
  padded = np.array(probe.buckets)[bucket_of]  # [n]
  print(f"bucket lengths used: {[probe.buckets[k] for k in np.unique(bucket_of)]}, "
        f"padding overhead {padded.sum() / lens.sum() - 1:.0%} of real tokens")
  dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
  for bs in (int(b) for b in args.batch_sizes.split(",")):
    enc = text.TextEncoder(args.model, max_length=args.max_length, batch_size=bs, dtype=dtype,
                           buckets=buckets)
    t0 = time.perf_counter()
    for t in warm_texts:  # One (bs, length) program per call.
      enc.encode([t], show_progress=False)
    compile_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    emb = enc.encode(texts, show_progress=False, deduplicate=False)  # [n, d]
    run_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    print(f"batch_size={bs:4d}: {args.n / run_s:7.1f} texts/s ({run_s:.1f}s wall for "
          f"{args.n}; {args.n / cpu_s:.1f} texts per CPU-second), "
          f"compile+warm-up {compile_s:.1f}s for {len(warm_texts)} shapes")
  print(f"load average after: {os.getloadavg()[0]:.1f} (other processes share the CPU)")


if __name__ == "__main__":
  main()

"""Throughput of `jaxrec.text.TextEncoder.encode` on synthetic item descriptions.

jaxrec alone, on generated product descriptions of 10-40 words: the
`synthetic` mode of `benchmarks/encoder_throughput.py` (which also compares
against sentence-transformers on real catalogues) with `--baseline none`.
For each batch size a fresh encoder makes one cold pass over the N texts
(compiling the padded shapes that the texts need: compile time and cold
end-to-end time are reported), then `--rounds` timed passes run with
everything compiled.

Usage:
  python -m benchmarks.text_throughput [--n 2000] [--batch_sizes 32,128]
      [--max_length 128] [--dtype float32] [--rounds 1]
"""

from __future__ import annotations

import argparse

from benchmarks import encoder_throughput


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=2000)
  parser.add_argument("--batch_sizes", default="32,128")
  parser.add_argument("--max_length", type=int, default=128)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--model", default=None, help="model dir/hub name (default bundled)")
  parser.add_argument("--buckets", default=None,
                      help="comma-separated padded lengths, e.g. 16,24,32,48,64,96,128")
  parser.add_argument("--rounds", type=int, default=1)
  args = parser.parse_args(argv)
  argv = ["--datasets", "synthetic", "--n", str(args.n), "--batch_sizes", args.batch_sizes,
          "--max_length", str(args.max_length), "--dtype", args.dtype,
          "--rounds", str(args.rounds), "--baseline", "none", "--json", "", "--out", ""]
  for flag, value in (("--model", args.model), ("--buckets", args.buckets)):
    if value is not None:
      argv += [flag, value]
  encoder_throughput.main(argv)


if __name__ == "__main__":
  main()

"""Decoder throughput: jaxrec.lm's Flax Llama on SmolLM2-135M-Instruct (CPU).

Prompts are the item-profile chats of `jaxrec.lm.profile_texts` for the first
items of `--dataset` (chat template applied). For each batch size B the first
B prompts are continued for exactly `--new_tokens` tokens (EOS ignored, so
every row does the same work): one jitted prefill + `lax.while_loop` decode
(`jaxrec.lm.generate.generate`, greedy, float32). The first call of each
shape compiles and is reported apart; `--rounds` timed calls follow.
Reported: generated tokens/s = B * new_tokens / seconds (prefill included),
median over rounds.

llama.cpp (`llama-cpp-python`, when importable) runs the same GGUF file on
the same prompts, one prompt at a time (its Python API has no batched
generation), `--new_tokens` tokens each with EOS ignored, greedy, with
n_threads = the CPU count; its rounds alternate with jaxrec's.

Profiling time: `python -m jaxrec.profiles`' `write_profiles` (greedy,
`--profile_tokens` new tokens at most, EOS stops a row, batch `--profile_batch`)
writes `--profile_n` item and user profiles into a temporary folder; the
seconds per profile are extrapolated to every item and user of the dataset.
A few of these profiles are shown on the page.

Writes the measurements to --json (benchmarks/results/lm_throughput.json)
and renders --out (docs/results/lm_throughput.md) from them.

Usage:
  JAXREC_DATA_ROOT=/work/shared/data python -m benchmarks.lm_throughput
      [--batch_sizes 1,8,32] [--new_tokens 32] [--rounds 2]
      [--profile_n 16] [--profile_tokens 64] [--profile_batch 8]
  python -m benchmarks.lm_throughput --render   # the page from the JSON only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Optional, Sequence

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import common

NAME = "lm_throughput"
_VERSIONED = ("jax", "jaxlib", "flax", "gguf", "tokenizers",
              "llama_cpp_python")


def jaxrec_side(model, prompts: list, new_tokens: int):
  """A callable running one batch through jaxrec (EOS ignored)."""
  from jaxrec.lm import generate
  import jax

  def run():
    gen = generate.generate(model.config, model.params, prompts, new_tokens,
                            eos_ids=(-1,), pad_id=model.tokenizer.pad_id)
    jax.block_until_ready(gen.tokens)
    return gen.tokens
  return run


def llama_cpp_side(llm, prompts: list, new_tokens: int):
  """A callable running the prompts one by one through llama.cpp."""
  def run():
    out = []
    for ids in prompts:
      llm.reset()
      tokens = []
      for tok in llm.generate(ids, temp=0.0, top_k=1, reset=True):
        tokens.append(tok)
        if len(tokens) == new_tokens:
          break
      out.append(tokens)
    return out
  return run


def timed(fn) -> tuple[object, float]:
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def measure(args, model, prompts_all, llm) -> list:
  """Tokens/s rows for each batch size (jaxrec and, if given, llama.cpp)."""
  rows = []
  for bs in args.batch_sizes:
    prompts = prompts_all[:bs]
    sides = {"jaxrec": jaxrec_side(model, prompts, args.new_tokens)}
    if llm is not None:
      sides["llama.cpp"] = llama_cpp_side(llm, prompts, args.new_tokens)
    row = {"batch_size": bs, "prompt_tokens": [len(p) for p in prompts],
           "new_tokens": args.new_tokens,
           "loadavg_before": round(os.getloadavg()[0], 2)}
    first = {}
    for name, fn in sides.items():
      out, sec = timed(fn)
      first[name] = out
      row[f"{name}_first_s"] = round(sec, 3)
    if llm is not None:  # greedy on the same weights: compare the tokens
      ours = [list(map(int, r)) for r in first["jaxrec"]]
      theirs = [list(map(int, r)) for r in first["llama.cpp"]]
      row["same_tokens_rows"] = sum(a == b for a, b in zip(ours, theirs))
    secs = {name: [] for name in sides}
    names = list(sides)
    for r in range(args.rounds):
      for name in (names if r % 2 == 0 else names[::-1]):
        secs[name].append(timed(sides[name])[1])
    work = bs * args.new_tokens
    for name in names:
      row[f"{name}_seconds"] = [round(s, 3) for s in secs[name]]
      row[f"{name}_tokens_per_s"] = round(
          work / statistics.median(secs[name]), 2)
    if llm is not None:
      row["ratio_jaxrec_over_llama_cpp"] = round(
          row["jaxrec_tokens_per_s"] / row["llama.cpp_tokens_per_s"], 3)
    row["loadavg_after"] = round(os.getloadavg()[0], 2)
    rows.append(row)
    print(json.dumps(row), file=sys.stderr)
  return rows


def profile_timing(args, dataset, model) -> dict:
  """Seconds per item / user profile from `--profile_n` written profiles."""
  from jaxrec import profiles
  out = {}
  with tempfile.TemporaryDirectory() as tmp:
    for kind, count in (("item", dataset.num_items),
                        ("user", dataset.num_users)):
      folder = os.path.join(tmp, kind)
      kw = dict(max_new_tokens=args.profile_tokens,
                batch_size=args.profile_batch)
      # A first batch compiles; the timed run writes the next profile_n.
      warm = profiles.write_profiles(dataset, kind, folder, model,
                                     limit=args.profile_batch, **kw)
      stats = profiles.write_profiles(
          dataset, kind, folder, model,
          limit=args.profile_batch + args.profile_n, **kw)
      with open(os.path.join(folder, "profiles.jsonl"),
                encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
      per = stats["seconds"] / max(stats["written"], 1)
      out[kind] = {
          "count": int(count), "timed_profiles": stats["written"],
          "seconds": round(stats["seconds"], 2),
          "warmup_seconds": round(warm["seconds"], 2),
          "seconds_per_profile": round(per, 3),
          "new_tokens_per_profile": round(
              stats["new_tokens"] / max(stats["written"], 1), 1),
          "extrapolated_hours": round(per * count / 3600, 2),
          "examples": [{"id": r["id"], "profile": r["profile"]}
                       for r in records[:4]]}
      print(json.dumps({kind: out[kind]["seconds_per_profile"]}),
            file=sys.stderr)
  return out


def render(result: dict, json_path: str) -> str:
  """The results page from the JSON.

  Args:
    result: the measurements (`main`'s JSON).
    json_path: where they are kept, named on the page.

  Returns:
    The Markdown page.
  """
  hw = result["hardware"]
  lines = [
      "# Decoder throughput and profiling time (SmolLM2-135M-Instruct, CPU)",
      "",
      f"Generated by `{common.as_module_command(result['command'])}` on "
      f"{result['date']}; the data is in `{json_path}`. Hardware: {hw['cpus']}-core {hw['machine']} CPU "
      f"({hw['cpu']}), shared with other jobs (load average per row). "
      f"Model: `{result['model']}` (Q4_1 GGUF, dequantised to float32). "
      "Versions: " + ", ".join(f"{k} {v}" for k, v in
                              result["versions"].items()) + ".",
      "",
      "## Generated tokens per second",
      "",
      f"Item-profile prompts of {result['dataset']} (chat template applied), "
      f"{result['new_tokens']} new tokens per prompt with EOS ignored, greedy; "
      "jaxrec runs the B prompts as one left-padded batch (prefill + jitted "
      "`lax.while_loop` decode, float32), prefill time included. "
      + ("llama.cpp (llama-cpp-python) runs the same prompts one at a time "
         "(its Python API does not batch), same GGUF, greedy; rounds "
         "alternate the order. " if result["llama_cpp"] else
         "llama.cpp: " + result["llama_cpp_note"] + " ")
      + "First call = compile + run.",
      ""]
  head = ["batch", "prompt tokens (min-max)", "jaxrec tokens/s",
          "jaxrec first call s"]
  if result["llama_cpp"]:
    head += ["llama.cpp tokens/s", "jaxrec / llama.cpp",
             "rows with identical tokens"]
  head += ["load avg before / after"]
  rows = []
  for r in result["rows"]:
    cells = [str(r["batch_size"]),
             f"{min(r['prompt_tokens'])}-{max(r['prompt_tokens'])}",
             f"{r['jaxrec_tokens_per_s']:.1f}", f"{r['jaxrec_first_s']:.1f}"]
    if result["llama_cpp"]:
      cells += [f"{r['llama.cpp_tokens_per_s']:.1f}",
                f"{r['ratio_jaxrec_over_llama_cpp']:.2f}",
                f"{r['same_tokens_rows']}/{r['batch_size']}"]
    cells += [f"{r['loadavg_before']} / {r['loadavg_after']}"]
    rows.append(cells)
  lines += common.markdown_table(head, rows)
  prof = result["profiles"]
  lines += [
      "", "## Time to profile every item and user", "",
      f"`jaxrec.profiles.write_profiles` (greedy, at most "
      f"{result['profile_tokens']} new tokens, EOS stops a row, batches of "
      f"{result['profile_batch']} prompts of similar length): one warm-up "
      "batch (compiles), then the timed profiles; the seconds per profile "
      "times the dataset's items / users:", ""]
  lines += common.markdown_table(
      ["kind", "timed profiles", "s / profile", "new tokens / profile",
       "items or users", "extrapolated hours"],
      [[kind, prof[kind]["timed_profiles"],
        f"{prof[kind]['seconds_per_profile']:.2f}",
        f"{prof[kind]['new_tokens_per_profile']:.0f}", prof[kind]["count"],
        f"{prof[kind]['extrapolated_hours']:.1f}"] for kind in ("item", "user")])
  lines += ["", "The full profiling of the dataset was not run; the hours "
            "above are the extrapolation of the timed sample on this shared "
            "CPU.", "", "## Example profiles", "",
            "Greedy profiles written by the timed runs, verbatim (ids are "
            "the dataset's original movieId / userId). Their quality is not "
            "scored here, and whether such profiles help a recommender "
            "(RLMRec-Con / AlphaRec with `config.graph.text_source="
            "'profiles'`) was not measured.", ""]
  for kind in ("item", "user"):
    for ex in prof[kind]["examples"]:
      text = " ".join(ex["profile"].split())
      lines.append(f"- {kind} {ex['id']}: {text}")
  lines += ["", "Reproduce: run the command above; `--render` rewrites this "
            "page from the JSON.", ""]
  return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="ml_latest_small")
  parser.add_argument("--model", default="")
  parser.add_argument("--batch_sizes", default="1,8,32")
  parser.add_argument("--new_tokens", type=int, default=32)
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--profile_n", type=int, default=16)
  parser.add_argument("--profile_tokens", type=int, default=64)
  parser.add_argument("--profile_batch", type=int, default=8)
  parser.add_argument("--baseline", default="auto", choices=["auto", "none"])
  parser.add_argument("--baseline_note", default="",
                      help="Why llama.cpp was not measured (shown on the page "
                      "when llama-cpp-python is not importable).")
  common.add_result_args(parser, NAME)
  args = parser.parse_args(argv)
  if args.render:
    return common.render_page(args.json, args.out,
                              lambda r: render(r, args.json))
  args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
  from jaxrec import profiles
  from jaxrec.lm import generate, gguf, profile_texts
  path = args.model or gguf.default_model_path()
  dataset = profiles.load_dataset(args.dataset, 0, None)
  model = generate.ChatModel(path)
  rows = profile_texts.prompts(dataset, "item")[:max(args.batch_sizes)]
  prompts = [model.prompt_ids(m) for _, m in rows]
  llm, note = None, ""
  if args.baseline == "auto":
    try:
      import llama_cpp
      llm = llama_cpp.Llama(path, n_ctx=512, n_threads=os.cpu_count(),
                            n_batch=512, verbose=False)
    except ImportError as e:
      note = (f"llama-cpp-python not importable ({e}); not measured. "
              + args.baseline_note).strip()
  else:
    note = "not measured (--baseline none)."
  result = {
      "command": common.command(NAME, argv),
      "date": common.today(),
      "hardware": {"cpus": os.cpu_count(), "machine": platform.machine(),
                   "cpu": common.cpu_model()},
      "versions": common.package_versions(_VERSIONED), "dataset": args.dataset,
      "model": os.path.basename(path), "new_tokens": args.new_tokens,
      "rounds": args.rounds, "llama_cpp": llm is not None,
      "llama_cpp_note": note, "profile_tokens": args.profile_tokens,
      "profile_batch": args.profile_batch,
  }
  result["rows"] = measure(args, model, prompts, llm)
  result["profiles"] = profile_timing(args, dataset, model)
  common.write_json(args.json, result)
  common.write_page(args.out, render(result, args.json))
  return result


if __name__ == "__main__":
  main()

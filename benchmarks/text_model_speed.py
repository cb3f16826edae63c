"""Epoch time of the text models against their backbones, measured interleaved.

Every text model (textgnn, alpharec, rlmrec_con and rlmrec_gen over the
lightgcn and simgcl backbones, fusion over lightgcn) and its backbone train
on the same graph, each with its own config (`configs/<model>.py:<preset>`:
its batch size and `num_negatives` are part of the cost). Epochs are timed
exactly as `train.train_and_evaluate` times them: `train.setup_experiment`,
then per epoch `input_pipeline.epoch_batches` and `exp.step_fn` over chunks
of `steps_per_call` steps, ending with the host read of the epoch's mean loss.
One untimed epoch per model compiles (both chunk shapes); then --epochs
rounds run one epoch of every model in turn (interleaved, so load on a
shared host hits all models alike), and the median epoch is reported with
its backbone's median from the same rounds and their ratio.

Datasets (--dataset):
  ml      synthetic graph of MovieLens-latest-small size: 610 users, 9,000
          items, ~38,000 train interactions;
  lastfm  synthetic graph of HetRec-Last.fm size: 1,892 users, 17,632 items,
          ~74,000 train interactions;
  tiny    60 users, 80 items (for tests);
  any name of `jaxrec.data.registry` (ml_latest_small, hetrec_lastfm, ...):
  the real data as its preset loads it, with its own text embeddings or
  its texts encoded as `input_pipeline.build_graph` does (cached).
Synthetic graphs come from `jaxrec.data.synthetic.make_synthetic` with random
L2-normalised 384-d embeddings for every user and item. The config preset is
the dataset's own (for ml / lastfm: ml_latest_small / hetrec_lastfm) when
`config_utils.DATASETS` has it, else --preset.

--variant NAME=MODEL:key=value,... adds MODEL's config with keys overridden
(dotted paths, values as Python literals), timed against MODEL's backbone in
the same rounds, e.g. the paper's row-wise AlphaRec negatives:

  --variant alpharec_row=alpharec:model.negative_sharing='row',num_negatives=256

Output: one line per model, a JSON file (--out, written atomically) and a
Markdown table rendered from it (--md).

Usage:
  python -m benchmarks.text_model_speed --dataset ml lastfm --epochs 5 \
      --out /tmp/text_model_speed.json --md /tmp/text_model_speed.md
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import statistics
import sys
import time
from typing import Optional

import numpy as np

from benchmarks import common

TEXT_DIM = 384
# name -> make_synthetic arguments; num_interactions is the total before the
# 80/10/10 split, so train is ~0.8 of it.
SIZES = {
    "ml": dict(num_users=610, num_items=9000, num_interactions=47500),
    "lastfm": dict(num_users=1892, num_items=17632, num_interactions=92500),
    "tiny": dict(num_users=60, num_items=80, num_interactions=900),
}
# (name, config file, config backbone argument or None, backbone name).
MODELS = (
    ("lightgcn", "lightgcn", None, None),
    ("simgcl", "simgcl", None, None),
    ("textgnn", "textgnn", None, "lightgcn"),
    ("alpharec", "alpharec", None, "lightgcn"),
    ("rlmrec_con/lightgcn", "rlmrec_con", "lightgcn", "lightgcn"),
    ("rlmrec_con/simgcl", "rlmrec_con", "simgcl", "simgcl"),
    ("rlmrec_gen/lightgcn", "rlmrec_gen", "lightgcn", "lightgcn"),
    ("rlmrec_gen/simgcl", "rlmrec_gen", "simgcl", "simgcl"),
    ("fusion", "fusion", None, "lightgcn"),
)
# Config preset of each synthetic size: the real dataset's it stands for
# (same batch size as the fallback --preset 'lastfm', for checkouts without).
SIZE_PRESETS = {"ml": "ml_latest_small", "lastfm": "hetrec_lastfm"}
DEFAULT_PRESET = "lastfm"


def synthetic_dataset(size: str, seed: int = 0):
  """A synthetic dataset of a named size with random 384-d text embeddings.

  Args:
    size: a key of SIZES.
    seed: seed of the graph and the embeddings.

  Returns:
    A `Dataset` with L2-normalised float32 `user_embeddings` [U, 384] and
    `item_embeddings` [I, 384].
  """
  from jaxrec.data.synthetic import make_synthetic  # pylint: disable=g-import-not-at-top
  ds = make_synthetic(**SIZES[size], seed=seed, with_texts=False,
                      name=f"synthetic_{size}")
  rng = np.random.default_rng(seed)

  def unit(n):
    x = rng.normal(size=(n, TEXT_DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
  return dataclasses.replace(ds, user_embeddings=unit(ds.num_users),
                             item_embeddings=unit(ds.num_items))


def load_dataset(name: str, seed: int = 0):
  """A SIZES dataset, or a `jaxrec.data.registry` dataset by name.

  A registry dataset with a preset in `config_utils.DATASETS` is loaded as
  `train.setup_experiment` loads it (`input_pipeline.load_data` of the
  preset's config: its loader kwargs, this seed).
  """
  if name in SIZES:
    return synthetic_dataset(name, seed)
  # pylint: disable=g-import-not-at-top
  from jaxrec import config_utils, input_pipeline
  from jaxrec.data import registry
  # pylint: enable=g-import-not-at-top
  if name not in registry.DATASETS:
    raise ValueError(f"--dataset {name!r}: neither a synthetic size "
                     f"{sorted(SIZES)} nor a registered dataset "
                     f"{sorted(registry.DATASETS)}")
  if name in config_utils.DATASETS:
    config = config_utils.base_config(name)
    config.seed = seed
    return input_pipeline.load_data(config)
  return registry.load_dataset(name, seed=seed)


def model_config(config_file: str, preset: str, backbone: Optional[str]):
  """configs/<config_file>.py:<preset>[,<backbone>], progress bar off."""
  from jaxrec import config_utils  # pylint: disable=g-import-not-at-top
  arg = preset if backbone is None else f"{preset},{backbone}"
  config = config_utils.load_config_file(config_file, arg)
  config.progress = False
  return config, f"configs/{config_file}.py:{arg}"


def parse_variant(spec: str) -> tuple[str, str, dict]:
  """'NAME=MODEL:a.b=1,c='x'' -> (NAME, MODEL, {'a.b': 1, 'c': 'x'})."""
  name, sep, rest = spec.partition("=")
  model, sep2, assignments = rest.partition(":")
  if not (sep and sep2 and name and model):
    raise ValueError(f"--variant {spec!r}: expected NAME=MODEL:key=value,...")
  overrides = {}
  for item in filter(None, assignments.split(",")):
    key, eq, value = item.partition("=")
    if not eq:
      raise ValueError(f"--variant {spec!r}: {item!r} is not key=value")
    try:
      overrides[key.strip()] = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
      overrides[key.strip()] = value.strip()
  return name, model, overrides


def apply_overrides(config, overrides: dict):
  """Sets dotted `overrides` keys on a ConfigDict (in place); returns it."""
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config


class Runner:
  """One model's experiment, trained one epoch at a time as the trainer does."""

  def __init__(self, config, dataset):
    # pylint: disable=g-import-not-at-top
    from jaxrec import input_pipeline, train
    self._epoch_batches = input_pipeline.epoch_batches
    self.config = config
    self.exp = train.setup_experiment(config, dataset)
    self.epoch = 0
    self.times, self.host_times, self.losses = [], [], []
    self.steps = 0

  def run_epoch(self) -> float:
    """Trains one epoch (the loop of `train_and_evaluate`); its seconds."""
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    exp, config = self.exp, self.config
    spc = max(1, config.get("steps_per_call", 16))
    start = time.perf_counter()
    rows = self._epoch_batches(config, exp.dataset, self.epoch,
                               exp.positive_keys, exp.model.batch_fields)
    host = time.perf_counter() - start
    state, losses = exp.state, []
    # Stacked batches are a pytree whose every leaf is [S, B, ...].
    self.steps = int(jax.tree.leaves(rows)[0].shape[0])
    for lo in range(0, self.steps, spc):
      chunk = jax.tree.map(lambda v, lo=lo: v[lo:lo + spc], rows)
      state, metrics = exp.step_fn(state, exp.graph, chunk, exp.train_rng)
      losses.append(metrics["loss"])
    loss = float(jnp.mean(jnp.concatenate(losses)))
    seconds = time.perf_counter() - start
    exp.state = state
    self.epoch += 1
    self.host_times.append(host)
    self.losses.append(loss)
    return seconds


def measure(dataset_name: str, models, epochs: int, preset: str,
            seed: int = 0, variants=(), log=print) -> dict:
  """Interleaved epoch times of `models` (and their backbones) on one dataset.

  Args:
    dataset_name: see `load_dataset`.
    models: names from MODELS; their backbones are added.
    epochs: timed epochs per model (after one compiling epoch).
    preset: config preset for datasets without their own.
    seed: dataset seed.
    variants: `parse_variant` tuples, timed like models.
    log: where progress lines go.

  Returns:
    {'dataset', 'num_users', 'num_items', 'num_train', 'preset', 'models':
    {name: {...}}}, each model with seconds_per_epoch (median),
    epoch_seconds, host_seconds (median epoch_batches time),
    steps_per_epoch, batch_size, num_negatives, config, backbone,
    backbone_seconds_per_epoch, ratio, final_loss.
  """
  from jaxrec import config_utils  # pylint: disable=g-import-not-at-top
  table = {m[0]: m for m in MODELS}
  unknown = sorted((set(models) | {v[1] for v in variants}) - set(table))
  if unknown:
    raise ValueError(f"--models: unknown {unknown}; valid: {sorted(table)}")
  overrides = {}
  for name, base, over in variants:
    table[name] = (name,) + table[base][1:]
    overrides[name] = over
  models = list(models) + [v[0] for v in variants]
  wanted = list(models) + [table[m][3] for m in models if table[m][3]]
  names = [n for n in table if n in wanted]  # backbones first
  dataset = load_dataset(dataset_name, seed)
  for candidate in (dataset_name, SIZE_PRESETS.get(dataset_name)):
    if candidate in config_utils.DATASETS:
      preset = candidate
      break
  runners, configs = {}, {}
  for name in names:
    _, config_file, backbone, _ = table[name]
    config, configs[name] = model_config(config_file, preset, backbone)
    if name in overrides:
      apply_overrides(config, overrides[name])
      configs[name] += " " + ",".join(f"{k}={v!r}"
                                      for k, v in overrides[name].items())
    start = time.perf_counter()
    runners[name] = Runner(config, dataset)
    runners[name].run_epoch()  # compiles both chunk shapes
    log(f"{dataset_name} {name}: set-up and first epoch "
        f"{time.perf_counter() - start:.1f} s")
  for r in range(epochs):
    for name in names:
      runners[name].times.append(runners[name].run_epoch())
    log(f"{dataset_name} round {r + 1}/{epochs}: " + ", ".join(
        f"{n} {runners[n].times[-1]:.3f}" for n in names))
  out = {}
  for name in names:
    run = runners[name]
    out[name] = dict(
        config=configs[name], backbone=table[name][3],
        seconds_per_epoch=statistics.median(run.times),
        epoch_seconds=run.times,
        host_seconds=statistics.median(run.host_times[1:] or run.host_times),
        steps_per_epoch=run.steps, batch_size=int(run.config.batch_size),
        num_negatives=int(run.config.get("num_negatives", 1)),
        final_loss=run.losses[-1])
  for entry in out.values():
    if entry["backbone"]:
      base = out[entry["backbone"]]["seconds_per_epoch"]
      entry["backbone_seconds_per_epoch"] = base
      entry["ratio"] = entry["seconds_per_epoch"] / base
  return dict(dataset=dataset_name, num_users=int(dataset.num_users),
              num_items=int(dataset.num_items),
              num_train=int(len(dataset.train)), preset=preset, models=out)


def render_markdown(results: dict) -> str:
  """Markdown page of a results JSON (`main`'s output)."""
  variants = results.get("variants", [])
  lines = ["# Text-model epoch time vs the backbone", "",
           f"Median seconds per training epoch over {results['epochs']} "
           f"interleaved epochs (one epoch of every model per round), "
           f"{results['host']}, jax {results['jax']}. Each model runs its "
           f"own config (`configs/<model>.py:<preset>`): batch size and "
           f"negatives are part of its cost.", ""]
  if results.get("command"):
    lines += [f"Command: `{results['command']}`", ""]
  if variants:
    lines += ["Variants (a model's config with keys overridden):", ""]
    lines += [f"- `{v}`" for v in variants] + [""]
  lines += common.markdown_table(
      ["dataset", "users", "items", "train interactions", "preset"],
      [[ds["dataset"], f"{ds['num_users']:,}", f"{ds['num_items']:,}",
        f"{ds['num_train']:,}", ds["preset"]] for ds in results["datasets"]],
      ["---", "---:", "---:", "---:", "---"])
  # By name: the saved JSON sorts its keys, so the order a run measured in
  # is not kept (a page written live and one re-rendered must agree).
  models = [(ds["dataset"], name, m) for ds in results["datasets"]
            for name, m in sorted(ds["models"].items())]
  lines += [""] + common.markdown_table(
      ["dataset", "model", "backbone", "batch", "negatives", "steps/epoch",
       "s/epoch", "backbone s/epoch", "ratio"],
      [[d, name, m["backbone"], m["batch_size"], m["num_negatives"],
        m["steps_per_epoch"], f"{m['seconds_per_epoch']:.3f}",
        f"{m['backbone_seconds_per_epoch']:.3f}", f"{m['ratio']:.2f}"]
       for d, name, m in models if m["backbone"] is not None],
      ["---"] * 3 + ["---:"] * 6)
  lines += ["", "Backbones:", ""] + common.markdown_table(
      ["dataset", "backbone", "batch", "steps/epoch", "s/epoch"],
      [[d, name, m["batch_size"], m["steps_per_epoch"],
        f"{m['seconds_per_epoch']:.3f}"]
       for d, name, m in models if m["backbone"] is None],
      ["---", "---", "---:", "---:", "---:"])
  return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", nargs="+", default=["ml", "lastfm"],
                      help=f"synthetic sizes {sorted(SIZES)} or registry names")
  parser.add_argument("--models", nargs="+",
                      default=[m[0] for m in MODELS if m[3]],
                      help="text models (their backbones are added)")
  parser.add_argument("--variant", action="append", default=[],
                      help="NAME=MODEL:key=value,... (see the docstring)")
  parser.add_argument("--epochs", type=int, default=5,
                      help="timed epochs per model")
  parser.add_argument("--preset", default=DEFAULT_PRESET,
                      help="config preset of datasets without their own")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--repo", default=common.REPO,
                      help="checkout whose code is timed (another checkout "
                      "runs its own benchmarks.text_model_speed in a child)")
  parser.add_argument("--out", default="text_model_speed.json")
  parser.add_argument("--md", default="",
                      help="Markdown table path ('' = --out with .md)")
  parser.add_argument("--render", action="store_true",
                      help="only rewrite --md from the JSON at --out")
  args = parser.parse_args(argv)
  md = args.md or os.path.splitext(args.out)[0] + ".md"
  if args.render:
    return common.render_page(args.out, md, render_markdown)
  status = common.run_in_checkout(args.repo, "text_model_speed", argv)
  if status is not None:
    sys.exit(status)
  import jax  # pylint: disable=g-import-not-at-top
  results = dict(
      epochs=args.epochs, repo=os.path.abspath(args.repo),
      host=f"{common.machine()}, {jax.default_backend()}",
      jax=jax.__version__, variants=args.variant, datasets=[],
      command=common.command("text_model_speed", argv))
  for name in args.dataset:
    results["datasets"].append(measure(
        name, args.models, args.epochs, args.preset, args.seed,
        [parse_variant(v) for v in args.variant]))
    for model, m in results["datasets"][-1]["models"].items():
      extra = (f"  backbone {m['backbone_seconds_per_epoch']:.3f}  ratio "
               f"{m['ratio']:.2f}" if m["backbone"] else "")
      print(f"RESULT {name} {model} {m['seconds_per_epoch']:.4f} s/epoch "
            f"{m['steps_per_epoch']} steps{extra}", flush=True)
    # After every dataset, so an interrupted run keeps the finished ones.
    common.write_json(args.out, results)
    common.write_page(md, render_markdown(results))
  print(render_markdown(results))
  return results


if __name__ == "__main__":
  main()

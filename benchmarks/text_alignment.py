"""Text alignment on synthetic data: warm and cold-start Recall/NDCG@20.

Synthetic data (`make_synthetic`) plants part of the preference signal in the
item and user texts (category names and latent-sign adjectives, each slot
correct with probability `text_signal`). Texts are encoded with the bundled
all-MiniLM-L6-v2 (`jaxrec.text.encode_cached`, cached on disk). A cold-start
split (`jaxrec.data.coldstart`) holds out `--cold_items` of the items with
all their interactions; every model trains on the warm data with the
standard loop (`train.train_and_evaluate`, early stopping on warm valid),
then is evaluated on the warm test split and on cold items (warm users x
held-out cold-test items; candidates = cold-test items only;
`jaxrec.coldstart_eval`).

Compared: LightGCN, LightGCN + RLMRec-Con, LightGCN + RLMRec-Gen, AlphaRec,
TextGNN. Each seed draws new data, split and initialisation; the table gives
mean +- std over seeds and the paired gain of each model over LightGCN.
Gen scores BPR on its masked forward pass as the authors' LightGCN_gene does
(`--gen_masked_backbone 1`, the default; 0 = BPR on the un-masked pass);
`--gen_kd_weight` / `--gen_kd_temperature` override the shared RLMRec
settings for Gen, `--gen_dedup_text 1` drops identical-text negatives.
`--train_noise r` replaces a fraction r of the warm training interactions by
random fake pairs (`preprocess.replace_with_noise`, RLMRec's robustness
setting: the texts stay clean, so alignment can help denoise).

Usage:
  python -m benchmarks.text_alignment [--seeds 0,1,2] [--epochs 40]
      [--cache_dir /tmp/jaxrec_text_cache] [--out docs/results/text_alignment.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time

import numpy as np

from benchmarks import common
from jaxrec import coldstart_eval
from jaxrec import config_utils
from jaxrec import text as text_lib
from jaxrec import train
from jaxrec.data import coldstart
from jaxrec.data import preprocess
from jaxrec.data.synthetic import make_synthetic

MODELS = ("lightgcn", "con", "gen", "alpharec", "textgnn")
LABELS = {"lightgcn": "LightGCN", "con": "LightGCN + RLMRec-Con",
          "gen": "LightGCN + RLMRec-Gen", "alpharec": "AlphaRec",
          "textgnn": "TextGNN (text-only features)"}


def model_config(name: str, args) -> "ml_collections.ConfigDict":
  """Training config of one compared model (shared protocol)."""
  config = config_utils.base_config("synthetic")
  config.num_epochs = args.epochs
  config.eval_every = args.eval_every
  config.patience = args.patience
  config.batch_size = args.batch_size
  config.steps_per_call = 8
  config.eval_ks = (20,)
  config.progress = False
  config.optimizer.update(name="adam", learning_rate=args.lr)
  lgcn = dict(embed_dim=args.dim, num_layers=args.layers, l2_reg=1e-4)
  if name == "lightgcn":
    config.model_name = "lightgcn"
    config.model = lgcn
    return config
  config.graph.text_features = True
  if name in ("con", "gen"):
    config.model_name = f"rlmrec_{name}"
    config.model = dict(backbone="lightgcn", backbone_kwargs=lgcn,
                        kd_weight=args.kd_weight,
                        kd_temperature=args.kd_temperature)
    if name == "gen":
      config.model.mask_ratio = args.mask_ratio
      config.model.gen_masked_backbone = bool(args.gen_masked_backbone)
      config.model.gen_dedup_text = bool(args.gen_dedup_text)
      if args.gen_kd_weight is not None:
        config.model.kd_weight = args.gen_kd_weight
      if args.gen_kd_temperature is not None:
        config.model.kd_temperature = args.gen_kd_temperature
  elif name == "alpharec":
    config.model_name = "alpharec"
    config.model = dict(embed_dim=args.dim, num_layers=2, temperature=0.15)
    config.num_negatives = args.alpharec_negatives
    config.optimizer.update(name="adam", learning_rate=args.alpharec_lr)
  elif name == "textgnn":
    config.model_name = "textgnn"
    config.model = dict(embed_dim=args.dim, num_layers=args.layers,
                        l2_reg=1e-4, use_id_embedding=False)
  else:
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
  return config


def pca_reduce(user_emb: np.ndarray, item_emb: np.ndarray, dim: int):
  """Projects [users; items] on their top-`dim` principal axes, unit rows.

  Unsupervised (no interaction is used). Returns (users [U, dim], items
  [I, dim], fraction of variance kept).
  """
  both = np.concatenate([user_emb, item_emb]).astype(np.float64)  # [U+I, 384]
  centred = both - both.mean(axis=0)
  _, sing, vt = np.linalg.svd(centred, full_matrices=False)
  proj = centred @ vt[:dim].T  # [U+I, dim]
  proj /= np.maximum(np.linalg.norm(proj, axis=1, keepdims=True), 1e-12)
  explained = float(np.sum(sing[:dim] ** 2) / np.sum(sing ** 2))
  proj = proj.astype(np.float32)
  return proj[:len(user_emb)], proj[len(user_emb):], explained


def make_data(seed: int, args, encoder_cache: dict):
  """Synthetic dataset with MiniLM text embeddings, and its cold split."""
  ds = make_synthetic(num_users=args.num_users, num_items=args.num_items,
                      num_interactions=args.num_interactions,
                      text_signal=args.text_signal, seed=seed, num_threads=2)
  t0 = time.perf_counter()
  if "fingerprint" not in encoder_cache:
    model_dir, model_id = text_lib.resolve_model_dir(None)
    encoder_cache["fingerprint"] = text_lib.model_fingerprint(model_dir,
                                                              model_id)
  missing = [t for t in (ds.item_texts, ds.user_texts) if not os.path.exists(
      os.path.join(args.cache_dir, text_lib.cache_key(
          t, encoder_cache["fingerprint"], 128) + ".npy"))]
  if missing and "encoder" not in encoder_cache:  # load the model once
    encoder_cache["encoder"] = text_lib.TextEncoder(max_length=128)
  encoder = encoder_cache.get("encoder")
  item_emb = text_lib.encode_cached(ds.item_texts, args.cache_dir, encoder)
  user_emb = text_lib.encode_cached(ds.user_texts, args.cache_dir, encoder)
  encode_s = time.perf_counter() - t0
  if args.text_dim:
    user_emb, item_emb, explained = pca_reduce(user_emb, item_emb,
                                               args.text_dim)
    encoder_cache.setdefault("explained", []).append(explained)
  ds = dataclasses.replace(ds, item_embeddings=item_emb,
                           user_embeddings=user_emb)
  split = coldstart.cold_start_split(ds, item_fraction=args.cold_items,
                                     seed=seed)
  if args.train_noise:
    # Fake pairs among warm ids only, so warm and full share the noisy train.
    noisy = preprocess.replace_with_noise(
        split.warm.train, split.warm.num_items, args.train_noise, seed=seed,
        exclude=[split.warm.valid, split.warm.test])
    split = dataclasses.replace(
        split, warm=dataclasses.replace(split.warm, train=noisy),
        full=dataclasses.replace(split.full, train=noisy))
  return split, encode_s


def run_one(name: str, seed: int, split, args, root: str) -> dict:
  config = model_config(name, args)
  config.seed = seed
  workdir = os.path.join(root, f"{name}_seed{seed}")
  t0 = time.perf_counter()
  result = train.train_and_evaluate(config, workdir, dataset=split.warm)
  cold = coldstart_eval.evaluate_cold_start(
      config, workdir, split, ks=(20,), splits=("item_test",))["item_test"]
  return {"model": name, "seed": seed, "best_epoch": result["best_epoch"],
          "epochs_run": result["epochs_run"],
          "valid_recall": result["valid"]["recall@20"],
          "warm_recall": result["test"]["recall@20"],
          "warm_ndcg": result["test"]["ndcg@20"],
          "cold_recall": cold["recall@20"], "cold_ndcg": cold["ndcg@20"],
          "seconds": time.perf_counter() - t0,
          "s_per_epoch": result["seconds_per_epoch"]}


def _ms(values) -> str:
  values = np.asarray(values, np.float64)
  return f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}"


def _gen_text(args) -> str:
  """Gen's settings where they differ from the shared RLMRec ones."""
  parts = [f"Gen mask ratio {args.mask_ratio}"]
  if args.gen_kd_weight is not None:
    parts.append(f"kd_weight {args.gen_kd_weight}")
  if args.gen_kd_temperature is not None:
    parts.append(f"kd_temperature {args.gen_kd_temperature}")
  parts.append("BPR on the masked pass (authors' LightGCN_gene)"
               if args.gen_masked_backbone else "BPR on the un-masked pass")
  if args.gen_dedup_text:
    parts.append("identical-text negatives dropped")
  return ", " + ", ".join(parts)


def render(rows: list[dict], args, meta: dict) -> str:
  """Markdown report."""
  names = [m for m in MODELS if any(r["model"] == m for r in rows)]
  by = {m: sorted((r for r in rows if r["model"] == m), key=lambda r: r["seed"])
        for m in names}
  keys = ("warm_recall", "warm_ndcg", "cold_recall", "cold_ndcg")
  out = ["# Text alignment on synthetic data (warm and cold-start)", "",
         f"Command: `{meta['command']}`", "",
         f"Data per seed: make_synthetic(num_users={args.num_users}, "
         f"num_items={args.num_items}, num_interactions={args.num_interactions}, "
         f"text_signal={args.text_signal}); item and user texts encoded with "
         "all-MiniLM-L6-v2 (384-d, jaxrec.text.encode_cached). Cold start: "
         f"{args.cold_items:.0%} of items held out with all their interactions "
         "(half cold-valid, half cold-test, unused for selection)"
         + (f"; {args.train_noise:.0%} of the warm train interactions "
            "replaced by random fake pairs (valid/test/cold untouched)"
            if args.train_noise else "") + "; cold "
         "metrics rank only the cold-test items for warm users. Models: "
         f"dim {args.dim}, LightGCN {args.layers} layers, Adam lr {args.lr}, "
         f"batch {args.batch_size}, <= {args.epochs} epochs, eval every "
         f"{args.eval_every}, patience {args.patience}, selection on warm "
         f"valid Recall@20. RLMRec kd_weight {args.kd_weight}, kd_temperature "
         f"{args.kd_temperature}" + _gen_text(args) + "; AlphaRec "
         f"tau 0.15, {args.alpharec_negatives} sampled negatives, 2 layers, "
         f"lr {args.alpharec_lr}.",
         "", (f"Text embeddings reduced 384 -> {args.text_dim} dims by PCA "
              "over the users' and items' embeddings (unsupervised; keeps "
              f"{np.mean(meta['explained']):.1%} of the variance) and "
              "re-normalised, to cut the MLP cost on a CPU (a pilot: Con 5.6 "
              "s/epoch on 384-d inputs, 3.5 s/epoch on 64-d; LightGCN 0.15; "
              "the rest of Con's cost is its three [B, B] InfoNCE terms)."
              if args.text_dim else "Full 384-d text embeddings."),
         "", f"Seeds: {args.seeds} (new data, split and init per seed). "
         f"Random ranking of the cold-test items: Recall@20 ~ "
         f"{meta['random_cold_recall']:.4f}.", ""]
  out += common.markdown_table(
      ["model", "valid R@20", "warm R@20", "warm N@20", "cold R@20",
       "cold N@20", "best epoch", "s/epoch"],
      [[LABELS[m], _ms([r.get("valid_recall", np.nan) for r in by[m]])]
       + [_ms([r[k] for r in by[m]]) for k in keys]
       + [f"{np.mean([r['best_epoch'] for r in by[m]]):.0f}",
          f"{np.mean([r['s_per_epoch'] for r in by[m]]):.2f}"]
       for m in names])
  if "lightgcn" in by:
    out += ["", "Paired gain over LightGCN (same seed; mean ± std of the "
            "per-seed differences):", ""]
    base = {r["seed"]: r for r in by["lightgcn"]}
    cells = []
    for m in names:
      if m == "lightgcn":
        continue
      diffs = [[r[k] - base[r["seed"]][k] for r in by[m] if r["seed"] in base]
               for k in keys]
      cells.append([LABELS[m]] + [
          f"{np.mean(d):+.4f} ± {np.std(d, ddof=1) if len(d) > 1 else 0:.4f}"
          for d in diffs])
    out += common.markdown_table(
        ["model", "Δ warm R@20", "Δ warm N@20", "Δ cold R@20", "Δ cold N@20"],
        cells)
  out += ["", f"Wall time {meta['wall_s'] / 60:.1f} min (text encoding "
          f"{meta['encode_s']:.0f} s of it) on a "
          f"{meta.get('machine', '2-core CPU, shared')}"
          + (f" on {meta['date']}" if meta.get("date") else "")
          + f"; load average {meta['load_start']:.1f} at start / "
          f"{meta['load_end']:.1f} at end (other jobs were running).", ""]
  if meta.get("notes"):
    out += meta["notes"]
  return "\n".join(out) + "\n"


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--models", default=",".join(MODELS))
  p.add_argument("--num_users", type=int, default=1000)
  p.add_argument("--num_items", type=int, default=1500)
  p.add_argument("--num_interactions", type=int, default=25000)
  p.add_argument("--text_signal", type=float, default=0.8)
  p.add_argument("--cold_items", type=float, default=0.2)
  p.add_argument("--train_noise", type=float, default=0.0,
                 help="fraction of the warm train interactions replaced by "
                 "random fake ones (RLMRec's robustness protocol); valid, "
                 "test and cold sets are untouched")
  p.add_argument("--dim", type=int, default=32)
  p.add_argument("--layers", type=int, default=2)
  p.add_argument("--lr", type=float, default=5e-3)
  p.add_argument("--batch_size", type=int, default=1024)
  p.add_argument("--epochs", type=int, default=40)
  p.add_argument("--eval_every", type=int, default=2)
  p.add_argument("--patience", type=int, default=5)
  p.add_argument("--kd_weight", type=float, default=1e-2)
  p.add_argument("--kd_temperature", type=float, default=0.2)
  p.add_argument("--mask_ratio", type=float, default=0.2)
  p.add_argument("--gen_kd_weight", type=float, default=None,
                 help="Gen's kd_weight (default: --kd_weight)")
  p.add_argument("--gen_kd_temperature", type=float, default=None,
                 help="Gen's kd_temperature (default: --kd_temperature)")
  p.add_argument("--gen_masked_backbone", type=int, default=1,
                 help="1: Gen's BPR on the masked pass (authors' form); 0: "
                 "BPR on the un-masked pass (runs before this flag)")
  p.add_argument("--gen_dedup_text", type=int, default=0,
                 help="1: Gen drops identical-text negatives")
  p.add_argument("--alpharec_negatives", type=int, default=64)
  p.add_argument("--alpharec_lr", type=float, default=1e-3)
  p.add_argument("--text_dim", type=int, default=64,
                 help="PCA size of the 384-d MiniLM embeddings (0 = keep)")
  p.add_argument("--cache_dir", default=os.path.join(
      tempfile.gettempdir(), "jaxrec_text_cache"))
  p.add_argument("--workdir", default=None,
                 help="run directories (default: a fresh temp dir)")
  p.add_argument("--out", default=None, help="markdown output path")
  p.add_argument("--json", default=None, help="per-run rows as JSON")
  return p.parse_args(argv)


def main(argv=None) -> str:
  args = parse_args(argv)
  start, load_start = time.perf_counter(), os.getloadavg()[0]
  root = args.workdir or tempfile.mkdtemp(prefix="text_alignment_")
  seeds = [int(s) for s in args.seeds.split(",")]
  names = [m for m in args.models.split(",") if m]
  rows, encode_s, cache, random_cold = [], 0.0, {}, []
  for seed in seeds:  # a handful of seeds x models
    split, secs = make_data(seed, args, cache)
    encode_s += secs
    random_cold.append(
        coldstart_eval.random_recall(len(split.cold_test_items)))
    print(split.summary(), f"(texts encoded/cached in {secs:.1f}s)", flush=True)
    for name in names:
      row = run_one(name, seed, split, args, root)
      rows.append(row)
      print(json.dumps(row), flush=True)
  meta = {"command": common.command("text_alignment", argv),
          "machine": common.machine(), "date": common.today(),
          "wall_s": time.perf_counter() - start, "encode_s": encode_s,
          "load_start": load_start, "load_end": os.getloadavg()[0],
          "random_cold_recall": float(np.mean(random_cold)),
          "explained": cache.get("explained", [])}
  report = render(rows, args, meta)
  if args.out:
    common.write_page(args.out, report)
  if args.json:
    common.write_json(args.json, rows)
  print(report)
  return report


if __name__ == "__main__":
  main()

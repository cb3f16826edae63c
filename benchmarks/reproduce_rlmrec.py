"""Reproduces the RLMRec protocol (Ren et al., WWW 2024) on its data.

Data: the RLMRec authors' `data.zip` from https://github.com/HKUDS/RLMRec
(README "Data": download it, `unzip data.zip`); it holds one folder per
dataset (`amazon`, `yelp`, `steam`) with `trn_mat.pkl`, `val_mat.pkl`,
`tst_mat.pkl` (pickled scipy sparse user x item matrices), LLM profiles
`usr_prf.pkl` / `itm_prf.pkl` and their text-embedding-ada-002 embeddings
`usr_emb_np.pkl` / `itm_emb_np.pkl`. Put the folders under
`<data_root>/rlmrec/` (or directly under `<data_root>/`); the data root is
`--data_root`, else $JAXREC_DATA_ROOT, else ../shared/data.

Protocol (the authors' configs, encoder/config/modelconf/*.yml): the given
train/valid/test split, embedding size 32, Adam lr 1e-3, batch 4096, 3
layers, evaluation on the validation split every 3 epochs with early
stopping (patience 5 evaluations), test metrics reported once for the
selected epoch, full ranking with train (+ valid for test) items masked,
Recall/NDCG@5/10/20. Con: kd_weight 1e-2, kd_temperature 0.2 (SimGCL on
Yelp 0.1). Gen (LightGCN): Amazon mask 0.15 / weight 0.1 / tau 0.5 / 2
layers, Yelp 0.05 / 0.01 / 0.1 / 2 layers. SimGCL: eps 0.9, lambda 0.1,
tau 0.2 as in simgcl.yml. Differences: L2 is jaxrec's per-batch ego
penalty (1e-4), not RLMRec's reg_weight x all parameters; no edge dropout
(the authors' LightGCN_plus/gene train with keep_rate 0.8).

Usage:
  python -m benchmarks.reproduce_rlmrec --datasets amazon,yelp --seeds 0,1,2
      [--models lightgcn,lightgcn_con,lightgcn_gen,simgcl,simgcl_con]
      [--epochs 3000] [--data_root DIR] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import ml_collections
import numpy as np

from benchmarks import common
from jaxrec import config_utils
from jaxrec import train
from jaxrec.data import loaders
from jaxrec.data import registry
from jaxrec.data.dataset import DataError

KS = (5, 10, 20)
# Published test Recall@20 / NDCG@20 (RLMRec paper, Table 2).
PUBLISHED = {
    ("amazon", "lightgcn"): (0.1411, 0.0856),
    ("amazon", "lightgcn_con"): (0.1483, 0.0903),
    ("amazon", "lightgcn_gen"): (0.1446, 0.0887),
    ("amazon", "simgcl"): (0.1512, 0.0919),
    ("amazon", "simgcl_con"): (0.1552, 0.0942),
    ("yelp", "lightgcn"): (0.1157, 0.0733),
    ("yelp", "lightgcn_con"): (0.1230, 0.0776),
    ("yelp", "lightgcn_gen"): (0.1209, 0.0761),
}
MODELS = ("lightgcn", "lightgcn_con", "lightgcn_gen", "simgcl", "simgcl_con",
          "sgl", "sgl_con", "sgl_gen", "simgcl_gen")
LABELS = {"con": "RLMRec-Con", "gen": "RLMRec-Gen"}
# Gen settings of lightgcn_gene.yml: (mask_ratio, weight, tau, layers).
GEN = {"amazon": (0.15, 0.1, 0.5, 2), "yelp": (0.05, 0.01, 0.1, 2),
       "steam": (0.15, 0.1, 0.5, 2)}


def data_dir(data_root, name: str) -> Path:
  """Folder of one RLMRec dataset: <root>/rlmrec/<name> or <root>/<name>."""
  root = registry.resolve_data_root(data_root)
  hint = ("download data.zip from https://github.com/HKUDS/RLMRec, unzip it "
          "and pass --data_root (or set JAXREC_DATA_ROOT) to the folder "
          "holding rlmrec/<dataset>/")
  if root is None:
    raise DataError(f"reproduce_rlmrec: no data root configured; {hint}")
  for path in (root / "rlmrec" / name, root / name):
    if (path / "trn_mat.pkl").is_file():
      return path
  raise DataError(f"reproduce_rlmrec: {root}/rlmrec/{name}/trn_mat.pkl not "
                  f"found; {hint}")


def backbone_kwargs(backbone: str, dataset: str) -> dict:
  """Backbone model kwargs of the RLMRec protocol (dim 32, 3 layers)."""
  kwargs = dict(embed_dim=32, num_layers=3, l2_reg=1e-4)
  if backbone == "simgcl":
    kwargs.update(eps=0.9, ssl_weight=0.1, ssl_temperature=0.2)
  elif backbone == "sgl":
    kwargs.update(aug_type="ed", drop_rate=0.1, ssl_weight=0.1,
                  ssl_temperature=0.2)
  elif backbone != "lightgcn":
    raise ValueError(f"unknown backbone {backbone!r}")
  del dataset
  return kwargs


def make_config(model: str, dataset: str, args) -> ml_collections.ConfigDict:
  """Config of one model on one RLMRec dataset."""
  if model not in MODELS:
    raise ValueError(f"unknown model {model!r}; choose from {MODELS}")
  backbone, _, mode = model.partition("_")
  config = config_utils.base_config(f"rlmrec_{dataset}"
                                    if dataset in ("amazon", "yelp", "steam")
                                    else "rlmrec_amazon")
  config.num_epochs = args.epochs
  config.eval_every = args.eval_every
  config.patience = args.patience
  config.batch_size = args.batch_size
  config.eval_ks = KS
  config.selection_metric = "recall@20"
  config.optimizer.update(name="adam", learning_rate=1e-3)
  config.progress = False
  config.max_checkpoints = 1
  kwargs = backbone_kwargs(backbone, dataset)
  if not mode:
    config.model_name = backbone
    config.model = kwargs
    return config
  config.graph.text_features = True
  config.model_name = f"rlmrec_{mode}"
  if mode == "con":
    tau = 0.1 if (backbone, dataset) == ("simgcl", "yelp") else 0.2
    weight = 1e-3 if (backbone, dataset) == ("lightgcn", "steam") else 1e-2
    config.model = dict(backbone=backbone, backbone_kwargs=kwargs,
                        kd_weight=weight, kd_temperature=tau)
  else:
    ratio, weight, tau, layers = GEN.get(dataset, (0.2, 1e-2, 0.2, 3))
    if backbone == "lightgcn":
      kwargs["num_layers"] = layers
    # The authors' LightGCN_gene scores BPR on the masked forward pass.
    config.model = dict(backbone=backbone, backbone_kwargs=kwargs,
                        kd_weight=weight, kd_temperature=tau,
                        mask_ratio=ratio,
                        gen_masked_backbone=backbone == "lightgcn")
  return config


def _label(model: str) -> str:
  backbone, _, mode = model.partition("_")
  name = {"lightgcn": "LightGCN", "simgcl": "SimGCL", "sgl": "SGL"}[backbone]
  return f"{name} + {LABELS[mode]}" if mode else name


def _ms(values) -> str:
  v = np.asarray(values, np.float64)
  return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"


def render(rows: list[dict], meta: dict) -> str:
  """Markdown table: mean ± std over seeds beside the published R/N@20."""
  cols = [f"{m}@{k}" for k in KS for m in ("recall", "ndcg")]
  out = ["# RLMRec protocol reproduction", "",
         f"Command: `{meta['command']}`", "",
         *([meta["hardware"], ""] if meta.get("hardware") else []),
         f"Seeds: {meta['seeds']}. Test metrics at the epoch selected on "
         "validation Recall@20; mean ± std (sample std) over seeds.", ""]
  for dataset in meta["datasets"]:
    rs = [r for r in rows if r["dataset"] == dataset]
    if not rs:
      continue
    cells = []
    for model in meta["models"]:
      mr = [r for r in rs if r["model"] == model]
      if not mr:
        continue
      pub = PUBLISHED.get((dataset, model))
      cells.append(
          [_label(model)] + [_ms([r["test"][c] for r in mr]) for c in cols]
          + ["%.4f / %.4f" % pub if pub else "n/a",
             f"{np.mean([r['best_epoch'] for r in mr]):.0f}",
             f"{np.mean([r['seconds_per_epoch'] for r in mr]):.2f}"])
    out += [f"## {dataset} ({rs[0]['summary']})", ""]
    out += common.markdown_table(
        ["model"] + [c.replace("recall", "R").replace("ndcg", "N")
                     for c in cols]
        + ["published R@20 / N@20", "best epoch", "s/epoch"], cells)
    out.append("")
  out.append(f"Wall time {meta['wall_s'] / 60:.1f} min.")
  return "\n".join(out) + "\n"


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--datasets", default="amazon,yelp")
  p.add_argument("--models",
                 default="lightgcn,lightgcn_con,lightgcn_gen,simgcl,simgcl_con")
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--epochs", type=int, default=3000,
                 help="maximum epochs (early stopping on validation)")
  p.add_argument("--eval_every", type=int, default=3)
  p.add_argument("--patience", type=int, default=5)
  p.add_argument("--batch_size", type=int, default=4096)
  p.add_argument("--data_root", default=None)
  p.add_argument("--workdir", default=None)
  p.add_argument("--out", default=None,
                 help="markdown file (default <workdir>/reproduce_rlmrec.md)")
  return p.parse_args(argv)


def main(argv=None) -> str:
  args = parse_args(argv)
  start = time.perf_counter()
  seeds = [int(s) for s in args.seeds.split(",")]
  datasets = [d for d in args.datasets.split(",") if d]
  models = [m for m in args.models.split(",") if m]
  for m in models:
    if m not in MODELS:
      raise SystemExit(f"unknown model {m!r}; choose from {MODELS}")
  root = args.workdir or tempfile.mkdtemp(prefix="reproduce_rlmrec_")
  rows = []
  for dataset in datasets:  # a few datasets x models x seeds
    data = loaders.load_rlmrec(data_dir(args.data_root, dataset),
                               name=f"rlmrec_{dataset}")
    if len(data.valid) == 0:
      raise DataError(f"{dataset}: val_mat.pkl is missing; the RLMRec "
                      "protocol selects on the given validation split")
    for model in models:
      for seed in seeds:
        config = make_config(model, dataset, args)
        config.seed = seed
        workdir = os.path.join(root, dataset, f"{model}_seed{seed}")
        result = train.train_and_evaluate(config, workdir, dataset=data)
        row = {"dataset": dataset, "model": model, "seed": seed,
               "summary": data.summary(), "best_epoch": result["best_epoch"],
               "seconds_per_epoch": result["seconds_per_epoch"],
               "test": {k: v for k, v in result["test"].items() if "@" in k}}
        rows.append(row)
        print(json.dumps(row), flush=True)
  meta = {"command": common.command("reproduce_rlmrec", argv),
          "hardware": common.hardware_line(), "seeds": seeds,
          "datasets": datasets, "models": models,
          "wall_s": time.perf_counter() - start}
  report = render(rows, meta)
  out = args.out or os.path.join(root, "reproduce_rlmrec.md")
  common.write_page(out, report)
  common.write_json(os.path.join(root, "rows.json"), rows)
  print(report)
  return report


if __name__ == "__main__":
  main()

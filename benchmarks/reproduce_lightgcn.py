"""Reproduces the LightGCN-family results table (full ranking, Recall/NDCG@20).

Runs each model of --models on each dataset of --datasets that exists under
--data_root (LightGCN formats: lightgcn/<gowalla|yelp2018|amazon-book>/
train.txt + test.txt, or Gowalla's s_adj_mat.npz + test.txt) through
`jaxrec.train.train_and_evaluate` into --workdir/<model>_<dataset>.
Re-running the same command resumes every run from its last Orbax checkpoint
(written at every validation evaluation), so a killed or extended run
(larger --epochs) continues instead of restarting; runs that already
finished (--epochs reached, or stopped early by patience) are not retrained.

Protocol ('paper', default), the LightGCN paper's: full ranking of all items
with the user's train items masked, Recall@20 and NDCG@20, Adam lr 1e-3,
batch 2048, embedding size 64, L2 1e-4 on the ego embeddings, 3 layers, one
negative per positive per epoch. The released datasets have no validation
split: 10% of each user's train interactions is carved off as validation
(`splits.carve_validation`, seed 0) for early stopping and model selection,
so models train on 90% of the paper's train set; the test split is the
paper's and is reported once, for the epoch selected on validation.
Model-specific hyper-parameters (SSL weights, temperatures, noise, dropout)
come from configs/<model>.py; --protocol=config keeps every setting of the
config file instead (NGCF's own lr 1e-4 / batch 1024 / L2 1e-5 on the paper
datasets).

Writes --out (default --workdir/results.md): one row per run next to the
published numbers, and appends a line per invocation and run to
<run dir>/reproduce_log.jsonl (epochs done, wall time, valid/test metrics).

--batch_size / --learning_rate override the protocol's batch and Adam lr
(a large-batch schedule: LightGCN propagates the whole graph in every step,
so a step costs about the same at batch 16,384 as at 2,048 and an epoch has
8x fewer of them); such runs get their own run directory
(<model>_<dataset>_b<batch>_lr<lr>) so they never resume a paper-protocol
run. --contrast_rows N bounds the InfoNCE of SGL / SimGCL / XSimGCL to N
random rows of such a batch (`losses.batch_contrast`; its cost is
quadratic in the rows) while BPR keeps the whole batch. --contrast_negatives
all gives SGL's InfoNCE every user / item of the other view as negatives
(the released SGL code's `calc_ssl_loss_v2`) instead of the batch's.
--view_period epoch draws SGL's two views once per epoch (the released SGL
code) instead of every step (suffix '_vepoch').
--ssl_weight / --temperature set the contrastive models' lambda and tau
(for tuning them on the validation split; suffixes '_l<lambda>', '_t<tau>'),
--drop_rate SGL's rho (suffix '_r<rho>').
--decay_epochs N
(with --hold_epochs H, --final_lr_ratio r) holds the learning rate for H
epochs, then decays it along a cosine to r x lr over N epochs
(`optimizers.learning_rate`); the run directory names these too.

BPR sampling (--sampling): 'paper' (default) follows each model's released
code: LightGCN's and NGCF's samplers draw a uniform user and then one of
its positives (run directory suffix '_su'); the SSL models' (SELFRec, SGL)
use each train interaction once per epoch. 'user' / 'interaction' force one.

--refit: the "select on validation, refit on all training data" protocol.
Reads the best epoch of the matching validation run (same model, dataset
and overrides; it must have written results.json), merges the validation
split back into train and trains a fresh model for exactly that many epochs
(`config.refit_epochs`) into <run dir>_refit, then tests the final
parameters once. The test split still chooses nothing. --refit_epochs N
does the same for a number of epochs fixed in advance (e.g. the full length
of a decaying learning-rate schedule) without a validation run.

Usage:
  python -m benchmarks.reproduce_lightgcn --models lightgcn,ngcf,sgl,simgcl,xsimgcl
      --datasets gowalla,yelp2018,amazon_book --data_root /work/shared/data
      --workdir workdirs/reproduce --epochs 1000 [--eval_every 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import time

if __name__ == "__main__":
  # Re-executes once with transparent huge pages (jaxrec.hugepages) before
  # the imports below load jax, as jaxrec.main does: a second load would
  # cost seconds.
  from jaxrec import hugepages  # pylint: disable=g-import-not-at-top
  hugepages.reexec_with_huge_pages()

# pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import common
from jaxrec import config_utils
from jaxrec import train
from jaxrec.data import registry

MODELS = ("lightgcn", "ngcf", "sgl", "simgcl", "xsimgcl")
DATASETS = ("gowalla", "yelp2018", "amazon_book")
LABELS = {"lightgcn": "LightGCN (3 layers)", "ngcf": "NGCF", "sgl": "SGL-ED",
          "simgcl": "SimGCL", "xsimgcl": "XSimGCL"}
# Published full-ranking (Recall@20, NDCG@20): LightGCN paper Table 3
# (LightGCN 3 layers, NGCF), SGL paper (SGL-ED 3 layers), SimGCL and XSimGCL
# papers (Yelp2018).
PUBLISHED = {
    ("lightgcn", "gowalla"): (0.1823, 0.1555),
    ("lightgcn", "yelp2018"): (0.0639, 0.0525),
    ("lightgcn", "amazon_book"): (0.0410, 0.0318),
    ("ngcf", "gowalla"): (0.1569, 0.1327),
    ("ngcf", "yelp2018"): (0.0579, 0.0477),
    ("ngcf", "amazon_book"): (0.0337, 0.0261),
    ("sgl", "yelp2018"): (0.0675, 0.0555),
    ("sgl", "amazon_book"): (0.0478, 0.0379),
    ("simgcl", "yelp2018"): (0.0721, 0.0601),
    ("xsimgcl", "yelp2018"): (0.0723, 0.0604),
}
# Models with an in-batch InfoNCE term (`contrast_rows` bounds its rows).
CONTRASTIVE = ("sgl", "simgcl", "xsimgcl")
PAPER_PROTOCOL = dict(learning_rate=1e-3, batch_size=2048, embed_dim=64,
                      l2_reg=1e-4, num_layers=3)
# BPR sampling of each model's released code: LightGCN's and NGCF's draw a
# uniform user, then one of its positives; SGL's, SimGCL's and XSimGCL's
# (SELFRec) go through every train interaction once per epoch.
PAPER_SAMPLING = {"lightgcn": "user", "ngcf": "user"}


def load_config(model: str, dataset: str):
  """configs/<model>.py:get_config(dataset), as `--config` would load it."""
  return config_utils.load_config_file(
      os.path.join(common.REPO, "configs", f"{model}.py"), dataset)


# Protocol overrides (flags; 0 = unset) and their run-directory suffixes.
_SUFFIX = {"batch_size": "b", "learning_rate": "lr", "contrast_rows": "c",
           "contrast_negatives": "neg", "view_period": "v", "ssl_weight": "l",
           "temperature": "t", "drop_rate": "r", "hold_epochs": "h", "decay_epochs": "d",
           "final_lr_ratio": "f"}
# Where each flag goes in the config (a path of keys); the schedule flags
# are applied together with the cosine schedule in `make_config`.
_CONFIG_PATH = {"batch_size": ("batch_size",),
                "learning_rate": ("optimizer", "learning_rate"),
                "contrast_rows": ("model", "contrast_rows"),
                "contrast_negatives": ("model", "contrast_negatives"),
                "view_period": ("model", "view_period"),
                "ssl_weight": ("model", "ssl_weight"),
                "temperature": ("model", "ssl_temperature"),
                "drop_rate": ("model", "drop_rate")}
# Flags that only some models have (the others ignore them).
_ONLY_FOR = {"contrast_rows": CONTRASTIVE, "ssl_weight": CONTRASTIVE,
             "temperature": CONTRASTIVE, "contrast_negatives": ("sgl",),
             "view_period": ("sgl",), "drop_rate": ("sgl",)}
# Flags that only mean something with a cosine schedule (--decay_epochs).
_SCHEDULE_FLAGS = ("hold_epochs", "final_lr_ratio")


def overrides(model: str, args) -> dict:
  """The override flags set in `args` that apply to `model`, in _SUFFIX order.

  One source for `make_config` (what is applied) and `run_name` (what the
  run directory says), so the two cannot disagree. Model-specific flags
  (_ONLY_FOR) apply only to their models.
  """
  flags = {}
  for flag in _SUFFIX:
    value = getattr(args, flag, 0)  # absent in older argument namespaces
    if model not in _ONLY_FOR.get(flag, (model,)):
      continue
    if flag in _SCHEDULE_FLAGS and not getattr(args, "decay_epochs", 0):
      continue
    if value:
      flags[flag] = value
  return flags


def make_config(model: str, dataset: str, args):
  """The run's config: the model's config file + protocol + flags."""
  config = load_config(model, dataset)
  if args.protocol == "paper":
    config.optimizer.learning_rate = PAPER_PROTOCOL["learning_rate"]
    config.batch_size = PAPER_PROTOCOL["batch_size"]
    config.model.embed_dim = PAPER_PROTOCOL["embed_dim"]
    config.model.l2_reg = PAPER_PROTOCOL["l2_reg"]
    config.model.num_layers = PAPER_PROTOCOL["num_layers"]
  flags = overrides(model, args)
  for flag, path in _CONFIG_PATH.items():
    if flag in flags:
      *parents, key = path
      node = config
      for parent in parents:
        node = node[parent]
      node[key] = flags[flag]
  if "decay_epochs" in flags:
    config.optimizer.schedule = "cosine"
    for key in ("hold_epochs", "decay_epochs", "final_lr_ratio"):
      if key in flags:
        config.optimizer[key] = flags[key]
  config.sampling = make_sampling(model, args)
  config.dataset.data_root = args.data_root
  config.num_epochs = args.epochs
  config.eval_ks = (20,)
  config.selection_metric = "recall@20"
  if args.eval_every:
    config.eval_every = args.eval_every
  if args.patience:
    config.patience = args.patience
  config.progress = args.progress
  return config


def dataset_present(name: str, data_root) -> bool:
  """Whether the dataset's LightGCN-format folder exists under the root."""
  try:
    registry._folder(name, data_root, "lightgcn",  # pylint: disable=protected-access
                     registry._LIGHTGCN_DIRS[name])  # pylint: disable=protected-access
  except ValueError:
    return False
  return True


def _read_history(run_dir: str) -> list[dict]:
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def finished(run_dir: str, config) -> bool:
  """Whether an earlier invocation already completed this run.

  Completed = results.json exists and either its epochs reached
  `config.num_epochs` or the validation history shows `patience`
  evaluations without improvement after the best epoch (early stop; the
  trainer does not store that it stopped, and resuming would train on).
  """
  path = os.path.join(run_dir, "results.json")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    results = json.load(f)
  if results["epochs_run"] >= config.num_epochs:
    return True
  history = [r for r in _read_history(run_dir)
             if f"valid/{config.selection_metric}" in r]
  after_best = [r for r in history if r["epoch"] > results["best_epoch"]]
  return (results["epochs_run"] == (history[-1]["epoch"] if history else -1)
          and len(after_best) >= config.patience)


def run_name(model: str, dataset: str, args) -> str:
  """Run directory name; each applied override adds its suffix.

  User-uniform BPR sampling adds '_su' (runs before it existed sampled
  interactions and keep their names).
  """
  name = f"{model}_{dataset}"
  for flag, value in overrides(model, args).items():
    text = f"{value:g}" if isinstance(value, float) else str(value)
    name += f"_{_SUFFIX[flag]}{text}"
  if make_sampling(model, args) == "user":
    name += "_su"
  return name


def make_sampling(model: str, args) -> str:
  """The BPR sampling a run uses: --sampling, or the model's paper one."""
  sampling = getattr(args, "sampling", "paper") or "paper"
  if sampling == "paper":
    return PAPER_SAMPLING.get(model, "interaction")
  return sampling


def selected_epoch(run_dir: str) -> int:
  """The validation-selected epoch of a finished run (for --refit)."""
  path = os.path.join(run_dir, "results.json")
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"--refit: {path} not found; run the validation run first (the same "
        "command without --refit) so it selects the number of epochs")
  with open(path) as f:
    results = json.load(f)
  if results.get("refit") or results["best_epoch"] < 1:
    raise ValueError(f"--refit: {path} has no validation-selected epoch")
  return int(results["best_epoch"])


def check_same_model(run_dir: str, config) -> None:
  """Refuses to resume / reuse a run trained with other model settings.

  A run directory is named by the flags, not by the config file's values,
  so a changed default (say a lambda selected on validation) would
  otherwise silently continue or report the old run.
  """
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f).get("model", {})
  wanted = json.loads(config.model.to_json_best_effort())
  changed = sorted(k for k in set(saved) | set(wanted)
                   if saved.get(k) != wanted.get(k))
  if changed:
    raise ValueError(
        f"{path}: this run was trained with other model settings ("
        + ", ".join(f"{k}: {saved.get(k)!r} there, {wanted.get(k)!r} now"
                    for k in changed)
        + "); use another --workdir or remove the run directory")


def run_one(model: str, dataset: str, args) -> dict:
  """Trains (or resumes / reuses) one run; returns a row for the table."""
  config = make_config(model, dataset, args)
  run_dir = os.path.join(args.workdir, run_name(model, dataset, args))
  refit_epochs = getattr(args, "refit_epochs", 0) or (
      getattr(args, "refit", False) and selected_epoch(run_dir))
  if refit_epochs:
    config.refit_epochs = config.num_epochs = refit_epochs
    run_dir += "_refit"
  check_same_model(run_dir, config)
  start = time.perf_counter()
  if finished(run_dir, config):
    with open(os.path.join(run_dir, "results.json")) as f:
      results = json.load(f)
    status = "done (reused)"
  else:
    results = train.train_and_evaluate(config, run_dir)
    status = "trained"
  wall = time.perf_counter() - start
  history = _read_history(run_dir)
  record = {
      "time": datetime.datetime.now().isoformat(timespec="seconds"),
      "model": model, "dataset": dataset, "status": status,
      "epochs_run": results["epochs_run"], "best_epoch": results["best_epoch"],
      "target_epochs": config.num_epochs, "wall_seconds_this_call": wall,
      "train_seconds_total": results["train_seconds"],
      "seconds_per_epoch": results["seconds_per_epoch"],
      "refit": bool(results.get("refit", False)),
      "num_train": results.get("num_train"),
      "valid_recall@20": results["valid"].get("recall@20"),
      "valid_ndcg@20": results["valid"].get("ndcg@20"),
      "test_recall@20": results["test"]["recall@20"],
      "test_ndcg@20": results["test"]["ndcg@20"],
      "evaluations": len(history), "load_avg": round(os.getloadavg()[0], 2),
      "protocol": args.protocol, "lr": config.optimizer.learning_rate,
      "lr_schedule": config.optimizer.get("schedule", "constant"),
      "sampling": config.sampling,
      "batch_size": config.batch_size, "l2_reg": config.model.l2_reg,
      "embed_dim": config.model.embed_dim,
  }
  with open(os.path.join(run_dir, "reproduce_log.jsonl"), "a") as f:
    f.write(json.dumps(record, sort_keys=True) + "\n")
  return record


def markdown(rows: list[dict], skipped: list[str], args) -> str:
  """Results next to the published numbers."""
  lines = [
      "# LightGCN-family reproduction (full ranking, K=20)", "",
      *([f"Command: `{args.command}`", ""] if getattr(args, "command", "")
        else []),
      common.hardware_line(), "",
      f"Protocol '{args.protocol}': Adam, lr/batch/L2/dim per row, 3 layers; "
      "validation = 10% of each user's train interactions carved off for "
      "early stopping/selection (models train on 90% of the paper's train "
      "set); test = the paper's test split, reported once for the epoch "
      "selected on validation Recall@20. 'refit' rows retrain on train + "
      "valid (the paper's whole train set) for the validation-selected "
      "number of epochs and test the final parameters once.", "",
  ]
  cells = []
  for r in rows:
    pub = PUBLISHED.get((r["model"], r["dataset"]))
    pub_r, pub_n = (f"{pub[0]:.4f}", f"{pub[1]:.4f}") if pub else ("-", "-")
    label = LABELS.get(r["model"], r["model"])
    if r.get("refit"):
      label += " refit on train+valid"
    valid = r.get("valid_recall@20")
    valid = "-" if valid is None else f"{valid:.4f}"
    cells.append([
        label, r["dataset"], f"{r['epochs_run']} / {r['target_epochs']}",
        r["best_epoch"], f"{r['seconds_per_epoch']:.1f}", valid,
        f"{r['test_recall@20']:.4f}", f"{r['test_ndcg@20']:.4f}", pub_r, pub_n,
        f"{r['lr']:g}", r["batch_size"], f"{r['l2_reg']:g}"])
  lines += common.markdown_table(
      ["model", "dataset", "epochs run / target", "best epoch", "s/epoch",
       "valid R@20", "test R@20", "test N@20", "published R@20",
       "published N@20", "lr", "batch", "L2"], cells)
  if skipped:
    lines += ["", "Skipped (data not found under --data_root): "
              + ", ".join(skipped) + "."]
  return "\n".join(lines) + "\n"


def _write_table(text: str, args) -> None:
  common.write_page(args.out or os.path.join(args.workdir, "results.md"),
                    text)


def parse_args(argv=None) -> argparse.Namespace:
  """The command line of one invocation (also used by tune_ssl.py)."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--datasets", default=",".join(DATASETS))
  parser.add_argument("--data_root", default=None,
                      help="default: $JAXREC_DATA_ROOT, else ../shared/data")
  parser.add_argument("--workdir", default="workdirs/reproduce")
  parser.add_argument("--epochs", type=int, default=1000)
  parser.add_argument("--eval_every", type=int, default=0,
                      help="0 = the dataset preset's value")
  parser.add_argument("--patience", type=int, default=0,
                      help="evaluations without improvement; 0 = preset")
  parser.add_argument("--protocol", choices=("paper", "config"), default="paper")
  parser.add_argument("--batch_size", type=int, default=0,
                      help="0 = the protocol's (paper: 2048)")
  parser.add_argument("--learning_rate", type=float, default=0.0,
                      help="0 = the protocol's (paper: 1e-3)")
  parser.add_argument("--contrast_rows", type=int, default=0,
                      help="SGL/SimGCL/XSimGCL: InfoNCE over the first N "
                           "(shuffled) batch rows; 0 = all")
  parser.add_argument("--contrast_negatives", choices=("", "batch", "all"),
                      default="",
                      help="SGL only: InfoNCE negatives, 'all' = every user / "
                           "item of the other view (the released SGL code); "
                           "'' = the config's (in-batch)")
  parser.add_argument("--view_period", choices=("", "step", "epoch"),
                      default="",
                      help="SGL only: draw the two dropout views every step "
                           "or once per epoch (the released SGL code); '' = "
                           "the config's (step)")
  parser.add_argument("--ssl_weight", type=float, default=0.0,
                      help="SGL/SimGCL/XSimGCL: lambda of the InfoNCE term; "
                           "0 = the config's")
  parser.add_argument("--temperature", type=float, default=0.0,
                      help="SGL/SimGCL/XSimGCL: InfoNCE tau; 0 = the config's")
  parser.add_argument("--drop_rate", type=float, default=0.0,
                      help="SGL only: rho, the edge / node dropout ratio of "
                           "the views; 0 = the config's")
  parser.add_argument("--decay_epochs", type=int, default=0,
                      help="> 0: cosine learning-rate decay over this many "
                           "epochs (after --hold_epochs at the full rate)")
  parser.add_argument("--hold_epochs", type=int, default=0)
  parser.add_argument("--final_lr_ratio", type=float, default=0.0,
                      help="rate after the decay / initial (0 = 0.01)")
  parser.add_argument("--refit_epochs", type=int, default=0,
                      help="> 0: refit on train+valid for exactly this many "
                           "epochs (a pre-declared schedule length; no "
                           "validation run needed); test once")
  parser.add_argument("--sampling", choices=("paper", "user", "interaction"),
                      default="paper",
                      help="BPR triples: 'paper' = each model's released "
                           "code (user-uniform for LightGCN/NGCF)")
  parser.add_argument("--refit", action="store_true",
                      help="retrain on train+valid for the epoch count the "
                           "matching validation run selected; test once")
  parser.add_argument("--progress", action="store_true", help="tqdm bars")
  parser.add_argument("--out", default="", help="default: WORKDIR/results.md")
  args = parser.parse_args(argv)
  for m in args.models.split(","):
    if m and m not in MODELS:
      parser.error(f"--models: unknown model {m!r}; choose from {MODELS}")
  for d in args.datasets.split(","):
    if d and d not in DATASETS:
      parser.error(f"--datasets: unknown dataset {d!r}; choose from {DATASETS}")
  args.command = common.command("reproduce_lightgcn", argv)
  return args


def main(argv=None) -> list[dict]:
  args = parse_args(argv)
  logging.getLogger().setLevel(logging.INFO)
  models = [m for m in args.models.split(",") if m]
  datasets = [d for d in args.datasets.split(",") if d]
  os.makedirs(args.workdir, exist_ok=True)
  rows, skipped = [], []
  for dataset in datasets:
    if not dataset_present(dataset, args.data_root):
      skipped.append(dataset)
      logging.warning("%s: not found under the data root; skipped", dataset)
      continue
    for model in models:
      rows.append(run_one(model, dataset, args))
      _write_table(markdown(rows, skipped, args), args)  # after every run
  text = markdown(rows, skipped, args)
  _write_table(text, args)
  print(text, flush=True)
  return rows


if __name__ == "__main__":
  main()

"""Plots and a Markdown summary of one or more training runs.

  python -m jaxrec.report --workdir DIR [--compare DIR2 ...] [--output OUT]

Writes into OUT (default DIR/report):
  loss.png                 training loss per epoch
  valid_metrics.png        validation Recall@K / NDCG@K per evaluation
  comparison.png           test metrics of every run as bars (accuracy and the
                           beyond-accuracy metrics coverage, novelty and
                           average recommended popularity)
  embeddings_pca.png       2-D PCA (numpy SVD) of the user and item embeddings
                           of the best parameters, coloured by degree /
                           popularity (or by category when the dataset has one)
  degree_distribution.png  log-log degree distribution of the training graph
  report.md                the numbers and the plots (name: --markdown)

Inputs per workdir: results.json, metrics.jsonl, and for the embedding /
degree plots config.json + dataset.npz + a checkpoint (see jaxrec.recommend);
plots whose inputs are missing are skipped with a note in report.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from jaxrec import files

BEYOND = ("coverage", "novelty", "avg_popularity")
BEYOND_TEXT = {
    "coverage": "share of all items that appear in at least one user's "
                "top-K list (higher = more of the catalogue is recommended)",
    "novelty": "mean self-information -log2(pop_i / num_users) of the "
               "recommended items, pop_i = train interactions of item i "
               "(higher = less popular, more novel items)",
    "avg_popularity": "mean train popularity pop_i of the recommended items "
                      "(popularity bias: higher = more popular items)",
}
# Metrics of the rating task (config.task = 'rating'; lower is better).
RATING_METRICS = ("rmse", "mae")
_MAX_POINTS = 20000  # scatter points per panel
DPI = 100  # small PNGs, fit to commit


# ----------------------------------------------------------------------------
# Reading a run.


class Run:
  """What the report needs from one workdir (loaded lazily)."""

  def __init__(self, workdir: str):
    self.workdir = os.path.abspath(workdir)
    if not os.path.isdir(self.workdir):
      raise FileNotFoundError(f"workdir {workdir} does not exist")
    path = os.path.join(self.workdir, "results.json")
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"{path} not found: the run in {workdir} has not finished (results "
          "are written after the final test evaluation)")
    with open(path) as f:
      self.results = json.load(f)
    self.history = []
    hist_path = os.path.join(self.workdir, "metrics.jsonl")
    if os.path.isfile(hist_path):
      with open(hist_path) as f:
        self.history = [json.loads(line) for line in f if line.strip()]
    self.label = f"{self.results.get('model', '?')} " \
                 f"({os.path.basename(self.workdir)})"

  @property
  def losses(self) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, loss) per epoch, or per evaluation for older runs."""
    per_epoch = self.results.get("epoch_losses")
    if per_epoch:
      return np.arange(1, len(per_epoch) + 1), np.asarray(per_epoch)
    return (np.asarray([h["epoch"] for h in self.history]),
            np.asarray([h["loss"] for h in self.history]))

  @property
  def rating(self) -> bool:
    """Whether the run is of the rating task (RMSE / MAE, no ranking)."""
    return self.results.get("selection_metric") in RATING_METRICS

  def ks(self) -> list[int]:
    ks = sorted({int(k.split("@")[1]) for k in self.results["test"]
                 if k.startswith("recall@")})
    return ks


# ----------------------------------------------------------------------------
# Plots.


def _save(fig, path: str) -> str:
  try:
    files.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI,
                                                   bbox_inches="tight"))
  finally:
    plt.close(fig)
  return path


def plot_loss(runs: Sequence[Run], path: str) -> str:
  """Training loss per epoch of every run."""
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  for run in runs:
    epochs, loss = run.losses
    ax.plot(epochs, loss, label=run.label, lw=1.5)
  ax.set_xlabel("epoch")
  ax.set_ylabel("training loss (MSE + regularisation)" if runs[0].rating
                else "training loss (BPR + regularisation)")
  ax.set_title("Training loss")
  ax.grid(alpha=0.3)
  ax.legend()
  return _save(fig, path)


def plot_valid_metrics(runs: Sequence[Run], path: str) -> str:
  """Validation Recall@K and NDCG@K per evaluation; best epoch marked."""
  ks = runs[0].ks()
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
  for ax, metric in zip(axes, ("recall", "ndcg")):
    for n, run in enumerate(runs):
      epochs = [h["epoch"] for h in run.history]
      color = f"C{n}"
      for j, k in enumerate(ks):
        key = f"valid/{metric}@{k}"
        if run.history and key in run.history[0]:
          ax.plot(epochs, [h[key] for h in run.history], color=color,
                  ls=("-", "--", ":", "-.")[j % 4], marker="o", ms=3,
                  label=f"{run.label} @{k}")
      best = run.results.get("best_epoch", -1)
      if best > 0:
        ax.axvline(best, color=color, alpha=0.4, lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"Validation {metric.upper()}@K (vertical line: selected "
                 "epoch)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  return _save(fig, path)


def plot_rating_metrics(runs: Sequence[Run], path: str) -> str:
  """Rating runs: validation RMSE / MAE per evaluation and test bars."""
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
  for n, run in enumerate(runs):
    epochs = [h["epoch"] for h in run.history]
    for ax, metric in zip(axes[:2], RATING_METRICS):
      key = f"valid/{metric}"
      if run.history and key in run.history[0]:
        ax.plot(epochs, [h[key] for h in run.history], color=f"C{n}",
                marker="o", ms=3, label=run.label)
      best = run.results.get("best_epoch", -1)
      if best > 0:
        ax.axvline(best, color=f"C{n}", alpha=0.4, lw=1)
  for ax, metric in zip(axes[:2], RATING_METRICS):
    ax.set_xlabel("epoch")
    ax.set_title(f"Validation {metric.upper()} (lower is better; vertical "
                 "line: selected epoch)", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  x = np.arange(len(runs))
  width = 0.4
  for j, metric in enumerate(RATING_METRICS):
    values = [run.results["test"].get(metric, np.nan) for run in runs]
    bars = axes[2].bar(x + (j - 0.5) * width, values, width, label=metric)
    axes[2].bar_label(bars, fmt="%.4g", fontsize=7)
  axes[2].set_xticks(x, [run.label for run in runs], rotation=20, ha="right",
                     fontsize=7)
  axes[2].set_title("Test RMSE / MAE (selected on validation)", fontsize=9)
  axes[2].legend(fontsize=7)
  axes[2].grid(axis="y", alpha=0.3)
  fig.tight_layout()
  return _save(fig, path)


def plot_comparison(runs: Sequence[Run], path: str, k: int = 20) -> str:
  """Bars of test metrics @k across runs (one panel per metric)."""
  metrics = ["recall", "ndcg"] + [m for m in BEYOND
                                  if f"{m}@{k}" in runs[0].results["test"]]
  fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 3.6))
  axes = np.atleast_1d(axes)
  x = np.arange(len(runs))
  for ax, metric in zip(axes, metrics):
    values = [run.results["test"].get(f"{metric}@{k}", np.nan) for run in runs]
    bars = ax.bar(x, values, color=[f"C{n}" for n in range(len(runs))])
    ax.bar_label(bars, fmt="%.4g", fontsize=7)
    ax.set_xticks(x, [run.label for run in runs], rotation=20, ha="right",
                  fontsize=7)
    ax.set_title(f"test {metric}@{k}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
  fig.suptitle("Test metrics (parameters selected on validation)",
               fontsize=10)
  fig.tight_layout()
  return _save(fig, path)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """PCA by SVD of the centred data.

  Args:
    x: data. # [n, d]

  Returns:
    (coords [n, 2], components [2, d], explained variance ratio [2]).
  """
  x = np.asarray(x, np.float64)
  mean = x.mean(axis=0, keepdims=True)
  _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
  var = s ** 2
  ratio = var[:2] / max(var.sum(), 1e-30)
  return (x - mean) @ vt[:2].T, vt[:2], ratio


def degrees(dataset) -> tuple[np.ndarray, np.ndarray]:
  """Train degrees of users [U] and items [I] (distinct interactions)."""
  csr = dataset.csr("train")
  return (np.diff(csr.indptr),
          np.bincount(csr.indices, minlength=dataset.num_items))


def plot_embeddings(user_emb: np.ndarray, item_emb: np.ndarray, dataset,
                    path: str, title: str) -> str:
  """Joint 2-D PCA of users and items; colours: degree / category."""
  user_deg, item_deg = degrees(dataset)
  coords, _, ratio = pca_2d(np.concatenate([user_emb, item_emb]))
  users, items = coords[:len(user_emb)], coords[len(user_emb):]
  rng = np.random.default_rng(0)
  pick = lambda n: (np.sort(rng.choice(n, _MAX_POINTS, replace=False))
                    if n > _MAX_POINTS else np.arange(n))
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
  iu = pick(len(users))
  sc = axes[0].scatter(users[iu, 0], users[iu, 1], s=4,
                       c=np.log10(1 + user_deg[iu]), cmap="viridis",
                       linewidths=0)
  fig.colorbar(sc, ax=axes[0], label="log10(1 + user train degree)")
  axes[0].set_title("users", fontsize=9)
  ii = pick(len(items))
  cats = dataset.item_categories
  if cats is not None:
    sc = axes[1].scatter(items[ii, 0], items[ii, 1], s=4, c=cats[ii],
                         cmap="tab20", linewidths=0)
    fig.colorbar(sc, ax=axes[1], label="item category")
  else:
    sc = axes[1].scatter(items[ii, 0], items[ii, 1], s=4,
                         c=np.log10(1 + item_deg[ii]), cmap="magma",
                         linewidths=0)
    fig.colorbar(sc, ax=axes[1], label="log10(1 + item popularity)")
  axes[1].set_title("items", fontsize=9)
  for ax in axes:
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.1f}% var)")
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}% var)")
    ax.grid(alpha=0.3)
  fig.suptitle(f"{title}: PCA of user and item embeddings (joint fit)",
               fontsize=10)
  fig.tight_layout()
  return _save(fig, path)


def degree_histogram(deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(degree d >= 1, fraction of nodes with degree d) for nonzero counts."""
  counts = np.bincount(deg)
  d = np.flatnonzero(counts)
  d = d[d > 0]
  return d, counts[d] / max(len(deg), 1)


def plot_degrees(dataset, path: str) -> str:
  """Log-log degree distribution of users and items in the train graph."""
  user_deg, item_deg = degrees(dataset)
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for deg, name, marker in ((user_deg, "users", "o"), (item_deg, "items", "s")):
    d, frac = degree_histogram(deg)
    zero = int(np.sum(deg == 0))
    ax.loglog(d, frac, marker, ms=3, alpha=0.7,
              label=f"{name} (n={len(deg)}, mean {deg.mean():.1f}, "
                    f"{zero} with degree 0)")
  ax.set_xlabel("train degree d")
  ax.set_ylabel("fraction of nodes with degree d")
  ax.set_title(f"{dataset.name}: degree distribution (train graph)",
               fontsize=10)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=8)
  return _save(fig, path)


# ----------------------------------------------------------------------------
# Markdown.


def _fmt(value) -> str:
  if isinstance(value, float):
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
  return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
  out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  out += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
  return out


def markdown(runs: Sequence[Run], plots: dict, notes: Sequence[str],
             summary: Optional[str]) -> str:
  """The report.md text."""
  main = runs[0]
  res = main.results
  lines = [f"# Report: {res.get('model')} on {res.get('dataset')}", ""]
  lines.append(f"Workdir: `{main.workdir}`" + (f"  \nData: {summary}"
                                              if summary else ""))
  lines += [""] + _table(
      ["run", "epochs run", "best epoch (valid)", "s/epoch (median)",
       "train s"],
      [[r.label, r.results.get("epochs_run"), r.results.get("best_epoch"),
        float(r.results.get("seconds_per_epoch", float("nan"))),
        float(r.results.get("train_seconds", float("nan")))] for r in runs])
  for run in runs:
    if run.rating:
      lines += ["", f"## Test metrics: {run.label}", "",
                "Reported once, for the parameters selected on validation "
                f"(epoch {run.results.get('best_epoch')}).", ""]
      lines += _table(["metric", "test", "valid (selected)"],
                      [[m, run.results["test"].get(m, float("nan")),
                        run.results.get("valid", {}).get(m, float("nan"))]
                       for m in RATING_METRICS])
      continue
    ks = run.ks()
    names = ["recall", "ndcg", "precision", "hit_rate", "mrr", "map",
             *BEYOND]
    rows = [[name] + [run.results["test"].get(f"{name}@{k}", float("nan"))
                      for k in ks] for name in names
            if f"{name}@{ks[0]}" in run.results["test"]]
    lines += ["", f"## Test metrics: {run.label}", "",
              "Reported once, for the parameters selected on validation "
              f"(epoch {run.results.get('best_epoch')}).", ""]
    lines += _table(["metric"] + [f"@{k}" for k in ks], rows)
  if not all(run.rating for run in runs):
    lines += ["", "Beyond-accuracy metrics:", ""]
    lines += [f"- **{name}@K**: {text}"
              for name, text in BEYOND_TEXT.items()]
  lines += ["", "## Plots", ""]
  for title, path in plots.items():
    lines += [f"### {title}", "", f"![{title}]({os.path.basename(path)})", ""]
  if notes:
    lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
  return "\n".join(lines)


# ----------------------------------------------------------------------------
# Entry points.


def make_report(workdir: str, compare: Sequence[str] = (),
                output: Optional[str] = None, k: int = 20,
                markdown_name: str = "report.md") -> dict:
  """Writes the plots and the Markdown report; returns {name: path}.

  Args:
    workdir: the main run.
    compare: further runs for the comparison plots / tables.
    output: output folder (default workdir/report).
    k: cut-off of the comparison bars (falls back to the largest K).
    markdown_name: file name of the Markdown report inside `output`.

  Returns:
    {plot title: PNG path, ..., 'report': Markdown path}.
  """
  runs = [Run(workdir)] + [Run(d) for d in compare]
  output = output or os.path.join(runs[0].workdir, "report")
  os.makedirs(output, exist_ok=True)
  plots, notes, summary = {}, [], None
  plots["Training loss"] = plot_loss(runs, os.path.join(output, "loss.png"))
  if runs[0].rating:  # RMSE / MAE instead of ranking metrics
    plots["Rating metrics"] = plot_rating_metrics(
        runs, os.path.join(output, "rating_metrics.png"))
  else:
    ks = runs[0].ks()
    k = k if k in ks else max(ks)
    if any(r.history for r in runs):
      plots["Validation metrics"] = plot_valid_metrics(
          runs, os.path.join(output, "valid_metrics.png"))
    plots["Test metric comparison"] = plot_comparison(
        runs, os.path.join(output, "comparison.png"), k)
  from jaxrec import recommend as recommend_lib  # pylint: disable=g-import-not-at-top
  from jaxrec import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  try:
    dataset = workdir_lib.load_dataset_snapshot(runs[0].workdir)
    summary = dataset.summary()
    plots["Degree distribution"] = plot_degrees(
        dataset, os.path.join(output, "degree_distribution.png"))
    trained = recommend_lib.TrainedModel.load(runs[0].workdir)
    plots["Embeddings (PCA)"] = plot_embeddings(
        trained.user_emb, trained.item_emb, trained.dataset,
        os.path.join(output, "embeddings_pca.png"),
        f"{runs[0].results.get('model')} (best epoch {trained.best_epoch})")
  except (FileNotFoundError, ValueError, RuntimeError) as err:
    notes.append(f"embedding / degree plots skipped: {err}")
  text = markdown(runs, plots, notes, summary)
  md_path = os.path.join(output, markdown_name)
  files.write_text(md_path, text)
  return dict(plots, report=md_path)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m jaxrec.report",
      description="PNG plots and a Markdown report of training runs.")
  parser.add_argument("--workdir", required=True, help="the main run")
  parser.add_argument("--compare", nargs="*", default=[],
                      help="further workdirs to compare")
  parser.add_argument("--output", help="output folder (default WORKDIR/report)")
  parser.add_argument("--k", type=int, default=20,
                      help="cut-off for the comparison bars")
  parser.add_argument("--markdown", default="report.md",
                      help="file name of the Markdown report in the output "
                           "folder")
  args = parser.parse_args(argv)
  logging.getLogger("absl").addFilter(
      lambda r: "read only" not in r.getMessage()
      and "read_only=True" not in r.getMessage())
  try:
    out = make_report(args.workdir, args.compare, args.output, args.k,
                      args.markdown)
  except (FileNotFoundError, ValueError, RuntimeError) as err:
    print(f"error: {err}", file=sys.stderr)
    return 1
  for path in out.values():
    print(path)
  return 0


if __name__ == "__main__":
  sys.exit(main())

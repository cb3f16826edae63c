"""Tests of jaxrec.report (plots + Markdown) and of the beyond-accuracy
metrics that reach results.json (recomputed here in NumPy)."""

import collections
import json
import os
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from jaxrec import recommend
from jaxrec import report
from jaxrec import train
from jaxrec import workdir as workdir_lib
from tests import config_loader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLOTS = ("loss.png", "valid_metrics.png", "comparison.png",
         "embeddings_pca.png", "degree_distribution.png")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("report")
  out = {}
  for model in ("lightgcn", "mf"):
    config = config_loader.load("test.py", model)
    config.num_epochs = 3
    out[model] = str(root / model)
    train.train_and_evaluate(config, out[model])
  return out


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def _assert_png(path):
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
  image = matplotlib.image.imread(path)
  assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
  assert image[..., :3].std() > 0.01  # not blank
  assert os.path.getsize(path) < 400_000


def test_cli_writes_plots_and_markdown(runs, tmp_path):
  out_dir = tmp_path / "out"
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
  out = subprocess.run(
      [sys.executable, "-m", "jaxrec.report", "--workdir", runs["lightgcn"],
       "--compare", runs["mf"], "--output", str(out_dir), "--markdown",
       "summary.md"], cwd=REPO, env=env, capture_output=True, text=True,
      timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  assert sorted(os.listdir(out_dir)) == sorted(PLOTS + ("summary.md",))
  for name in PLOTS:
    _assert_png(out_dir / name)
    assert f"]({name})" in (out_dir / "summary.md").read_text()
  text = (out_dir / "summary.md").read_text()
  for model in ("lightgcn", "mf"):
    res = _results(runs[model])
    for metric in ("recall", "ndcg", "coverage", "novelty", "avg_popularity"):
      row = [line for line in text.splitlines()
             if line.startswith(f"| {metric} |")]
      value = f"{res['test'][f'{metric}@20']:.4f}"
      assert any(value in line for line in row), (model, metric, value)
    assert f"(epoch {res['best_epoch']})" in text
  assert "## Notes" not in text  # nothing skipped


def test_missing_checkpoint_skips_embedding_plot_with_a_note(runs, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / "copy"
  shutil.copytree(runs["mf"], workdir)
  shutil.rmtree(workdir / "checkpoints")
  paths = report.make_report(str(workdir), output=str(tmp_path / "out"))
  assert "Embeddings (PCA)" not in paths
  assert "Degree distribution" in paths
  text = open(paths["report"]).read()
  assert "## Notes" in text and "checkpoints not found" in text
  assert report.main(["--workdir", str(tmp_path / "nowhere")]) == 1


def test_beyond_accuracy_metrics_in_results_match_numpy(runs):
  """coverage / novelty / avg_popularity @K of results.json, from scratch."""
  trained = recommend.TrainedModel.load(runs["lightgcn"])
  ds = trained.dataset
  scores = trained.user_emb.astype(np.float64) @ trained.item_emb.T  # [U, I]
  scores[(ds.csr("train") + ds.csr("valid")).toarray() > 0] = -np.inf
  users = np.flatnonzero(np.diff(ds.csr("test").indptr))  # evaluated users
  pop = np.bincount(ds.train.items, minlength=ds.num_items).astype(np.float64)
  test = _results(runs["lightgcn"])["test"]
  for k in (10, 20):
    top = np.argsort(-scores[users], axis=1, kind="stable")[:, :k]  # [n, k]
    assert np.isfinite(np.take_along_axis(scores[users], top, 1)).all()
    coverage = len(np.unique(top)) / ds.num_items
    novelty = np.mean(-np.log2(np.maximum(pop[top], 1) / ds.num_users))
    assert test[f"coverage@{k}"] == pytest.approx(coverage, abs=1e-12)
    assert test[f"novelty@{k}"] == pytest.approx(novelty, rel=1e-5)
    assert test[f"avg_popularity@{k}"] == pytest.approx(pop[top].mean(),
                                                        rel=1e-5)


def test_pca_2d_matches_covariance_eigendecomposition():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) + 3.0  # [n, d]
  coords, comps, ratio = report.pca_2d(x)
  evals, evecs = np.linalg.eigh(np.cov(x, rowvar=False))  # ascending
  np.testing.assert_allclose(ratio, evals[::-1][:2] / evals.sum(), rtol=1e-8)
  np.testing.assert_allclose(comps @ comps.T, np.eye(2), atol=1e-10)
  for j in range(2):  # same axes up to sign
    assert abs(abs(comps[j] @ evecs[:, -1 - j]) - 1) < 1e-8
  np.testing.assert_allclose(coords, (x - x.mean(0)) @ comps.T, atol=1e-10)
  np.testing.assert_allclose(coords.var(0, ddof=1), evals[::-1][:2],
                             rtol=1e-8)


def test_degrees_and_histogram_match_counting(runs):
  ds = workdir_lib.load_dataset_snapshot(runs["mf"])
  user_deg, item_deg = report.degrees(ds)
  pairs = set(zip(ds.train.users.tolist(), ds.train.items.tolist()))
  users = collections.Counter(u for u, _ in pairs)
  items = collections.Counter(i for _, i in pairs)
  assert user_deg.tolist() == [users[u] for u in range(ds.num_users)]
  assert item_deg.tolist() == [items[i] for i in range(ds.num_items)]
  d, frac = report.degree_histogram(item_deg)
  counts = collections.Counter(item_deg.tolist())
  assert d.tolist() == sorted(k for k in counts if k > 0)
  np.testing.assert_allclose(frac, [counts[k] / ds.num_items for k in d])

"""`jaxrec.export`: bundles of tiny trained runs, decoded and checked.

A LightGCN, an ItemKNN and an MLP-scored DesignGNN train for two epochs on
tiny synthetic data. The bundles must decode to the trained vectors (exactly
in float32, within the storage error in bfloat16 / int8), reproduce the
training test metrics in float32, pass their checksums, be replaced
atomically, and the fold-in rules must match the models' definitions.
"""

import json
import os

import numpy as np
import pytest

from jaxrec import bundle as bundle_lib
from jaxrec import export
from jaxrec import input_pipeline
from jaxrec import recommend
from jaxrec import train
from jaxrec.data.synthetic import make_synthetic
from tests import config_loader
from tests import recommend_models_test


def _train(name, workdir, **model):
  """Two epochs of configs/test.py:<name> on tiny synthetic data."""
  config = config_loader.load("test.py", name)
  config.num_epochs = 2
  config.batch_size = 64
  config.steps_per_call = 64  # one scan chunk per epoch: one compilation
  for key, value in model.items():
    config.model[key] = value
  dataset = make_synthetic(num_users=30, num_items=40, num_interactions=360,
                           seed=0)
  results = train.train_and_evaluate(config, workdir, dataset)
  return results


@pytest.fixture(scope="module")
def lightgcn_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("lightgcn") / "run")
  results = _train("lightgcn", workdir)
  return workdir, results, recommend.TrainedModel.load(workdir)


@pytest.mark.parametrize("dtype", bundle_lib.DTYPES)
def test_bundle_decodes_to_the_trained_vectors(lightgcn_run, tmp_path, dtype):
  workdir, results, trained = lightgcn_run
  out = str(tmp_path / "bundle")
  assert export.main(["--workdir", workdir, "--out", out, "--dtype",
                      dtype]) == 0
  bundle = bundle_lib.read(out)
  meta = bundle.metadata
  assert meta["model"] == "lightgcn" and meta["dtype"] == dtype
  assert (meta["num_users"], meta["num_items"]) == trained.user_emb.shape[:1] + \
      trained.item_emb.shape[:1]
  assert meta["training"]["test"] == results["test"]
  for got, want in ((bundle.user_vectors, trained.user_emb),
                    (bundle.item_vectors, trained.item_emb)):
    if dtype == "float32":
      np.testing.assert_array_equal(got, want)
    elif dtype == "bfloat16":  # 8 significant bits, round to nearest
      np.testing.assert_allclose(got, want, rtol=2.0 ** -8, atol=0)
    else:  # per-row scale: error at most half a step
      step = np.abs(want).max(axis=1, keepdims=True) / 127.0
      assert np.all(np.abs(got - want) <= step / 2 + 1e-7)
  np.testing.assert_array_equal(bundle.user_ids, trained.user_original)
  seen = trained.seen_csr()
  np.testing.assert_array_equal(bundle.seen_indptr, seen.indptr)
  np.testing.assert_array_equal(bundle.seen_indices, seen.indices)
  evaluation = meta["evaluation"]
  for metric in ("recall@20", "ndcg@20"):
    assert evaluation["float32"][metric] == pytest.approx(
        results["test"][metric], rel=1e-6)
    assert abs(evaluation[dtype][metric] - evaluation["float32"][metric]) < 0.05
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


@pytest.mark.parametrize("name", export.PROPAGATED)
def test_fold_terms_match_the_propagation(name, tmp_path, monkeypatch):
  """Trained user = (e_u^0 + sum_i layer_sum_i / sqrt(d_u d_i)) / (K + 1).

  AlphaRec normalises that sum; text models' e_u^0 is the bundle's text map
  of the user's text feature.
  """
  monkeypatch.setattr(input_pipeline, "_encode_texts",
                      recommend_models_test.fake_encode)
  workdir = str(tmp_path / "run")
  _train(name, workdir)
  trained = recommend.TrainedModel.load(workdir)
  layer_sum, degree, num_layers, user_ego = export.lightgcn_fold_terms(
      trained)
  train_csr = trained.dataset.csr("train")
  d_user = np.asarray(train_csr.sum(axis=1)).ravel()  # [U]
  weights = train_csr.multiply(
      1.0 / np.sqrt(np.outer(np.maximum(d_user, 1), np.maximum(degree, 1))))
  rebuilt = (user_ego + weights @ layer_sum) / (num_layers + 1)  # [U, d]
  if name == "alpharec":
    rebuilt /= np.linalg.norm(rebuilt, axis=1, keepdims=True)
  np.testing.assert_allclose(rebuilt, trained.user_emb, rtol=1e-4, atol=1e-5)
  out = str(tmp_path / "bundle")
  export.export(workdir, out, evaluate=False)
  bundle = bundle_lib.read(out)
  if name == "lightgcn":
    assert bundle.text_ego is None
    return
  assert bundle.metadata["fold_in"]["normalise"] == (name == "alpharec")
  ego = bundle_lib.text_ego_forward(
      bundle.text_ego, trained.dataset.user_embeddings,
      bundle.metadata["fold_in"]["text_matmul_dtype"])
  np.testing.assert_allclose(ego, user_ego, rtol=1e-4, atol=1e-5)
  # A user's text alone: its layer-0 term (normalised for AlphaRec).
  alone = bundle_lib.fold_in(bundle, [], trained.dataset.user_embeddings[3])
  want = user_ego[3] / (num_layers + 1)
  if name == "alpharec":
    want = want / np.linalg.norm(want)
  np.testing.assert_allclose(alone, want, rtol=1e-4, atol=1e-6)


def test_fold_in_of_a_known_user_points_like_its_vector(lightgcn_run,
                                                        tmp_path):
  workdir, _, trained = lightgcn_run
  out = str(tmp_path / "bundle")
  export.export(workdir, out, evaluate=False)
  bundle = bundle_lib.read(out)
  assert bundle.metadata["fold_in"]["mode"] == "lightgcn"
  train_csr = trained.dataset.csr("train")
  cosines = []
  for user in range(trained.dataset.num_users):  # 30 tiny users
    items = train_csr[user].indices
    vec = bundle_lib.fold_in_vector("lightgcn", items, bundle.item_vectors,
                                    bundle.item_fold)
    want = trained.user_emb[user]
    cosines.append(vec @ want / np.linalg.norm(vec) / np.linalg.norm(want))
  assert np.mean(cosines) > 0.5


def test_itemknn_fold_in_is_the_users_row(tmp_path):
  workdir = str(tmp_path / "run")
  _train("itemknn", workdir)
  out = str(tmp_path / "bundle")
  export.export(workdir, out, dtype="int8", evaluate=False)
  bundle = bundle_lib.read(out)
  assert bundle.metadata["fold_in"]["mode"] == "indicator"
  assert bundle.item_fold is None
  trained = recommend.TrainedModel.load(workdir)
  train_csr = trained.dataset.csr("train")
  for user in (0, 7, 29):
    vec = bundle_lib.fold_in_vector("indicator", train_csr[user].indices,
                                    bundle.item_vectors, None)
    np.testing.assert_array_equal(vec, bundle.user_vectors[user])


def test_model_without_dot_product_is_refused(tmp_path, capsys):
  workdir = str(tmp_path / "run")
  _train("designgnn", workdir, interaction="concat_mlp")
  out = str(tmp_path / "bundle")
  assert export.main(["--workdir", workdir, "--out", out]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith("error: model 'designgnn'")
  assert "dot product" in err[-1]
  assert not os.path.exists(out)


def test_replacing_a_bundle_is_atomic_and_checked(lightgcn_run, tmp_path,
                                                  capsys):
  workdir, _, _ = lightgcn_run
  out = str(tmp_path / "bundle")
  first = export.export(workdir, out, "float32", evaluate=False)
  second = export.export(workdir, out, "int8", evaluate=False)
  assert first["version"] != second["version"]
  assert bundle_lib.read(out).version == second["version"]
  assert sorted(os.listdir(tmp_path)) == ["bundle"]
  # The version is the content: the same vectors give the same version.
  again = export.export(workdir, out, "int8", evaluate=False)
  assert again["version"] == second["version"]

  path = os.path.join(out, "item_vectors.int8.npy")
  with open(path, "r+b") as f:
    f.seek(-1, os.SEEK_END)
    last = f.read(1)
    f.seek(-1, os.SEEK_END)
    f.write(bytes([last[0] ^ 1]))
  with pytest.raises(bundle_lib.BundleError, match="SHA-256"):
    bundle_lib.read(out)

  other = tmp_path / "notes.txt"
  other.write_text("keep me")
  assert export.main(["--workdir", workdir, "--out", str(other)]) == 1
  assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
      "error: --out")
  assert other.read_text() == "keep me"


@pytest.mark.parametrize("args, message", [
    (["--workdir", "/nonexistent/run"], "does not exist"),
    (["--dtype", "fp8"], "--dtype 'fp8'"),
])
def test_bad_input_is_one_line(lightgcn_run, tmp_path, capsys, args, message):
  workdir, _, _ = lightgcn_run
  given = {"--workdir": workdir, "--out": str(tmp_path / "b"),
           "--dtype": "float32", args[0]: args[1]}
  argv = [part for pair in given.items() for part in pair]
  assert export.main(argv) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith("error: ") and message in err[-1]
  assert not os.path.exists(tmp_path / "b")


def test_metadata_is_json_with_checksums(lightgcn_run, tmp_path):
  workdir, _, _ = lightgcn_run
  out = str(tmp_path / "bundle")
  export.export(workdir, out, "bfloat16", evaluate=False)
  with open(os.path.join(out, bundle_lib.METADATA_FILE)) as f:
    meta = json.load(f)
  listed = set(meta["files"])
  assert listed == set(os.listdir(out)) - {bundle_lib.METADATA_FILE}
  assert all(len(c["sha256"]) == 64 for c in meta["files"].values())


@pytest.mark.slow
@pytest.mark.parametrize("name", config_loader.ranking_models())
def test_every_model_exports_its_ranking(name, tmp_path, monkeypatch):
  """Each registered model (default config) exports the lists it serves."""
  monkeypatch.setattr(input_pipeline, "_encode_texts",
                      recommend_models_test.fake_encode)
  config = config_loader.load("test.py", name)
  config.num_epochs = 1
  config.batch_size = 64
  config.steps_per_call = 64
  workdir = str(tmp_path / "run")
  dataset = make_synthetic(num_users=30, num_items=40, num_interactions=360,
                           seed=0)
  train.train_and_evaluate(config, workdir, dataset)
  trained = recommend.TrainedModel.load(workdir)
  out = str(tmp_path / "bundle")
  export.export(workdir, out, evaluate=False)
  bundle = bundle_lib.read(out)
  scores = bundle.user_vectors @ bundle.item_vectors.T  # [U, I]
  seen = trained.seen_csr().toarray() > 0
  scores[seen] = -np.inf
  frame = trained.recommend(k=5)
  for user in (0, 11, 29):
    want = frame[frame["user"] == user]["item"].tolist()
    got = np.argsort(-scores[user], kind="stable")[:len(want)]
    np.testing.assert_allclose(scores[user][got],
                               scores[user][want], rtol=1e-5, atol=1e-6)
  history = trained.dataset.csr("train")[0].indices
  vec = bundle_lib.fold_in(bundle, history)
  assert vec.shape == bundle.user_vectors.shape[1:]
  assert np.isfinite(vec).all()

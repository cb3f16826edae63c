"""Export a trained run as a self-contained serving bundle.

  python -m jaxrec.export --workdir W --out DIR [--dtype float32|bfloat16|int8]

The bundle (`jaxrec.bundle`) holds the final user / item representations as
the model scores them, the original-id maps, each user's seen (train +
valid) items, the per-item terms of the new-user fold-in rule, and a
metadata.json with the model, dataset, training metrics, export metrics and
checksums. `jaxrec.serve --bundle DIR` loads it with NumPy alone.

Only models that score by a dot product of a user and an item vector can be
exported: the export checks `model.score` against `u . v` on sample users and
refuses the others (e.g. `designgnn` with an MLP interaction) with a one-line
error.

Compression: bfloat16 and int8 bundles are evaluated on the test split
(train + valid items masked, as in training) next to the float32 vectors;
both results go to metadata.json under 'evaluation' and to stderr.

Fold-in rules (metadata 'fold_in', applied by `bundle.fold_in`) for
a new user with interacted items N (no retraining, item representations
fixed):
  lightgcn   LightGCN (and the LightGCN propagation of TextGNN / AlphaRec)
             with symmetric normalisation: the user's layer-k
             embedding is sum_{i in N} e_i^{k-1} / sqrt(|N| (d_i + 1)) and its
             final vector the mean of layers 0..K with e_u^0 = 0, so
             u = sum_{i in N} item_fold_i / sqrt(|N|) with
             item_fold_i = sum_{k<K} e_i^k / ((K + 1) sqrt(d_i + 1)).
             Approximations: no trained ego embedding (e_u^0 = 0), and the
             items' own representations do not see the new edges. Text
             models add their own layer-0 term: e_u^0 = ego(t_u) with the
             model's text map (TextGNN W t, AlphaRec's MLP) of the user's
             text feature t_u (its encoded text, else the mean of its items'
             text features, training's 'mean' user text), and AlphaRec
             normalises the result.
  indicator  ItemKNN / EASE: the user vector is the binary row of its items
             (exact: these models score x_u W).
  ones       MostPop: every user is the same vector.
  mean       every other model: the mean of the items' final vectors (an
             item-centroid approximation of the user the model would learn).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import sys
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import jaxrec
from jaxrec import bundle as bundle_lib
from jaxrec import metrics as metrics_lib
from jaxrec import recommend
from jaxrec import workdir as workdir_lib
from jaxrec.data.dataset import DataError
from jaxrec.graphs import pad_rows
from jaxrec.graphs import split_nodes
from jaxrec.models.lightgcn import LightGCN
from jaxrec.models.lightgcn import light_propagate
from jaxrec.models.textgnn import TextGNN
from jaxrec.models.textgnn import raw_text
from jaxrec import input_pipeline

# Users whose `model.score` rows are compared with the dot product.
_CHECK_USERS = 8


class ExportError(ValueError):
  """The run cannot be exported faithfully (message names why)."""


def check_dot_product(trained: recommend.TrainedModel) -> None:
  """Raises ExportError unless `model.score` is `user_emb @ item_emb.T`.

  Args:
    trained: the loaded run.
  """
  users = np.arange(min(_CHECK_USERS, trained.dataset.num_users))
  scores = trained.scores(users)  # [n, I]
  dots = trained.user_emb[users] @ trained.item_emb.T  # [n, I]
  scale = max(float(np.abs(dots).max()), 1e-6)
  if not np.allclose(scores, dots, rtol=1e-3, atol=1e-4 * scale):
    raise ExportError(
        f"model {trained.config.model_name!r} in {trained.workdir} does not "
        "score by a dot product of its user and item vectors (e.g. an MLP "
        "interaction); only dot-product models can be exported")


# Models whose final vectors are the LightGCN layer mean of a layer-0 table
# (free embeddings, or a map of the nodes' text features).
PROPAGATED = ("lightgcn", "textgnn", "alpharec")


def _node_ego(module, graph):
  """Layer-0 node table of a PROPAGATED model (inside `model.apply`)."""
  if isinstance(module, LightGCN):
    users, items = module.ego_embeddings()
    return pad_rows(graph, jnp.concatenate([users, items]))
  if isinstance(module, TextGNN):
    return module.node_features(graph)
  real = graph.nodes["mask"][:, None] > 0  # AlphaRec
  return jnp.where(real, module.mlp(raw_text(graph, module.text_key)), 0.0)


def lightgcn_fold_terms(trained: recommend.TrainedModel
                        ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
  """Per-item layer sums of a LightGCN-style run, for the fold-in rule.

  Args:
    trained: a loaded run of a `PROPAGATED` model.

  Returns:
    (layer_sum [I, d] = sum over layers k = 0..K-1 of e_i^k, train degree of
    each item [I], K, the users' layer-0 rows e_u^0 [U, d]).
  """
  num_layers = int(trained.model.num_layers)
  num_users, num_items = trained.dataset.num_users, trained.dataset.num_items
  graph = jax.tree.map(jnp.asarray,
                       input_pipeline.build_graph(trained.config, trained.dataset))

  def terms(params, graph):
    ego = trained.model.apply({"params": params}, graph, method=_node_ego)
    layers = light_propagate(graph, ego, num_layers,
                             method=trained.model.propagation)
    total = sum(layers[:num_layers])  # [N, d], layers 0..K-1
    return (split_nodes(total, num_users, num_items)[1],
            split_nodes(ego, num_users, num_items)[0])

  items, user_ego = jax.jit(terms)(trained.params, graph)
  train_csr = trained.dataset.csr("train")
  degree = np.diff(train_csr.tocsc().indptr).astype(np.float32)  # [I]
  return (np.asarray(items, np.float32), degree, num_layers,
          np.asarray(user_ego, np.float32))


def _text_ego(trained: recommend.TrainedModel) -> Optional[dict]:
  """The text -> layer-0 map of a text model, as `bundle.text_ego`."""
  name, params = trained.config.model_name, trained.params
  if name == "textgnn":
    ego = {"w0": params["text_proj"]["kernel"]}
  elif name == "alpharec":
    mlp = params["mlp"]
    ego = {"w0": mlp["hidden"]["kernel"], "b0": mlp["hidden"]["bias"],
           "w1": mlp["out"]["kernel"], "b1": mlp["out"]["bias"]}
  else:
    return None
  ego = {k: np.asarray(v, np.float32) for k, v in ego.items()}
  ego["item_text"] = np.asarray(trained.dataset.item_embeddings, np.float32)
  return ego


def fold_in_terms(trained: recommend.TrainedModel
                  ) -> tuple[Optional[np.ndarray], dict, Optional[dict]]:
  """The fold-in rule of a run.

  Returns:
    (item_fold [I, d] or None, the metadata 'fold_in' dict, the text map
    of a text model or None).
  """
  name = trained.config.model_name
  graph_config = trained.config.graph
  norm = graph_config.norm
  if name in PROPAGATED and norm == "sym":
    layer_sum, degree, num_layers, _ = lightgcn_fold_terms(trained)
    fold = layer_sum / ((num_layers + 1) *
                        np.sqrt(degree + 1.0))[:, None]  # [I, d]
    text_ego = _text_ego(trained)
    meta = {"mode": "lightgcn", "num_layers": num_layers,
            "rule": "u = sum_{i in N} item_fold_i / sqrt(|N|)",
            "approximation": "new user's layer-0 embedding is zero; item "
                             "representations do not see the new edges"}
    if text_ego is not None:
      meta.update({
          "rule": "u = sum_{i in N} item_fold_i / sqrt(|N|) + "
                  "ego(t_u) / (K + 1)",
          "approximation": "t_u = the user's text feature if given, else "
                           "the mean of its items' text features; item "
                           "representations do not see the new edges",
          "text_model": graph_config.text_model,
          "text_dim": int(text_ego["item_text"].shape[1]),
          "normalise": name == "alpharec",
          "text_matmul_dtype": trained.config.model.get("matmul_dtype",
                                                        "float32")})
    return fold.astype(np.float32), meta, text_ego
  if name in ("itemknn", "ease"):
    return None, {"mode": "indicator",
                  "rule": "u = binary row of N (exact)"}, None
  if name == "mostpop":
    return None, {"mode": "ones", "rule": "u = ones (exact)"}, None
  return None, {"mode": "mean", "rule": "u = mean_{i in N} item_vectors_i",
                "approximation": "item centroid in place of a trained user "
                                 "vector"}, None


def _content_version(*arrays: np.ndarray) -> str:
  digest = hashlib.sha256()
  for arr in arrays:
    digest.update(np.ascontiguousarray(arr).tobytes())
  return digest.hexdigest()[:16]


def training_summary(workdir: str) -> dict:
  """The run's results.json without per-epoch curves ({} while training)."""
  path = os.path.join(workdir, workdir_lib.RESULTS_FILE)
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    results = json.load(f)
  return {k: v for k, v in results.items() if not isinstance(v, list)}


def bundle_from_trained(trained: recommend.TrainedModel) -> bundle_lib.Bundle:
  """The float32 bundle of a loaded run, in memory.

  Args:
    trained: the loaded run.

  Returns:
    The bundle; its metadata lacks 'files' and its version hashes the
    vectors.

  Raises:
    ExportError: the model does not score by a dot product.
    ConfigError: a rating-prediction run.
  """
  trained.check_ranking()
  check_dot_product(trained)
  item_fold, fold, text_ego = fold_in_terms(trained)
  seen = trained.seen_csr()
  users = np.asarray(trained.user_emb, np.float32)
  items = np.asarray(trained.item_emb, np.float32)
  config = trained.config
  meta = {
      "format": bundle_lib.FORMAT,
      "format_version": bundle_lib.FORMAT_VERSION,
      "version": _content_version(users, items),
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "jaxrec_version": jaxrec.__version__,
      "model": config.model_name,
      "model_config": config.model.to_dict(),
      "dataset": trained.dataset.name,
      "num_users": int(users.shape[0]),
      "num_items": int(items.shape[0]),
      "dim": int(users.shape[1]),
      "dtype": "float32",
      "source": {"workdir": trained.workdir, "checkpoint_step": trained.step,
                 "best_epoch": trained.best_epoch},
      "training": training_summary(trained.workdir),
      "fold_in": fold,
  }
  return bundle_lib.Bundle(users, items, item_fold, trained.user_original,
                           trained.item_original,
                           seen.indptr.astype(np.int64),
                           seen.indices.astype(np.int64), meta, text_ego)


def encode_bundle(bundle: bundle_lib.Bundle, dtype: str
                  ) -> dict[str, np.ndarray]:
  """File name -> array of `bundle` with its vectors stored as `dtype`."""
  files = {}
  text_ego = bundle.text_ego or {}
  for name in bundle_lib.VECTOR_NAMES:
    vectors = (text_ego.get(name) if name == "item_text"
               else getattr(bundle, name))
    if vectors is not None:
      files.update(bundle_lib.encode(name, vectors, dtype))
  for name in bundle_lib.TEXT_EGO_NAMES:
    if name in text_ego:
      files[f"text_ego_{name}.npy"] = text_ego[name]
  files.update({"user_ids.npy": np.asarray(bundle.user_ids),
                "item_ids.npy": np.asarray(bundle.item_ids),
                "seen_indptr.npy": bundle.seen_indptr,
                "seen_indices.npy": bundle.seen_indices.astype(np.int32)})
  return files


def decoded_vectors(bundle: bundle_lib.Bundle, dtype: str
                    ) -> tuple[np.ndarray, np.ndarray]:
  """(users [U, d], items [I, d]) as a `dtype` bundle will decode them."""
  out = []
  for name in bundle_lib.VECTOR_NAMES[:2]:
    files = bundle_lib.encode(name, getattr(bundle, name), dtype)
    out.append(bundle_lib.decode(files, name, dtype))
  return out[0], out[1]


def _dot_scores(score_params, users):
  user_vectors, item_vectors = score_params
  return jnp.dot(user_vectors[users], item_vectors.T,
                 precision=jax.lax.Precision.HIGHEST)  # [B, I]


def evaluate_vectors(users: np.ndarray, items: np.ndarray,
                     trained: recommend.TrainedModel,
                     ks: Sequence[int] = (20,)) -> dict:
  """Test metrics of dot-product vectors, train + valid items masked.

  Args:
    users: user vectors. # [U, d]
    items: item vectors. # [I, d]
    trained: the run (its dataset splits).
    ks: cut-offs.

  Returns:
    recall@K / ndcg@K for each K.
  """
  ds = trained.dataset
  result = metrics_lib.evaluate_ranking(
      _dot_scores, (jnp.asarray(users), jnp.asarray(items)), ds.csr("test"),
      [ds.csr("train"), ds.csr("valid")], ks=tuple(ks))
  return {m: float(v) for m, v in result.items()
          if m.split("@")[0] in ("recall", "ndcg")}


def export(workdir: str, out: str, dtype: str = "float32",
           evaluate: bool = True) -> dict:
  """Writes the bundle of the run in `workdir` to `out` (atomically).

  Args:
    workdir: a trained workdir.
    out: the bundle directory (an existing bundle there is replaced).
    dtype: vector storage, one of `bundle.DTYPES`.
    evaluate: measure test recall / ndcg of the stored vectors and of float32.

  Returns:
    The written metadata (with 'size_bytes').

  Raises:
    ExportError, DataError, FileNotFoundError, BundleError: bad input.
  """
  if dtype not in bundle_lib.DTYPES:
    raise ExportError(f"--dtype {dtype!r}: expected one of "
                      f"{list(bundle_lib.DTYPES)}")
  trained = recommend.TrainedModel.load(workdir)
  bundle = bundle_from_trained(trained)
  meta = dict(bundle.metadata)
  meta["dtype"] = dtype
  for key in ("format", "format_version", "version"):
    meta.pop(key)
  if evaluate and len(trained.dataset.test):
    ks = tuple(trained.config.eval_ks)
    reference = evaluate_vectors(bundle.user_vectors, bundle.item_vectors,
                                 trained, ks)
    stored = (reference if dtype == "float32" else
              evaluate_vectors(*decoded_vectors(bundle, dtype), trained, ks))
    meta["evaluation"] = {"split": "test", "float32": reference,
                          dtype: stored}
  written = bundle_lib.write(out, encode_bundle(bundle, dtype), meta)
  written["size_bytes"] = bundle_lib.size_bytes(out)
  return written


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m jaxrec.export",
      description="Export a trained workdir as a serving bundle.")
  parser.add_argument("--workdir", required=True,
                      help="workdir of a `python -m jaxrec.main` run")
  parser.add_argument("--out", required=True, help="bundle directory")
  parser.add_argument("--dtype", default="float32",
                      help="vector storage: float32, bfloat16 or int8")
  parser.add_argument("--no_eval", action="store_true",
                      help="skip the test-split evaluation of the vectors")
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry point; returns the exit status (1 on bad input)."""
  args = parse_args(argv)
  # Restoring read-only is intended: the workdir is never modified.
  logging.getLogger("absl").addFilter(
      lambda r: "read only" not in r.getMessage())
  try:
    meta = export(args.workdir, args.out, args.dtype, not args.no_eval)
  except (ExportError, DataError, FileNotFoundError, ValueError,
          RuntimeError, OSError) as err:
    print(f"error: {err}", file=sys.stderr)
    return 1
  line = (f"wrote {args.out}: {meta['model']} {meta['dataset']}, "
          f"{meta['num_users']} users x {meta['num_items']} items, "
          f"d={meta['dim']}, {args.dtype}, {meta['size_bytes']:,} bytes, "
          f"version {meta['version']}")
  print(line, file=sys.stderr)
  evaluation = meta.get("evaluation")
  if evaluation:
    for metric, value in sorted(evaluation[args.dtype].items()):
      ref = evaluation["float32"][metric]
      print(f"  test {metric}: {value:.4f} (float32 {ref:.4f}, "
            f"{value - ref:+.4f})", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())

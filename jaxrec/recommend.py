"""Top-K recommendations and embedding export from a trained workdir.

  python -m jaxrec.recommend --workdir DIR --user U [--user U2 ...] --k 20
  python -m jaxrec.recommend --workdir DIR --users_file users.txt --output recs.csv
  python -m jaxrec.recommend --workdir DIR --all_users --output recs.csv
  python -m jaxrec.recommend --workdir DIR --export_embeddings DIR/emb

Library: `recommend(workdir, users, k=20)` or, to serve many requests from one
load, `TrainedModel.load(workdir).recommend(users, k)`.

What is used: the files training writes into the workdir (`jaxrec.workdir`):
the resolved config, the dataset snapshot (sizes, train/valid/test
interactions, original-id maps and, for `config.graph.text_features` runs,
the node text features the training graph was built from) and the BEST
parameters (selected on validation) of the newest readable checkpoint. The
model is rebuilt from the config and the training graph from the snapshot,
read-only: the workdir is never modified, and neither the data files nor the
text encoder are needed.

Ids: users and items are given and returned as ORIGINAL ids (the dataset's
`IdMap`s, e.g. SELFRec / CSV / MovieLens ids). Loaders without an id map
(LightGCN-format files, LastFM, synthetic) use the loader's contiguous ids; for
LastFM these are the file's 1-based ids minus 1. Items the user interacted
with in train or valid are excluded (`exclude_seen=False` keeps them); test
items are candidates, as in evaluation.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pandas as pd
import scipy.sparse as sp

from jaxrec import train
from jaxrec import files
from jaxrec import workdir as workdir_lib
from jaxrec.errors import ConfigError
from jaxrec.data.dataset import DataError, Dataset
from jaxrec import input_pipeline
from jaxrec import models


# ----------------------------------------------------------------------------
# The trained model.


def _model_kwargs(config) -> dict:
  tuplify = lambda v: tuple(v) if isinstance(v, list) else v
  return {k: tuplify(v) for k, v in config.model.to_dict().items()}


def _reload_text_features(workdir: str, config: ml_collections.ConfigDict,
                          dataset: Dataset) -> Dataset:
  """Text features for a snapshot saved without them, rebuilt from the data.

  Workdirs whose dataset.npz predates the saved text features: the dataset is
  loaded again from `config.dataset` and its embeddings, texts and tag counts
  are put on the snapshot, so `input_pipeline.build_graph` derives the features the
  way training did (texts through the same encoder cache). Exact only if the
  data files and the encoder are unchanged since training.

  Args:
    workdir: the run's workdir (for messages).
    config: its config.
    dataset: its snapshot.

  Returns:
    The snapshot with the reloaded side information.

  Raises:
    DataError: the reloaded dataset no longer has the run's sizes.
  """
  full = input_pipeline.load_data(config)
  if (full.num_users, full.num_items) != (dataset.num_users,
                                          dataset.num_items):
    raise DataError(
        f"{os.path.join(workdir, workdir_lib.DATASET_FILE)}: no saved text "
        f"features and {config.dataset.name!r} now has {full.num_users} "
        f"users / {full.num_items} items, the run had {dataset.num_users} / "
        f"{dataset.num_items}")
  logging.warning("%s: no saved text features; rebuilding them from dataset "
                  "%r", workdir, config.dataset.name)
  return dataclasses.replace(
      dataset, user_embeddings=full.user_embeddings,
      item_embeddings=full.item_embeddings, user_texts=full.user_texts,
      item_texts=full.item_texts, item_num_tags=full.item_num_tags)


@dataclasses.dataclass
class TrainedModel:
  """A trained model with its best parameters and inference embeddings.

  Attributes:
    workdir: the training workdir.
    config: the resolved training config.
    dataset: the dataset snapshot (contiguous ids, id maps).
    model: the Flax module.
    params: best parameters (selected on validation).
    user_emb / item_emb: inference embeddings. # [U, d] / [I, d]
    step: epoch of the checkpoint the parameters come from.
    best_epoch: epoch the best parameters were selected at.
  """
  workdir: str
  config: ml_collections.ConfigDict
  dataset: Dataset
  model: Any
  params: Any
  user_emb: np.ndarray
  item_emb: np.ndarray
  step: int
  best_epoch: int

  @classmethod
  def load(cls, workdir: str) -> "TrainedModel":
    """Rebuilds model + graph and restores the best parameters (read-only).

    Args:
      workdir: workdir of a `python -m jaxrec.main` run.

    Returns:
      The trained model.

    Raises:
      FileNotFoundError: not a trained workdir, or no checkpoint yet.
      DataError: a workdir file is unreadable or inconsistent (named).
    """
    workdir = os.path.abspath(workdir)
    config = workdir_lib.load_config(workdir)
    dataset = workdir_lib.load_dataset_snapshot(workdir)
    if config.graph.text_features and dataset.item_embeddings is None:
      dataset = _reload_text_features(workdir, config, dataset)
    graph = jax.tree.map(jnp.asarray, input_pipeline.build_graph(config, dataset))
    model = models.get_model(config.model_name, dataset.num_users,
                            dataset.num_items, **_model_kwargs(config))
    step, params, meta = train.restore_best_params(workdir, config, model,
                                                   graph)
    if not os.path.exists(os.path.join(workdir, workdir_lib.RESULTS_FILE)):
      logging.warning("%s: training has not finished; using the best "
                      "parameters of checkpoint %d", workdir, step)
    user_emb, item_emb = jax.jit(
        lambda p, g: model.apply({"params": p}, g, method="embed"))(params,
                                                                    graph)
    return cls(workdir, config, dataset, model, params, np.asarray(user_emb),
               np.asarray(item_emb), step, int(meta.get("best_epoch", step)))

  # --------------------------------------------------------------------------
  # Ids.

  @property
  def user_original(self) -> np.ndarray:
    ids = self.dataset.user_ids
    return (np.arange(self.dataset.num_users) if ids is None
            else np.asarray(ids.original))

  @property
  def item_original(self) -> np.ndarray:
    ids = self.dataset.item_ids
    return (np.arange(self.dataset.num_items) if ids is None
            else np.asarray(ids.original))

  def _describe_ids(self) -> str:
    orig = self.user_original
    if self.dataset.user_ids is None:
      return f"ids are 0..{len(orig) - 1}"
    return (f"ids are the original ids of the data files, e.g. "
            f"{', '.join(repr(v) for v in orig[:3].tolist())}")

  def user_index(self, users: Sequence[Any]) -> np.ndarray:
    """Contiguous indices of original user ids. # [n]

    Raises:
      DataError: an id is not a user of the training data (named).
    """
    orig = self.user_original
    is_int = np.issubdtype(orig.dtype, np.integer)
    lookup = {v: i for i, v in enumerate(orig.tolist())}
    out = np.empty(len(users), np.int64)
    for n, user in enumerate(users):  # one entry per requested user
      key = user
      if is_int:
        try:
          key = int(str(user).strip())
        except ValueError:
          key = None
      else:
        key = str(user)
      if key not in lookup:
        raise DataError(
            f"unknown user id {user!r}: not a user of dataset "
            f"{self.dataset.name!r} trained in {self.workdir} "
            f"({len(orig)} users; {self._describe_ids()})")
      out[n] = lookup[key]
    return out

  # --------------------------------------------------------------------------
  # Ranking.

  def seen_csr(self) -> sp.csr_matrix:
    """Binary user x item matrix of train + valid interactions."""
    ds = self.dataset
    seen = ds.csr("train") + ds.csr("valid")
    seen.data[:] = 1.0
    return seen.tocsr()

  def _jitted(self):
    if getattr(self, "_fns", None) is None:
      def score(params, user_emb, item_emb, users):
        return self.model.apply({"params": params}, user_emb, item_emb, users,
                                method="score")  # [B, I]

      def top(params, user_emb, item_emb, users, mask, k):
        s = jnp.where(mask, -jnp.inf, score(params, user_emb, item_emb, users))
        return jax.lax.top_k(s, k)  # ties: lowest item id first

      self._fns = (jax.jit(score), jax.jit(top, static_argnums=5))
    return self._fns

  def scores(self, user_index: np.ndarray) -> np.ndarray:
    """Model scores of all items for contiguous users. # [n, I]"""
    return np.asarray(self._jitted()[0](
        self.params, self.user_emb, self.item_emb,
        jnp.asarray(user_index, jnp.int32)))

  def check_ranking(self) -> None:
    """Refuses a rating-prediction run for top-K lists, export and serving.

    A rating model's score is its predicted rating, which the dot product of
    its embeddings does not give (biases, GC-MC's decoder).

    Raises:
      ConfigError: config.task is not 'ranking'.
    """
    if self.config.task != "ranking":
      raise ConfigError(
          f"{self.workdir}: config.task={self.config.task!r}; top-K "
          "recommendation, export and serving take ranking runs only "
          "(config.task='ranking')")

  def top_k(self, user_index: np.ndarray, k: int = 20,
            exclude_seen: bool = True, batch_bytes: int = 1 << 28
            ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k contiguous item ids and scores for contiguous users.

    Args:
      user_index: contiguous user ids. # [n]
      k: list length (at most the number of items).
      exclude_seen: mask train + valid items.
      batch_bytes: memory for one batch of [B, I] float32 scores.

    Returns:
      (items int64 [n, k], scores float32 [n, k]) by descending score (ties:
      lower item id first); slots beyond a user's candidates hold item -1 and
      score -inf.
    """
    self.check_ranking()
    num_items = self.dataset.num_items
    k = int(min(k, num_items))
    if k < 1:
      raise ValueError(f"k must be >= 1, got {k}")
    user_index = np.asarray(user_index, np.int64)
    batch = max(1, min(len(user_index), batch_bytes // (8 * num_items)))
    batch = 1 << (batch - 1).bit_length()  # few distinct jit shapes
    seen = self.seen_csr() if exclude_seen else None
    top = self._jitted()[1]
    items_out = np.full((len(user_index), k), -1, np.int64)
    scores_out = np.full((len(user_index), k), -np.inf, np.float32)
    for lo in range(0, len(user_index), batch):  # batches of users
      users = user_index[lo:lo + batch]
      n = len(users)
      padded = np.zeros(batch, np.int32)
      padded[:n] = users
      mask = np.zeros((batch, num_items), bool)  # [B, I]
      if seen is not None:
        rows = seen[users]
        mask[np.repeat(np.arange(n), np.diff(rows.indptr)), rows.indices] = True
      vals, idx = top(self.params, self.user_emb, self.item_emb, padded, mask,
                      k)
      vals, idx = np.asarray(vals)[:n], np.asarray(idx)[:n]  # [n, k]
      finite = np.isfinite(vals)
      items_out[lo:lo + n] = np.where(finite, idx, -1)
      scores_out[lo:lo + n] = np.where(finite, vals, -np.inf)
    return items_out, scores_out

  def recommend(self, users: Optional[Sequence[Any]] = None, k: int = 20,
                exclude_seen: bool = True) -> pd.DataFrame:
    """Top-k items per user, in original ids.

    Args:
      users: original user ids; None = all users.
      k: number of items per user.
      exclude_seen: drop items the user has in train or valid.

    Returns:
      DataFrame with columns user, rank (1..k), item, score; users with fewer
      than k candidate items get fewer rows.
    """
    index = (np.arange(self.dataset.num_users) if users is None
             else self.user_index(list(users)))
    items, scores = self.top_k(index, k, exclude_seen)
    valid = items >= 0  # [n, k]
    rows = np.nonzero(valid)
    return pd.DataFrame({
        "user": self.user_original[index][rows[0]],
        "rank": rows[1] + 1,
        "item": self.item_original[items[valid]],
        "score": scores[valid]})

  def export_embeddings(self, out_dir: str) -> list[str]:
    """Writes user/item embeddings and their original ids as .npy files.

    Files: user_embeddings.npy [U, d], item_embeddings.npy [I, d],
    user_ids.npy [U], item_ids.npy [I] (row r = original id); each written
    atomically.

    Returns:
      The written paths.
    """
    os.makedirs(out_dir, exist_ok=True)
    out = []
    for name, arr in (("user_embeddings", self.user_emb),
                      ("item_embeddings", self.item_emb),
                      ("user_ids", self.user_original),
                      ("item_ids", self.item_original)):
      path = os.path.join(out_dir, f"{name}.npy")
      files.atomic_write(path, lambda f, a=arr: np.save(f, a, allow_pickle=False))
      out.append(path)
    return out


def recommend(workdir: str, users: Optional[Sequence[Any]] = None, k: int = 20,
              exclude_seen: bool = True) -> pd.DataFrame:
  """Top-k recommendations for `users` (original ids) from a trained workdir.

  Args:
    workdir: workdir of a `python -m jaxrec.main` run.
    users: original user ids (None = all users).
    k: items per user.
    exclude_seen: exclude train + valid items of each user.

  Returns:
    DataFrame(user, rank, item, score), see `TrainedModel.recommend`.
  """
  return TrainedModel.load(workdir).recommend(users, k, exclude_seen)


# ----------------------------------------------------------------------------
# Command line.


def read_users_file(path: str) -> list[str]:
  """One user id per line; blank lines and '#' comments are skipped."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--users_file {path}: file not found (expected "
                            "one user id per line)")
  users = []
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, 1):  # one line per requested user
      text = line.split("#", 1)[0].strip()
      if not text:
        continue
      if len(text.split()) != 1 or "," in text:
        raise DataError(f"{path}:{lineno}: expected one user id per line, got "
                        f"{line.rstrip()!r}")
      users.append(text)
  if not users:
    raise DataError(f"{path}: no user ids (expected one user id per line)")
  return users


def _write_csv(frame: pd.DataFrame, path: str) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  files.atomic_write(path, lambda f: f.write(frame.to_csv(index=False).encode()))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m jaxrec.recommend",
      description="Top-K recommendations (original ids, seen train/valid "
                  "items excluded) and embedding export from a trained "
                  "workdir.")
  parser.add_argument("--workdir", required=True,
                      help="workdir of a `python -m jaxrec.main` run")
  who = parser.add_mutually_exclusive_group()
  who.add_argument("--user", action="append", default=None,
                   help="original user id (repeatable)")
  who.add_argument("--users_file", help="file with one user id per line")
  who.add_argument("--all_users", action="store_true",
                   help="recommend for every user")
  parser.add_argument("--k", type=int, default=20, help="items per user")
  parser.add_argument("--output", help="CSV file (user,rank,item,score); "
                      "default: print to stdout")
  parser.add_argument("--include_seen", action="store_true",
                      help="do not exclude train/valid items")
  parser.add_argument("--export_embeddings", metavar="DIR",
                      help="write user/item embeddings + ids as .npy to DIR")
  args = parser.parse_args(argv)
  if not (args.user or args.users_file or args.all_users
          or args.export_embeddings):
    parser.error("give --user, --users_file, --all_users or "
                 "--export_embeddings")
  if args.k < 1:
    parser.error(f"--k must be >= 1, got {args.k}")
  return args


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry point; returns the exit status (2 on bad input)."""
  args = parse_args(argv)
  logging.getLogger("absl").addFilter(
      lambda r: "read only" not in r.getMessage()
      and "read_only=True" not in r.getMessage())
  try:
    users = (args.user if args.user else
             read_users_file(args.users_file) if args.users_file else None)
    trained = TrainedModel.load(args.workdir)
    if args.export_embeddings:
      for path in trained.export_embeddings(args.export_embeddings):
        print(f"wrote {path}", file=sys.stderr)
    if users is not None or args.all_users:
      frame = trained.recommend(users, args.k, not args.include_seen)
      if args.output:
        _write_csv(frame, args.output)
        print(f"wrote {len(frame)} rows for "
              f"{frame['user'].nunique()} users to {args.output}",
              file=sys.stderr)
      else:
        sys.stdout.write(frame.to_csv(index=False))
  except (DataError, FileNotFoundError, ValueError, RuntimeError) as err:
    print(f"error: {err}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())

"""Warm starts: a run's initial parameters from another run or from text.

Two config options, applied by `train.setup_experiment` after the random
initialisation and before the first step (a resumed run restores its own
checkpoint instead, so they only matter for a run's first epoch):

* `config.init_from = <workdir>`: parameters are copied from the
  validation-selected (best) parameters of the finished or running
  `train_and_evaluate` run in that workdir. `config.init_map` says which:
  '' copies every parameter that has the same path in both runs (at least
  one must); 'src:dst,src:dst' copies the named ones, paths '/'-separated
  (an RLMRec wrapper's backbone tables are 'net/user_embedding', ...), and
  leaves every other parameter at its random initialisation. The source run
  must have trained on this run's users and items and on no interaction
  outside this run's training split (same dataset, seed and node order), so
  that nothing it learnt comes from this run's validation or test data.
* `config.init_text = 'pca'`: the ID tables (`user_embedding`,
  `item_embedding`) start from the node text features
  (`config.graph.text_features`) projected on their top embed_dim principal
  components (fitted over users and items together, so user and item rows
  share one space and dot products start as text similarities), rescaled to
  the model's `init_std`. Applied before `init_from`.

Every problem is a one-line `ConfigError` naming the option.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxrec import workdir as workdir_lib
from jaxrec.data.dataset import Dataset
from jaxrec.errors import ConfigError

INIT_TEXT = ("", "pca")
ID_TABLES = ("user_embedding", "item_embedding")


def parse_init_map(text: str) -> list[tuple[str, str]]:
  """'src:dst,src:dst' -> [(src, dst), ...] ('' -> []).

  Args:
    text: `config.init_map`.

  Returns:
    The (source path, target path) pairs, in order.

  Raises:
    ConfigError: an entry that is not 'src:dst', or a target named twice.
  """
  if not isinstance(text, str):
    raise ConfigError(f"config.init_map: expected a string 'src:dst,...', "
                      f"got {text!r}")
  pairs = []
  for entry in filter(None, (e.strip() for e in text.split(","))):
    src, sep, dst = entry.partition(":")
    if not sep or not src.strip() or not dst.strip():
      raise ConfigError(f"config.init_map: entry {entry!r} is not "
                        "'source_path:target_path' (e.g. "
                        "'net/user_embedding:user_embedding')")
    pairs.append((src.strip(), dst.strip()))
  targets = [dst for _, dst in pairs]
  doubled = sorted({t for t in targets if targets.count(t) > 1})
  if doubled:
    raise ConfigError(f"config.init_map: target(s) {doubled} named twice")
  return pairs


def flatten(tree: Any) -> dict[str, Any]:
  """{'a/b': leaf} of a nested dict of parameters."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    out["/".join(str(getattr(k, "key", k)) for k in path)] = leaf
  return out


def _unflatten_into(tree: Any, values: dict[str, Any]) -> Any:
  """`tree` with the leaves at the paths of `values` replaced."""
  def replace(path, leaf):
    key = "/".join(str(getattr(k, "key", k)) for k in path)
    return values.get(key, leaf)
  return jax.tree_util.tree_map_with_path(replace, tree)


def source_params(workdir: str) -> dict[str, np.ndarray]:
  """Flat best parameters of the run in `workdir`, as saved.

  The checkpoint is read without a template (its own structure and
  shapes), so the source model need not be rebuilt.

  Args:
    workdir: a training workdir.

  Returns:
    {'path/to/param': array}.

  Raises:
    ConfigError: no workdir or no checkpoint there.
  """
  if not os.path.isdir(workdir):
    raise ConfigError(f"config.init_from: workdir {workdir!r} does not exist "
                      "(expected the --workdir of a finished jaxrec run)")
  try:
    _, params, _ = workdir_lib.restore_best_params(workdir, None)
  except FileNotFoundError as err:
    raise ConfigError(f"config.init_from: {err}") from err
  return {k: np.asarray(v) for k, v in flatten(params).items()}


def check_source_split(workdir: str, dataset: Dataset) -> None:
  """Refuses a source run whose data this run could not have trained on.

  Args:
    workdir: the source run.
    dataset: this run's dataset (as trained: after node ordering and refit).

  Raises:
    ConfigError: other user / item counts, or source training interactions
      outside this run's training split (another seed, split or dataset).
  """
  try:
    source = workdir_lib.load_dataset_snapshot(workdir)
  except FileNotFoundError as err:
    raise ConfigError(f"config.init_from: {err}") from err
  if (source.num_users, source.num_items) != (dataset.num_users,
                                              dataset.num_items):
    raise ConfigError(
        f"config.init_from: the run in {workdir} has {source.num_users} users"
        f" / {source.num_items} items, this run {dataset.num_users} / "
        f"{dataset.num_items}: warm starts need the same dataset")
  key = lambda inter: (inter.users.astype(np.int64) * dataset.num_items
                       + inter.items)
  outside = ~np.isin(key(source.train), key(dataset.train))
  if outside.any():
    raise ConfigError(
        f"config.init_from: {int(outside.sum())} training interactions of the"
        f" run in {workdir} are not in this run's training split (another "
        "seed, split or node order?): its parameters may have seen this "
        "run's validation or test data")


def text_pca(dataset: Dataset, embed_dim: int, std: float
             ) -> tuple[np.ndarray, np.ndarray]:
  """ID tables from the node text features' top principal components.

  Args:
    dataset: with `user_embeddings` [U, t] and `item_embeddings` [I, t].
    embed_dim: d <= t.
    std: standard deviation of the returned entries (the model's init_std).

  Returns:
    (users [U, d], items [I, d]) float32.
  """
  x = np.concatenate([dataset.user_embeddings, dataset.item_embeddings]
                     ).astype(np.float64)  # [U + I, t]
  x -= x.mean(axis=0)
  _, _, vt = np.linalg.svd(x, full_matrices=False)  # rows: components
  z = x @ vt[:embed_dim].T  # [U + I, d]
  z *= std / max(float(z.std()), 1e-12)
  z = z.astype(np.float32)
  return z[:dataset.num_users], z[dataset.num_users:]


def initial_params(config: ml_collections.ConfigDict, params: Any,
                   dataset: Dataset, model) -> Any:
  """`params` with `config.init_text` and `config.init_from` applied.

  Args:
    config: the resolved experiment config.
    params: the randomly initialised parameters of `model`.
    dataset: the dataset as trained, with text features when configured.
    model: the model (its `embed_dim` / `init_std` for `init_text`).

  Returns:
    The initial parameters (`params` itself when neither option is set).

  Raises:
    ConfigError: see the module docstring.
  """
  init_text = config.get("init_text", "")
  init_from = config.get("init_from", "")
  pairs = parse_init_map(config.get("init_map", ""))
  if init_text not in INIT_TEXT:
    raise ConfigError(f"config.init_text: unknown value {init_text!r}; "
                      f"valid: {list(INIT_TEXT)}")
  if pairs and not init_from:
    raise ConfigError("config.init_map is set but config.init_from is empty "
                      "(name the workdir to copy the parameters from)")
  target = flatten(params)
  values = {}
  if init_text:
    values.update(_text_tables(config, target, dataset, model))
  if init_from:
    values.update(_copied(init_from, pairs, target, dataset))
  if not values:
    return params
  return _unflatten_into(params, {k: jnp.asarray(v, target[k].dtype)
                                  for k, v in values.items()})


def _text_tables(config, target: dict, dataset: Dataset, model) -> dict:
  """The 'pca' ID tables of `init_text`, keyed by parameter path."""
  if not config.graph.text_features or dataset.item_embeddings is None:
    raise ConfigError("config.init_text='pca' needs node text features: set "
                      "config.graph.text_features=True on a dataset with "
                      "item texts or embeddings")
  missing = [t for t in ID_TABLES if t not in target]
  if missing:
    raise ConfigError(f"config.init_text: model {config.model_name!r} has no "
                      f"parameter(s) {missing} (ID tables) to initialise")
  dim = int(target["item_embedding"].shape[1])
  text_dim = int(dataset.item_embeddings.shape[1])
  if dim > text_dim:
    raise ConfigError(f"config.init_text: embed_dim {dim} exceeds the text "
                      f"features' size {text_dim}")
  users, items = text_pca(dataset, dim, float(model.init_std))
  return {"user_embedding": users, "item_embedding": items}


def _copied(workdir: str, pairs: list, target: dict,
            dataset: Dataset) -> dict:
  """The parameters `init_from` / `init_map` copy, keyed by target path."""
  source = source_params(workdir)
  check_source_split(workdir, dataset)
  field = "config.init_map" if pairs else "config.init_from"
  if not pairs:
    pairs = [(k, k) for k in target if k in source]
    if not pairs:
      raise ConfigError(
          f"config.init_from: no parameter of this run has the same path in "
          f"{workdir} (its parameters: {sorted(source)}); name them in "
          "config.init_map as 'source:target,...'")
  out = {}
  for src, dst in pairs:
    if src not in source:
      raise ConfigError(f"config.init_map: {src!r} is not a parameter of the "
                        f"run in {workdir} (it has: {sorted(source)})")
    if dst not in target:
      raise ConfigError(f"config.init_map: {dst!r} is not a parameter of "
                        f"this run (it has: {sorted(target)})")
    if source[src].shape != tuple(target[dst].shape):
      raise ConfigError(
          f"{field}: {src!r} in {workdir} has shape "
          f"{source[src].shape} but {dst!r} needs {tuple(target[dst].shape)} "
          "(same dataset and embed_dim?)")
    out[dst] = source[src]
  return out

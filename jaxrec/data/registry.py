"""Dataset registry: `load_dataset(name, data_root=None, **kwargs)`.

Data root resolution (`resolve_data_root`): the explicit argument, else the
environment variable `JAXREC_DATA_ROOT`, else `<repo root>/../shared/data`
if it exists. Expected layout under the root:

  lightgcn/{gowalla,yelp2018,amazon-book}/train.txt + test.txt
  lightgcn/gowalla/s_adj_mat.npz + test.txt (LightGCN-PyTorch cache)
  lightgcn/lastfm/data1.txt + test1.txt
  selfrec/amazon-beauty/train.txt + test.txt
  rlmrec/{amazon,yelp,steam}/trn_mat.pkl, val_mat.pkl, tst_mat.pkl, ...
  movielens/ml-latest-small/{ratings,movies,tags}.csv
  hetrec/lastfm-2k/{user_artists,artists,tags,user_taggedartists}.dat

Datasets without a validation split get one carved from train with
`splits.carve_validation(valid_ratio, seed)` (default 0.1; test untouched);
RLMRec sets keep their own `val_mat.pkl`. `csv` and `movielens` hold all
rows in one table and are first split per user (`split`, `test_ratio`).
The text-attributed sets `ml_latest_small` and `hetrec_lastfm` (item texts,
`item_num_tags`) are split once per user into train/valid/test
(`split`='random', `valid_ratio` = `test_ratio` = 0.1 by default, `seed`):
no second carve.

Unknown keyword arguments raise `DataError` listing the valid ones. Users or
items without any train interaction (isolated nodes: they keep their initial
embedding) are reported with a `DataWarning` giving the counts.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from jaxrec.data import loaders, preprocess, splits, synthetic
from jaxrec.data.dataset import DataError, Dataset

ENV_VAR = "JAXREC_DATA_ROOT"
_REPO_ROOT = Path(__file__).resolve().parents[2]

_LIGHTGCN_DIRS = {"gowalla": "gowalla", "yelp2018": "yelp2018",
                  "amazon_book": "amazon-book"}
_RLMREC_DIRS = {"rlmrec_amazon": "amazon", "rlmrec_yelp": "yelp",
                "rlmrec_steam": "steam"}
_SOURCES = {
    "lastfm": "https://github.com/gusye1234/LightGCN-PyTorch (data/lastfm)",
    "amazon_beauty": "https://github.com/Coder-Yu/SELFRec "
                     "(dataset/amazon-beauty)",
    "gowalla": "https://github.com/gusye1234/LightGCN-PyTorch (data/gowalla)",
    "yelp2018": "https://github.com/kuandeng/LightGCN (Data/yelp2018)",
    "amazon_book": "https://github.com/kuandeng/LightGCN (Data/amazon-book)",
    "rlmrec": "https://github.com/HKUDS/RLMRec (data.zip)",
    "ml_latest_small": "https://grouplens.org/datasets/movielens/latest/ "
                       "(ml-latest-small.zip)",
    "hetrec_lastfm": "https://grouplens.org/datasets/hetrec-2011/ "
                     "(hetrec2011-lastfm-2k.zip)",
}
# Loader keyword arguments beyond the split ones, per dataset.
_TEXT_SETS = {"ml_latest_small": {"min_rating", "k_core", "max_tags"},
              "hetrec_lastfm": {"k_core", "max_tags"}}
_MOVIELENS_KWARGS = {"path", "name", "min_rating", "with_text", "max_tags",
                     "k_core"}
_CSV_TEXT_KWARGS = {"item_text_path", "item_text_col", "item_id_col"}

DATASETS = ("synthetic", "lastfm", "amazon_beauty", "gowalla", "yelp2018",
            "amazon_book", "rlmrec_amazon", "rlmrec_yelp", "rlmrec_steam",
            "csv", "movielens", "ml_latest_small", "hetrec_lastfm",
            "synthetic_ratings")


def resolve_data_root(data_root: Union[str, Path, None] = None
                      ) -> Optional[Path]:
  """The data root: argument, else $JAXREC_DATA_ROOT, else ../shared/data.

  Args:
    data_root: explicit root, used as given.

  Returns:
    The root as a Path, or None when nothing is configured and the default
    `<repo root>/../shared/data` does not exist.
  """
  if data_root is not None:
    return Path(data_root)
  env = os.environ.get(ENV_VAR)
  if env:
    return Path(env)
  default = _REPO_ROOT.parent / "shared" / "data"
  return default if default.is_dir() else None


def _folder(name: str, data_root, *parts: str) -> Path:
  root = resolve_data_root(data_root)
  source = _SOURCES.get("rlmrec" if name.startswith("rlmrec") else name, "")
  hint = (f"set {ENV_VAR} (or pass data_root) to a folder containing "
          f"{'/'.join(parts)}/" + (f"; download from {source}" if source
                                   else ""))
  if root is None:
    raise DataError(f"{name}: no data root configured (looked for "
                    f"{_REPO_ROOT.parent / 'shared' / 'data'}); {hint}")
  path = root.joinpath(*parts)
  if not path.is_dir():
    raise DataError(f"{name}: directory {path} not found; {hint}")
  return path


def _gowalla_like(name: str, data_root) -> Dataset:
  d = _folder(name, data_root, "lightgcn", _LIGHTGCN_DIRS[name])
  if (d / "train.txt").is_file() or not (d / "s_adj_mat.npz").is_file():
    return loaders.load_lightgcn(d, name=name)
  return loaders.load_lightgcn_adj(d, name=name)


def _needs_path(name: str, kwargs: dict) -> Path:
  if "path" not in kwargs:
    raise DataError(f"{name}: keyword argument 'path' (the ratings file) is "
                    f"required")
  return Path(kwargs.pop("path"))


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "lastfm": lambda root, kw: loaders.load_lastfm(
        _folder("lastfm", root, "lightgcn", "lastfm")),
    "amazon_beauty": lambda root, kw: loaders.load_selfrec(
        _folder("amazon_beauty", root, "selfrec", "amazon-beauty"),
        name="amazon_beauty"),
    **{n: (lambda root, kw, n=n: _gowalla_like(n, root))
       for n in _LIGHTGCN_DIRS},
    # Bind the folder too (d=d): a late-bound `d` made every RLMRec name
    # read the last folder of the dict (steam).
    **{n: (lambda root, kw, n=n, d=d: loaders.load_rlmrec(
        _folder(n, root, "rlmrec", d), name=n))
       for n, d in _RLMREC_DIRS.items()},
    "csv": lambda root, kw: loaders.load_csv(_needs_path("csv", kw), **kw),
    "movielens": lambda root, kw: loaders.load_movielens(
        _needs_path("movielens", kw), **kw),
    "ml_latest_small": lambda root, kw: loaders.load_ml_latest_small(
        _folder("ml_latest_small", root, "movielens", "ml-latest-small"),
        **kw),
    "hetrec_lastfm": lambda root, kw: loaders.load_hetrec_lastfm(
        _folder("hetrec_lastfm", root, "hetrec", "lastfm-2k"), **kw),
}


def load_dataset(name: str, data_root: Union[str, Path, None] = None,
                 **kwargs) -> Dataset:
  """Loads a registered dataset with train/valid/test splits.

  Args:
    name: one of `DATASETS`.
    data_root: data folder (see `resolve_data_root`).
    **kwargs: `valid_ratio` (default 0.1; 0 = no validation split) and
      `seed` (default 0) for `carve_validation`; for csv/movielens also
      `split` ('random' | 'temporal' | 'leave_one_out', default 'random')
      and `test_ratio` (default 0.2), the rest going to the loader (`path`,
      column names, `item_text_path`, `min_rating`, ...); for
      ml_latest_small / hetrec_lastfm `split`, `valid_ratio`, `test_ratio`
      (default 0.1 each) and `seed` make the loader's one per-user split,
      besides `k_core`, `max_tags` (and `min_rating`, default 4.0, for
      ml_latest_small); for `synthetic` everything goes to
      `make_synthetic` (which has its own 80/10/10 split; `valid_ratio` /
      `test_ratio` there set its `ratios`); for `synthetic_ratings` (explicit
      ratings of a planted biased low-rank model) everything goes to
      `make_synthetic_ratings`.

  Returns:
    The Dataset.
  """
  if name not in DATASETS:
    raise DataError(f"unknown dataset {name!r}; expected one of "
                    f"{', '.join(DATASETS)}")
  if name == "synthetic":
    valid_keys = set(inspect.signature(synthetic.make_synthetic).parameters) - {
        "return_factors"}
    _check_kwargs(name, kwargs, valid_keys | {"valid_ratio", "test_ratio"})
    if "valid_ratio" in kwargs or "test_ratio" in kwargs:
      valid = kwargs.pop("valid_ratio", 0.1)
      test = kwargs.pop("test_ratio", 0.1)
      kwargs["ratios"] = (1.0 - valid - test, valid, test)
    return synthetic.make_synthetic(**kwargs)
  if name == "synthetic_ratings":  # explicit ratings, split inside
    _check_kwargs(name, kwargs, set(inspect.signature(
        synthetic.make_synthetic_ratings).parameters))
    return synthetic.make_synthetic_ratings(**kwargs)
  if name in _TEXT_SETS:
    _check_kwargs(name, kwargs, _TEXT_SETS[name] | {
        "valid_ratio", "test_ratio", "split", "seed"})
    kwargs.setdefault("test_ratio", 0.1)
    dataset = _LOADERS[name](data_root, kwargs)  # split inside, no carve
    report_isolated(dataset)
    return dataset
  valid_ratio = kwargs.pop("valid_ratio", 0.1)
  seed = kwargs.pop("seed", 0)
  method = kwargs.pop("split", "random")
  test_ratio = kwargs.pop("test_ratio", 0.2)
  if name not in ("csv", "movielens"):
    _check_kwargs(name, kwargs, set())
  elif name == "movielens":
    _check_kwargs(name, kwargs, _MOVIELENS_KWARGS)
  else:
    table = set(inspect.signature(loaders.read_table).parameters)
    _check_kwargs(name, kwargs, (table - {"content"}) | {"name", "test_path"}
                  | _CSV_TEXT_KWARGS)
  dataset = _LOADERS[name](data_root, kwargs)
  if name in ("csv", "movielens") and not len(dataset.test):
    dataset = splits.split_dataset(dataset, method, test_ratio, 0.0,
                                    seed + 1)
  if len(dataset.valid) == 0:
    dataset = splits.carve_validation(dataset, valid_ratio, seed)
  report_isolated(dataset)
  return dataset


def _check_kwargs(name: str, kwargs: dict, valid: set) -> None:
  unknown = sorted(set(kwargs) - valid)
  if unknown:
    common = {"valid_ratio", "seed"} | ({"split", "test_ratio"} if name in (
        "csv", "movielens", *_TEXT_SETS) else set())
    raise DataError(f"{name}: unexpected keyword argument(s) {unknown} "
                    f"(config.dataset.kwargs); valid: "
                    f"{sorted(valid | common)}")


def report_isolated(dataset: Dataset) -> tuple[int, int]:
  """Warns about users / items with no train interaction; returns counts.

  Such nodes are isolated in the training graph: they are never a positive
  of the loss and keep their initial embedding. LightGCN-format data keeps
  them on purpose (ids up to the maximum id, as the published protocols do).

  Args:
    dataset: the loaded dataset.

  Returns:
    (users without train interactions, items without train interactions).
  """
  users = dataset.num_users - len(np.unique(dataset.train.users))
  items = dataset.num_items - len(np.unique(dataset.train.items))
  if users or items:
    preprocess.warn(
        f"{dataset.name}: {users} of {dataset.num_users} users and {items} of "
        f"{dataset.num_items} items have no train interaction (isolated "
        "nodes: they keep their initial embedding; remove them or check the "
        "id mapping if unexpected)")
  return users, items

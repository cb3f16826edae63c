"""Bad input end to end: a clear error naming file/line/field, nothing written.

Each case builds a bad data folder or config, calls
`train.train_and_evaluate(config, workdir)` (what `python -m jaxrec.main`
runs) and checks the exception type, that the message names the file and
line / field and what was expected, and that the workdir was not created.
Two cases also run the real command line, which prints `error: <message>`
and exits with status 1. The messages are listed in docs/troubleshooting.md.
"""

import os
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from jaxrec import config_utils
from jaxrec import errors
from jaxrec import train
from jaxrec.data import registry
from jaxrec.data.dataset import DataError
from jaxrec.data.preprocess import DataWarning
from jaxrec.models import MODELS
from tests import config_loader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, content):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  mode = "wb" if isinstance(content, bytes) else "w"
  with open(path, mode) as f:
    f.write(content)
  return path


def _dump(path, obj):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    pickle.dump(obj, f)


def _config(dataset="gowalla", root=None, **kwargs):
  config = config_loader.load("test.py", "mf")
  config.dataset = config_utils.dataset_config(
      dataset if dataset in config_utils.DATASETS else "lastfm")
  config.dataset.name = dataset
  config.dataset.data_root = str(root) if root else None
  config.dataset.kwargs.update(kwargs)
  return config


def _rlmrec(root, num_users=4, num_items=5):
  d = os.path.join(root, "rlmrec", "steam")
  rng = np.random.default_rng(0)
  for name in ("trn", "val", "tst"):
    m = (rng.random((num_users, num_items)) < 0.5).astype(np.float32)
    m[:, 0] = 1
    _dump(os.path.join(d, f"{name}_mat.pkl"), sp.coo_matrix(m))
  return d


def _gowalla(root, train_text, test_text="0 1\n"):
  d = os.path.join(root, "lightgcn", "gowalla")
  _write(os.path.join(d, "train.txt"), train_text)
  _write(os.path.join(d, "test.txt"), test_text)
  return d


# (case id, setup(root) -> config, expected exception, regexes on the message)
def _case_malformed_line(root):
  _gowalla(root, "0 1 2\n1 x 3\n")
  return _config("gowalla", root)


def _case_negative_id(root):
  _gowalla(root, "0 1 2\n1 -3\n")
  return _config("gowalla", root)


def _case_id_too_large(root):
  _gowalla(root, "0 1 2\n1 99999999999\n")
  return _config("gowalla", root)


def _case_id_out_of_range(root):
  d = os.path.join(root, "lightgcn", "gowalla")
  block = sp.csr_matrix(np.eye(3, 4, dtype=np.float32))
  os.makedirs(d)
  sp.save_npz(os.path.join(d, "s_adj_mat.npz"),
              sp.bmat([[None, block], [block.T, None]], format="csr"))
  _write(os.path.join(d, "test.txt"), "0 1\n1 3\n2 0 9\n")
  return _config("gowalla", root)


def _case_csv_non_integer(root):
  path = _write(os.path.join(root, "x.csv"), "user,item\n1,2\n3,4.5\n")
  return _config("csv", None, path=path)


def _case_csv_field_count(root):
  path = _write(os.path.join(root, "x.csv"), "user,item\n1,2\n3,4,5\n")
  return _config("csv", None, path=path)


def _case_lastfm_zero_id(root):
  d = os.path.join(root, "lightgcn", "lastfm")
  _write(os.path.join(d, "data1.txt"), "1\t1\t3\n0\t3\t3\n")
  _write(os.path.join(d, "test1.txt"), "1\t2\t1\n")
  return _config("lastfm", root)


def _case_empty_split(root):
  _gowalla(root, "0\n1\n")  # users without any item
  return _config("gowalla", root)


def _case_nan_embeddings(root):
  d = _rlmrec(root)
  emb = np.ones((5, 3))
  emb[3, 1] = np.nan
  _dump(os.path.join(d, "itm_emb_np.pkl"), emb)
  return _config("rlmrec_steam", root)


def _case_embedding_count(root):
  d = _rlmrec(root)
  _dump(os.path.join(d, "itm_emb_np.pkl"), np.ones((4, 3)))
  return _config("rlmrec_steam", root)


def _case_missing_folder(root):
  return _config("gowalla", os.path.join(root, "nowhere"))


def _case_missing_csv(root):
  return _config("csv", None, path=os.path.join(root, "missing.csv"))


def _case_unknown_dataset(root):
  del root
  return _config("gowala")


def _case_unknown_dataset_kwarg(root):
  del root
  config = _config("synthetic")
  config.dataset.kwargs = dict(num_user=10)
  return config


def _case_unknown_model(root):
  del root
  config = _config("synthetic")
  config.model_name = "lightgnc"
  return config


def _case_unknown_model_kwarg(root):
  del root
  config = _config("synthetic")
  config.model.num_layer = 3
  return config


def _case_unknown_config_key(root):
  del root
  config = _config("synthetic")
  config.learning_rate = 0.1
  return config


def _case_unknown_optimizer_key(root):
  del root
  config = _config("synthetic")
  config.optimizer.lr = 0.1
  return config


def _case_bad_selection_metric(root):
  del root
  config = _config("synthetic")
  config.selection_metric = "recall@50"
  return config


def _case_bad_node_order(root):
  del root
  config = _config("synthetic")
  config.graph.node_order = "popularity"
  return config


def _case_bad_gather_dtype(root):
  del root
  config = _config("synthetic")
  config.graph.gather_dtype = "float16"
  return config


CASES = [
    ("malformed_line", _case_malformed_line, DataError,
     [r"lightgcn/gowalla/train\.txt:2:", "integer ids", r"b'x'"]),
    ("negative_id", _case_negative_id, DataError,
     [r"train\.txt:2:", "non-negative"]),
    ("id_too_large", _case_id_too_large, DataError,
     [r"train\.txt:2:", "ids <= 2147483646", "99999999999"]),
    ("id_out_of_range", _case_id_out_of_range, DataError,
     [r"test\.txt:3:", "item id < 4", "got 9"]),
    ("csv_non_integer", _case_csv_non_integer, DataError,
     [r"x\.csv:3:", "field 'item'", "non-negative integer id", "'4.5'"]),
    ("csv_field_count", _case_csv_field_count, DataError,
     [r"x\.csv:3:", "expected 2 fields"]),
    ("lastfm_zero_id", _case_lastfm_zero_id, DataError,
     [r"data1\.txt:2:", "1-based ids >= 1"]),
    ("empty_split", _case_empty_split, DataError,
     [r"train\.txt", "empty split", r"'user item item \.\.\.'"]),
    ("nan_embeddings", _case_nan_embeddings, DataError,
     [r"itm_emb_np\.pkl", "row 3", "finite", "NaN"]),
    ("embedding_count", _case_embedding_count, DataError,
     [r"itm_emb_np\.pkl", r"shape \[5, d\]", r"\(4, 3\)"]),
    ("missing_folder", _case_missing_folder, DataError,
     [r"nowhere/lightgcn/gowalla not found", "JAXREC_DATA_ROOT"]),
    ("missing_csv", _case_missing_csv, DataError,
     [r"missing\.csv: file not found"]),
    ("unknown_dataset", _case_unknown_dataset, DataError,
     ["unknown dataset 'gowala'", "gowalla", "movielens"]),
    ("unknown_dataset_kwarg", _case_unknown_dataset_kwarg, DataError,
     [r"\['num_user'\]", "config.dataset.kwargs", "'num_users'"]),
    ("unknown_model", _case_unknown_model, errors.ConfigError,
     ["config.model_name", "'lightgnc'", "'lightgcn'", "'mf'"]),
    ("unknown_model_kwarg", _case_unknown_model_kwarg, errors.ConfigError,
     [r"config\.model", r"\['num_layer'\]", "valid keys", "'embed_dim'"]),
    ("unknown_config_key", _case_unknown_config_key, errors.ConfigError,
     [r"unknown top-level key\(s\) \['learning_rate'\]", "'optimizer'"]),
    ("unknown_optimizer_key", _case_unknown_optimizer_key, errors.ConfigError,
     [r"config\.optimizer", r"\['lr'\]", "'learning_rate'"]),
    ("bad_selection_metric", _case_bad_selection_metric, errors.ConfigError,
     ["recall@50", r"config\.eval_ks = \[10, 20\]"]),
    ("bad_node_order", _case_bad_node_order, errors.ConfigError,
     [r"config\.graph\.node_order", "'popularity'", "'degree'"]),
    ("bad_gather_dtype", _case_bad_gather_dtype, errors.ConfigError,
     [r"config\.graph\.gather_dtype", "'float16'", "'bfloat16'"]),
]


@pytest.mark.filterwarnings("ignore::jaxrec.data.preprocess.DataWarning")
@pytest.mark.parametrize("name,setup,error,patterns", CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_is_reported_and_nothing_written(tmp_path, name, setup,
                                                   error, patterns):
  del name
  config = setup(str(tmp_path / "data"))
  workdir = tmp_path / "workdir"
  with pytest.raises(error) as info:
    train.train_and_evaluate(config, str(workdir))
  message = str(info.value)
  for pattern in patterns:
    assert re.search(pattern, message), (pattern, message)
  assert not workdir.exists()


def test_every_shipped_config_passes_validation():
  for name in sorted(os.listdir(config_loader.CONFIG_DIR)):
    if not name.endswith(".py"):
      continue
    config = config_loader.load(name)
    runs = [config]
    if "compare" in config:
      runs = []
      for entry in config.compare:
        run = config.copy_and_resolve_references()
        del run.compare
        for key, value in dict(entry).items():
          if key != "name":
            run[key] = value
        runs.append(run)
    for run in runs:
      config_utils.validate_config(run)
  assert set(MODELS) >= {"mf", "lightgcn"}


def test_duplicates_are_dropped_with_a_warning_naming_the_file(tmp_path):
  d = _gowalla(str(tmp_path), "0 1 1 2\n1 0 2\n2 1 2\n", "0 0\n1 1\n2 0\n")
  with pytest.warns(DataWarning, match=r"train\.txt.*dropped 1 duplicate"):
    ds = registry.load_dataset("gowalla", data_root=str(tmp_path),
                               valid_ratio=0.0)
  pairs = set(zip(ds.train.users.tolist(), ds.train.items.tolist()))
  assert pairs == {(0, 1), (0, 2), (1, 0), (1, 2), (2, 1), (2, 2)}
  assert len(ds.train) == len(pairs)
  assert d.endswith("gowalla")


def test_users_and_items_without_interactions_are_reported(tmp_path):
  # User 3 has a line but no item; item 5 occurs only in test.
  _gowalla(str(tmp_path), "0 1 2\n1 0 2\n2 1 4\n3\n", "0 5\n1 1\n")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ds = registry.load_dataset("gowalla", data_root=str(tmp_path),
                               valid_ratio=0.0)
  messages = [str(w.message) for w in caught
              if issubclass(w.category, DataWarning)]
  train_users = set(ds.train.users.tolist())
  train_items = set(ds.train.items.tolist())
  no_user = ds.num_users - len(train_users)
  no_item = ds.num_items - len(train_items)
  assert (no_user, no_item) == (1, 2)  # user 3; items 3 and 5
  assert any(f"{no_user} of {ds.num_users} users and {no_item} of "
             f"{ds.num_items} items have no train interaction" in m
             for m in messages), messages
  with pytest.warns(DataWarning):
    assert registry.report_isolated(ds) == (no_user, no_item)


# ----------------------------------------------------------------------------
# The command line: `error: <message>`, exit status 1, no workdir.


def _cli(args, tmp_path):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
  return subprocess.run([sys.executable, "-m", "jaxrec.main", *args],
                        cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=300, check=False)


def test_cli_unknown_model_name(tmp_path):
  workdir = tmp_path / "wd"
  out = _cli(["--config", "configs/test.py", "--config.model_name=lightgnc",
              f"--workdir={workdir}"], tmp_path)
  assert out.returncode == 1, out.stderr[-2000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: config.model_name: unknown model "
                         "'lightgnc'; registered models: ["), last
  assert "Traceback" not in out.stderr
  assert not workdir.exists()


def test_cli_malformed_data_file(tmp_path):
  csv = _write(str(tmp_path / "ratings.csv"), "user,item\n1,2\n3,-4\n")
  cfg = _write(str(tmp_path / "cfg.py"), f'''
import sys
sys.path.insert(0, {REPO!r})
from tests import config_loader

def get_config(arg=None):
  config = config_loader.load("test.py", "mf")
  config.dataset.name = "csv"
  config.dataset.kwargs = dict(path={csv!r})
  return config
''')
  workdir = tmp_path / "wd"
  out = _cli(["--config", cfg, f"--workdir={workdir}"], tmp_path)
  assert out.returncode == 1, out.stderr[-2000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last == (f"error: {csv}:3: field 'item': expected a non-negative "
                  "integer id, got negative '-4'"), last
  assert not workdir.exists()

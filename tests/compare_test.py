"""jaxrec.compare: the entries of a comparison config, one dataset, one table."""

import os

import pytest

from jaxrec import compare
from jaxrec import workdir as workdir_lib
from jaxrec.errors import ConfigError
from tests import config_loader


def _comparison_config():
  config = config_loader.load("test.py", "mf")
  config.progress = False
  config.compare = [
      dict(name="mf"),
      dict(name="lightgcn", model_name="lightgcn",
           model=dict(embed_dim=16, num_layers=2, l2_reg=1e-4)),
  ]
  return config


def test_run_comparison_trains_each_entry_and_writes_the_table(tmp_path):
  table = compare.run_comparison(_comparison_config(), str(tmp_path))
  lines = table.splitlines()
  assert lines[0].startswith("| model | best epoch | recall@")
  assert [l.split("|")[1].strip() for l in lines[2:]] == ["mf", "lightgcn"]
  for name in ("mf", "lightgcn"):
    assert (tmp_path / name / workdir_lib.RESULTS_FILE).exists()
  with open(tmp_path / compare.COMPARISON_FILE) as f:
    assert table in f.read()


def test_compare_configs_names_the_bad_entry_before_any_work():
  config = _comparison_config()
  config.compare = [dict(name="ok"), dict(model_name="mf")]
  with pytest.raises(ConfigError, match=r"config\.compare\[1\]: missing 'name'"):
    compare.compare_configs(config)
  config.compare = [dict(name="ok"), dict(name="bad", num_epochs=0)]
  with pytest.raises(ConfigError, match=r"config\.compare\[1\] \('bad'\): "
                     r"config\.num_epochs: expected a positive integer"):
    compare.compare_configs(config)


def test_shipped_quickstart_is_a_valid_comparison():
  runs = compare.compare_configs(config_loader.load("quickstart.py"))
  assert [name for name, _ in runs] == ["mf", "lightgcn"]
  assert all("compare" not in run for _, run in runs)
  assert not os.path.isabs(runs[0][0])

"""Quick-start: MF vs LightGCN on the built-in synthetic data, same split.

  python -m jaxrec.compare --config configs/quickstart.py --workdir workdirs/quickstart

Trains each entry of `config.compare` in workdir/<name>/ and prints a table of
test Recall@20 / NDCG@20 (selected on validation). Expected: LightGCN > MF on
both (figures in docs/results/quickstart.md).
"""

from jaxrec import config_utils


def get_config(arg=None):
  del arg
  config = config_utils.base_config("synthetic")
  config.num_epochs = 40
  config.patience = 5
  config.compare = [
      dict(name="mf", model_name="mf", model=dict(embed_dim=64, l2_reg=1e-4)),
      dict(name="lightgcn", model_name="lightgcn",
           model=dict(embed_dim=64, num_layers=3, l2_reg=1e-4)),
  ]
  return config

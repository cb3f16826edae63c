"""GCN recommender (Kipf & Welling convolutions), 2 layers, dim 64, tanh.

  python -m jaxrec.main --config configs/gcn.py:synthetic --workdir workdirs/gcn_synthetic

lr 1e-3, L2 1e-4, layer-mean combination. No published numbers on the
LightGCN benchmarks (nonlinear GCN layers hurt collaborative filtering there).
synthetic, lastfm, amazon_beauty: linear layers and feature dropout 0.2
(selected on validation, docs/config_choices.md). Measured:
docs/results/README.md.
"""

from jaxrec import config_utils

# Per-dataset overrides, selected on validation (docs/config_choices.md).
OVERRIDES = {"synthetic": dict(activation="none", dropout=0.2),
             "lastfm": dict(activation="none", dropout=0.2),
             "amazon_beauty": dict(activation="none", dropout=0.2)}


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  dataset = arg or "synthetic"
  config = config_utils.base_config(dataset)
  config.model_name = "gcn"
  model = dict(embed_dim=64, num_layers=2, l2_reg=1e-4, activation="tanh",
               combine="mean", dropout=0.0)
  model.update(OVERRIDES.get(dataset, {}))
  config.model = model
  return config

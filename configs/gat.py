"""GAT recommender, 2 layers, 1 head of 64, tanh, self loops.

  python -m jaxrec.main --config configs/gat.py:synthetic --workdir workdirs/gat_synthetic

Attention over each node's neighbours and itself (`jraph.segment_softmax`),
layer-mean combination, lr 1e-3, L2 1e-4. No published numbers on the
LightGCN benchmarks. lastfm: linear layers (selected on validation,
docs/config_choices.md). Measured: docs/results/README.md.
"""

from jaxrec import config_utils

# Per-dataset overrides, selected on validation (docs/config_choices.md).
OVERRIDES = {"lastfm": dict(activation="none")}


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  dataset = arg or "synthetic"
  config = config_utils.base_config(dataset)
  config.model_name = "gat"
  model = dict(embed_dim=64, num_layers=2, num_heads=1, l2_reg=1e-4,
               activation="tanh", combine="mean", attention_dropout=0.0)
  model.update(OVERRIDES.get(dataset, {}))
  config.model = model
  return config

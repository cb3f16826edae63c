"""GraphSAGE recommender (mean aggregator), 2 layers, dim 64, tanh.

  python -m jaxrec.main --config configs/sage.py:synthetic --workdir workdirs/sage_synthetic

Full-neighbourhood mean aggregation (no sampling), layer-mean combination,
lr 1e-3, L2 1e-4. No published numbers on the LightGCN benchmarks.
synthetic, amazon_beauty: feature dropout 0.6 (selected on validation,
docs/config_choices.md). Measured: docs/results/README.md.
"""

from jaxrec import config_utils

# Per-dataset overrides, selected on validation (docs/config_choices.md).
OVERRIDES = {"synthetic": dict(dropout=0.6), "amazon_beauty": dict(dropout=0.6)}


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  dataset = arg or "synthetic"
  config = config_utils.base_config(dataset)
  config.model_name = "sage"
  model = dict(embed_dim=64, num_layers=2, l2_reg=1e-4, activation="tanh",
               normalise=False, combine="mean", dropout=0.0)
  model.update(OVERRIDES.get(dataset, {}))
  config.model = model
  return config

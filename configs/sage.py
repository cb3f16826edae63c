"""GraphSAGE recommender (mean aggregator), 2 layers, dim 64, tanh.

  python -m jaxrec.main --config configs/sage.py:synthetic --workdir workdirs/sage_synthetic

Full-neighbourhood mean aggregation (no sampling), layer-mean combination,
lr 1e-3, L2 1e-4. No published numbers on the LightGCN benchmarks; expected
to beat MF on the synthetic data. Measured numbers:
benchmarks/RESULTS.md.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "sage"
  config.model = dict(embed_dim=64, num_layers=2, l2_reg=1e-4,
                      activation="tanh", normalise=False, combine="mean",
                      dropout=0.0)
  return config

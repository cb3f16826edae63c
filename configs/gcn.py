"""GCN recommender (Kipf & Welling convolutions), 2 layers, dim 64, tanh.

  python -m jaxrec.main --config configs/gcn.py:synthetic --workdir workdirs/gcn_synthetic

No published numbers on the LightGCN benchmarks (the LightGCN paper shows
that nonlinear GCN layers hurt collaborative filtering); expected to beat MF
on the synthetic data, below LightGCN. lr 1e-3, L2 1e-4, layer-mean
combination. Measured numbers: benchmarks/RESULTS.md.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "gcn"
  config.model = dict(embed_dim=64, num_layers=2, l2_reg=1e-4,
                      activation="tanh", combine="mean", dropout=0.0)
  return config

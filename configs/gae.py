"""Graph autoencoder (Kipf & Welling 2016) as a recommender, 2 GCN layers.

  python -m jaxrec.main --config configs/gae.py:synthetic --workdir workdirs/gae_synthetic

GCN encoder (ReLU hidden layer of 64, linear 64-d output), inner-product
decoder, trained on link reconstruction (BCE: the batch's observed edges vs
its sampled non-edges), lr 1e-3, L2 1e-4. No published numbers on the
LightGCN benchmarks; expected to beat MF on the synthetic data. Measured
numbers: docs/results/README.md.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "gae"
  config.model = dict(embed_dim=64, num_layers=2, l2_reg=1e-4,
                      activation="relu")
  return config

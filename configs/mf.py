"""BPR matrix factorisation baseline, dim 64, lr 1e-3, L2 1e-4, batch 2048.

  python -m jaxrec.main --config configs/mf.py:lastfm --workdir workdirs/mf_lastfm

Datasets: as configs/lightgcn.py. Measured numbers: docs/results/README.md.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "mf"
  config.model = dict(embed_dim=64, l2_reg=1e-4)
  return config

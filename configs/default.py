"""Default experiment: LightGCN (3 layers) on the built-in synthetic data.

  python -m jaxrec.main --config configs/default.py --workdir workdirs/default
"""

from jaxrec import config_utils


def get_config(arg=None):
  del arg
  config = config_utils.base_config("synthetic")
  config.num_epochs = 60
  return config

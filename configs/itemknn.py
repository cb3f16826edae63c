"""ItemKNN baseline: shrunk item-item cosine, 100 neighbours per item.

  python -m jaxrec.main --config configs/itemknn.py:lastfm --workdir workdirs/itemknn_lastfm

sim(i, j) = |U_i & U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink) on the binary
train matrix; score(u, j) sums sim(i, j) over the user's items i having j
among their `num_neighbors`. Closed form (jaxrec/models/baselines.py), fitted
once; epoch, optimiser and batch settings are unused. Dense [I, I] float32
weights (1.2 GB at 17,632 items). Datasets: as configs/lightgcn.py.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "itemknn"
  config.model = dict(num_neighbors=100, shrink=10.0)
  return config

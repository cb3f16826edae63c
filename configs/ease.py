"""EASE (Steck, WWW 2019): closed-form linear item-item autoencoder.

  python -m jaxrec.main --config configs/ease.py:lastfm --workdir workdirs/ease_lastfm

B = I - P diag(1 / diag(P)), P = (X^T X + l2 I)^-1, diag(B) = 0, score = x_u B.
Closed form (jaxrec/models/baselines.py): fitted once on the train split
(train + valid with refit_epochs > 0), no gradient training; the epoch,
optimiser and batch settings are unused. Memory: a dense [I, I] float32
(1.2 GB at 17,632 items); tune `l2` on validation (the paper's range is
roughly 1e2-1e4). Datasets: as configs/lightgcn.py.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "ease"
  config.model = dict(l2=500.0)
  return config

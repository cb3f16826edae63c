"""MostPop baseline: every user gets the items with the most train users.

  python -m jaxrec.main --config configs/mostpop.py:lastfm --workdir workdirs/mostpop_lastfm

Closed form (jaxrec/models/baselines.py): fitted once on the train split
(train + valid with refit_epochs > 0), no gradient training; the epoch,
optimiser and batch settings of the base config are unused. Datasets: as
configs/lightgcn.py.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "mostpop"
  config.model = dict()
  return config

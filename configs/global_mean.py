"""Global mean rating baseline: predicts the train mean for every pair.

  python -m jaxrec.main --config configs/global_mean.py:ml_latest_small --workdir workdirs/mean

Rating task (docs/rating.md), closed form (fitted once on the train split's
ratings; epoch and optimiser settings unused). Datasets: synthetic_ratings
(default) or ml_latest_small (every rating kept, random 80/10/10 per user).
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic_ratings)."""
  config = config_utils.base_config(arg or "synthetic_ratings")
  if config.dataset.name == "ml_latest_small":
    config.dataset.kwargs.min_rating = 0.0
  config.task = "rating"
  config.selection_metric = "rmse"
  config.model_name = "global_mean"
  config.model = dict()
  return config

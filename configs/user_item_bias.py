"""User/item bias baseline (Koren, TKDD 2010): r = mu + b_u + b_i.

  python -m jaxrec.main --config configs/user_item_bias.py:ml_latest_small --workdir workdirs/bias

Rating task (docs/rating.md), closed form: 10 rounds of regularised ALS,
reg_user 15, reg_item 10 (scikit-surprise BaselineOnly's defaults;
ml_latest_small: 5 and 5, benchmarks/rating.py grid); epoch
and optimiser settings unused. Datasets: synthetic_ratings (default) or
ml_latest_small (every rating kept, random 80/10/10 per user).
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic_ratings)."""
  config = config_utils.base_config(arg or "synthetic_ratings")
  if config.dataset.name == "ml_latest_small":
    config.dataset.kwargs.min_rating = 0.0
  config.task = "rating"
  config.selection_metric = "rmse"
  config.model_name = "user_item_bias"
  config.model = dict(reg_user=15.0, reg_item=10.0, num_iters=10)
  if config.dataset.name == "ml_latest_small":
    # Chosen on seed-0 validation RMSE by benchmarks/rating.py.
    config.model = dict(reg_user=5.0, reg_item=5.0, num_iters=10)
  return config

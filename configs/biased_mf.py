"""Biased MF (Koren et al., IEEE Computer 2009): r = mu + b_u + b_i + p_u.q_i.

  python -m jaxrec.main --config configs/biased_mf.py:ml_latest_small --workdir workdirs/bmf

Rating task (docs/rating.md): MSE + L2 (l2_reg 0.04 = surprise SVD's
reg 0.02), dim 64, Adam 1e-3, batch 1024, early stopping on validation RMSE.
Datasets: synthetic_ratings (default) or ml_latest_small (every rating kept,
min_rating 0; random 80/10/10 per user, seeded by config.seed).
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic_ratings)."""
  config = config_utils.base_config(arg or "synthetic_ratings")
  if config.dataset.name == "ml_latest_small":
    config.dataset.kwargs.min_rating = 0.0
  config.task = "rating"
  config.selection_metric = "rmse"
  config.model_name = "biased_mf"
  config.model = dict(embed_dim=64, l2_reg=0.04)
  config.batch_size = 1024
  config.eval_every = 1
  config.num_epochs = 300
  config.patience = 5
  return config

"""GC-MC (van den Berg, Kipf & Welling, 2017): rating-typed graph convolution.

  python -m jaxrec.main --config configs/gcmc.py:ml_latest_small --workdir workdirs/gcmc

Rating task (docs/rating.md): one weight matrix per rating level (ordinal
sharing), hidden 128, output 64, dropout 0.3, bilinear softmax decoder with
2 basis matrices, level NLL loss; Adam 1e-3, batch 4096, early stopping on
validation RMSE. Levels: 1..5 (synthetic_ratings, default) or 0.5..5 in
steps of 0.5 (ml_latest_small, every rating kept, random 80/10/10 per user).
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic_ratings)."""
  config = config_utils.base_config(arg or "synthetic_ratings")
  levels = dict(num_levels=5, min_rating=1.0, rating_step=1.0)
  if config.dataset.name == "ml_latest_small":
    config.dataset.kwargs.min_rating = 0.0
    levels = dict(num_levels=10, min_rating=0.5, rating_step=0.5)
  config.task = "rating"
  config.selection_metric = "rmse"
  config.model_name = "gcmc"
  config.model = dict(embed_dim=64, hidden_dim=128, out_dim=64, num_basis=2,
                      dropout=0.3, loss_type="nll", l2_reg=0.0, **levels)
  config.batch_size = 4096
  config.eval_every = 1
  config.num_epochs = 300
  config.patience = 5
  return config

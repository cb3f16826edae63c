"""Rating head on any GNN backbone: r = mu + b_u + b_i + <z_u, z_i>.

  python -m jaxrec.main --config configs/rating_head.py:ml_latest_small,lightgcn --workdir workdirs/rh

Argument `dataset[,backbone]` (default synthetic_ratings, lightgcn): z are the
backbone's propagated representations (its configs/<backbone>.py kwargs);
rating-weighted propagation (graph.edge_weight 'rating'). MSE + L2 0.04,
Adam 1e-3 (ml_latest_small: L2 0.3, Adam 1e-2, benchmarks/rating.py grid),
batch 1024, early stopping on validation RMSE (docs/rating.md).
"""

import os

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: 'dataset[,backbone]' (default 'synthetic_ratings,lightgcn')."""
  parts = (arg or "synthetic_ratings").split(",")
  dataset = parts[0] or "synthetic_ratings"
  backbone = parts[1] if len(parts) > 1 else "lightgcn"
  config = config_utils.base_config(dataset)
  if config.dataset.name == "ml_latest_small":
    config.dataset.kwargs.min_rating = 0.0
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      f"{backbone}.py")
  kwargs = dict(config_utils.load_config_file(path, dataset).model)
  config.task = "rating"
  config.selection_metric = "rmse"
  config.model_name = "rating_head"
  config.model = dict(backbone=backbone, backbone_kwargs=kwargs, l2_reg=0.04)
  config.graph.edge_weight = "rating"
  config.batch_size = 1024
  config.eval_every = 1
  config.num_epochs = 300
  config.patience = 5
  if config.dataset.name == "ml_latest_small":
    # Chosen on seed-0 validation RMSE by benchmarks/rating.py (LightGCN).
    config.model.l2_reg = 0.3
    config.optimizer.learning_rate = 1e-2
  return config

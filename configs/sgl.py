"""SGL-ED (Wu et al., SIGIR 2021): LightGCN 3 layers + edge-dropout InfoNCE.

  python -m jaxrec.main --config configs/sgl.py:yelp2018 --workdir workdirs/sgl_yelp2018

Published: tau 0.2, edge drop ratio 0.1, lambda 0.1 (Yelp2018) / 0.5
(Amazon-Book), embed 64, lr 1e-3, L2 1e-4, batch 2048; Recall@20 / NDCG@20
Yelp2018 0.0675 / 0.0555, Amazon-Book 0.0478 / 0.0379. Other datasets use
lambda 0.1, except synthetic 0.02 and gowalla 0.2 (selected on validation,
docs/config_choices.md). model.view_period='epoch' draws views once per
epoch as the released code. Measured: docs/results/lightgcn_gowalla.md.
"""

from jaxrec import config_utils

# Published lambda per dataset; synthetic's and gowalla's were selected on
# validation.
SSL_WEIGHT = {"yelp2018": 0.1, "amazon_book": 0.5, "synthetic": 0.02,
              "gowalla": 0.2}
DEFAULT_SSL_WEIGHT = 0.1


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  dataset = arg or "synthetic"
  config = config_utils.base_config(dataset)
  config.model_name = "sgl"
  config.model = dict(embed_dim=64, num_layers=3, l2_reg=1e-4, aug_type="ed",
                      drop_rate=0.1, ssl_temperature=0.2,
                      ssl_weight=SSL_WEIGHT.get(dataset, DEFAULT_SSL_WEIGHT))
  return config

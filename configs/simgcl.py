"""SimGCL (Yu et al., SIGIR 2022): noisy LightGCN views, 3 layers.

  python -m jaxrec.main --config configs/simgcl.py:yelp2018 --workdir workdirs/simgcl_yelp2018

Published Yelp2018 settings: lambda 0.5, eps 0.1, tau 0.2, 3 layers, embed
64, lr 1e-3, L2 1e-4, batch 2048; the final embedding averages layers 1..K
as in the authors' code. lambda 0.5 is used for every dataset (gowalla,
lastfm, amazon_beauty, synthetic included): per-dataset values for other
datasets were not verified against the paper here; override with
`--config.model.ssl_weight`. Published full-ranking Recall@20 / NDCG@20:
Yelp2018 0.0721 / 0.0601. Measured: benchmarks/RESULTS.md.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "simgcl"
  config.model = dict(embed_dim=64, num_layers=3, l2_reg=1e-4, eps=0.1,
                      ssl_weight=0.5, ssl_temperature=0.2)
  return config

"""XSimGCL (Yu et al., TKDE 2023): one noisy pass, cross-layer contrast.

  python -m jaxrec.main --config configs/xsimgcl.py:yelp2018 --workdir workdirs/xsimgcl_yelp2018

Published Yelp2018 settings: lambda 0.2, eps 0.2, contrast layer l* = 1, tau
0.15, 3 layers, embed 64, lr 1e-3, L2 1e-4, batch 2048. The same values are
used for every dataset (gowalla, lastfm, amazon_beauty, synthetic
included); override with `--config.model.ssl_weight` etc. Published
full-ranking Recall@20 / NDCG@20: Yelp2018 0.0723 / 0.0604. Measured:
benchmarks/RESULTS.md.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "xsimgcl"
  config.model = dict(embed_dim=64, num_layers=3, l2_reg=1e-4, eps=0.2,
                      ssl_weight=0.2, ssl_temperature=0.15, cl_layer=1)
  return config

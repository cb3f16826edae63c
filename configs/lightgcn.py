"""LightGCN (He et al., SIGIR 2020), 3 layers, dim 64, lr 1e-3, L2 1e-4, batch 2048.

  python -m jaxrec.main --config configs/lightgcn.py:gowalla --workdir workdirs/lightgcn_gowalla

Datasets: synthetic, lastfm, amazon_beauty, gowalla, yelp2018, amazon_book,
rlmrec_amazon, rlmrec_yelp, rlmrec_steam. Published Recall@20 / NDCG@20
(paper Table 3): Gowalla 0.1823 / 0.1555, Yelp2018 0.0639 / 0.0525,
Amazon-Book 0.0410 / 0.0318. Gowalla reproduction (0.1800 / 0.1538) and its
command: docs/results/lightgcn_gowalla.md.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "lightgcn"
  config.model = dict(embed_dim=64, num_layers=3, l2_reg=1e-4)
  return config

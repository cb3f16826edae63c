"""LightGCN (He et al., SIGIR 2020), 3 layers, dim 64, lr 1e-3, L2 1e-4, batch 2048.

  python -m jaxrec.main --config configs/lightgcn.py:gowalla --workdir workdirs/lightgcn_gowalla

Datasets: synthetic, lastfm, amazon_beauty, gowalla, yelp2018, amazon_book,
rlmrec_amazon, rlmrec_yelp, rlmrec_steam (real data under $JAXREC_DATA_ROOT,
default ../shared/data). Published full-ranking Recall@20 / NDCG@20 (paper
Table 3; its test split; ours selects on a 10% validation split carved from
train): Gowalla 0.1823 / 0.1555, Yelp2018 0.0639 / 0.0525,
Amazon-Book 0.0410 / 0.0318. Measured numbers: docs/results/README.md.

Gowalla reproduction (2-core CPU, 2.2 h of training; refit on all 810,128
train interactions, LightGCN's user-uniform sampler, batch 16,384, lr 5e-3
held 100 epochs then cosine-decayed over 300; 400 epochs fixed in advance):

  python benchmarks/reproduce_lightgcn.py --models lightgcn --datasets gowalla \
      --batch_size 16384 --learning_rate 5e-3 --hold_epochs 100 \
      --decay_epochs 300 --sampling user --refit_epochs 400 --eval_every 10

expected test Recall@20 0.1800, NDCG@20 0.1538 (published 0.1823 / 0.1555).
The 200-epoch version (--hold_epochs 50 --decay_epochs 150
--refit_epochs 200) gives 0.1747 / 0.1495 in 36 min.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "lightgcn"
  config.model = dict(embed_dim=64, num_layers=3, l2_reg=1e-4)
  return config

"""NGCF (Wang et al., SIGIR 2019), 3 layers of 64, message dropout 0.1.

  python -m jaxrec.main --config configs/ngcf.py:gowalla --workdir workdirs/ngcf_gowalla

gowalla, yelp2018, amazon_book: the NGCF paper's lr 1e-4, batch 1024, L2
1e-5, node dropout 0 (several hundred epochs). Other presets: lr 1e-3, the
preset's batch, L2 1e-4. Published Recall@20 / NDCG@20 (LightGCN paper,
Table 3): Gowalla 0.1569 / 0.1327, Yelp2018 0.0579 / 0.0477, Amazon-Book
0.0337 / 0.0261. Measured: docs/results/README.md.
"""

from jaxrec import config_utils

PAPER_DATASETS = ("gowalla", "yelp2018", "amazon_book")


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  dataset = arg or "synthetic"
  config = config_utils.base_config(dataset)
  config.model_name = "ngcf"
  config.model = dict(embed_dim=64, num_layers=3, l2_reg=1e-4,
                      message_dropout=0.1, node_dropout=0.0)
  if dataset in PAPER_DATASETS:
    config.model.l2_reg = 1e-5
    config.optimizer.learning_rate = 1e-4
    config.batch_size = 1024
  return config

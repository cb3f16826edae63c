"""DesignGNN: one point of the GNN-CF design space (Wang, Zhao & Shi, WSDM 2022).

  python -m jaxrec.main --config configs/designgnn.py:lastfm --workdir workdirs/designgnn_lastfm

The default point is LightGCN (lightgcn aggregation, identity messages, 3
layers, layer mean, dot product), lr 1e-3, L2 1e-4, dim 64. Other points:
`--config.model.aggregation=gat --config.model.combine=attention ...`, or let
`python -m jaxrec.search` pick one (it writes a best_config.py in this format).
Datasets: the presets of `jaxrec.config_utils.DATASETS`.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default synthetic)."""
  config = config_utils.base_config(arg or "synthetic")
  config.model_name = "designgnn"
  config.model = dict(embed_dim=64, l2_reg=1e-4, aggregation="lightgcn",
                      message="identity", num_layers=3, combine="mean",
                      interaction="dot", activation="tanh", mlp_hidden=64)
  return config

"""Attention fusion of ID, text and graph tokens per node (jaxrec/models/fusion.py).

  python -m jaxrec.main --config configs/fusion.py:ml_latest_small --workdir workdirs/fusion

Per node, a 4-head attention pool with learned queries over {ID embedding,
projected language embedding, LightGCN neighbourhood (3 layers)}; BPR + L2.
Cold items (no training edges) are represented by their text token alone;
token_dropout=0.1 trains that case. Needs semantic embeddings
(`config.graph.text_features`). Not a published model.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default ml_latest_small)."""
  config = config_utils.base_config(arg or "ml_latest_small")
  config.model_name = "fusion"
  config.model = dict(embed_dim=64, num_layers=3, num_heads=4, l2_reg=1e-4,
                      token_dropout=0.1, matmul_dtype="bfloat16")
  config.graph.text_features = True
  return config

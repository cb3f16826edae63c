"""AlphaRec (Sheng et al., 2024): frozen LM embeddings -> MLP -> LightGCN.

  python -m jaxrec.main --config configs/alpharec.py:rlmrec_amazon --workdir workdirs/alpharec

Paper settings: 2 LightGCN layers, MLP Linear-LeakyReLU-Linear to 64 dims,
cosine scores / tau 0.15, InfoNCE over 256 sampled negatives, no ID
embeddings, lr 5e-4, batch 4096. Needs semantic embeddings
(`config.graph.text_features`). Negatives are shared by the batch and the MLP
runs in bfloat16 by default; the authors' per-row float32 form: docs/config_choices.md.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default rlmrec_amazon)."""
  config = config_utils.base_config(arg or "rlmrec_amazon")
  config.model_name = "alpharec"
  config.model = dict(embed_dim=64, num_layers=2, hidden_dim=0,
                      temperature=0.15, l2_reg=0.0, negative_sharing="batch",
                      shared_negatives=256, matmul_dtype="bfloat16")
  config.optimizer.update(name="adam", learning_rate=5e-4)
  config.batch_size = 4096
  config.num_negatives = 1  # 'batch': the shared 256 come from rows 0..255
  config.graph.text_features = True
  return config

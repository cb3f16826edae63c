"""AlphaRec (Sheng et al., 2024): frozen LM embeddings -> MLP -> LightGCN.

  python -m jaxrec.main --config configs/alpharec.py:rlmrec_amazon --workdir workdirs/alpharec

Paper settings: 2 LightGCN layers, MLP Linear-LeakyReLU-Linear to 64 dims,
cosine scores / tau with tau = 0.15, InfoNCE over 256 sampled negatives, no
ID embeddings, lr 5e-4, batch 4096. Needs semantic embeddings in the dataset
(`config.graph.text_features`); users without a profile embedding are the
mean of their train items' embeddings (the paper's choice).

Speed defaults (jaxrec/models/alpharec.py; benchmarks/text_model_speed.py):
the 256 negatives are shared by the whole batch (negative_sharing='batch':
one [B, d] @ [d, 256] product; the sampler draws one negative per row and
the first 256 rows' negatives form the set) and the MLP over every node
multiplies in bfloat16 with float32 sums (matmul_dtype='bfloat16'). The
authors' code draws 256 negatives per row, in float32:

  --config.model.negative_sharing=row --config.num_negatives=256 \
  --config.model.matmul_dtype=float32

(~20x slower per epoch on a 2-core CPU: the host samples and the step
gathers B x 256 rows).
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default rlmrec_amazon)."""
  config = config_utils.base_config(arg or "rlmrec_amazon")
  config.model_name = "alpharec"
  config.model = dict(embed_dim=64, num_layers=2, hidden_dim=0,
                      temperature=0.15, l2_reg=0.0, negative_sharing="batch",
                      shared_negatives=256, matmul_dtype="bfloat16")
  config.optimizer = dict(name="adam", learning_rate=5e-4)
  config.batch_size = 4096
  config.num_negatives = 1  # 'batch': the shared 256 come from rows 0..255
  config.graph.text_features = True
  return config

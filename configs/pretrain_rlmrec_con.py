"""Two-stage recipe, stage 1: LightGCN + RLMRec-Con text-alignment pre-training.

  python -m jaxrec.main --config configs/pretrain_rlmrec_con.py:ml_latest_small --workdir workdirs/pretrain
  python -m jaxrec.main --config configs/finetune_lightgcn.py:ml_latest_small --workdir workdirs/finetune --config.init_from=workdirs/pretrain

BPR plus RLMRec-Con's contrastive alignment of the ID embeddings with the
language embeddings (kd_weight 1e-2, temperature 0.2), LightGCN backbone
(3 layers, dim 64, L2 1e-3). Stage 2 (configs/finetune_lightgcn.py) copies
the backbone's tables; same dataset and seed. docs/warm_start.md.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default ml_latest_small)."""
  config = config_utils.load_config_file(
      "rlmrec_con", f"{arg or 'ml_latest_small'},lightgcn")
  config.model.backbone_kwargs = dict(embed_dim=64, num_layers=3,
                                      l2_reg=1e-3)
  config.num_epochs = 100
  config.eval_every = 5
  return config

"""Two-stage recipe, stage 2: BPR LightGCN warm-started from a pre-trained run.

  python -m jaxrec.main --config configs/pretrain_rlmrec_con.py:ml_latest_small --workdir workdirs/pretrain
  python -m jaxrec.main --config configs/finetune_lightgcn.py:ml_latest_small --workdir workdirs/finetune --config.init_from=workdirs/pretrain

LightGCN (3 layers, dim 64, L2 1e-3, lr 1e-3) whose ID tables start from the
best parameters of the stage-1 run (an RLMRec wrapper's backbone tables
net/*_embedding; jaxrec/warm_start.py). Same dataset and seed as stage 1 (a
source trained on other splits is refused). docs/warm_start.md.
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default ml_latest_small)."""
  config = config_utils.load_config_file("lightgcn", arg or "ml_latest_small")
  config.model.l2_reg = 1e-3
  config.eval_every = 5
  config.init_from = "workdirs/pretrain"
  config.init_map = ("net/user_embedding:user_embedding,"
                     "net/item_embedding:item_embedding")
  return config

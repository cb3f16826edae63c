"""RLMRec-Gen (Ren et al., WWW 2024): masked-node reconstruction of LLM embeddings.

  python -m jaxrec.main --config configs/rlmrec_gen.py:rlmrec_yelp --workdir workdirs/gen

Argument `dataset[,backbone]` as in configs/rlmrec_con.py. Defaults: mask
ratio 0.2, kd_weight 1e-2, kd_temperature 0.2; the authors' LightGCN-Gen
settings per dataset (Amazon 0.15 / 0.1 / 0.5 / 2 layers, Yelp 0.05 / 0.01 /
0.1 / 2 layers). With LightGCN, BPR uses the masked pass as in the authors'
code; at most 256 masked nodes per step are reconstructed (max_recon_nodes,
0 = all).
"""

import os

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: 'dataset[,backbone]' (default 'rlmrec_amazon,lightgcn')."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "rlmrec_con.py")
  return config_utils.load_config_file(path, arg, function="make_config",
                                       mode="gen")

"""RLMRec-Gen (Ren et al., WWW 2024): masked-node reconstruction of LLM embeddings.

  python -m jaxrec.main --config configs/rlmrec_gen.py:rlmrec_yelp --workdir workdirs/gen

Argument `dataset[,backbone]` as in configs/rlmrec_con.py. Defaults: mask
ratio 0.2, kd_weight 1e-2, kd_temperature 0.2; the authors' LightGCN-Gen
settings (lightgcn_gene.yml) per dataset: Amazon mask 0.15, weight 0.1,
tau 0.5, 2 layers; Yelp 0.05 / 0.01 / 0.1 / 2 layers. With the LightGCN
backbone BPR is computed on the masked forward pass as in the authors'
LightGCN_gene (`gen_masked_backbone=True`); other backbones keep their own
un-masked loss. At most 256 masked nodes per step enter the reconstruction
InfoNCE (max_recon_nodes; 0 = all masked nodes, the authors' code): see
configs/rlmrec_con.py.
"""

import os

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: 'dataset[,backbone]' (default 'rlmrec_amazon,lightgcn')."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "rlmrec_con.py")
  return config_utils.load_config_file(path, arg, function="make_config",
                                       mode="gen")

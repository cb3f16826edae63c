"""RLMRec-Con (Ren et al., WWW 2024) on any backbone (lightgcn, sgl, simgcl, ...).

  python -m jaxrec.main --config configs/rlmrec_con.py:rlmrec_yelp,simgcl --workdir workdirs/con

Argument `dataset[,backbone]` (default rlmrec_amazon, lightgcn); backbone
kwargs from configs/<backbone>.py, embedding size 32 on rlmrec_* datasets.
Authors' alignment settings (*_plus.yml): kd_weight 1e-2, kd_temperature 0.2
(SimGCL on Yelp 0.1; Steam 1e-3 / 0.1). Aligns the first 256 rows of each
batch (kd_rows; 0 = all rows, the authors' code): docs/config_choices.md.
"""

import os

from jaxrec import config_utils

# (kd_weight, kd_temperature) per (backbone, dataset); default (1e-2, 0.2).
CON = {("lightgcn", "rlmrec_steam"): (1e-3, 0.1),
       ("simgcl", "rlmrec_yelp"): (1e-2, 0.1)}
# (mask_ratio, kd_weight, kd_temperature, num_layers) of *_gene.yml for
# LightGCN; default (0.2, 1e-2, 0.2, backbone's).
GEN = {("lightgcn", "rlmrec_amazon"): (0.15, 0.1, 0.5, 2),
       ("lightgcn", "rlmrec_yelp"): (0.05, 0.01, 0.1, 2),
       ("lightgcn", "rlmrec_steam"): (0.15, 0.1, 0.5, 2)}

# Rows of the batch in Con's alignment, masked nodes in Gen's reconstruction
# (0 = all, the authors' code).
KD_ROWS = 256
RECON_NODES = 256


def backbone_model(backbone: str, dataset: str) -> dict:
  """configs/<backbone>.py:get_config(dataset).model as a plain dict."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      f"{backbone}.py")
  return dict(config_utils.load_config_file(path, dataset).model)


def make_config(arg, mode: str):
  """Config of RLMRec-`mode` for arg = 'dataset[,backbone]'."""
  parts = (arg or "rlmrec_amazon").split(",")
  dataset = parts[0] or "rlmrec_amazon"
  backbone = parts[1] if len(parts) > 1 else "lightgcn"
  config = config_utils.base_config(dataset)
  kwargs = backbone_model(backbone, dataset)
  if dataset.startswith("rlmrec"):
    kwargs["embed_dim"] = 32
  config.model_name = f"rlmrec_{mode}"
  if mode == "con":
    kd_weight, kd_temperature = CON.get((backbone, dataset), (1e-2, 0.2))
    config.model = dict(backbone=backbone, backbone_kwargs=kwargs,
                        kd_weight=kd_weight, kd_temperature=kd_temperature,
                        kd_rows=KD_ROWS)
  else:
    ratio, kd_weight, kd_temperature, layers = GEN.get(
        (backbone, dataset), (0.2, 1e-2, 0.2, None))
    if layers is not None:
      kwargs["num_layers"] = layers
    # The authors' LightGCN_gene scores BPR on the masked forward pass;
    # other backbones keep their own (un-masked) loss.
    config.model = dict(backbone=backbone, backbone_kwargs=kwargs,
                        kd_weight=kd_weight, kd_temperature=kd_temperature,
                        mask_ratio=ratio, max_recon_nodes=RECON_NODES,
                        gen_masked_backbone=backbone == "lightgcn")
  config.graph.text_features = True
  return config


def get_config(arg=None):
  """Args: arg: 'dataset[,backbone]' (default 'rlmrec_amazon,lightgcn')."""
  return make_config(arg, "con")

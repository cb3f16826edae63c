"""Text-initialised GNN: h = W t (+ ID embedding) -> LightGCN, BPR.

  python -m jaxrec.main --config configs/textgnn.py:rlmrec_amazon --workdir workdirs/textgnn

Needs semantic embeddings (`config.graph.text_features`): RLMRec folders
(usr/itm_emb_np.pkl) or synthetic texts encoded by `jaxrec.text.encode_cached`
(benchmarks/text_alignment.py). Not a published model: a text-only baseline
(use_id_embedding=False) that also ranks cold-start items. The text projection
multiplies in bfloat16 with float32 sums (~1.5x faster epochs on CPU;
matmul_dtype='float32' is exact).
"""

from jaxrec import config_utils


def get_config(arg=None):
  """Args: arg: dataset preset name (default rlmrec_amazon)."""
  dataset = arg or "rlmrec_amazon"
  config = config_utils.base_config(dataset)
  config.model_name = "textgnn"
  config.model = dict(embed_dim=32 if dataset.startswith("rlmrec") else 64,
                      num_layers=3, l2_reg=1e-4, use_id_embedding=False,
                      matmul_dtype="bfloat16")
  config.graph.text_features = True
  return config

"""End-to-end test of benchmarks/reproduce_rlmrec.py on a tiny RLMRec fixture."""

import json
import os
import pickle
import re
import sys

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import reproduce_rlmrec  # pylint: disable=g-import-not-at-top

U, I, D = 24, 30, 8


def _write_fixture(root):
  """<root>/rlmrec/amazon in the format of RLMRec's data.zip."""
  d = root / "rlmrec" / "amazon"
  d.mkdir(parents=True)
  rng = np.random.default_rng(0)
  dense = rng.random((U, I)) < 0.3  # [U, I]
  dense[np.arange(U), np.arange(U) % I] = True  # every user has >= 1 item
  split = rng.random((U, I))  # 70 / 10 / 20 by a random key per entry
  mats = {"trn_mat.pkl": dense & (split < 0.7),
          "val_mat.pkl": dense & (split >= 0.7) & (split < 0.8),
          "tst_mat.pkl": dense & (split >= 0.8)}
  for name, mat in mats.items():
    with open(d / name, "wb") as f:
      pickle.dump(sp.coo_matrix(mat.astype(np.float32)), f)
  with open(d / "usr_prf.pkl", "wb") as f:
    pickle.dump({u: {"profile": f"user {u} likes things", "reasoning": ""}
                 for u in range(U)}, f)
  with open(d / "itm_prf.pkl", "wb") as f:
    pickle.dump({i: {"profile": f"item {i}"} for i in range(I)}, f)
  for name, n in (("usr_emb_np.pkl", U), ("itm_emb_np.pkl", I)):
    with open(d / name, "wb") as f:
      pickle.dump(rng.normal(size=(n, D)).astype(np.float32), f)
  return d


def test_reproduce_rlmrec_end_to_end(tmp_path):
  _write_fixture(tmp_path / "data")
  out = tmp_path / "report.md"
  work = tmp_path / "work"
  report = reproduce_rlmrec.main([
      "--data_root", str(tmp_path / "data"), "--datasets", "amazon",
      "--models", "lightgcn,lightgcn_con", "--seeds", "0,1,2",
      "--epochs", "1", "--eval_every", "1", "--batch_size", "64",
      "--workdir", str(work), "--out", str(out)])
  assert out.read_text() == report
  rows = json.loads((work / "rows.json").read_text())
  assert len(rows) == 6  # Gen runs the same loop (tests/alignment_test.py)
  assert {r["model"] for r in rows} == {"lightgcn", "lightgcn_con"}
  for r in rows:
    for k in (5, 10, 20):
      assert 0.0 <= r["test"][f"recall@{k}"] <= 1.0
      assert 0.0 <= r["test"][f"ndcg@{k}"] <= 1.0
  # The table row of each model: mean ± std over the 3 seeds, published target.
  for model, label in (("lightgcn", "LightGCN"),
                       ("lightgcn_con", "LightGCN + RLMRec-Con")):
    line = next(l for l in report.splitlines() if l.startswith(f"| {label} |"))
    r20 = np.array([r["test"]["recall@20"] for r in rows
                    if r["model"] == model])
    cells = [c.strip() for c in line.strip("|").split("|")]
    # Columns: model, R@5, N@5, R@10, N@10, R@20, N@20, published, ...
    assert cells[5] == f"{r20.mean():.4f} ± {r20.std(ddof=1):.4f}"
    pub = reproduce_rlmrec.PUBLISHED[("amazon", model)]
    assert cells[7] == f"{pub[0]:.4f} / {pub[1]:.4f}"
  assert re.search(r"\| LightGCN \+ RLMRec-Con \| \d\.\d{4} ± ", report)


def test_missing_data_names_the_download(tmp_path):
  with pytest.raises(ValueError, match="HKUDS/RLMRec"):
    reproduce_rlmrec.data_dir(tmp_path, "yelp")


def test_configs_follow_the_protocol():
  args = reproduce_rlmrec.parse_args(["--epochs", "5"])
  con = reproduce_rlmrec.make_config("simgcl_con", "yelp", args)
  assert con.model_name == "rlmrec_con" and con.graph.text_features
  assert con.model.backbone == "simgcl"
  assert con.model.backbone_kwargs.embed_dim == 32
  assert con.model.kd_temperature == 0.1 and con.num_epochs == 5
  gen = reproduce_rlmrec.make_config("lightgcn_gen", "amazon", args)
  assert (gen.model.mask_ratio, gen.model.kd_weight) == (0.15, 0.1)
  base = reproduce_rlmrec.make_config("lightgcn", "amazon", args)
  assert base.model_name == "lightgcn" and not base.graph.text_features
  assert base.eval_ks == (5, 10, 20)

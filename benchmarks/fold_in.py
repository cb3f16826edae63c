"""Online fold-in vs retraining, on users the model never saw.

  python -m benchmarks.fold_in --workdir W --out_workdir W2 [--fraction 0.1]
  python -m benchmarks.fold_in --render

W is a trained LightGCN run. A seeded `--fraction` of its users with test
items is held out: their train and valid interactions are removed and the
same config is trained again on the rest (W2, resumable). For the held-out
users, test Recall@20 / NDCG@20 (train + valid items masked, full ranking)
is then compared between:
  retrained   W's own user vectors (the model trained with these users),
  fold-in     W2's vectors folded in from each user's train + valid items by
              the bundle's rule (`jaxrec.export`; LightGCN: propagated item
              layers, zero layer-0 user embedding),
  item mean   W2's item-centroid rule (the rule of non-LightGCN models),
  popularity  W2's train popularity (MostPop).
Results: benchmarks/results/fold_in.json, docs/results/fold_in.md.
"""

from __future__ import annotations

import argparse
import dataclasses

import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxrec import bundle as bundle_lib
from jaxrec import export
from jaxrec import metrics as metrics_lib
from jaxrec import recommend
from jaxrec import train
from jaxrec.data.dataset import Interactions

def _without_users(inter: Interactions, users: np.ndarray) -> Interactions:
  keep = ~np.isin(inter.users, users)
  return Interactions(inter.users[keep], inter.items[keep])


def _evaluate(user_vectors, item_vectors, ds, users) -> dict:
  result = metrics_lib.evaluate_ranking(
      export._dot_scores,  # pylint: disable=protected-access
      (jnp.asarray(user_vectors, jnp.float32),
       jnp.asarray(item_vectors, jnp.float32)),
      ds.csr("test"), [ds.csr("train"), ds.csr("valid")], ks=(20,),
      users=users)
  return {k: float(result[k]) for k in ("recall@20", "ndcg@20")}


def measure(workdir: str, out_workdir: str, fraction: float,
            seed: int = 0) -> dict:
  full = recommend.TrainedModel.load(workdir)
  ds = full.dataset
  rng = np.random.default_rng(seed)
  with_test = np.unique(ds.test.users)
  held = np.sort(rng.choice(with_test, int(round(fraction * len(with_test))),
                            replace=False))
  reduced = dataclasses.replace(ds, train=_without_users(ds.train, held),
                                valid=_without_users(ds.valid, held))
  train.train_and_evaluate(full.config, out_workdir, reduced)
  part = recommend.TrainedModel.load(out_workdir)
  bundle = export.bundle_from_trained(part)
  seen = full.seen_csr()  # the held-out users' own train + valid items
  rows = {}
  for rule in ("lightgcn", "mean"):
    users = np.array(bundle.user_vectors, copy=True)
    for u in held.tolist():  # a few hundred users at most
      users[u] = bundle_lib.fold_in_vector(rule, seen[u].indices,
                                           bundle.item_vectors,
                                           bundle.item_fold)
    rows[rule] = _evaluate(users, bundle.item_vectors, ds, held)
  pop = np.bincount(reduced.train.items, minlength=ds.num_items)
  return {
      "workdir": workdir, "out_workdir": out_workdir, "fraction": fraction,
      "seed": seed, "dataset": ds.name, "model": full.config.model_name,
      "held_out_users": int(len(held)),
      "retrained": _evaluate(full.user_emb, full.item_emb, ds, held),
      "fold_in": rows["lightgcn"], "item_mean": rows["mean"],
      "popularity": _evaluate(np.ones((ds.num_users, 1)),
                              pop[:, None].astype(np.float32), ds, held)}


def render_markdown(r: dict) -> str:
  lines = [
      "# Online fold-in vs retraining", "",
      f"Command: `python -m benchmarks.fold_in --workdir {r['workdir']} "
      f"--out_workdir {r['out_workdir']} --fraction {r['fraction']}`", "",
      *([r["note"], ""] if r.get("note") else []),
      f"{r['model']} on {r['dataset']}: {r['held_out_users']} users "
      f"({r['fraction']:.0%} of those with test items, seed {r['seed']}) "
      "are removed from training; the same config is trained on the rest. "
      "Test metrics of the held-out users, train + valid items masked, full "
      "ranking. `retrained`: the model trained with these users; `fold-in`: "
      "the model trained without them, users folded in from their train + "
      "valid items by the served rule (`POST /recommend/new_user`); "
      "`item mean`: the centroid rule; `popularity`: MostPop of the "
      "reduced train split.", ""]
  lines += common.markdown_table(
      ["users from", "Recall@20", "NDCG@20"],
      [[label, f"{r[key]['recall@20']:.4f}", f"{r[key]['ndcg@20']:.4f}"]
       for key, label in (("retrained", "retrained"), ("fold_in", "fold-in"),
                          ("item_mean", "item mean"),
                          ("popularity", "popularity"))],
      ["---", "---:", "---:"])
  return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir")
  parser.add_argument("--out_workdir")
  parser.add_argument("--fraction", type=float, default=0.1)
  parser.add_argument("--note", default="",
                      help="a sentence on where the workdir comes from")
  common.add_result_args(parser, "fold_in")
  args = parser.parse_args(argv)
  if args.render:
    result = common.render_page(args.json, args.out, render_markdown)
  else:
    if not (args.workdir and args.out_workdir):
      parser.error("give --workdir and --out_workdir (or --render)")
    result = measure(args.workdir, args.out_workdir, args.fraction)
    result["note"] = args.note
    common.write_json(args.json, result)
    common.write_page(args.out, render_markdown(result))
  print(render_markdown(result))
  return result


if __name__ == "__main__":
  main()

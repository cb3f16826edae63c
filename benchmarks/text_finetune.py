"""End-to-end fine-tuning of the text encoder's last layer(s) with AlphaRec.

Every step encodes all user and item texts with the MiniLM encoder
(`jaxrec.text.TextEncoder.encode_tokens`), puts the embeddings into the
graph's `nodes['text']` and takes one Adam step of the AlphaRec InfoNCE loss
on the recommender parameters AND the encoder's last `--layers` transformer
layers (`trainable_layer_mask`; the frozen layers sit behind
`stop_gradient_outside` and get a zero update from `optax.multi_transform`).
Feasible on tiny data only on a CPU: the whole catalogue is re-encoded each
step. Checks that frozen weights are bit-identical afterwards. The trainer's
version, `config.text.finetune_layers` (jaxrec/text_finetune.py, docs/text.md),
re-encodes only the batch's texts each step and the rest once per epoch.

Usage:
  python benchmarks/text_finetune.py [--users 40] [--items 60] [--steps 6]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import optax

from jaxrec import text as text_lib
from jaxrec import input_pipeline
from jaxrec import train
from jaxrec.data import sampler
from jaxrec.data.synthetic import make_synthetic
from jaxrec.graphs import bipartite_graph
from jaxrec.models.alpharec import AlphaRec


def finetune(dataset, encoder: text_lib.TextEncoder, last_n_layers: int = 1,
             steps: int = 6, batch_size: int = 64, lr: float = 1e-3,
             encoder_lr: float = 1e-4, max_length: int = 32,
             num_negatives: int = 8, seed: int = 0) -> dict:
  """Jointly trains AlphaRec and the encoder's last layers on `dataset`.

  Args:
    dataset: a Dataset with user_texts and item_texts.
    encoder: a loaded TextEncoder.
    last_n_layers: encoder layers trained (the rest stay frozen).
    steps: optimiser steps (one batch each).
    batch_size: training rows per step.
    lr / encoder_lr: Adam learning rates of AlphaRec / the encoder.
    max_length: token limit of the texts.
    num_negatives: sampled negatives per row.
    seed: seed of batches and initialisation.

  Returns:
    dict with losses [steps], compile_s, step_s (median), trainable and
    frozen parameter counts, max change of frozen / trained encoder weights.
  """
  u, n_items = dataset.num_users, dataset.num_items
  tokens = encoder.tokenize(list(dataset.user_texts) + list(dataset.item_texts),
                            max_length=max_length, pad_to="bucket")
  ids = jnp.asarray(tokens["input_ids"])  # [U+I, L]
  attn = jnp.asarray(tokens["attention_mask"])  # [U+I, L]
  graph = jax.tree.map(jnp.asarray, bipartite_graph(
      dataset.train, u, n_items,
      node_features={"text": np.zeros((u + n_items, encoder.dim), np.float32)}))
  model = AlphaRec(num_users=u, num_items=n_items, embed_dim=32, num_layers=2)
  rng = jax.random.key(seed)
  params = {"rec": train.init_params(model, graph, batch_size, rng,
                                     num_negatives),
            "enc": encoder.params}
  mask = text_lib.trainable_layer_mask(encoder.params, last_n_layers)
  labels = {"rec": jax.tree.map(lambda _: "rec", params["rec"]),
            "enc": jax.tree.map(lambda m: "enc" if m else "frozen", mask)}
  tx = optax.multi_transform({"rec": optax.adam(lr),
                              "enc": optax.adam(encoder_lr),
                              "frozen": optax.set_to_zero()}, labels)
  opt_state = tx.init(params)

  def loss_fn(p, batch, key):
    enc = text_lib.stop_gradient_outside(p["enc"], mask)
    text = encoder.encode_tokens(enc, ids, attn)  # [U+I, 384]
    g = graph._replace(nodes=dict(graph.nodes, text=text))
    return model.apply({"params": p["rec"]}, g, batch, method="loss",
                       rngs={"dropout": key})[0]

  @jax.jit
  def step(p, state, batch, key):
    loss, grads = jax.value_and_grad(loss_fn)(p, batch, key)
    updates, state = tx.update(grads, state, p)
    return optax.apply_updates(p, updates), state, loss

  rows = input_pipeline.stack_batches(sampler.epoch_triples(
      dataset.train, u, n_items, seed, 0, num_negatives=num_negatives),
                             batch_size)
  start, losses, times = params, [], []
  for s in range(steps):  # a handful of steps
    batch = {k: jnp.asarray(v[s % len(v)]) for k, v in rows.items()}
    t0 = time.perf_counter()
    params, opt_state, loss = step(params, opt_state, batch,
                                   jax.random.fold_in(rng, s))
    losses.append(float(loss))
    times.append(time.perf_counter() - t0)
  diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                      params["enc"], start["enc"])
  flat_diff = jax.tree.leaves(diff)
  flat_mask = jax.tree.leaves(mask)
  sizes = [x.size for x in jax.tree.leaves(encoder.params)]
  return {"losses": losses, "compile_s": times[0],
          "step_s": float(np.median(times[1:])) if steps > 1 else times[0],
          "trainable_encoder_params": int(sum(
              s for s, m in zip(sizes, flat_mask) if m)),
          "frozen_encoder_params": int(sum(
              s for s, m in zip(sizes, flat_mask) if not m)),
          "max_change_frozen": max((d for d, m in zip(flat_diff, flat_mask)
                                    if not m), default=0.0),
          "max_change_trained": max((d for d, m in zip(flat_diff, flat_mask)
                                     if m), default=0.0),
          "num_texts": int(ids.shape[0]), "token_length": int(ids.shape[1])}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--users", type=int, default=40)
  p.add_argument("--items", type=int, default=60)
  p.add_argument("--steps", type=int, default=6)
  p.add_argument("--layers", type=int, default=1)
  args = p.parse_args(argv)
  ds = make_synthetic(num_users=args.users, num_items=args.items,
                      num_interactions=args.users * 8, seed=0, num_threads=1)
  encoder = text_lib.TextEncoder(max_length=32)
  out = finetune(ds, encoder, last_n_layers=args.layers, steps=args.steps)
  print(f"load average {os.getloadavg()[0]:.1f}")
  for k, v in out.items():
    print(f"{k}: {v}")
  return out


if __name__ == "__main__":
  main()

"""RLMRec (Ren et al., WWW 2024): aligning CF with LLM semantic representations.

A wrapper around ANY registered backbone (lightgcn, sgl, simgcl, ...), which
it receives built as its `net` submodule (`jaxrec.models.get_model` builds it
from the config's `backbone` name and `backbone_kwargs`): the backbone's own
loss (BPR + L2 + its SSL term) is kept and a knowledge distillation term
between collaborative and semantic (`graph.nodes['text']`) representations
is added with weight `kd_weight`:

* Con (contrastive alignment, RLMRec-Con): an MLP (Linear, LeakyReLU, Linear;
  hidden (d_text + d) // 2) maps semantic embeddings to the collaborative
  space; InfoNCE with cosine similarity and temperature `kd_temperature`
  between the batch's collaborative embeddings (backbone's final ones) and
  their mapped semantic embeddings, separately for users, positive items and
  negative items. Negatives are the other distinct rows of the batch
  (`losses.first_occurrence_mask` keeps a repeated id from being its own
  negative). The collaborative embeddings are those of the backbone's own
  training forward pass: the `propagate_all(graph, train=True)` call made
  inside the backbone's `loss` is captured (`backbone_loss`) and reused, so
  the backbone propagates once per step, as in the authors' code (one
  `forward` serves BPR and the alignment). A backbone whose loss makes no
  such call (XSimGCL) gets a separate `propagate_all`. The three terms run
  as one stacked [3, R, R] InfoNCE after one MLP call on the 3R text rows.
  `kd_rows` > 0 aligns only the first `kd_rows` rows of the batch (batches
  are shuffled, so a uniform subset): RLMRec-Con at an alignment batch of
  `kd_rows` (R - 1 in-batch negatives per anchor instead of B - 1), while
  the backbone loss keeps the whole batch; its [R, R] logits and R-row MLP
  replace [B, B] ones (B = 2048: 3 x 4M logits and 6,144 MLP rows per step,
  far more than a LightGCN step on graphs of 10^4 - 10^5 interactions).
  kd_rows = 0 aligns every row (the authors' code).
* Gen (generative alignment, RLMRec-Gen): a random `mask_ratio` of all real
  nodes have their ego (layer-0) embedding replaced by a learned mask token;
  the masked graph is propagated LightGCN-style (the backbone's
  `num_layers`, `propagation`, `include_ego`); an MLP maps the masked nodes'
  outputs to the semantic space, and InfoNCE (in-set negatives) pulls them to
  their semantic embeddings. At most `max_recon_nodes` masked nodes (a
  uniform subset) enter the InfoNCE to bound its [M, M] cost (M x M x
  d_text: 20% of a 20k-node graph is M = 3,900, ~12 GFLOP per step; the
  authors' code reconstructs every masked node, max_recon_nodes = 0).
  With `gen_masked_backbone` (the authors' LightGCN_gene) the same masked
  propagation also gives the BPR scores, so one forward pass serves both
  terms; the L2 penalty stays on the batch's real (un-masked) ego rows.
  It needs a plain BPR LightGCN backbone (LightGCN propagation, the base
  BPR + L2 loss); other backbones keep their own un-masked loss.
  With `gen_dedup_text`, a masked node whose semantic embedding equals the
  anchor's (cosine > 1 - 1e-6: identical texts, frequent with
  template-generated texts) is not one of its negatives, as Con's
  `first_occurrence_mask` does for repeated ids.

Differences from the authors' PyTorch code (HKUDS/RLMRec): by default
(`gen_masked_backbone=False`) the backbone loss uses the un-masked
propagation (the authors' LightGCN_gene computes BPR on the masked forward
pass: set `gen_masked_backbone=True`), Gen's masked encoder is LightGCN
propagation of the backbone's ego tables for every backbone, the authors'
LightGCN also drops edges during training (keep_rate 0.8) and sums the
layers where ours averages them, their L2 covers all parameters, and the
user term of Con uses in-batch negatives instead of all users.
Ranking uses the backbone's embeddings and score unchanged.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxrec import losses
from jaxrec.batches import Batch
from jaxrec.graphs import split_nodes
from jaxrec.graphs.padding import ego_nodes
from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender
from jaxrec.models.lightgcn import LightGCN
from jaxrec.models.lightgcn import light_propagate
from jaxrec.models.textgnn import TextMLP
from jaxrec.models.textgnn import raw_text
from jaxrec.models.textgnn import safe_normalise

MODES = ("con", "gen")


class RLMRec(nn.Module):
  """Backbone + RLMRec-Con or RLMRec-Gen alignment.

  Attributes:
    num_users: U.
    num_items: I.
    net: the backbone module over the same U users and I items (its
      parameters live under 'net').
    mode: 'con' or 'gen'.
    kd_weight: weight of the alignment loss.
    kd_temperature: InfoNCE temperature of the alignment loss.
    mask_ratio: fraction of nodes masked (Gen).
    hidden_dim: MLP hidden size (0 = (d_text + d) // 2).
    max_recon_nodes: cap on the masked nodes in Gen's InfoNCE (0 = none).
    text_key: key of the semantic embeddings in `graph.nodes`.
    gen_masked_backbone: Gen computes BPR on the masked propagation (the
      authors' LightGCN_gene); needs a plain LightGCN backbone.
    gen_dedup_text: Gen drops negatives whose semantic embedding equals the
      anchor's (identical texts).
    kd_rows: Con aligns only the first kd_rows batch rows (0 = all rows).
    matmul_dtype: dtype of the alignment MLP's products ('float32' or
      'bfloat16', `textgnn.text_dot_general`).
  """
  num_users: int
  num_items: int
  net: nn.Module
  mode: str = "con"
  kd_weight: float = 1e-2
  kd_temperature: float = 0.2
  mask_ratio: float = 0.2
  hidden_dim: int = 0
  max_recon_nodes: int = 4096
  text_key: str = "text"
  gen_masked_backbone: bool = False
  gen_dedup_text: bool = False
  kd_rows: int = 0
  matmul_dtype: str = "float32"

  @property
  def batch_fields(self) -> tuple[str, ...]:
    """The backbone's (its loss reads the batch; `Recommender.batch_fields`)."""
    return self.net.batch_fields

  def setup(self):
    if self.mode not in MODES:
      raise ValueError(f"RLMRec: mode must be one of {MODES}, got "
                       f"{self.mode!r}")
    if self.gen_masked_backbone and not (
        self.mode == "gen" and isinstance(self.net, LightGCN)
        and type(self.net).loss is Recommender.loss):
      raise ValueError(
          "RLMRec: gen_masked_backbone needs mode 'gen' and a plain BPR "
          f"LightGCN backbone, got mode {self.mode!r}, backbone "
          f"{type(self.net).__name__}")
    dim = self.net.embed_dim
    if self.mode == "gen":
      self.mask_token = self.param("mask_token", nn.initializers.zeros,
                                   (dim,))
      # Output size d_text, given at call time.
      self.gen_mlp = TextMLP(0, self.hidden_dim, self.matmul_dtype)
    else:
      self.con_mlp = TextMLP(dim, self.hidden_dim, self.matmul_dtype)

  # Ranking is the backbone's.
  def embed(self, graph: jraph.GraphsTuple):
    """Backbone (users [U, d], items [I, d])."""
    return self.net.embed(graph)

  def score(self, user_emb: jnp.ndarray, item_emb: jnp.ndarray,
            users: jnp.ndarray) -> jnp.ndarray:
    """Backbone scores of all items for a batch of users. # [B, I]"""
    return self.net.score(user_emb, item_emb, users)

  def backbone_loss(self, graph: jraph.GraphsTuple, batch: Batch):
    """The backbone's loss and the training propagation it computed.

    The first `propagate_all(graph, train=True)` call of the backbone inside
    its `loss` is intercepted and returned, so the alignment reuses it
    instead of propagating again (equal when the backbone's training pass
    is deterministic, e.g. LightGCN, SimGCL's clean pass; with a stochastic
    one the alignment now sees the same draw as the backbone loss, as in the
    authors' code).

    Args:
      graph: the training graph.
      batch: users, pos_items, neg_items, mask. # [B] each ([B, k] negs)

    Returns:
      (loss, metrics, the backbone's `Propagated` or None when the loss
      made no such call).
    """
    seen = []
    net_path = self.net.scope.path

    def capture(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if (not seen and context.method_name == "propagate_all"
          and context.module.scope is not None
          and context.module.scope.path == net_path
          and kwargs.get("train", args[1] if len(args) > 1 else False)):
        seen.append(out)
      return out

    with nn.intercept_methods(capture):
      base, metrics = self.net.loss(graph, batch)
    return base, metrics, (seen[0] if seen else None)

  def con_loss(self, graph: jraph.GraphsTuple, batch: Batch,
               out: Optional[Propagated] = None) -> jnp.ndarray:
    """Con: InfoNCE(collaborative, MLP(semantic)) of users, pos and neg items.

    Args:
      graph: the training graph.
      batch: users, pos_items, neg_items, mask. # [B] each ([B, k] negs)
      out: the backbone's `propagate_all(graph, train=True)`, if computed.

    Returns:
      Sum of the user, positive-item and (single negatives) negative-item
      InfoNCE terms.
    """
    if out is None:
      out = self.net.propagate_all(graph, train=True)
    mask = batch.mask
    ids = [batch.users, batch.pos_items]
    if batch.neg_items.ndim == 1:
      ids.append(batch.neg_items)
    rows = self.kd_rows
    if rows and rows < mask.shape[0]:  # static shapes: a slice
      ids, mask = [i[:rows] for i in ids], mask[:rows]
    ids = jnp.stack(ids)  # [T, R] T = 2 or 3 terms
    keep = jax.vmap(losses.first_occurrence_mask, (0, None))(ids, mask)
    offsets = jnp.array([0] + [self.num_users] * (ids.shape[0] - 1))
    nodes = ids + offsets[:, None]  # [T, R] node ids: item i is node U + i
    if out.nodes is not None:  # one gather (and gradient scatter) on one table
      collab = out.nodes[nodes]  # [T, R, d]
    else:
      collab = jnp.concatenate([out.user[ids[0]][None],
                                out.item[ids[1:]]])  # [T, R, d]
    text = raw_text(graph, self.text_key)[nodes]  # [T, R, d_text]
    mapped = self.con_mlp(text)  # [T, R, d]: one MLP call for every term
    return jnp.sum(losses.info_nce(
        safe_normalise(collab), safe_normalise(mapped), self.kd_temperature,
        mask=keep, normalise=False))

  def masked_nodes(self, rng: jax.Array) -> tuple[jnp.ndarray, int]:
    """(random permutation of the real nodes [U+I], number masked M).

    One argsort of random 32-bit keys (ties, probability ~ n^2 / 2^33 per
    step, keep index order): a third of `jax.random.permutation`'s cost,
    whose extra sort rounds only remove that tie bias.
    """
    n_real = self.num_users + self.num_items
    num_masked = max(1, int(round(self.mask_ratio * n_real)))
    keys = jax.random.bits(rng, (n_real,), jnp.uint32)  # [U+I]
    return jnp.argsort(keys).astype(jnp.int32), num_masked

  def masked_propagation(self, graph: jraph.GraphsTuple):
    """Gen's forward pass with a random `mask_ratio` of ego rows masked.

    Args:
      graph: the (possibly padded) training graph.

    Returns:
      final: layer-mean LightGCN propagation of the masked ego rows. # [N, d]
      is_masked: True on the masked (real) nodes. # [N]
      sel: ids of the masked nodes entering the reconstruction. # [M]
    """
    perm, num_masked = self.masked_nodes(self.make_rng("dropout"))
    users, items = self.net.ego_embeddings()
    ego = ego_nodes(graph, users, items)  # [N, d]
    is_masked = jnp.zeros(ego.shape[0], bool).at[perm[:num_masked]].set(True)
    ego = jnp.where(is_masked[:, None], self.mask_token[None, :], ego)
    layers = light_propagate(graph, ego, getattr(self.net, "num_layers", 3),
                             method=getattr(self.net, "propagation", None))
    if not getattr(self.net, "include_ego", True):
      layers = layers[1:]
    final = jnp.mean(jnp.stack(layers), axis=0)  # [N, d]
    cap = self.max_recon_nodes or num_masked
    sel = perm[:min(num_masked, cap)]  # [M]
    return final, is_masked, sel

  def reconstruction(self, graph: jraph.GraphsTuple, final: jnp.ndarray,
                     sel: jnp.ndarray) -> jnp.ndarray:
    """InfoNCE(MLP(final[sel]), text[sel]) with in-set negatives.

    Args:
      graph: graph holding `nodes[text_key]`.
      final: masked propagation. # [N, d]
      sel: masked node ids. # [M]

    Returns:
      Scalar loss.
    """
    text = raw_text(graph, self.text_key)[sel]  # [M, d_text] real nodes
    pred = self.gen_mlp(final[sel], text.shape[-1])  # [M, d_text]
    # Isolated masked nodes can give all-zero rows: normalise safely.
    pred, text = safe_normalise(pred), safe_normalise(text)
    if not self.gen_dedup_text:
      return losses.info_nce(pred, text, self.kd_temperature,
                             normalise=False)
    same = text @ text.T > 1.0 - 1e-6  # [M, M] identical semantic rows
    other = same & ~jnp.eye(sel.shape[0], dtype=bool)
    logits = jnp.where(other, -jnp.inf, pred @ text.T / self.kd_temperature)
    return -jnp.mean(jnp.diagonal(jax.nn.log_softmax(logits, axis=-1)))

  def gen_loss(self, graph: jraph.GraphsTuple) -> jnp.ndarray:
    """Gen: mask ego rows, propagate, MLP to text space, InfoNCE to text."""
    final, _, sel = self.masked_propagation(graph)
    return self.reconstruction(graph, final, sel)

  def masked_backbone_loss(self, graph: jraph.GraphsTuple, batch: Batch):
    """Authors' LightGCN_gene: BPR on the masked pass + L2 + reconstruction.

    Args:
      graph: the training graph.
      batch: users, pos_items, neg_items, mask. # [B] each ([B, k] negs)

    Returns:
      (BPR + l2_reg * L2 of the real ego rows, reconstruction loss, metrics).
    """
    final, _, sel = self.masked_propagation(graph)
    user, item = split_nodes(final, self.num_users, self.num_items)
    user_ego, item_ego = self.net.ego_embeddings()
    out = Propagated(user=user, item=item, user_ego=user_ego,
                     item_ego=item_ego)
    bpr, reg = self.net.bpr_terms(out, batch)
    base = bpr + self.net.l2_reg * reg
    kd = self.reconstruction(graph, final, sel)
    return base, kd, {"loss": base, "bpr": bpr, "reg": reg}

  def loss(self, graph: jraph.GraphsTuple, batch: Batch):
    """Backbone loss + kd_weight * alignment loss. Returns (loss, metrics)."""
    if self.gen_masked_backbone:
      base, kd, metrics = self.masked_backbone_loss(graph, batch)
    elif self.mode == "con":
      base, metrics, out = self.backbone_loss(graph, batch)
      kd = self.con_loss(graph, batch, out)
    else:
      base, metrics = self.net.loss(graph, batch)
      kd = self.gen_loss(graph)
    loss = base + self.kd_weight * kd
    return loss, dict(metrics, loss=loss, kd=kd)


class RLMRecCon(RLMRec):
  """RLMRec-Con (registry name 'rlmrec_con')."""
  mode: str = "con"


class RLMRecGen(RLMRec):
  """RLMRec-Gen (registry name 'rlmrec_gen')."""
  mode: str = "gen"

"""AlphaRec (Sheng et al., 2024): language embeddings are all you need.

Frozen language-model embeddings t_v (`graph.nodes['text']`) are mapped by a
two-layer MLP (Linear, LeakyReLU, Linear) to e_v^0, propagated by LightGCN
(K = 2, mean of layers 0..K), and scored by cosine similarity / tau. There are
NO free ID embeddings, so every item with a text (cold items included) gets a
representation. Training is InfoNCE over sampled negatives:

  loss = -log exp(cos(u, i+)/tau) / (exp(cos(u, i+)/tau) + sum_k exp(cos(u, i_k)/tau))

with tau = 0.15. In the paper users are the mean of their interacted items'
language embeddings, which is what `input_pipeline.build_graph` produces for datasets
without user embeddings; datasets with user profiles use those.

Negatives (`negative_sharing`):
* 'row': each batch row has its own negatives, `config.num_negatives` of them
  (`neg_items` [B, K]). This is what the authors' code does
  (LehengTHU/AlphaRec: 256 uniform items per (user, positive) row, drawn
  without the user's train items). It gathers [B, K, d] item rows and
  scatter-adds as many gradient rows, and the host samples B x K negatives:
  at the paper's batch 4096 and K = 256, ~1M rows per step.
* 'batch': K = `shared_negatives` negatives shared by every row of the batch:
  the first K of the batch's sampled negatives in row order (all of them
  when the batch has fewer). With `config.num_negatives = 1` these are the
  negatives of rows 0..K-1: uniform items, each drawn without its own row's
  user's train items. Scores are one [B, d] @ [d, K] product. A shared
  negative equal to a row's positive (an "accidental hit") is left out of
  that row's denominator, and negatives of padding rows out of every row's.
  This is the usual sampled softmax with a shared candidate set; it differs
  from 'row' only in which K items enter each row's denominator (the same K
  for the whole batch; a user's other train items are not excluded).
  configs/alpharec.py uses it (with `matmul_dtype='bfloat16'`): on graphs of
  10^4 - 10^5 interactions an epoch takes ~1/10 of the 'row' one on a
  2-core CPU (benchmarks/text_model_speed.py).

`embed` returns L2-normalised rows, so the inherited dot-product `score`
ranks by cosine similarity (dividing by tau would not change the ranking).
The loss normalises only the batch's rows (and, for more row negatives than
items, the item table once instead of its [B, K] gathered copies), gathers
them from the [N, d] node table (one gradient scatter), and computes the L2
term only when `l2_reg` > 0 (the paper has none). The MLP over every node
is then most of a step; `matmul_dtype='bfloat16'` halves its cost on CPUs
with bfloat16 units (`textgnn.text_dot_general`).
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
import jraph

from jaxrec import losses
from jaxrec.batches import Batch
from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender
from jaxrec.models.lightgcn import lightgcn_outputs
from jaxrec.models.textgnn import TextMLP
from jaxrec.models.textgnn import raw_text
from jaxrec.models.textgnn import safe_normalise


_normalise = safe_normalise
NEGATIVE_SHARING = ("row", "batch")


class AlphaRec(Recommender):
  """MLP(language embedding) -> LightGCN -> cosine / tau, InfoNCE loss.

  Attributes (besides Recommender's embed_dim and l2_reg; init_std unused):
    num_layers: K propagation layers (2 in the paper).
    hidden_dim: MLP hidden size (0 = (d_text + embed_dim) // 2).
    temperature: tau of the InfoNCE loss.
    text_key: key of the semantic embeddings in `graph.nodes`.
    propagation: kernel name for `jaxrec.graphs.propagate`.
    negative_sharing: 'row' (the paper's code) or 'batch' (module docstring).
    shared_negatives: K for 'batch': how many of the batch's sampled
      negatives (the first K in row order, at most all) every row is
      contrasted with.
    matmul_dtype: dtype of the MLP's products over every node ([N, d_text]
      @ [d_text, hidden] and [N, hidden] @ [hidden, d]): 'float32' (exact)
      or 'bfloat16' (inputs rounded, float32 accumulation;
      `textgnn.text_dot_general`).
  """
  embed_dim: int = 64
  l2_reg: float = 0.0
  num_layers: int = 2
  hidden_dim: int = 0
  temperature: float = 0.15
  text_key: str = "text"
  propagation: Optional[str] = None
  negative_sharing: str = "row"
  shared_negatives: int = 256
  matmul_dtype: str = "float32"

  def setup(self):
    # No super().setup(): AlphaRec has no ID embedding tables.
    if self.negative_sharing not in NEGATIVE_SHARING:
      raise ValueError(f"AlphaRec: negative_sharing must be one of "
                       f"{NEGATIVE_SHARING}, got {self.negative_sharing!r}")
    self.mlp = TextMLP(self.embed_dim, self.hidden_dim,
                       matmul_dtype=self.matmul_dtype)

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    del train
    real = graph.nodes["mask"][:, None] > 0
    # MLP rows are independent: zero the [N, d] output's padding rows, not
    # the [N, d_text] text table.
    ego = jnp.where(real, self.mlp(raw_text(graph, self.text_key)), 0.0)
    return lightgcn_outputs(graph, ego, self.num_layers, self.num_users,
                            self.num_items, self.propagation)

  def embed(self, graph: jraph.GraphsTuple):
    """L2-normalised (users [U, d], items [I, d])."""
    out = self.propagate_all(graph)
    return _normalise(out.user), _normalise(out.item)

  def shared_pool(self, batch: Batch) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The 'batch' negatives: (item ids [K], 0.0 on padding rows' ones [K]).

    K = min(shared_negatives, batch_size x num_negatives): the first K
    sampled negatives in row order (all of them for small batches).
    """
    neg, mask = batch.neg_items, batch.mask
    k = min(self.shared_negatives, neg.size)
    row_mask = jnp.broadcast_to(
        mask.reshape(mask.shape + (1,) * (neg.ndim - 1)), neg.shape)
    return neg.reshape(-1)[:k], row_mask.reshape(-1)[:k]  # [K], [K]

  def loss(self, graph: jraph.GraphsTuple, batch: Batch):
    """Sampled-softmax InfoNCE on cosine scores (+ optional L2 on ego rows)."""
    out = self.propagate_all(graph, train=True)
    mask = batch.mask
    users, pos_items = batch.users, batch.pos_items
    # Rows come from the [N, d] node table (item i is node U + i), so the
    # gradient is one scatter into it, not two tables padded back to N rows.
    nodes, offset = out.nodes, self.num_users
    # Cosines / tau: 1/tau scales the [B, d] user rows, not [B, K] scores.
    u = _normalise(nodes[users]) / self.temperature  # [B, d]
    pos = jnp.sum(u * _normalise(nodes[pos_items + offset]), axis=-1)  # [B]
    neg_mask = pool_mask = None
    if self.negative_sharing == "batch":
      negatives, pool_mask = self.shared_pool(batch)  # [K], [K]
      neg = u @ _normalise(nodes[negatives + offset]).T  # [B, K]
      hit = negatives[None, :] == pos_items[:, None]  # [B, K] accidental hits
      neg_mask = jnp.where(hit, 0.0, pool_mask[None, :])  # [B, K]
    else:
      negatives = batch.neg_items  # [B] or [B, k]
      if negatives.size > self.num_items:  # normalise the table once
        neg_emb = _normalise(out.item)[negatives]
      else:
        neg_emb = _normalise(nodes[negatives + offset])  # [B, d] / [B, k, d]
      if neg_emb.ndim == 2:
        neg = jnp.sum(u * neg_emb, axis=-1)[:, None]  # [B, 1]
      else:
        neg = jnp.einsum("bd,bkd->bk", u, neg_emb)  # [B, k]
    nce = losses.sampled_softmax(pos, neg, 1.0, mask, neg_mask)
    reg = (self.l2_term(out, batch, negatives, pool_mask) if self.l2_reg
           else 0.0)
    loss = nce + self.l2_reg * reg
    return loss, {"loss": loss, "infonce": nce, "reg": jnp.asarray(reg)}

  def l2_term(self, out: Propagated, batch: Batch, negatives: jnp.ndarray,
              pool_mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
    """Mean over real rows of 0.5 ||e^0||^2 of user, positive and negatives.

    Args:
      out: `propagate_all` output.
      batch: the batch.
      negatives: row negatives [B] / [B, k], or the shared ones [K].
      pool_mask: for shared negatives, 0 on those of padding rows. # [K]

    Returns:
      Scalar; shared negatives count once per batch, not once per row.
    """
    mask = batch.mask
    rows = [(out.user_ego, batch.users),
            (out.item_ego, batch.pos_items)]
    if pool_mask is None:
      return losses.l2_penalty_of_rows(rows + [(out.item_ego, negatives)],
                                       mask=mask)
    reg = losses.l2_penalty_of_rows(rows, mask=mask)
    sq = jnp.sum(jnp.square(out.item_ego[negatives]), axis=-1)  # [K]
    return reg + 0.5 * jnp.sum(pool_mask * sq) / jnp.maximum(
        jnp.sum(mask), 1.0)

"""AlphaRec (Sheng et al., 2024): language embeddings are all you need.

Frozen language-model embeddings t_v (`graph.nodes['text']`) are mapped by a
two-layer MLP (Linear, LeakyReLU, Linear) to e_v^0, propagated by LightGCN
(K = 2, mean of layers 0..K), and scored by cosine similarity / tau. There are
NO free ID embeddings, so every item with a text (cold items included) gets a
representation. Training is InfoNCE over sampled negatives:

  loss = -log exp(cos(u, i+)/tau) / (exp(cos(u, i+)/tau) + sum_k exp(cos(u, i_k)/tau))

with tau = 0.15 and `config.num_negatives` negatives per row (256 in the
paper's setting). In the paper users are the mean of their interacted items'
language embeddings, which is what `train.build_graph` produces for datasets
without user embeddings; datasets with user profiles use those.

`embed` returns L2-normalised rows, so the inherited dot-product `score`
ranks by cosine similarity (dividing by tau would not change the ranking).
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
import jraph

from jaxrec import losses
from jaxrec.models.base import Recommender
from jaxrec.models.lightgcn import lightgcn_outputs
from jaxrec.models.textgnn import TextMLP
from jaxrec.models.textgnn import node_text
from jaxrec.models.textgnn import safe_normalise


_normalise = safe_normalise


class AlphaRec(Recommender):
  """MLP(language embedding) -> LightGCN -> cosine / tau, InfoNCE loss.

  Attributes (besides Recommender's embed_dim and l2_reg; init_std unused):
    num_layers: K propagation layers (2 in the paper).
    hidden_dim: MLP hidden size (0 = (d_text + embed_dim) // 2).
    temperature: tau of the InfoNCE loss.
    text_key: key of the semantic embeddings in `graph.nodes`.
    propagation: kernel name for `jaxrec.graphs.propagate`.
  """
  embed_dim: int = 64
  l2_reg: float = 0.0
  num_layers: int = 2
  hidden_dim: int = 0
  temperature: float = 0.15
  text_key: str = "text"
  propagation: Optional[str] = None

  def setup(self):
    # No super().setup(): AlphaRec has no ID embedding tables.
    self.mlp = TextMLP(self.embed_dim, self.hidden_dim)

  def propagate_all(self, graph: jraph.GraphsTuple, train: bool = False) -> dict:
    del train
    mask = graph.nodes["mask"][:, None]
    ego = self.mlp(node_text(graph, self.text_key)) * mask  # [N, d]
    return lightgcn_outputs(graph, ego, self.num_layers, self.num_users,
                            self.num_items, self.propagation)

  def embed(self, graph: jraph.GraphsTuple):
    """L2-normalised (users [U, d], items [I, d])."""
    out = self.propagate_all(graph)
    return _normalise(out["user"]), _normalise(out["item"])

  def loss(self, graph: jraph.GraphsTuple, batch: dict):
    """Sampled-softmax InfoNCE on cosine scores (+ optional L2 on ego rows)."""
    out = self.propagate_all(graph, train=True)
    mask = batch["mask"]
    u = _normalise(out["user"][batch["users"]])  # [B, d]
    pos_emb = _normalise(out["item"][batch["pos_items"]])  # [B, d]
    neg_emb = _normalise(out["item"][batch["neg_items"]])  # [B, d] / [B, k, d]
    pos = jnp.sum(u * pos_emb, axis=-1)  # [B]
    if neg_emb.ndim == 2:
      neg = jnp.sum(u * neg_emb, axis=-1)[:, None]  # [B, 1]
    else:
      neg = jnp.einsum("bd,bkd->bk", u, neg_emb)  # [B, k]
    nce = losses.sampled_softmax(pos, neg, self.temperature, mask)
    reg = losses.l2_penalty(out["user_ego"][batch["users"]],
                            out["item_ego"][batch["pos_items"]],
                            out["item_ego"][batch["neg_items"]], mask=mask)
    loss = nce + self.l2_reg * reg
    return loss, {"loss": loss, "infonce": nce, "reg": reg}

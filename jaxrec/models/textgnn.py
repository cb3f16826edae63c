"""Text-initialised GNN: LightGCN propagation of projected language embeddings.

Node features are h_v = W t_v (+ e_v, an optional free ID embedding), where
t_v is the node's semantic embedding in `graph.nodes['text']` (users first,
then items; `train.build_graph` puts the dataset's embeddings there when
`config.graph.text_features` is True). h is propagated as in LightGCN (mean
of layers 0..K) and scored by a dot product; training is BPR + L2 on the
batch's h rows. Because h depends on text, items without interactions
(cold-start) still get meaningful representations.

Also holds the pieces shared by the text-aligned models (AlphaRec, RLMRec):
`node_text`, `safe_normalise` and the two-layer `TextMLP`.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxrec.graphs import pad_rows
from jaxrec.models.base import Recommender
from jaxrec.models.lightgcn import lightgcn_outputs


def node_text(graph: jraph.GraphsTuple, key: str = "text") -> jnp.ndarray:
  """Per-node semantic embeddings, zero on padding nodes. # [N, d_text]

  Raises:
    ValueError: the graph has no `nodes[key]` (names the config flag).
  """
  if not isinstance(graph.nodes, dict) or key not in graph.nodes:
    raise ValueError(
        f"text-aligned model: graph.nodes[{key!r}] is missing; set "
        "config.graph.text_features=True and use a dataset with "
        "item_embeddings (e.g. an RLMRec folder, or texts encoded with "
        "jaxrec.text.encode_cached)")
  text = graph.nodes[key]
  return text * graph.nodes["mask"][:, None].astype(text.dtype)


def safe_normalise(x: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
  """Unit rows, x / max(||x||, eps), with a finite gradient at x = 0.

  (`x / jnp.maximum(jnp.linalg.norm(x), eps)` has a NaN gradient at a zero
  row: the norm's derivative x / ||x|| is 0 / 0 there.) # same shape
  """
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


class TextMLP(nn.Module):
  """Linear -> LeakyReLU -> Linear (the RLMRec / AlphaRec mapping MLP).

  Attributes:
    features: output size (0: given at call time).
    hidden_dim: hidden size; 0 = (input size + features) // 2 as in RLMRec.
  """
  features: int = 0
  hidden_dim: int = 0

  @nn.compact
  def __call__(self, x: jnp.ndarray,
               features: Optional[int] = None) -> jnp.ndarray:
    """Maps x [.., d_in] to [.., features]; `features` overrides the attribute."""
    features = features or self.features
    if not features:
      raise ValueError("TextMLP: output size not set (features=0)")
    hidden = self.hidden_dim or (x.shape[-1] + features) // 2
    init = nn.initializers.xavier_uniform()
    h = nn.Dense(hidden, kernel_init=init, name="hidden")(x)  # [.., hidden]
    h = nn.leaky_relu(h)
    return nn.Dense(features, kernel_init=init, name="out")(h)


class TextGNN(Recommender):
  """LightGCN over text-projected node features.

  Attributes (besides Recommender's embed_dim, l2_reg, init_std):
    num_layers: K propagation layers.
    use_id_embedding: add free per-node ID embeddings to W t_v.
    text_key: key of the semantic embeddings in `graph.nodes`.
    propagation: kernel name for `jaxrec.graphs.propagate`.
  """
  num_layers: int = 3
  use_id_embedding: bool = False
  text_key: str = "text"
  propagation: Optional[str] = None

  def setup(self):
    if self.use_id_embedding:
      super().setup()
    self.text_proj = nn.Dense(self.embed_dim, use_bias=False)

  def node_features(self, graph: jraph.GraphsTuple) -> jnp.ndarray:
    """h = W t (+ e), zero on padding nodes. # [N, d]"""
    mask = graph.nodes["mask"][:, None]
    h = self.text_proj(node_text(graph, self.text_key)) * mask  # [N, d]
    if self.use_id_embedding:
      h = h + pad_rows(graph, jnp.concatenate([self.user_embedding,
                                               self.item_embedding]))
    return h

  def propagate_all(self, graph: jraph.GraphsTuple, train: bool = False) -> dict:
    del train
    ego = self.node_features(graph)  # [N, d]
    return lightgcn_outputs(graph, ego, self.num_layers, self.num_users,
                            self.num_items, self.propagation)

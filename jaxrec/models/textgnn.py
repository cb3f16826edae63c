"""Text-initialised GNN: LightGCN propagation of projected language embeddings.

Node features are h_v = W t_v (+ e_v, an optional free ID embedding), where
t_v is the node's semantic embedding in `graph.nodes['text']` (users first,
then items; `input_pipeline.build_graph` puts the dataset's embeddings there when
`config.graph.text_features` is True). h is propagated as in LightGCN (mean
of layers 0..K) and scored by a dot product; training is BPR + L2 on the
batch's h rows. Because h depends on text, items without interactions
(cold-start) still get meaningful representations.

Also holds the pieces shared by the text-aligned models (AlphaRec, RLMRec):
`node_text`, `safe_normalise`, the two-layer `TextMLP` and the optional
bfloat16 products of the language embeddings (`matmul_dtype`).

Cost: the product of every node's language embedding with the first weight
([N, d_text] @ [d_text, h], forward and weight gradient) is the largest term
of a step on graphs of 10^4 - 10^5 interactions. The text table is read as
stored (padding rows are zeroed in the [N, h] product, not in the
[N, d_text] table), and with `matmul_dtype='bfloat16'` the products take
bfloat16 inputs with float32 sums: the table's cast does not depend on the
parameters, so XLA hoists it out of the scanned train steps. On the 2-core
AVX512-BF16 Xeon of benchmarks/text_model_speed.py the [9610, 384] @
[384, 224] product runs 2.5-4x faster, the weight gradient (`_weight_grad`)
~2x and a TextMLP forward + backward over all nodes 1.4-1.7x. Inputs are
rounded to 8 significant bits (relative error <= 2^-8 per entry; ~1e-2 in
the weight gradient's norm); 'float32' is exact.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxrec.graphs import pad_rows
from jaxrec.models.base import Propagated
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


def raw_text(graph: jraph.GraphsTuple, key: str = "text") -> jnp.ndarray:
  """`node_text` without the padding mask (rows of padding nodes as stored).

  For callers that mask after a row-wise map (`TextGNN`, `AlphaRec`) or only
  gather real nodes (RLMRec), so that no [N, d_text] pass is spent on it.
  # [N, d_text]
  """
  if not isinstance(graph.nodes, dict) or key not in graph.nodes:
    node_text(graph, key)  # raises the error naming the config flag
  return graph.nodes[key]


MATMUL_DTYPES = ("float32", "bfloat16")


# Rows per block of the weight gradient's contraction on CPU (`_weight_grad`).
ROW_BLOCK = 384


def _weight_grad(x: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
  """x^T g over all rows, bfloat16 inputs, float32 sums. # [d_in, d_out]

  On CPU, XLA's bfloat16 product whose contraction runs over all rows (the
  weight gradient) is several times slower than the same FLOPs as the
  forward product [M, d_in] @ [d_in, d_out]: x = [9610, 384] text rows and
  d_out = 224 take 26 ms against 5 ms forward on a loaded 2-core Xeon. A
  scan over [d_in, ROW_BLOCK] @ [ROW_BLOCK, d_out] blocks (zero-padded; for
  the text, a constant, the transposed blocks are hoisted out of the
  train-step loop) takes 12-17 ms. Other backends: one product.

  Args:
    x: layer input. # [M, d_in]
    g: output cotangent. # [M, d_out]

  Returns:
    float32 gradient of the weight. # [d_in, d_out]
  """
  x16, g16 = x.astype(jnp.bfloat16), g.astype(jnp.bfloat16)
  rows = x.shape[0]
  if jax.default_backend() != "cpu" or rows <= 2 * ROW_BLOCK:
    return jax.lax.dot_general(x16, g16, (((0,), (0,)), ((), ())),
                               preferred_element_type=jnp.float32)
  blocks = -(-rows // ROW_BLOCK)
  pad = ((0, blocks * ROW_BLOCK - rows), (0, 0))
  xt = jnp.pad(x16, pad).reshape(blocks, ROW_BLOCK, -1).transpose(0, 2, 1)
  xt = jax.lax.optimization_barrier(xt)  # materialised: [blocks, d_in, r]
  gb = jnp.pad(g16, pad).reshape(blocks, ROW_BLOCK, -1)  # [blocks, r, d_out]

  def add_block(acc, block):
    x_block, g_block = block
    return acc + jnp.dot(x_block, g_block,
                         preferred_element_type=jnp.float32), None
  zero = jnp.zeros((x.shape[1], g.shape[1]), jnp.float32)
  return jax.lax.scan(add_block, zero, (xt, gb))[0]


@jax.custom_vjp
def _bf16_dot(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
  return jnp.dot(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16),
                 preferred_element_type=jnp.float32)


def _bf16_dot_fwd(x, w):
  return _bf16_dot(x, w), (x, w)


def _bf16_dot_bwd(res, g):
  x, w = res
  dw = _weight_grad(x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1]))
  dx = jnp.dot(g.astype(jnp.bfloat16), w.astype(jnp.bfloat16).T,
               preferred_element_type=jnp.float32)  # unused for text: DCE'd
  return dx.astype(x.dtype), dw.astype(w.dtype)


_bf16_dot.defvjp(_bf16_dot_fwd, _bf16_dot_bwd)


def text_dot_general(matmul_dtype: str):
  """`dot_general` for `nn.Dense` on language embeddings, or None.

  Args:
    matmul_dtype: 'float32' (None: Flax's default product) or 'bfloat16'
      (inputs rounded to bfloat16, products accumulated and returned in
      float32, the weight gradient likewise).

  Returns:
    A `lax.dot_general`-compatible function, or None.

  Raises:
    ValueError: an unknown dtype.
  """
  if matmul_dtype not in MATMUL_DTYPES:
    raise ValueError(f"matmul_dtype must be one of {MATMUL_DTYPES}, got "
                     f"{matmul_dtype!r}")
  if matmul_dtype == "float32":
    return None

  def dot_general(x, w, dimension_numbers, precision=None,
                  preferred_element_type=None):
    del precision, preferred_element_type
    (contract_x, contract_w), (batch_x, batch_w) = dimension_numbers
    if (tuple(contract_x) != (x.ndim - 1,) or tuple(contract_w) != (0,)
        or batch_x or batch_w):
      raise ValueError("text_dot_general: only x [.., d_in] @ w [d_in, d_out]")
    return _bf16_dot(x, w)
  return dot_general


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
    matmul_dtype: dtype of both layers' products ('float32' or
      'bfloat16', see `text_dot_general`); biases, activation and outputs
      stay float32.
  """
  features: int = 0
  hidden_dim: int = 0
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jnp.ndarray,
               features: Optional[int] = None) -> jnp.ndarray:
    """Maps x [.., d_in] to [.., features]; `features` overrides the attribute."""
    features = features or self.features
    if not features:
      raise ValueError("TextMLP: output size not set (features=0)")
    hidden = self.hidden_dim or (x.shape[-1] + features) // 2
    init = nn.initializers.xavier_uniform()
    dot_general = text_dot_general(self.matmul_dtype)
    h = nn.Dense(hidden, kernel_init=init, name="hidden",
                 dot_general=dot_general)(x)  # [.., hidden]
    h = nn.leaky_relu(h)
    return nn.Dense(features, kernel_init=init, name="out",
                    dot_general=dot_general)(h)


class TextGNN(Recommender):
  """LightGCN over text-projected node features.

  Attributes (besides Recommender's embed_dim, l2_reg, init_std):
    num_layers: K propagation layers.
    use_id_embedding: add free per-node ID embeddings to W t_v.
    text_key: key of the semantic embeddings in `graph.nodes`.
    propagation: kernel name for `jaxrec.graphs.propagate`.
    matmul_dtype: dtype of the projection's product ('float32' or
      'bfloat16', see `text_dot_general` and the module docstring).
  """
  num_layers: int = 3
  use_id_embedding: bool = False
  text_key: str = "text"
  propagation: Optional[str] = None
  matmul_dtype: str = "float32"

  def setup(self):
    if self.use_id_embedding:
      super().setup()
    self.text_proj = nn.Dense(self.embed_dim, use_bias=False,
                              dot_general=text_dot_general(self.matmul_dtype))

  def node_features(self, graph: jraph.GraphsTuple) -> jnp.ndarray:
    """h = W t (+ e), zero on padding nodes. # [N, d]"""
    real = graph.nodes["mask"][:, None] > 0
    # Rows are independent: zero the [N, d] projection's padding rows (a
    # select, robust to any padding text) instead of the [N, d_text] table.
    h = jnp.where(real, self.text_proj(raw_text(graph, self.text_key)), 0.0)
    if self.use_id_embedding:
      h = h + pad_rows(graph, jnp.concatenate([self.user_embedding,
                                               self.item_embedding]))
    return h

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    del train
    ego = self.node_features(graph)  # [N, d]
    return lightgcn_outputs(graph, ego, self.num_layers, self.num_users,
                            self.num_items, self.propagation)

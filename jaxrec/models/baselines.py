"""Closed-form (non-neural) baselines: MostPop, ItemKNN and EASE.

These models have no gradient training. `fit(train_csr) -> params` computes
their Flax parameters from the binary user x item train matrix in
NumPy / SciPy (deterministic), and `train.train_and_evaluate` hands them to
`train.fit_closed_form`, which fits once, evaluates validation and test once
and checkpoints the params in the same workdir layout as the gradient path.

Ranking uses the shared contract: `embed(graph)` returns (users, items) and
`score` is their dot product, so `train.Evaluator` (full ranking, train items
masked) and `jaxrec.recommend` work unchanged:
  MostPop: users [U, 1] ones, items [I, 1] train popularity.
  ItemKNN / EASE: users = the binary train rows x_u [U, I]; item j's row is
    column j of the item-item weight matrix W [I, I] (stored transposed, as
    `item_weights` [I, I]), so score(u, j) = x_u . W[:, j] = (X W)[u, j]:
    one jitted [B, I] x [I, I] matmul per user block.

The zero `loss` only lets the generic machinery (`train.init_params`, which
traces `loss`, and a train step) run; it trains nothing.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np
import scipy.linalg
import scipy.sparse as sp

from jaxrec.data.dataset import DataError

# Co-occurrence entries per block of source items in `ItemKNN.fit` (bounds the
# sparse block product and its sort when the co-occurrence is dense).
_KNN_BLOCK_ENTRIES = 1 << 23
# Rows per block when mirroring EASE's inverse (lower triangle -> full).
_SYM_BLOCK_ROWS = 1024


def binary_csr(train: sp.spmatrix, shape: tuple[int, int]) -> sp.csr_matrix:
  """The train matrix as a canonical float32 0/1 CSR.

  Args:
    train: user x item matrix (any scipy sparse format; values ignored,
      nonzeros count as interactions).
    shape: expected (num_users, num_items).

  Returns:
    CSR [U, I] with sorted indices and all stored values 1.0.

  Raises:
    DataError: not a sparse matrix of the expected shape.
  """
  if not sp.issparse(train):
    raise DataError(f"fit: train must be a scipy sparse user x item matrix, "
                    f"got {type(train).__name__}")
  if train.shape != tuple(shape):
    raise DataError(f"fit: train has shape {train.shape}, expected {shape} "
                    "(num_users x num_items of the model)")
  x = sp.csr_matrix(train, dtype=np.float32, copy=True)
  x.sum_duplicates()
  x.eliminate_zeros()
  x.data[:] = 1.0
  return x


class ClosedFormRecommender(nn.Module):
  """Base of models fitted in closed form instead of by gradient steps.

  Subclasses define `param_specs` (name -> (shape, dtype) of every parameter)
  and `fit` (train CSR -> those parameters as NumPy arrays), and `embed`.

  Attributes:
    num_users: U.
    num_items: I.
  """
  num_users: int
  num_items: int
  # Nothing is trained by gradients: no optional batch fields.
  batch_fields = ()

  @nn.nowrap
  def param_specs(self) -> dict[str, tuple[tuple[int, ...], jnp.dtype]]:
    """Name -> (shape, dtype) of the parameters `fit` returns."""
    raise NotImplementedError

  @nn.nowrap
  def fit(self, train: sp.spmatrix) -> dict[str, np.ndarray]:
    """Parameters from the binary train matrix (pure NumPy / SciPy).

    Args:
      train: user x item train interactions [U, I] (scipy sparse).

    Returns:
      dict name -> array with the shapes and dtypes of `param_specs`.
    """
    raise NotImplementedError

  def setup(self):
    zeros = nn.initializers.zeros
    self.fitted = {name: self.param(name, zeros, shape, dtype)
                   for name, (shape, dtype) in self.param_specs().items()}

  def embed(self, graph: jraph.GraphsTuple):
    """(users [U, d], items [I, d]) whose dot products are the scores."""
    raise NotImplementedError

  def score(self, user_emb: jnp.ndarray, item_emb: jnp.ndarray,
            users: jnp.ndarray) -> jnp.ndarray:
    """Scores of all items for a batch of users. # [B, I]"""
    return jnp.dot(user_emb[users], item_emb.T,
                   precision=jax.lax.Precision.HIGHEST)

  def loss(self, graph: jraph.GraphsTuple, batch):
    """Zero: nothing is trained by gradients. Returns (loss, metrics)."""
    del graph, batch
    loss = jnp.zeros((), jnp.float32)
    return loss, {"loss": loss}


class MostPop(ClosedFormRecommender):
  """Most popular: score(u, i) = number of train users of item i."""

  @nn.nowrap
  def param_specs(self):
    return {"popularity": ((self.num_items,), jnp.float32)}

  @nn.nowrap
  def fit(self, train: sp.spmatrix) -> dict[str, np.ndarray]:
    x = binary_csr(train, (self.num_users, self.num_items))
    pop = np.bincount(x.indices, minlength=self.num_items)  # [I]
    return {"popularity": pop.astype(np.float32)}

  def embed(self, graph: jraph.GraphsTuple):
    del graph
    users = jnp.ones((self.num_users, 1), jnp.float32)  # [U, 1]
    return users, self.fitted["popularity"][:, None]  # [I, 1]


class _ItemItem(ClosedFormRecommender):
  """score = X W: users are binary train rows, items rows of W^T."""

  @nn.nowrap
  def param_specs(self):
    # 0/1 rows are exact in bfloat16: half the checkpoint of float32.
    return {"user_items": ((self.num_users, self.num_items), jnp.bfloat16),
            "item_weights": ((self.num_items, self.num_items), jnp.float32)}

  def embed(self, graph: jraph.GraphsTuple):
    del graph
    users = self.fitted["user_items"].astype(jnp.float32)  # [U, I]
    return users, self.fitted["item_weights"]  # [I, I], row j = W[:, j]

  @nn.nowrap
  def _params(self, x: sp.csr_matrix, item_weights: np.ndarray) -> dict:
    return {"user_items": x.toarray().astype(jnp.bfloat16),  # [U, I]
            "item_weights": item_weights}  # [I, I]


class ItemKNN(_ItemItem):
  """Item-based k-nearest neighbours with shrunk cosine similarity.

  sim(i, j) = |U_i & U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink) on the binary
  train matrix (U_i: train users of item i), sim(i, i) = 0. Each item i keeps
  its `num_neighbors` most similar items j (ties: lower j first), giving
  W[i, j] = sim(i, j) (else 0), and score(u, j) = sum over the user's train
  items i of W[i, j] (RecBole's ItemKNN orientation). The fit is blockwise
  sparse; W is stored densely so scoring is one matmul.

  Attributes:
    num_neighbors: k, neighbours kept per item.
    shrink: shrinkage added to the cosine denominator.
  """
  num_neighbors: int = 100
  shrink: float = 10.0

  @nn.nowrap
  def fit(self, train: sp.spmatrix) -> dict[str, np.ndarray]:
    num_items = self.num_items
    if self.num_neighbors < 1 or self.shrink < 0:
      raise ValueError(f"ItemKNN: num_neighbors must be >= 1 and shrink >= 0, "
                       f"got {self.num_neighbors} and {self.shrink}")
    x = binary_csr(train, (self.num_users, num_items))
    norms = np.sqrt(np.bincount(x.indices, minlength=num_items)
                    .astype(np.float64))  # [I]
    xt = x.T.tocsr()  # [I, U]
    weights = np.zeros((num_items, num_items), np.float32)  # [I, I] = W^T
    block = max(1, _KNN_BLOCK_ENTRIES // max(num_items, 1))
    for lo in range(0, num_items, block):  # blocks of source items i
      co = (xt[lo:lo + block] @ x).tocoo()  # [blk, I] co-occurrence counts
      rows = co.row.astype(np.int64) + lo
      cols = co.col.astype(np.int64)
      sims = co.data.astype(np.float64) / (norms[rows] * norms[cols]
                                           + self.shrink)
      keep = cols != rows
      rows, cols, sims = rows[keep], cols[keep], sims[keep]
      order = np.lexsort((cols, -sims, rows))  # by row, best first, low j
      rows, cols, sims = rows[order], cols[order], sims[order]
      first = np.searchsorted(rows, rows, side="left")  # row start per entry
      top = np.arange(len(rows)) - first < self.num_neighbors
      weights[cols[top], rows[top]] = sims[top]
    return self._params(x, weights)


class EASE(_ItemItem):
  """EASE (Steck, WWW 2019): shallow linear autoencoder in closed form.

  P = (X^T X + l2 I)^-1, B = I - P diag(1 / diag(P)), diag(B) = 0, and
  score(u) = x_u B. Solved in float32 with a Cholesky factorisation and
  inverse (LAPACK potrf / potri) in place on one [I, I] buffer.

  Attributes:
    l2: the L2 weight lambda on B.
  """
  l2: float = 500.0

  @nn.nowrap
  def fit(self, train: sp.spmatrix) -> dict[str, np.ndarray]:
    num_items = self.num_items
    if self.l2 <= 0:
      raise ValueError(f"EASE: l2 must be > 0 (X^T X alone is singular in "
                       f"general), got {self.l2}")
    x = binary_csr(train, (self.num_users, num_items))
    # [I, I] float32 co-occurrence counts, in Fortran order so that LAPACK
    # works in place (one [I, I] buffer in all).
    a = (x.T @ x).toarray(order="F")
    a[np.diag_indices(num_items)] += np.float32(self.l2)
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"),
                                                        (a,))
    a, info = potrf(a, lower=True, clean=False, overwrite_a=True)
    if info == 0:
      a, info = potri(a, lower=True, overwrite_c=True)
    if info != 0:
      raise np.linalg.LinAlgError(
          f"EASE: Cholesky of X^T X + l2 I failed (LAPACK info {info}); "
          f"raise l2 (now {self.l2})")
    p = a  # P = (X^T X + l2 I)^-1 in the lower triangle; mirror it in place
    for lo in range(0, num_items, _SYM_BLOCK_ROWS):
      hi = min(lo + _SYM_BLOCK_ROWS, num_items)
      diag = p[lo:hi, lo:hi]
      diag[...] = np.tril(diag) + np.tril(diag, -1).T
      p[lo:hi, hi:] = p[hi:, lo:hi].T
    # B^T[j, i] = B[i, j] = -P[i, j] / P[j, j] = -P[j, i] / P[j, j].
    weights = p.T  # the same symmetric P in C order (a view, no copy)
    weights /= -np.diag(weights)[:, None]  # row j scaled by -1 / P[j, j]
    np.fill_diagonal(weights, 0.0)
    return self._params(x, weights)

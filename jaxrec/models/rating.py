"""Rating prediction models (`config.task = 'rating'`): explicit feedback.

Every model here predicts a rating for (user, item) pairs with
`predict(graph, users, items) -> [B]` and trains on batches of observed
ratings (`input_pipeline.rating_batches`: `batches.RatingBatch` users, items,
ratings, mask, each [B]). The training graph of the rating task carries each edge's rating
(`bipartite_graph(..., keep_ratings=True)`); the global mean mu of the train
ratings is read from it (`train_mean`), so it is a statistic of the data, as
in Koren's baseline, not a parameter.

* `BiasedMF` (Koren, Bell & Volinsky, IEEE Computer 2009; "SVD" of the
  Netflix prize): r = mu + b_u + b_i + p_u . q_i, MSE + L2 on the batch rows.
* `GCMC` (van den Berg, Kipf & Welling, "Graph Convolutional Matrix
  Completion", 2017): rating-typed message passing: a message from a
  neighbour j rated at level l is W_l e_j (one weight matrix per rating
  level, ordinal sharing W_l = T_1 + ... + T_l), summed with the graph's
  normalised edge weights, ReLU, then a dense layer per side; a bilinear
  softmax decoder over levels with basis sharing (Q_l = sum_b a_lb P_b);
  prediction = expected level value. Trained with the levels' negative
  log-likelihood (the paper) or MSE of the expected rating.
* `RatingHead` wraps ANY registered GNN backbone (built by
  `models.get_model` from `backbone` / `backbone_kwargs`, as RLMRec does):
  r = mu + b_u + b_i + <z_u, z_i> on the backbone's propagated user / item
  representations, MSE + L2 on the batch's ego rows. With
  `config.graph.edge_weight = 'rating'` the backbone's propagation is
  rating-weighted.
* `GlobalMean` and `UserItemBias` are closed-form baselines
  (`baselines.ClosedFormRecommender`, fitted by `train.fit_closed_form` on
  the train split's ratings): mu, and mu + b_u + b_i with the biases from
  regularised alternating least squares (Koren, "Factor in the neighbors",
  TKDD 2010, Sec. 2.1: b_i = sum (r - mu - b_u) / (reg_item + n_i), then
  b_u likewise; `num_iters` rounds).

Ranking (`embed` / `score`) still works on every model (rating models rank
by their representations' dot products, the baselines by item bias), so the
ranking tools can read their workdirs.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from jaxrec import losses
from jaxrec.batches import RatingBatch
from jaxrec.data.dataset import DataError
from jaxrec.data.dataset import Interactions
from jaxrec.graphs import pad_rows
from jaxrec.graphs import split_nodes
from jaxrec.graphs.bipartite import edge_ratings
from jaxrec.models.baselines import ClosedFormRecommender
from jaxrec.models.base import Propagated
from jaxrec.models.base import Recommender


def train_mean(graph: jraph.GraphsTuple) -> jnp.ndarray:
  """Mean rating of the graph's real edges (scalar; works under jit).

  Args:
    graph: a training graph built with `keep_ratings=True` (padding edges
      hold rating 0 and lie after the `n_edge[0]` real ones).

  Returns:
    float32 scalar.

  Raises:
    ValueError: the graph carries no edge ratings.
  """
  rated = edge_ratings(graph)
  if rated is None:
    raise ValueError("rating models need a graph with edge ratings (set "
                     "config.task = 'rating'; input_pipeline.build_graph "
                     "then keeps them)")
  count = jnp.maximum(jnp.asarray(graph.n_edge)[0], 1).astype(jnp.float32)
  return jnp.sum(rated) / count


def _bias(module: nn.Module, name: str, size: int) -> jnp.ndarray:
  return module.param(name, nn.initializers.zeros, (size,))


class BiasedMF(Recommender):
  """Biased matrix factorisation for explicit ratings.

  Attributes (beyond `Recommender`'s embed_dim, l2_reg, init_std):
    l2_reg: weight of the L2 penalty on the batch's p_u, q_i, b_u, b_i rows
      (per-rating penalty l2_reg / 2 * ||.||^2; scikit-surprise's SVD `reg`
      lambda is l2_reg / 2).
  """
  predicts_ratings = True
  l2_reg: float = 0.04

  def setup(self):
    super().setup()
    self.user_bias = _bias(self, "user_bias", self.num_users)
    self.item_bias = _bias(self, "item_bias", self.num_items)

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    del graph, train
    users, items = self.ego_embeddings()
    return Propagated(user=users, item=items, user_ego=users, item_ego=items)

  def predict(self, graph: jraph.GraphsTuple, users: jnp.ndarray,
              items: jnp.ndarray) -> jnp.ndarray:
    """Predicted ratings of (users [B], items [B]) pairs. # [B]"""
    p, q = self.user_embedding[users], self.item_embedding[items]  # [B, d]
    return (train_mean(graph) + self.user_bias[users] + self.item_bias[items]
            + jnp.sum(p * q, axis=-1))

  def loss(self, graph: jraph.GraphsTuple, batch: RatingBatch):
    """MSE + L2 on the batch rows. Returns (loss, metrics)."""
    users, items = batch.users, batch.items
    pred = self.predict(graph, users, items)
    loss = losses.mse_loss(
        pred, batch.ratings, batch.mask, self.l2_reg,
        (self.user_embedding[users], self.item_embedding[items],
         self.user_bias[users], self.item_bias[items]))
    return loss, {"loss": loss}


def rating_levels(ratings: jnp.ndarray, min_rating: float, rating_step: float,
                  num_levels: int) -> jnp.ndarray:
  """Level index round((r - min_rating) / rating_step), clipped. # int32 [n]"""
  level = jnp.round((ratings - min_rating) / rating_step).astype(jnp.int32)
  return jnp.clip(level, 0, num_levels - 1)


class GCMC(Recommender):
  """Graph convolutional matrix completion with rating-typed messages.

  Attributes (beyond `Recommender`'s; embed_dim is the size of the free
  node embeddings e_j, which play the one-hot features' W x_j):
    hidden_dim: size of the accumulated messages (per-level W_l: d -> h).
    out_dim: size of the user / item representations after the dense layer.
    num_levels: rating levels L.
    min_rating: rating of level 0.
    rating_step: rating difference between consecutive levels.
    num_basis: basis matrices P_b of the bilinear decoder.
    dropout: dropout rate on the hidden representations (training only).
    loss_type: 'nll' (cross-entropy over levels, the paper) or 'mse'
      (squared error of the expected rating).
    l2_reg: L2 weight on the batch's ego rows (0: none, as in the paper).
  """
  predicts_ratings = True
  hidden_dim: int = 128
  out_dim: int = 64
  num_levels: int = 5
  min_rating: float = 1.0
  rating_step: float = 1.0
  num_basis: int = 2
  dropout: float = 0.3
  loss_type: str = "nll"
  l2_reg: float = 0.0

  def setup(self):
    super().setup()
    if self.loss_type not in ("nll", "mse"):
      raise ValueError(f"GCMC: loss_type must be 'nll' or 'mse', got "
                       f"{self.loss_type!r}")
    glorot = nn.initializers.glorot_uniform()
    # T_l: the ordinal increments; W_l = T_1 + ... + T_l.
    self.level_weights = self.param(
        "level_weights", glorot, (self.num_levels, self.embed_dim,
                                  self.hidden_dim))
    self.user_dense = nn.Dense(self.out_dim, name="user_dense")
    self.item_dense = nn.Dense(self.out_dim, name="item_dense")
    self.basis = self.param("basis", nn.initializers.orthogonal(),
                            (self.num_basis, self.out_dim, self.out_dim))
    self.basis_coef = self.param(
        "basis_coef", glorot, (self.num_levels, self.num_basis))
    self.drop = nn.Dropout(self.dropout)

  def level_values(self) -> jnp.ndarray:
    """Rating of each level. # [L]"""
    return self.min_rating + self.rating_step * jnp.arange(
        self.num_levels, dtype=jnp.float32)

  def propagate_all(self, graph: jraph.GraphsTuple,
                    train: bool = False) -> Propagated:
    """Encoder: user [U, out], item [I, out] (plus the ego tables)."""
    users, items = self.ego_embeddings()
    ego = pad_rows(graph, jnp.concatenate([users, items]))  # [N, d]
    num_nodes = ego.shape[0]
    rated = edge_ratings(graph)
    if rated is None:
      train_mean(graph)  # raises the explanatory error
    level = rating_levels(rated, self.min_rating, self.rating_step,
                          self.num_levels)  # [E]
    messages = graph.edges[:, None] * ego[graph.senders]  # [E, d]
    per_level = jax.ops.segment_sum(
        messages, level * num_nodes + graph.receivers,
        num_segments=self.num_levels * num_nodes)  # [L * N, d]
    per_level = per_level.reshape(self.num_levels, num_nodes, -1)  # [L, N, d]
    weights = jnp.cumsum(self.level_weights, axis=0)  # [L, d, h] ordinal
    hidden = jax.nn.relu(jnp.einsum("lnd,ldh->nh", per_level, weights))
    hidden = self.drop(hidden, deterministic=not train)  # [N, h]
    user_h, item_h = split_nodes(hidden, self.num_users, self.num_items)
    return Propagated(user=self.user_dense(user_h),
                      item=self.item_dense(item_h), user_ego=users,
                      item_ego=items)

  def level_logits(self, user_rep: jnp.ndarray,
                   item_rep: jnp.ndarray) -> jnp.ndarray:
    """Bilinear decoder logits u^T Q_l v. # [B, L]"""
    q = jnp.einsum("lb,bxy->lxy", self.basis_coef, self.basis)  # [L, o, o]
    return jnp.einsum("bx,lxy,by->bl", user_rep, q, item_rep)

  def _predict(self, out: Propagated, users, items):
    logits = self.level_logits(out.user[users], out.item[items])
    expected = jax.nn.softmax(logits) @ self.level_values()  # [B]
    return logits, expected

  def predict(self, graph: jraph.GraphsTuple, users: jnp.ndarray,
              items: jnp.ndarray) -> jnp.ndarray:
    """Expected rating under the decoder's level distribution. # [B]"""
    return self._predict(self.propagate_all(graph, train=False), users,
                         items)[1]

  def loss(self, graph: jraph.GraphsTuple, batch: RatingBatch):
    """NLL of the observed levels (or MSE) + optional L2. (loss, metrics)."""
    users, items, mask = batch.users, batch.items, batch.mask
    out = self.propagate_all(graph, train=True)
    logits, expected = self._predict(out, users, items)
    if self.loss_type == "nll":
      target = rating_levels(batch.ratings, self.min_rating,
                             self.rating_step, self.num_levels)  # [B]
      nll = -jnp.take_along_axis(jax.nn.log_softmax(logits),
                                 target[:, None], axis=1)[:, 0]  # [B]
      data = jnp.sum(nll * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    else:
      data = losses.mse_loss(expected, batch.ratings, mask)
    reg = losses.l2_penalty(out.user_ego[users], out.item_ego[items],
                            mask=mask)
    loss = data + self.l2_reg * reg
    return loss, {"loss": loss, "data": data,
                  "mse": losses.mse_loss(expected, batch.ratings, mask)}


class RatingHead(nn.Module):
  """mu + b_u + b_i + <z_u, z_i> on a GNN backbone's representations.

  Attributes:
    num_users: U.
    num_items: I.
    net: the backbone (any registered trainable model; its parameters live
      under 'net').
    l2_reg: L2 weight on the batch's ego rows and biases.
  """
  num_users: int
  num_items: int
  net: nn.Module
  l2_reg: float = 0.04
  predicts_ratings = True
  # Trains on `RatingBatch`es, which have no optional fields; the backbone's
  # loss (and its `batch_fields`) is never called.
  batch_fields = ()

  def setup(self):
    self.user_bias = _bias(self, "user_bias", self.num_users)
    self.item_bias = _bias(self, "item_bias", self.num_items)

  def _predict(self, graph, out: Propagated, users, items):
    z_u, z_i = out.user[users], out.item[items]  # [B, d]
    return (train_mean(graph) + self.user_bias[users] + self.item_bias[items]
            + jnp.sum(z_u * z_i, axis=-1))

  def predict(self, graph: jraph.GraphsTuple, users: jnp.ndarray,
              items: jnp.ndarray) -> jnp.ndarray:
    """Predicted ratings of (users [B], items [B]) pairs. # [B]"""
    return self._predict(graph, self.net.propagate_all(graph, train=False),
                         users, items)

  def loss(self, graph: jraph.GraphsTuple, batch: RatingBatch):
    """MSE + L2 on the batch's ego rows and biases. (loss, metrics)."""
    users, items = batch.users, batch.items
    out = self.net.propagate_all(graph, train=True)
    pred = self._predict(graph, out, users, items)
    loss = losses.mse_loss(
        pred, batch.ratings, batch.mask, self.l2_reg,
        (out.user_ego[users], out.item_ego[items],
         self.user_bias[users], self.item_bias[items]))
    return loss, {"loss": loss}

  def embed(self, graph: jraph.GraphsTuple):
    """The backbone's (users [U, d], items [I, d])."""
    return self.net.embed(graph)

  def score(self, user_emb: jnp.ndarray, item_emb: jnp.ndarray,
            users: jnp.ndarray) -> jnp.ndarray:
    """The backbone's scores of all items. # [B, I]"""
    return self.net.score(user_emb, item_emb, users)


def _check_ratings(train: Interactions, shape: tuple[int, int]
                   ) -> np.ndarray:
  if not isinstance(train, Interactions) or train.ratings is None:
    raise DataError("fit: rating baselines need the train split's "
                    "Interactions with ratings (field 'ratings')")
  if len(train) == 0:
    raise DataError("fit: the train split is empty")
  if train.users.max() >= shape[0] or train.items.max() >= shape[1]:
    raise DataError(f"fit: ids beyond the model's {shape} users x items")
  return np.asarray(train.ratings, np.float64)


class GlobalMean(ClosedFormRecommender):
  """Predicts the mean train rating for every pair."""
  predicts_ratings = True

  @nn.nowrap
  def param_specs(self):
    return {"mean": ((1,), jnp.float32)}

  @nn.nowrap
  def fit(self, train: Interactions) -> dict[str, np.ndarray]:
    """{'mean': [1]} from the train split's ratings."""
    ratings = _check_ratings(train, (self.num_users, self.num_items))
    return {"mean": np.asarray([ratings.mean()], np.float32)}

  def embed(self, graph: jraph.GraphsTuple):
    del graph
    return (jnp.ones((self.num_users, 1), jnp.float32),
            jnp.ones((self.num_items, 1), jnp.float32))

  def predict(self, graph: jraph.GraphsTuple, users: jnp.ndarray,
              items: jnp.ndarray) -> jnp.ndarray:
    """The train mean for every pair. # [B]"""
    del graph, items
    return jnp.broadcast_to(self.fitted["mean"][0], users.shape)


class UserItemBias(ClosedFormRecommender):
  """mu + b_u + b_i with regularised ALS biases (Koren's baseline predictor).

  Attributes:
    reg_user: lambda of the user biases.
    reg_item: lambda of the item biases.
    num_iters: ALS rounds (item biases, then user biases, each round).
  """
  predicts_ratings = True
  reg_user: float = 15.0
  reg_item: float = 10.0
  num_iters: int = 10

  @nn.nowrap
  def param_specs(self):
    return {"mean": ((1,), jnp.float32),
            "user_bias": ((self.num_users,), jnp.float32),
            "item_bias": ((self.num_items,), jnp.float32)}

  @nn.nowrap
  def fit(self, train: Interactions) -> dict[str, np.ndarray]:
    """Global mean and ALS biases from the train split's ratings."""
    ratings = _check_ratings(train, (self.num_users, self.num_items))
    users, items = train.users, train.items
    mu = ratings.mean()
    n_u = np.bincount(users, minlength=self.num_users)  # [U]
    n_i = np.bincount(items, minlength=self.num_items)  # [I]
    b_u = np.zeros(self.num_users)
    b_i = np.zeros(self.num_items)
    for _ in range(self.num_iters):
      b_i = np.bincount(items, weights=ratings - mu - b_u[users],
                        minlength=self.num_items) / (self.reg_item + n_i)
      b_u = np.bincount(users, weights=ratings - mu - b_i[items],
                        minlength=self.num_users) / (self.reg_user + n_u)
    return {"mean": np.asarray([mu], np.float32),
            "user_bias": b_u.astype(np.float32),
            "item_bias": b_i.astype(np.float32)}

  def embed(self, graph: jraph.GraphsTuple):
    del graph
    return (jnp.ones((self.num_users, 1), jnp.float32),
            self.fitted["item_bias"][:, None])

  def predict(self, graph: jraph.GraphsTuple, users: jnp.ndarray,
              items: jnp.ndarray) -> jnp.ndarray:
    """mu + b_u + b_i. # [B]"""
    del graph
    return (self.fitted["mean"][0] + self.fitted["user_bias"][users]
            + self.fitted["item_bias"][items])

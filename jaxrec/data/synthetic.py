"""Synthetic recommendation data with planted latent structure and texts.

Generative process (all draws from one seeded NumPy generator, so the result
is a pure function of the arguments):

1. Categories: K unit-norm centres c_k in R^d (random directions).
2. Items: category z_i ~ Uniform{0..K-1}; latent v_i = c_{z_i} + s_i e_i,
   e_i ~ N(0, I/d) (s_i = `item_noise`).
3. Users: a main category g_u ~ Uniform, a second one h_u, a mixing weight
   m_u ~ U(0, 0.5); latent x_u = (1 - m_u) c_{g_u} + m_u c_{h_u} + s_u e_u.
4. Popularity: a random Zipf rank r_i (1 = most popular) per item, pop_i =
   r_i^(-1). Logits l_ui = alpha * log(pop_i) + x_u . v_i / temperature, i.e.
   P(i | u) is proportional to pop_i^alpha * softmax_i(x_u . v_i / temperature).
5. Activity: each user's number of interactions n_u is proportional to a
   lognormal(0, `activity_sigma`) draw, at least `min_user_interactions`, at
   most `max_user_fraction * num_items`, summing exactly to the requested
   total.
6. Sampling: each user's n_u distinct items are the top-n_u of l_ui + Gumbel
   noise (Gumbel-top-k = exact sampling without replacement from
   softmax(l_u)), computed densely for chunks of users, in threads (memory
   O(threads x chunk_elems); time O(num_users x num_items x d)).
7. Texts: item i reads like "a bright compact kitchen gadget for baking,
   sturdy in build". The noun phrase names its category; the adjectives are
   the signs of the first latent dims of v_i (shared with users, so they
   carry part of the preference signal); each informative slot is replaced
   by a random word of the same slot with probability 1 - `text_signal`.
   User texts list their two favourite categories (largest x_u . c_k) and
   the adjectives of the signs of x_u, with the same noise.
8. Split: per-user random 80/10/10 (`splits.random_split`).
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Optional

import numpy as np

from jaxrec.data import splits
from jaxrec.data.dataset import DataError, Dataset, Interactions

THEMES = (
    ("kitchen gadget", ("cooking", "baking", "meal prep")),
    ("running shoe", ("trail runs", "marathons", "daily jogs")),
    ("mystery novel", ("rainy evenings", "long flights", "book clubs")),
    ("board game", ("family nights", "parties", "strategy fans")),
    ("skincare cream", ("dry skin", "night routines", "sunny days")),
    ("camping tent", ("hiking trips", "festivals", "mountain weekends")),
    ("wireless headphone", ("commuting", "workouts", "studying")),
    ("jazz album", ("late nights", "dinner parties", "relaxing")),
    ("yoga mat", ("morning stretches", "pilates", "meditation")),
    ("coffee blend", ("espresso", "cold brew", "slow mornings")),
    ("desk lamp", ("reading", "home offices", "drawing")),
    ("puzzle video game", ("short breaks", "co-op play", "brain training")),
)
VARIANTS = ("", "classic", "modern", "vintage", "premium", "eco", "smart",
            "handmade", "pro")
ADJECTIVES = (("bright", "dark"), ("compact", "spacious"),
              ("lightweight", "sturdy"), ("playful", "elegant"),
              ("budget", "luxury"), ("quiet", "bold"))


def category_names(num_categories: int) -> np.ndarray:
  """Human-readable category names, e.g. 'kitchen gadget', 'eco board game'."""
  k = np.arange(num_categories)
  names = [THEMES[j % len(THEMES)][0] for j in k]
  variant = [VARIANTS[(j // len(THEMES)) % len(VARIANTS)] for j in k]
  return np.array([f"{v} {n}".strip() for v, n in zip(variant, names)])


def _noisy(rng: np.random.Generator, informative: np.ndarray, size: int,
           signal: float) -> np.ndarray:
  """Keeps each index with prob. `signal`, else a uniform index < size."""
  keep = rng.random(informative.shape) < signal
  return np.where(keep, informative, rng.integers(0, size, informative.shape))


def _adjectives(rng, latent: np.ndarray, signal: float, n: int) -> list:
  """Adjective arrays from the signs of the first n latent dims (noisy)."""
  out = []
  for j in range(n):  # a handful of text slots, not a loop over data
    side = _noisy(rng, (latent[:, j] < 0).astype(np.int64), 2, signal)
    out.append(np.array(ADJECTIVES[j])[side])
  return out


def _join(*parts) -> np.ndarray:
  out = np.asarray(parts[0], dtype=np.str_)
  for p in parts[1:]:
    out = np.char.add(out, np.asarray(p, dtype=np.str_))
  return out


def _item_texts(rng, categories, item_f, num_categories, signal):
  names = category_names(num_categories)
  cat = _noisy(rng, categories, num_categories, signal)
  usage_table = np.array([THEMES[k % len(THEMES)][1]
                          for k in range(num_categories)])  # [K, 3]
  usage = usage_table[cat, rng.integers(0, 3, len(cat))]
  adj = _adjectives(rng, item_f, signal, min(3, item_f.shape[1]))
  adj += [np.array(["nice"] * len(cat))] * (3 - len(adj))
  return _join("a ", adj[0], " ", adj[1], " ", names[cat], " for ", usage,
               ", ", adj[2], " in style").tolist()


def _user_texts(rng, user_f, centres, signal):
  k = len(centres)
  names = category_names(k)
  order = np.argsort(-(user_f @ centres.T), axis=1)  # [U, K]
  first = _noisy(rng, order[:, 0], k, signal)
  second = _noisy(rng, order[:, min(1, k - 1)], k, signal)
  adj = _adjectives(rng, user_f, signal, min(2, user_f.shape[1]))
  adj += [np.array(["nice"] * len(first))] * (2 - len(adj))
  return _join("likes ", names[first], " and ", names[second],
               "; prefers ", adj[0], " and ", adj[1], " things").tolist()


def allocate_activity(rng: np.random.Generator, num_users: int, total: int,
                      min_count: int, max_count: int, sigma: float
                      ) -> np.ndarray:
  """Per-user interaction counts ~ lognormal shares, summing to `total`.

  Args:
    rng: generator.
    num_users: number of users.
    total: required sum.
    min_count / max_count: per-user bounds.
    sigma: lognormal sigma (activity skew).

  Returns:
    int64 counts [num_users] with min_count <= n_u <= max_count.
  """
  if not num_users * min_count <= total <= num_users * max_count:
    raise DataError(
        f"make_synthetic: num_interactions={total} must lie in [{num_users} "
        f"* {min_count}, {num_users} * {max_count}] (field "
        f"min_user_interactions / max_user_fraction)")
  weight = rng.lognormal(0.0, sigma, num_users)  # [U]
  counts = np.full(num_users, min_count, np.int64)
  remaining = total - counts.sum()
  while remaining > 0:  # a few rounds; each fills a share of the remainder
    room = max_count - counts
    share = np.where(room > 0, weight, 0.0)
    share /= share.sum()
    add = np.minimum(room, np.floor(share * remaining).astype(np.int64))
    if add.sum() == 0:
      pick = rng.choice(num_users, size=min(remaining, int((room > 0).sum())),
                        replace=False, p=share)
      add = np.zeros(num_users, np.int64)
      add[pick] = 1
    counts += add
    remaining -= int(add.sum())
  return counts


def _sample_chunk(seed_seq, user_f, item_t, pop_term, k):
  """Gumbel-top-k_u items for a chunk of users (rows).

  The top-k_u of logits + i.i.d. Gumbel noise is an exact sample of k_u
  items without replacement from softmax(logits) (Plackett-Luce).

  Returns:
    The sampled items, row by row (k_u per row). # [sum k]
  """
  rng = np.random.default_rng(seed_seq)
  num_items = item_t.shape[1]
  h = rng.random((len(k), num_items), dtype=np.float32)  # [B, I]
  with np.errstate(divide="ignore"):
    np.log(h, out=h)
    np.negative(h, out=h)
    np.log(h, out=h)  # h = -Gumbel noise
  np.subtract(np.matmul(user_f, item_t), h, out=h)  # preference + noise
  h += pop_term  # [B, I] perturbed logits
  kmax = int(k.max())
  if kmax < num_items:
    top = np.argpartition(h, num_items - kmax, axis=1)[:, num_items - kmax:]
  else:
    top = np.broadcast_to(np.arange(num_items), h.shape)
  if int(k.min()) < kmax:  # rows need their own top-k_u: order by value
    order = np.argsort(-np.take_along_axis(h, top, 1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, 1)
  return top[np.arange(kmax)[None, :] < k[:, None]]


def _sample(seed_seq, user_f, item_f, log_pop, counts, alpha, temperature,
            chunk_elems, num_threads):
  """Gumbel-top-k per user over all items, in chunks of users.

  Users are processed in decreasing order of their count, so each chunk has
  similar counts (cheap per-row top-k); each chunk has its own child seed,
  so the result does not depend on thread scheduling.
  """
  num_users, num_items = len(user_f), len(item_f)
  rows = max(1, chunk_elems // num_items)
  pop_term = (alpha * log_pop).astype(np.float32)[None, :]  # [1, I]
  item_t = np.ascontiguousarray(item_f.T / temperature, np.float32)  # [d, I]
  user_f = user_f.astype(np.float32)
  order = np.argsort(-counts, kind="stable")  # [U]
  bounds = list(range(0, num_users, rows))
  seeds = seed_seq.spawn(len(bounds))

  def work(c):
    idx = order[bounds[c]:bounds[c] + rows]
    return _sample_chunk(seeds[c], user_f[idx], item_t, pop_term,
                         counts[idx])

  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    items = list(pool.map(work, range(len(bounds))))  # loop over chunks
  users = np.repeat(order, counts[order])
  items = np.concatenate(items)
  by_user = np.argsort(users, kind="stable")
  return users[by_user], items[by_user]


def make_synthetic(num_users: int = 1000, num_items: int = 2000,
                   num_interactions: Optional[int] = None,
                   density: Optional[float] = None, dim: int = 16,
                   num_categories: int = 10, text_signal: float = 0.8,
                   seed: int = 0, *, alpha: float = 1.0,
                   temperature: float = 0.25, item_noise: float = 0.6,
                   user_noise: float = 0.6, activity_sigma: float = 0.8,
                   min_user_interactions: int = 3,
                   max_user_fraction: float = 0.5,
                   ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
                   with_texts: bool = True, chunk_elems: int = 1 << 22,
                   num_threads: Optional[int] = None,
                   name: str = "synthetic", return_factors: bool = False):
  """Generates a synthetic dataset (see the module docstring).

  Args:
    num_users / num_items: sizes.
    num_interactions: total interactions; else `density * U * I`; else
      30 per user (capped by the per-user maximum).
    density: interaction density, used if num_interactions is None.
    dim: latent dimension d.
    num_categories: number of item categories K.
    text_signal: in [0, 1]; probability that a text slot reflects the item's
      category/latent signs (0: texts are pure noise).
    seed: random seed (the output is a deterministic function of it).
    alpha: popularity exponent (0 disables the popularity bias).
    temperature: softmax temperature of the preference term.
    item_noise / user_noise: spread of latent factors around the centres.
    activity_sigma: skew of the per-user activity.
    min_user_interactions: minimum interactions per user.
    max_user_fraction: maximum fraction of items one user interacts with.
    ratios: (train, valid, test) fractions of the per-user random split.
    with_texts: build item/user texts.
    chunk_elems: users x items scores per chunk (memory ~ 16 bytes each
      per thread).
    num_threads: threads sampling chunks in parallel (default: CPU count,
      at most 8); the output does not depend on it.
    name: dataset name.
    return_factors: also return the latent factors.

  Returns:
    A Dataset (with item_categories and texts), or (Dataset, dict with
    user_factors [U, d], item_factors [I, d], log_popularity [I],
    user_categories [U]) if return_factors.
  """
  if not 0.0 <= text_signal <= 1.0:
    raise DataError(f"make_synthetic: text_signal must be in [0, 1], got "
                    f"{text_signal}")
  if abs(sum(ratios) - 1.0) > 1e-6:
    raise DataError(f"make_synthetic: ratios must sum to 1, got {ratios}")
  max_count = max(1, int(max_user_fraction * num_items))
  min_count = max(1, min(min_user_interactions, max_count))
  if num_interactions is None:
    num_interactions = (int(round(density * num_users * num_items))
                        if density is not None
                        else min(30, max_count) * num_users)
  seqs = np.random.SeedSequence(seed).spawn(5)  # independent streams
  streams = [np.random.default_rng(s) for s in seqs]
  rng = streams[0]
  centres = rng.normal(size=(num_categories, dim))
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)  # [K, d]
  categories = rng.integers(0, num_categories, num_items)  # [I]
  item_f = centres[categories] + item_noise * rng.normal(
      size=(num_items, dim)) / np.sqrt(dim)  # [I, d]
  main = rng.integers(0, num_categories, num_users)  # [U]
  second = rng.integers(0, num_categories, num_users)
  mix = rng.uniform(0, 0.5, num_users)[:, None]
  user_f = ((1 - mix) * centres[main] + mix * centres[second] + user_noise *
            rng.normal(size=(num_users, dim)) / np.sqrt(dim))  # [U, d]
  log_pop = -np.log(rng.permutation(num_items) + 1.0)  # [I] Zipf ranks
  counts = allocate_activity(streams[1], num_users, int(num_interactions),
                             min_count, max_count, activity_sigma)
  threads = num_threads or min(8, os.cpu_count() or 1)
  users, items = _sample(seqs[2], user_f, item_f, log_pop, counts, alpha,
                         temperature, chunk_elems, threads)
  train, valid, test = splits.random_split(
      Interactions(users, items), test_ratio=ratios[2],
      valid_ratio=ratios[1], seed=int(streams[3].integers(2**31)))
  texts = {}
  if with_texts:
    texts = dict(item_texts=_item_texts(streams[4], categories, item_f,
                                        num_categories, text_signal),
                 user_texts=_user_texts(streams[4], user_f, centres,
                                        text_signal))
  ds = Dataset(name, num_users, num_items, train, valid, test,
               item_categories=categories.astype(np.int32), **texts)
  if not return_factors:
    return ds
  return ds, dict(user_factors=user_f.astype(np.float32),
                  item_factors=item_f.astype(np.float32),
                  log_popularity=log_pop, user_categories=main)


def make_synthetic_ratings(num_users: int = 300, num_items: int = 400,
                           num_ratings: int = 12000, rank: int = 4,
                           noise: float = 0.3, discrete: bool = True,
                           valid_ratio: float = 0.1, test_ratio: float = 0.1,
                           seed: int = 0,
                           name: str = "synthetic_ratings") -> Dataset:
  """Explicit ratings from a planted biased low-rank model.

  r_ui = 3 + b_u + b_i + p_u . q_i + eps, with b_u, b_i ~ N(0, 0.3^2),
  p_u, q_i ~ N(0, I / sqrt(rank)) (so p_u . q_i has std ~0.7 ... 1) and
  eps ~ N(0, noise^2); (u, i) pairs drawn uniformly without replacement;
  split per user at random (`splits.random_split`, seeded).

  Args:
    num_users / num_items: sizes.
    num_ratings: number of observed (user, item) pairs.
    rank: rank of the interaction term.
    noise: std of the observation noise (the best achievable RMSE of the
      continuous ratings).
    discrete: round the ratings to the integers 1..5 (clipped), as star
      ratings are; False keeps the continuous values.
    valid_ratio / test_ratio: expected per-user fractions held out.
    seed: random seed (the output is a pure function of the arguments).
    name: dataset name.

  Returns:
    A Dataset whose splits carry float32 `ratings`.
  """
  if num_ratings > num_users * num_items:
    raise DataError(f"make_synthetic_ratings: num_ratings={num_ratings} "
                    f"exceeds num_users x num_items = {num_users * num_items}")
  rng = np.random.default_rng(seed)
  b_u = 0.3 * rng.normal(size=num_users)  # [U]
  b_i = 0.3 * rng.normal(size=num_items)  # [I]
  p = rng.normal(size=(num_users, rank)) / rank ** 0.25  # [U, r]
  q = rng.normal(size=(num_items, rank)) / rank ** 0.25  # [I, r]
  pairs = rng.choice(num_users * num_items, num_ratings, replace=False)
  users, items = pairs // num_items, pairs % num_items  # [n] each
  ratings = (3.0 + b_u[users] + b_i[items] + np.sum(p[users] * q[items], 1)
             + noise * rng.normal(size=num_ratings))  # [n]
  if discrete:
    ratings = np.clip(np.round(ratings), 1.0, 5.0)
  inter = Interactions(users, items, ratings.astype(np.float32))
  train, valid, test = splits.random_split(
      inter, test_ratio=test_ratio, valid_ratio=valid_ratio,
      seed=int(rng.integers(2**31)))
  return Dataset(name, num_users, num_items, train, valid, test)

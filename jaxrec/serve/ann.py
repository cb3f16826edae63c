"""Approximate top-k over the item catalogue: an HNSW graph (faiss).

Exact scoring costs O(I * d) per query, which is what `engine.batched_top_k`
does on the device. For catalogues of millions of items, a proximity graph
answers in roughly O(log I) distance evaluations instead, at some loss of
recall.

Recommendation ranks by inner product. The graph is built with faiss's
inner-product HNSW (`metric='ip'`, the default), or on the classic reduction
of maximum inner product search to nearest neighbours (`metric='l2'`,
Bachrach et al., RecSys 2014): every item x gets one extra coordinate
sqrt(R^2 - |x|^2), with R the largest item norm, and the query gets 0, so
|q - x'|^2 = |q|^2 + R^2 - 2 q.x and the L2-nearest items are the
highest-scoring ones. Which one recalls more at a given search cost depends
on the spread of the item norms; `benchmarks/ann_search.py` measures both.

Excluded items (a user's seen items) are filtered after the search: the
index is asked for k + (number excluded) candidates, so that k remain.

`faiss-cpu` is an optional dependency (extra `ann`).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


class HnswOptions(NamedTuple):
  """HNSW settings (faiss names).

  Attributes:
    m: graph degree; more is more accurate, bigger and slower to build.
    ef_construction: candidate list size while building.
    ef_search: candidate list size while searching (raised to the number of
      candidates a query asks for); the accuracy / speed knob.
    metric: 'ip' (inner-product graph) or 'l2' (graph over `mips_to_l2`
      points).
  """
  m: int = 32
  ef_construction: int = 200
  ef_search: int = 128
  metric: str = "ip"


def _faiss():
  try:
    import faiss  # pylint: disable=import-outside-toplevel
  except ImportError as err:
    raise ImportError(
        "approximate search needs faiss: pip install 'jaxrec[ann]' "
        "(faiss-cpu)") from err
  return faiss


def mips_to_l2(items: np.ndarray) -> np.ndarray:
  """Items with the extra coordinate that turns MIPS into L2 search. # [I, d+1]

  Args:
    items: item vectors. # [I, d]

  Returns:
    [items, sqrt(R^2 - |x|^2)] with R the largest item norm, float32.
  """
  items = np.asarray(items, np.float32)
  sq = np.einsum("id,id->i", items, items)
  extra = np.sqrt(np.maximum(sq.max(initial=0.0) - sq, 0.0))
  return np.ascontiguousarray(np.concatenate([items, extra[:, None]], 1))


class HnswIndex:
  """Approximate maximum-inner-product top-k over fixed item vectors.

  Attributes:
    num_items: catalogue size.
    options: the HNSW settings.
  """

  def __init__(self, items: np.ndarray, options: HnswOptions = HnswOptions()):
    """Builds the graph (the costly part: about I * log I distance calls).

    Args:
      items: item vectors. # [I, d]
      options: HNSW settings.
    """
    faiss = _faiss()
    if options.metric not in ("ip", "l2"):
      raise ValueError(f"HNSW metric must be 'ip' or 'l2', got {options.metric!r}")
    self._items = np.ascontiguousarray(items, np.float32)
    self.num_items = self._items.shape[0]
    self.options = options
    if options.metric == "ip":
      points = self._items
      self._index = faiss.IndexHNSWFlat(points.shape[1], int(options.m),
                                        faiss.METRIC_INNER_PRODUCT)
    else:
      points = mips_to_l2(self._items)
      self._index = faiss.IndexHNSWFlat(points.shape[1], int(options.m))
    self._index.hnsw.efConstruction = int(options.ef_construction)
    self._index.add(points)

  def search(self, queries: np.ndarray, k: int,
             exclude: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-k item rows per query, excluded rows left out.

    Args:
      queries: user (or fold-in) vectors. # [n, d]
      k: list length.
      exclude: per query, item rows that must not appear (may be shorter
        than `queries`: missing entries exclude nothing).

    Returns:
      (rows [n, k], scores [n, k]), best first; -1 / -inf fill a row with
      fewer than k candidates left.
    """
    queries = np.asarray(queries, np.float32)
    n = queries.shape[0]
    most = max((len(e) for e in exclude), default=0)
    fetch = min(self.num_items, k + most)
    self._index.hnsw.efSearch = max(int(self.options.ef_search), fetch)
    if self.options.metric == "l2":  # the query's extra coordinate is 0
      search = np.zeros((n, queries.shape[1] + 1), np.float32)
      search[:, :-1] = queries
    else:
      search = np.ascontiguousarray(queries)
    _, found = self._index.search(search, fetch)  # [n, fetch]
    drop = found < 0  # fewer candidates than asked for
    if any(len(e) for e in exclude):
      # One vectorised membership test over (query, item) keys.
      keys = found + np.arange(n)[:, None] * self.num_items
      excluded = np.concatenate(
          [np.asarray(e, np.int64) + q * self.num_items
           for q, e in enumerate(exclude) if q < n])
      drop |= np.isin(keys, excluded)
    safe = np.where(drop, 0, found)
    # Exact re-scoring of the candidates (also undoes the L2 reduction).
    cand = np.einsum("nkd,nd->nk", self._items[safe], queries)  # [n, fetch]
    cand = np.where(drop, -np.inf, cand)
    # Best first; ties: lower row first (as the exact kernel): a stable sort
    # by score of candidates already in row order.
    by_row = np.argsort(safe, axis=1, kind="stable")
    safe = np.take_along_axis(safe, by_row, 1)
    cand = np.take_along_axis(cand, by_row, 1)
    order = np.argsort(-cand, axis=1, kind="stable")[:, :k]
    rows = np.take_along_axis(safe, order, 1)
    scores = np.take_along_axis(cand, order, 1).astype(np.float32)
    if rows.shape[1] < k:  # k > catalogue
      pad = k - rows.shape[1]
      rows = np.pad(rows, ((0, 0), (0, pad)))
      scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    rows = np.where(np.isfinite(scores), rows, -1)
    return rows, scores

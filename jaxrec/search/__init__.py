"""Graph neural architecture search over the GNN-CF design space.

  python -m jaxrec.search --config configs/search.py:lastfm --budget-trials 12 \
      --strategy halving --workdir workdirs/search_lastfm

Modules: `space` (declared design space, sampling, mutation, `to_config`),
`strategies` (random search, regularised evolution, successive halving),
`runner` (trains trials with `jaxrec.train.train_and_evaluate`, budgets,
results files), `parallel` (k same-shape candidates trained at once with
`jax.vmap` over hyperparameters).
"""

from jaxrec.search.space import DEFAULT_SPACE
from jaxrec.search.space import Space
from jaxrec.search.space import to_config

__all__ = ["DEFAULT_SPACE", "Space", "to_config"]

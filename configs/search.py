"""Architecture search over the GNN-CF design space (`jaxrec.search`).

  python -m jaxrec.search --config configs/search.py:lastfm --workdir workdirs/search_lastfm

A 'designgnn' training config (dataset, seed, batch size, evaluation shared by
every trial; the model section is the LightGCN point of the space) plus a
`search` section: strategy, budgets, epochs per trial, halving / evolution
settings, per-dimension value lists. `configs/search.py:<dataset>,lightgcn`
searches only LightGCN's layers, lr and L2: the tuned-LightGCN baseline
(docs/results/search.md).
"""

from jaxrec import config_utils

# Search settings per dataset: (epochs per random/evolution trial,
# halving min_epochs, halving max_epochs). CPU-sized.
_EPOCHS = {"synthetic_small": (4, 2, 8), "synthetic": (20, 4, 40),
           "lastfm": (40, 10, 270), "amazon_beauty": (20, 5, 45)}


# The LightGCN sub-space: only its own hyperparameters vary.
LIGHTGCN_SPACE = dict(message=["identity"], aggregation=["lightgcn"],
                      combine=["mean"], interaction=["dot"],
                      num_layers=[1, 2, 3, 4], embed_dim=[64],
                      learning_rate=[1e-3, 5e-3], l2_reg=[1e-5, 1e-4, 1e-3])


def get_config(arg=None):
  """Args: arg: 'dataset' or 'dataset,lightgcn' (default synthetic)."""
  dataset, _, subspace = (arg or "synthetic").partition(",")
  if subspace not in ("", "lightgcn"):
    raise ValueError(f"configs/search.py: arg must be 'dataset' or "
                     f"'dataset,lightgcn', got {arg!r}")
  config = config_utils.base_config(dataset)
  config.model_name = "designgnn"
  config.model = dict(embed_dim=64, l2_reg=1e-4, aggregation="lightgcn",
                      message="identity", num_layers=3, combine="mean",
                      interaction="dot")
  config.patience = 5
  epochs, min_epochs, max_epochs = _EPOCHS.get(dataset, (40, 10, 90))
  config.search = dict(
      strategy="halving",   # random | evolution | halving
      seed=0,               # sampling seed (the data/training seed is config.seed)
      budget_trials=12,     # architectures (halving: rung-0 architectures)
      budget_seconds=0.0,   # 0 = no time limit; no training starts after it
      epochs=epochs,        # per trial (random, evolution)
      population_size=6,    # regularised evolution P
      sample_size=3,        # regularised evolution S
      min_epochs=min_epochs,  # halving rung 0
      max_epochs=max_epochs,  # halving cap
      eta=3.0,              # halving: keep the top 1/eta per rung
      # Trained before the random samples: 'base' = config.model's point
      # (LightGCN), a previous search's summary.json, or dimension dicts.
      warm_start=["base"],
      # Halving carries the warm start to every rung: 10-epoch scores rank
      # slow starters like LightGCN at lr 1e-3 low (search_fidelity.md).
      promote_warm_start=True,
      # XLA executables kept in <workdir>/xla_cache for the search: a
      # promoted trial resumes without recompiling (search.md).
      compile_cache=True,
      # Restrictions of the declared space ({} = all of DEFAULT_SPACE).
      space={},
  )
  if dataset in ("lastfm", "amazon_beauty"):
    # CPU-sized: embedding size 128 costs 2x per epoch for little gain.
    config.search.space = dict(embed_dim=[32, 64])
  if subspace == "lightgcn":
    config.search.space = dict(LIGHTGCN_SPACE)
  return config

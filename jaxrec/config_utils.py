"""Shared pieces of experiment configs: dataset presets and the base config.

Config files in configs/ call `base_config()` and `dataset_config(name)` so a
dataset is named once (`--config configs/lightgcn.py:gowalla`).
"""

from __future__ import annotations

import importlib.util
import numbers
import os

import ml_collections

from jaxrec.errors import ConfigError

# configs/ beside the package (repository checkout / editable install).
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "configs")


def load_config_file(path: str, arg=None, function: str = "get_config",
                     **kwargs) -> ml_collections.ConfigDict:
  """`get_config(arg)` of a config file, as `--config path:arg` loads it.

  Args:
    path: a config file path, or a bare name resolved to configs/<name>.py.
    arg: the argument passed to `get_config` (None for none).
    function: the module function to call (another config builder).
    **kwargs: extra keyword arguments of that function.

  Returns:
    The ConfigDict.

  Raises:
    ValueError: naming the missing file.
  """
  if os.sep not in path and not path.endswith(".py"):
    path = os.path.join(CONFIG_DIR, f"{path}.py")
  if not os.path.exists(path):
    raise ValueError(f"no config file {path!r}")
  name = "config_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return getattr(module, function)(arg, **kwargs)

# Per-dataset defaults: loader kwargs and training-protocol settings.
DATASETS = {
    "synthetic": dict(kwargs=dict(num_users=2000, num_items=3000,
                                  num_interactions=60000),
                      batch_size=2048, eval_every=2),
    "synthetic_small": dict(kwargs=dict(num_users=200, num_items=300,
                                        num_interactions=4000),
                            batch_size=256, eval_every=1),
    "lastfm": dict(kwargs=dict(valid_ratio=0.1), batch_size=2048, eval_every=5),
    "amazon_beauty": dict(kwargs=dict(valid_ratio=0.1), batch_size=2048,
                          eval_every=5),
    "gowalla": dict(kwargs=dict(valid_ratio=0.1), batch_size=2048,
                    eval_every=10),
    "yelp2018": dict(kwargs=dict(valid_ratio=0.1), batch_size=2048,
                     eval_every=10),
    "amazon_book": dict(kwargs=dict(valid_ratio=0.1), batch_size=2048,
                        eval_every=10),
    "rlmrec_amazon": dict(kwargs={}, batch_size=4096, eval_every=3),
    "rlmrec_yelp": dict(kwargs={}, batch_size=4096, eval_every=3),
    "rlmrec_steam": dict(kwargs={}, batch_size=4096, eval_every=3),
    # Text-attributed sets (item texts, item_num_tags), split once per user
    # 80/10/10 with config.seed; min_rating: ratings >= it are positives.
    "ml_latest_small": dict(kwargs=dict(min_rating=4.0, k_core=0,
                                        valid_ratio=0.1, test_ratio=0.1),
                            batch_size=2048, eval_every=1),
    "hetrec_lastfm": dict(kwargs=dict(k_core=0, valid_ratio=0.1,
                                      test_ratio=0.1),
                          batch_size=2048, eval_every=2),
    # Explicit ratings of a planted biased low-rank model (config.task =
    # 'rating'), split per user 80/10/10 with config.seed.
    "synthetic_ratings": dict(kwargs=dict(valid_ratio=0.1, test_ratio=0.1),
                              batch_size=1024, eval_every=1),
}


def dataset_config(name: str) -> ml_collections.ConfigDict:
  """ConfigDict(name, data_root, kwargs) for a preset dataset name."""
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; presets: {sorted(DATASETS)}")
  preset = DATASETS[name]
  loader_name = ("synthetic" if name in ("synthetic", "synthetic_small")
                 else name)
  return ml_collections.ConfigDict(dict(
      name=loader_name, data_root=None, kwargs=dict(preset["kwargs"])))


# config.graph.node_order values (input_pipeline.load_data applies them).
NODE_ORDERS = ("data", "degree")
# config.graph.gather_dtype values (input_pipeline.build_graph marks the graph).
GATHER_DTYPES = ("float32", "bfloat16")
# config.task values: 'ranking' (top-K from implicit feedback, BPR) or
# 'rating' (explicit ratings: regression, validation RMSE / MAE).
TASKS = ("ranking", "rating")
# Selection metrics of the rating task (lower is better).
RATING_METRICS = ("rmse", "mae")


def base_config(dataset: str = "synthetic") -> ml_collections.ConfigDict:
  """Defaults shared by every experiment (LightGCN-paper protocol)."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.dataset = dataset_config(dataset)
  # 'ranking' or 'rating' (TASKS). 'rating' trains a rating model
  # (models.is_rating_model) on (user, item, rating) rows, keeps the ratings
  # on the graph's edges and selects on validation RMSE or MAE
  # (selection_metric 'rmse' | 'mae', lower is better): docs/rating.md.
  config.task = "ranking"
  config.model_name = "lightgcn"
  config.model = dict(embed_dim=64, num_layers=3, l2_reg=1e-4)
  # Optimiser and learning-rate schedule (jaxrec/optimizers.py): weight_decay
  # for adamw, momentum for sgd (None: plain SGD), grad_clip a global-norm
  # clip (None: none); schedule 'constant' or 'cosine' (hold_epochs at
  # learning_rate, then decay_epochs of cosine decay to final_lr_ratio x it).
  config.optimizer = dict(name="adam", learning_rate=1e-3, weight_decay=0.0,
                          momentum=None, grad_clip=None, schedule="constant",
                          hold_epochs=0, decay_epochs=0, final_lr_ratio=0.01)
  config.batch_size = DATASETS[dataset]["batch_size"]
  config.num_negatives = 1
  # BPR triples per epoch: 'interaction' (each train interaction once) or
  # 'user' (uniform user, then a uniform positive: LightGCN's released code).
  config.sampling = "interaction"
  # Random stream of the triples (data/sampler.py): 'sequential' (one NumPy
  # generator per epoch) or 'counter' (hashed per row: in a multi-process
  # job each process samples only its rows; docs/distributed.md).
  config.sampler = "sequential"
  config.num_epochs = 1000
  config.steps_per_call = 16
  config.eval_every = DATASETS[dataset]["eval_every"]
  config.eval_ks = (10, 20)
  config.selection_metric = "recall@20"
  # Early stopping (train.should_stop): stop after `patience` evaluations
  # without improvement, but not before `min_epochs` epochs, nor before the
  # epochs since the best reach `relative_patience` x the best epoch.
  config.patience = 10
  config.min_epochs = 0
  config.relative_patience = 0.0
  # > 0: merge valid into train and train exactly this many epochs (an epoch
  # count chosen earlier on validation), then test the final parameters.
  config.refit_epochs = 0
  # False: the run never reads the test split (a search over hyper-parameters
  # on validation); re-run the selected run with True to test it once.
  config.eval_test = True
  config.eval_memory_bytes = 1 << 30
  # text_features: semantic embeddings as node features; datasets with texts
  # but no embeddings are encoded with text_model ('' = bundled MiniLM) and
  # cached in text_cache_dir ('' = ~/.cache/jaxrec/text). tile_nodes: column
  # blocks of cache-tiled propagation (jaxrec/graphs/tiling.py): -1 = auto (on
  # CPU with XLA's kernels for graphs beyond ~8 MiB of d=64 rows; none when
  # the native kernel runs), 0 = off, > 0 = nodes per block.
  # node_order: 'data' (ids as loaded) or 'degree' (users and items relabelled
  # by decreasing train degree, preprocess.relabel_by_degree: better cache
  # locality on large graphs, docs/results/speed.md; recommendations and
  # exports still use the original ids). gather_dtype: 'bfloat16' rounds the
  # node rows that the native CPU propagation kernel gathers to bfloat16 (sums
  # stay float32): half the memory traffic on graphs beyond the cache
  # (docs/results/speed.md); 'float32' (default) is exact.
  # user_text: the text features of users without their own embeddings or
  # texts: 'mean' (mean of their train items' embeddings) or 'history' (an
  # encoded list of their TRAIN items, data/texts.user_history_texts).
  # edge_weight: adjacency entries before normalisation: 'none' (binary),
  # 'rating' (the interaction's rating) or 'log_rating' (log(1 + rating),
  # for counts); degrees are then weighted (graphs/bipartite.py).
  # text_source: the texts encoded as text features: 'dataset' (the loader's)
  # or 'profiles' (LLM-written profiles from profiles_dir, written by python
  # -m jaxrec.profiles; user profiles, when stored, replace user_text).
  config.graph = dict(norm="sym", text_features=False, pad_multiple=0,
                      text_model="", text_cache_dir="", tile_nodes=-1,
                      node_order="data", gather_dtype="float32",
                      user_text="mean", edge_weight="none",
                      text_source="dataset", profiles_dir="")
  # Devices and layouts (jaxrec/sharding.py): a ('data',) or ('data', 'model')
  # mesh; tables 'rows' | 'columns' | 'replicated' over 'model'; edge-parallel
  # propagation; multi-process jax.distributed.initialize (off by default;
  # docs/distributed.md): empty / 0 / -1 fields are auto-detected, timeouts
  # of 0 keep JAX's defaults (100 s heartbeat, 300 s shutdown).
  config.sharding = dict(
      data_devices=1, model_devices=1, table_sharding="rows",
      shard_edges=False,
      distributed=dict(enabled=False, coordinator_address="",
                       num_processes=0, process_id=-1,
                       heartbeat_timeout_seconds=0,
                       shutdown_timeout_seconds=0))
  config.max_checkpoints = 2
  config.progress = True
  # TensorBoard event files (tensorboardX) in workdir/tensorboard.
  config.tensorboard = False
  # A callable `loss_fn(params, graph, batch, rng, *, model) -> (loss,
  # metrics)`
  # trained instead of the model's own `loss` (None: the model's;
  # `train.train_step`).
  config.loss_fn = None
  # Text-encoder fine-tuning (jaxrec/text_finetune.py, needs
  # graph.text_features and a text model): finetune_layers = N > 0 trains the
  # top N layers of graph.text_model with the model (Adam at learning_rate),
  # re-encoding the batch's texts each step (tokenised once at max_length)
  # and the other rows once per epoch; dtype 'bfloat16' runs the encoder's
  # matmuls in bfloat16 (float32 accumulation).
  config.text = dict(finetune_layers=0, learning_rate=1e-4, max_length=64,
                     dtype="float32")
  # Warm start (jaxrec/warm_start.py, docs/warm_start.md): init_from = the
  # workdir of a run whose best parameters initialise this one; init_map =
  # 'source_path:target_path,...' ('/'-separated parameter paths; '' = every
  # parameter with the same path in both); init_text = 'pca': ID tables from
  # the top principal components of the node text features.
  config.init_from = ""
  config.init_map = ""
  config.init_text = ""
  return config


# Sub-configs whose keys are merged one by one over the base config's in
# `with_defaults`; any other value (model kwargs, the dataset and its loader
# kwargs) is taken whole, since its keys belong to one model or one loader.
_MERGED_SECTIONS = ("optimizer", "graph", "sharding", "sharding.distributed",
                    "text")


def _merge(base: dict, override: dict, prefix: str = "") -> dict:
  out = dict(base)
  for key, value in override.items():
    path = f"{prefix}{key}"
    if (path in _MERGED_SECTIONS and isinstance(value, dict)
        and isinstance(base.get(key), dict)):
      out[key] = _merge(base[key], value, path + ".")
    else:
      out[key] = value
  return out


def with_defaults(config) -> ml_collections.ConfigDict:
  """`config` over the base config: every key the code reads is present.

  Configs saved by earlier versions (a workdir's config.json), configs that
  replace a whole section (`config.optimizer = dict(...)`) and partial
  configs built in code lack some keys; they take the base config's value.
  The dataset preset of `config.dataset.name` (synthetic when unknown) gives
  the dataset-dependent defaults (batch_size, eval_every).

  Args:
    config: a ConfigDict or dict, possibly partial.

  Returns:
    A new ConfigDict; `config` is not modified.
  """
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  name = (config.get("dataset") or {}).get("name", "synthetic")
  base = base_config(name if name in DATASETS else "synthetic").to_dict()
  return ml_collections.ConfigDict(_merge(base, config))


# Top-level keys read by the trainer and the search beyond those of
# `base_config()` (every base_config key is always valid). A comparison
# config's `compare` list is read by `jaxrec.compare`, which removes it
# before each run's config is validated.
EXTRA_CONFIG_KEYS = ("search",)
_METRIC_NAMES = ("recall", "ndcg", "precision", "hit_rate", "mrr", "map",
                 "coverage", "novelty", "avg_popularity")


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _require_positive_int(field: str, value, minimum: int = 1) -> None:
  if not _is_int(value) or value < minimum:
    expected = ("a positive integer" if minimum == 1
                else f"an integer >= {minimum}")
    raise ConfigError(f"config.{field}: expected {expected}, got {value!r}")


def validate_numbers(config: ml_collections.ConfigDict) -> None:
  """Rejects sizes, counts and rates that cannot train.

  Args:
    config: experiment configuration.

  Raises:
    ConfigError: naming the field, what was expected and the value given.
  """
  _require_positive_int("batch_size", config.batch_size)
  _require_positive_int("num_epochs", config.num_epochs)
  _require_positive_int("eval_every", config.eval_every)
  _require_positive_int("refit_epochs", config.refit_epochs, minimum=0)
  ks = config.eval_ks
  if (not isinstance(ks, (tuple, list)) or not ks
      or not all(_is_int(k) and k > 0 for k in ks)):
    raise ConfigError(f"config.eval_ks: expected a list of positive integers "
                      f"(cut-offs K, e.g. (10, 20)), got {ks!r}")
  model = config.model.to_dict() if hasattr(config.model, "to_dict") else {}
  for field, kwargs in (("model", model),
                        ("model.backbone_kwargs",
                         model.get("backbone_kwargs") or {})):
    if "embed_dim" in kwargs:
      _require_positive_int(f"{field}.embed_dim", kwargs["embed_dim"])
  rate = config.optimizer.learning_rate
  # NaN passes on purpose: it trains and is reported as a non-finite loss
  # with the last good checkpoint kept (train_and_evaluate).
  if (isinstance(rate, bool) or not isinstance(rate, numbers.Real)
      or rate <= 0):
    raise ConfigError(f"config.optimizer.learning_rate: expected a positive "
                      f"number, got {rate!r}")


def validate_task(config: ml_collections.ConfigDict) -> None:
  """Checks `config.task` against the model, the selection metric and graph.

  Args:
    config: experiment configuration (with defaults).

  Raises:
    ConfigError: an unknown task or edge weight, a rating model on the
      ranking task (or the reverse), a rating run selecting on a ranking
      metric, or edge-sharded rating graphs.
  """
  # pylint: disable=g-import-not-at-top
  from jaxrec.graphs.bipartite import EDGE_WEIGHTS
  from jaxrec.models import is_rating_model
  # pylint: enable=g-import-not-at-top
  task = config.task
  if task not in TASKS:
    raise ConfigError(f"config.task: unknown task {task!r}; valid: "
                      f"{list(TASKS)}")
  if config.graph.edge_weight not in EDGE_WEIGHTS:
    raise ConfigError(f"config.graph.edge_weight: unknown value "
                      f"{config.graph.edge_weight!r}; valid: "
                      f"{list(EDGE_WEIGHTS)}")
  rating_model = is_rating_model(config.model_name)
  if rating_model != (task == "rating"):
    raise ConfigError(
        f"config.task: model {config.model_name!r} "
        + ("predicts ratings: set config.task = 'rating'" if rating_model
           else f"is a ranking model; task {task!r} needs a rating model "
           "(biased_mf, gcmc, rating_head, global_mean, user_item_bias)"))
  if task == "rating":
    if config.selection_metric not in RATING_METRICS:
      raise ConfigError(f"config.selection_metric: {config.selection_metric!r}"
                        f" is not computed for task 'rating'; expected one of "
                        f"{list(RATING_METRICS)}")
    if config.sharding.shard_edges:
      raise ConfigError("config.sharding.shard_edges: not supported for task "
                        "'rating' (edge ratings are not sharded)")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Rejects unknown keys, model names and kwargs, and impossible numbers.

  Runs before anything is read or written, so a typo costs no half-made
  workdir.

  Args:
    config: experiment configuration.

  Raises:
    ConfigError: naming the bad key / value and listing the valid ones.
  """
  # pylint: disable=g-import-not-at-top
  from jaxrec.data import sampler
  from jaxrec.models import MODELS
  from jaxrec.models import model_keys
  from jaxrec.optimizers import learning_rate
  from jaxrec.optimizers import OPTIMIZER_KEYS
  # pylint: enable=g-import-not-at-top
  config = with_defaults(config)  # a partial section is checked merged
  if "compare" in config:
    raise ConfigError("config.compare: a comparison config (several runs); "
                      "train it with `python -m jaxrec.compare --config ... "
                      "--workdir ...`")
  valid = sorted(set(base_config().keys()) | set(EXTRA_CONFIG_KEYS))
  unknown = sorted(set(config.keys()) - set(valid))
  if unknown:
    raise ConfigError(f"config: unknown top-level key(s) {unknown}; valid "
                      f"keys: {valid}")
  name = config.model_name
  if name not in MODELS:
    raise ConfigError(f"config.model_name: unknown model {name!r}; "
                      f"registered models: {sorted(MODELS)}")
  fields = model_keys(name)
  bad = sorted(set(config.model.keys()) - fields)
  if bad:
    raise ConfigError(f"config.model: unknown key(s) {bad} for model "
                      f"{name!r}; valid keys: {sorted(fields)}")
  from jaxrec import text_finetune  # pylint: disable=g-import-not-at-top
  text_finetune.check_config(config)
  bad = sorted(set(config.optimizer.keys()) - set(OPTIMIZER_KEYS))
  if bad:
    raise ConfigError(f"config.optimizer: unknown key(s) {bad}; valid keys: "
                      f"{list(OPTIMIZER_KEYS)}")
  validate_numbers(config)
  validate_task(config)
  metric, _, k = str(config.selection_metric).partition("@")
  ks = list(config.eval_ks)
  if config.task == "rating":
    pass  # the rating metrics are checked by validate_task
  elif metric not in _METRIC_NAMES or not k.isdigit() or int(k) not in ks:
    raise ConfigError(
        f"config.selection_metric: {config.selection_metric!r} is not "
        f"computed; expected '<metric>@<K>' with metric in "
        f"{list(_METRIC_NAMES)} and K in config.eval_ks = {ks}")
  if config.sampling not in sampler.SAMPLINGS:
    raise ConfigError(f"config.sampling: unknown sampling "
                      f"{config.sampling!r}; valid: {list(sampler.SAMPLINGS)}")
  if config.sampler not in sampler.SAMPLERS:
    raise ConfigError(f"config.sampler: unknown sampler {config.sampler!r}; "
                      f"valid: {list(sampler.SAMPLERS)}")
  order = config.graph.node_order
  if order not in NODE_ORDERS:
    raise ConfigError(f"config.graph.node_order: unknown node order "
                      f"{order!r}; valid: {list(NODE_ORDERS)}")
  gather = config.graph.gather_dtype
  if gather not in GATHER_DTYPES:
    raise ConfigError(f"config.graph.gather_dtype: unknown dtype {gather!r}; "
                      f"valid: {list(GATHER_DTYPES)}")
  learning_rate(config)  # rejects a bad schedule before anything is written

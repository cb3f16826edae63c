"""The searched design space of GNN collaborative filtering.

Dimensions follow Wang, Zhao & Shi (WSDM 2022), "Profiling the Design Space
for Graph Neural Networks based Collaborative Filtering": message function,
aggregation, depth, layer combination, interaction function, plus the
training hyperparameters they tune (embedding size, learning rate, L2).

An architecture is a plain dict {dimension: value} holding one declared value
per dimension (JSON-serialisable, hashable through `arch_key`). `to_config`
turns it into an ml_collections config of the registered 'designgnn' model
that `jaxrec.main` / `jaxrec.train.train_and_evaluate` train directly.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Mapping, Optional, Sequence

import ml_collections
import numpy as np

from jaxrec.models import designgnn

Arch = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Choice:
  """One categorical dimension of the space.

  Attributes:
    name: dimension name (a key of the architecture dict).
    values: the declared values, in a fixed order.
    target: where `to_config` puts it: 'model' (config.model[name]) or
      'optimizer' (config.optimizer[name]).
  """
  name: str
  values: tuple
  target: str = "model"


# The full declared space (WSDM 2022 dimensions + training hyperparameters).
DEFAULT_SPACE: tuple[Choice, ...] = (
    Choice("message", designgnn.MESSAGES),
    Choice("aggregation", designgnn.AGGREGATIONS),
    Choice("num_layers", (1, 2, 3, 4)),
    Choice("combine", designgnn.COMBINES),
    Choice("interaction", designgnn.INTERACTIONS),
    Choice("embed_dim", (32, 64, 128)),
    Choice("learning_rate", (5e-4, 1e-3, 5e-3), target="optimizer"),
    Choice("l2_reg", (0.0, 1e-5, 1e-4, 1e-3)),
)


class Space:
  """A declared space: sampling, mutation, validation.

  Args:
    choices: the dimensions.
  """

  def __init__(self, choices: Sequence[Choice] = DEFAULT_SPACE):
    self.choices = tuple(choices)
    names = [c.name for c in self.choices]
    if len(set(names)) != len(names):
      raise ValueError(f"search space: duplicate dimension in {names}")
    for c in self.choices:
      if not c.values:
        raise ValueError(f"search space: dimension {c.name!r} has no values")
      if c.target not in ("model", "optimizer"):
        raise ValueError(f"search space: dimension {c.name!r} target must be "
                         f"'model' or 'optimizer', got {c.target!r}")
    self.by_name = {c.name: c for c in self.choices}

  @classmethod
  def from_overrides(cls, overrides: Optional[Mapping[str, Sequence]] = None
                     ) -> "Space":
    """DEFAULT_SPACE with some dimensions' value lists replaced.

    Args:
      overrides: {dimension: values}; unknown dimensions raise, and values
        of the model's categorical dimensions must be ones it implements.

    Returns:
      The restricted (or extended) space.
    """
    overrides = dict(overrides or {})
    base = {c.name: c for c in DEFAULT_SPACE}
    unknown = sorted(set(overrides) - set(base))
    if unknown:
      raise ValueError(f"config.search.space: unknown dimension(s) {unknown}; "
                       f"valid: {sorted(base)}")
    implemented = {"message": designgnn.MESSAGES,
                   "aggregation": designgnn.AGGREGATIONS,
                   "combine": designgnn.COMBINES,
                   "interaction": designgnn.INTERACTIONS}
    choices = []
    for c in DEFAULT_SPACE:
      if c.name in overrides:
        values = tuple(overrides[c.name])
        bad = [v for v in values if c.name in implemented and
               v not in implemented[c.name]]
        if bad:
          raise ValueError(f"config.search.space.{c.name}: {bad} not in "
                           f"{implemented[c.name]}")
        c = dataclasses.replace(c, values=values)
      choices.append(c)
    return cls(choices)

  @property
  def size(self) -> int:
    """Number of distinct architectures."""
    return int(np.prod([len(c.values) for c in self.choices]))

  def sample(self, rng: np.random.Generator) -> Arch:
    """A uniformly random architecture (one rng draw per dimension)."""
    return {c.name: _item(c.values[rng.integers(len(c.values))])
            for c in self.choices}

  def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
    """Copy of `arch` with exactly one dimension changed to another value.

    The dimension is drawn uniformly among those with more than one value,
    the new value uniformly among its other values (Real et al., 2019).
    """
    self.validate(arch)
    mutable = [c for c in self.choices if len(c.values) > 1]
    if not mutable:
      raise ValueError("search space: no dimension has two values to mutate")
    c = mutable[rng.integers(len(mutable))]
    others = [v for v in c.values if v != arch[c.name]]
    child = dict(arch)
    child[c.name] = _item(others[rng.integers(len(others))])
    return child

  def validate(self, arch: Mapping[str, Any]) -> None:
    """Raises ValueError unless `arch` holds one declared value per dimension."""
    missing = sorted(set(self.by_name) - set(arch))
    extra = sorted(set(arch) - set(self.by_name))
    if missing or extra:
      raise ValueError(f"architecture {dict(arch)}: missing {missing}, "
                       f"unknown {extra}")
    for name, value in arch.items():
      if value not in self.by_name[name].values:
        raise ValueError(f"architecture: {name}={value!r} is not one of "
                         f"{self.by_name[name].values}")

  def to_config(self, arch: Mapping[str, Any],
                base_config: ml_collections.ConfigDict
                ) -> ml_collections.ConfigDict:
    """Training config of `arch` on top of `base_config`.

    Args:
      arch: a valid architecture.
      base_config: a training config (e.g. configs/search.py); its `search`
        section, if any, is dropped; everything else (dataset, seed, epochs,
        batch size, evaluation) is kept.

    Returns:
      A config with model_name 'designgnn' for `jaxrec.main`.
    """
    self.validate(arch)
    return to_config(arch, base_config, self)


def _item(value):
  """NumPy scalars -> Python scalars (JSON-friendly, exact equality)."""
  return value.item() if isinstance(value, np.generic) else value


def arch_key(arch: Mapping[str, Any]) -> str:
  """Canonical string of an architecture (sorted JSON), for dedup/caching."""
  return json.dumps(dict(arch), sort_keys=True)


def to_config(arch: Mapping[str, Any], base_config: ml_collections.ConfigDict,
              space: Optional[Space] = None) -> ml_collections.ConfigDict:
  """Training config of `arch` (see `Space.to_config`).

  Args:
    arch: architecture dict (dimension -> value).
    base_config: base training config.
    space: declares each dimension's target (default DEFAULT_SPACE; unknown
      dimensions raise).

  Returns:
    A new config with model_name 'designgnn'.
  """
  targets = {c.name: c.target for c in (space or Space()).choices}
  unknown = sorted(set(arch) - set(targets))
  if unknown:
    raise ValueError(f"to_config: unknown dimension(s) {unknown}")
  config = copy.deepcopy(base_config)
  with config.unlocked():
    if "search" in config:
      del config["search"]
    # Another model's kwargs do not apply to DesignGNN.
    model = (config.model.to_dict() if config.model_name == "designgnn"
             else {})
    config.model_name = "designgnn"
    optimizer = config.optimizer.to_dict()
    for name, value in arch.items():
      if targets[name] == "model":
        model[name] = value
      else:
        optimizer[name] = value
    config.model = model
    config.optimizer = optimizer
  return config


__all__ = ["Arch", "Choice", "DEFAULT_SPACE", "Space", "arch_key", "to_config"]

"""Search strategies: random search, regularised evolution, successive halving.

All three draw every random choice from one `np.random.Generator` seeded by
`config.search.seed`, train through a `runner.Runner` (budget of trials AND
seconds) and select on the validation metric only, so the same seed gives
the same trials and the same best architecture (with a seconds budget that
is not hit).
"""

from __future__ import annotations

import collections
import json
import logging
import math
from typing import Any, Iterator, Optional, Sequence

import ml_collections
import numpy as np

from jaxrec.errors import ConfigError
from jaxrec.search import runner as runner_lib
from jaxrec.search import space as space_lib

Trial = runner_lib.Trial


def sample_new(space: space_lib.Space, rng: np.random.Generator, seen: set,
               max_tries: int = 1000) -> Optional[dict]:
  """A random architecture not in `seen` (None if none found)."""
  for _ in range(max_tries):
    arch = space.sample(rng)
    if space_lib.arch_key(arch) not in seen:
      return arch
  return None


def base_architecture(space: space_lib.Space,
                      config: ml_collections.ConfigDict) -> dict:
  """The point of the training config itself (configs/search.py: LightGCN).

  Each dimension takes its value from `config.model` (or `config.optimizer`
  for optimiser dimensions); a dimension the config leaves unset takes the
  space's first value.
  """
  arch = {}
  for c in space.choices:
    section = config.optimizer if c.target == "optimizer" else config.model
    arch[c.name] = section.get(c.name, c.values[0])
  return arch


def warm_start_architectures(space: space_lib.Space,
                             config: ml_collections.ConfigDict,
                             entries: Sequence[Any]) -> list[dict]:
  """Architectures trained before any random sample (`config.search.warm_start`).

  Args:
    space: the searched space; every architecture must lie in it.
    config: the search config (its model / optimizer give 'base').
    entries: each 'base' (the config's own point; left out, with a log
      line, when a restricted space does not contain it), a path to a
      previous search's summary.json (its best architecture), or a dict of
      dimension values (unset dimensions from 'base').

  Returns:
    The distinct architectures, in order.

  Raises:
    ConfigError: an entry that is none of these, or lies outside the space.
  """
  base = base_architecture(space, config)
  out, seen = [], set()
  for i, entry in enumerate(entries or ()):
    where = f"config.search.warm_start[{i}]"
    if hasattr(entry, "to_dict"):
      entry = entry.to_dict()
    if entry == "base":
      arch = dict(base)
      try:
        space.validate(arch)
      except ValueError as e:
        logging.info("%s: the config's own point is outside the searched "
                     "space (%s); not trained first", where, e)
        continue
    elif isinstance(entry, str) and entry.endswith(".json"):
      try:
        with open(entry, encoding="utf-8") as f:
          arch = dict(base, **json.load(f)["best_arch"])
      except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{where}: {entry!r} is not a readable search "
                          f"summary.json with a 'best_arch' ({e})") from e
    elif isinstance(entry, dict):
      arch = dict(base, **entry)
    else:
      raise ConfigError(f"{where}: expected 'base', a summary.json path or a "
                        f"dict of dimension values, got {entry!r}")
    try:
      space.validate(arch)
    except ValueError as e:
      raise ConfigError(f"{where}: {e}") from e
    key = space_lib.arch_key(arch)
    if key not in seen:
      seen.add(key)
      out.append(arch)
  return out


def _candidates(space: space_lib.Space, rng: np.random.Generator, seen: set,
                initial: Sequence[dict]) -> Iterator[dict]:
  """The warm-start architectures, then distinct random samples.

  The random draws are the same with or without a warm start (a sample
  equal to a warm-start architecture is redrawn, as any seen one).
  """
  for arch in initial:
    seen.add(space_lib.arch_key(arch))
    yield dict(arch)
  while True:
    arch = sample_new(space, rng, seen)
    if arch is None:
      return
    seen.add(space_lib.arch_key(arch))
    yield arch


def random_search(runner: runner_lib.Runner, rng: np.random.Generator,
                  epochs: int, initial: Sequence[dict] = ()
                  ) -> runner_lib.Runner:
  """Trains distinct uniformly sampled architectures until a budget ends.

  `initial` (warm start) architectures are trained first.
  """
  seen = set()
  archs = _candidates(runner.space, rng, seen, initial)
  while runner.can_start_new():
    arch = next(archs, None)
    if arch is None:
      break  # space exhausted
    runner.run(arch, epochs)
  return runner


def regularized_evolution(runner: runner_lib.Runner, rng: np.random.Generator,
                          epochs: int, population_size: int,
                          sample_size: int, initial: Sequence[dict] = ()
                          ) -> runner_lib.Runner:
  """Aging evolution (Real et al., AAAI 2019).

  The population starts with `population_size` architectures: the
  `initial` (warm start) ones, then random ones. Each
  cycle draws `sample_size` members uniformly (without replacement), mutates
  the best of them by validation metric (one dimension changes), trains the
  child, adds it and removes the OLDEST member. Children already trained are
  re-mutated (up to 100 times) so every trial is a new architecture.

  Args:
    runner: trains the trials (budgets).
    rng: source of all random choices.
    epochs: epochs per trial.
    population_size: P.
    sample_size: S (tournament size), 1 <= S <= P.
    initial: warm-start architectures, trained first.

  Returns:
    The runner.
  """
  if not 1 <= sample_size <= population_size:
    raise ValueError(f"regularized_evolution: need 1 <= sample_size "
                     f"({sample_size}) <= population_size ({population_size})")
  population: collections.deque = collections.deque()
  seen = set()
  archs = _candidates(runner.space, rng, seen, initial)
  while len(population) < population_size and runner.can_start_new():
    arch = next(archs, None)
    if arch is None:
      break
    population.append(runner.run(arch, epochs))
  while runner.can_start_new() and population:
    picks = rng.choice(len(population), size=min(sample_size, len(population)),
                       replace=False)
    parent = min((population[i] for i in picks),
                 key=lambda t: (-t.valid, t.index))
    child = None
    for _ in range(100):
      cand = runner.space.mutate(parent.arch, rng)
      if space_lib.arch_key(cand) not in seen:
        child = cand
        break
    if child is None:
      child = sample_new(runner.space, rng, seen)
      if child is None:
        break
    seen.add(space_lib.arch_key(child))
    population.append(runner.run(child, epochs))
    if len(population) > population_size:
      population.popleft()  # aging: the oldest dies, not the worst
  return runner


def halving_survivors(trials: list[Trial], fraction: float) -> list[Trial]:
  """The top `fraction` (at least one) of trials by validation metric.

  Args:
    trials: trials of one rung.
    fraction: kept fraction in (0, 1]; ceil(len * fraction) survive.

  Returns:
    The survivors, best first (ties: earlier trial first).
  """
  if not 0 < fraction <= 1:
    raise ValueError(f"halving fraction must be in (0, 1], got {fraction}")
  keep = max(1, math.ceil(len(trials) * fraction - 1e-9))
  return sorted(trials, key=lambda t: (-t.valid, t.index))[:keep]


def rung_epochs(min_epochs: int, eta: float, max_epochs: int,
                eval_every: int) -> list[int]:
  """Epoch budgets per rung: min_epochs * eta^r, capped, multiples of eval_every.

  Multiples of `eval_every` make a resumed run evaluate at the same epochs as
  one uninterrupted run, so best_config.py reproduces the selected trial.
  """
  if min_epochs < 1 or eta <= 1 or max_epochs < min_epochs:
    raise ValueError(f"successive halving: need min_epochs >= 1, eta > 1, "
                     f"max_epochs >= min_epochs; got {min_epochs}, {eta}, "
                     f"{max_epochs}")
  step = max(1, eval_every)
  out, e = [], float(min_epochs)
  while True:
    epochs = min(int(math.ceil(round(e) / step) * step),
                 int(math.ceil(max_epochs / step) * step))
    if out and epochs <= out[-1]:
      break
    out.append(epochs)
    e *= eta
  return out


def default_min_compared(eta: float) -> int:
  """ceil(eta): the trials of a rung one survivor is kept from."""
  return math.ceil(eta - 1e-9)


def successive_halving(runner: runner_lib.Runner, rng: np.random.Generator,
                       min_epochs: int, eta: float, max_epochs: int,
                       initial: Sequence[dict] = (),
                       promote_initial: bool = False,
                       min_compared: Optional[int] = None
                       ) -> runner_lib.Runner:
  """Successive halving (Jamieson & Talwalkar, 2016) over random samples.

  Rung 0 trains `budget_trials` distinct architectures (the `initial`
  warm-start ones first, then random ones) for
  `min_epochs`; each later rung keeps the top 1/eta by validation metric and
  trains the survivors on (from their checkpoints) to eta times the epochs,
  until one survivor or `max_epochs`. With `promote_initial`, the warm-start
  trials also go on to every rung, after the top 1/eta: low-fidelity scores
  rank slow starters such as LightGCN at lr 1e-3 below where they end
  (docs/results/search_fidelity.md), so a known design is compared with the
  searched ones at the top rung's epochs instead of being cut at rung 0.
  The seconds budget stops the search between trainings. The final pick
  (`Runner.selection`) is compared at one fidelity: the highest complete
  rung, or a rung the budget cut short if `min_compared` trials finished it,
  each trial by its score at that rung's epochs.

  Args:
    runner: trains the trials (budget_trials = rung-0 architectures).
    rng: source of the random architectures.
    min_epochs: rung-0 epochs.
    eta: reduction factor (> 1).
    max_epochs: cap on any trial's epochs.
    initial: warm-start architectures, trained first.
    promote_initial: promote the warm-start trials at every rung.
    min_compared: trials a rung cut short by the budget needs to decide the
      pick (default ceil(eta): the trials a rung keeps one survivor of).

  Returns:
    The runner.
  """
  first = len(runner.trials)
  budgets = rung_epochs(min_epochs, eta, max_epochs,
                        runner.base_config.eval_every)
  if min_compared is not None and min_compared < 1:
    raise ValueError(f"successive halving: min_compared must be >= 1, got "
                     f"{min_compared}")
  runner.min_compared = (min_compared if min_compared is not None
                         else default_min_compared(eta))
  archs = _candidates(runner.space, rng, set(), initial)
  while runner.can_start_new():
    arch = next(archs, None)
    if arch is None:
      break
    runner.run(arch, budgets[0])
  rung_trials = list(runner.trials)
  # The warm-start trials are the first ones this call trained.
  protected = ({t.index for t in rung_trials[first:first + len(initial)]}
               if promote_initial else set())
  for rung, epochs in enumerate(budgets[1:], start=1):
    if len(rung_trials) <= 1:
      break
    survivors = halving_survivors(rung_trials, 1.0 / eta)
    survivors += [t for t in rung_trials
                  if t.index in protected
                  and t.index not in {s.index for s in survivors}]
    logging.info("halving rung %d: %d of %d survive -> %d epochs", rung,
                 len(survivors), len(rung_trials), epochs)
    runner.plan_rung(rung, survivors, epochs)
    rung_trials = []
    for trial in survivors:
      if not runner.time_left():
        return runner
      rung_trials.append(runner.extend(trial, epochs, rung))
  return runner


STRATEGIES = ("random", "evolution", "halving")

__all__ = ["STRATEGIES", "base_architecture", "default_min_compared",
           "halving_survivors", "random_search", "regularized_evolution",
           "rung_epochs", "sample_new", "successive_halving",
           "warm_start_architectures"]

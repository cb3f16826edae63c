"""Search strategies: random search, regularised evolution, successive halving.

All three draw every random choice from one `np.random.Generator` seeded by
`config.search.seed`, train through a `runner.Runner` (budget of trials AND
seconds) and select on the validation metric only, so the same seed gives
the same trials and the same best architecture (with a seconds budget that
is not hit).
"""

from __future__ import annotations

import collections
import logging
import math
from typing import Optional

import numpy as np

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


def random_search(runner: runner_lib.Runner, rng: np.random.Generator,
                  epochs: int) -> runner_lib.Runner:
  """Trains distinct uniformly sampled architectures until a budget ends."""
  seen = set()
  while runner.can_start_new():
    arch = sample_new(runner.space, rng, seen)
    if arch is None:
      break  # space exhausted
    seen.add(space_lib.arch_key(arch))
    runner.run(arch, epochs)
  return runner


def regularized_evolution(runner: runner_lib.Runner, rng: np.random.Generator,
                          epochs: int, population_size: int,
                          sample_size: int) -> runner_lib.Runner:
  """Aging evolution (Real et al., AAAI 2019).

  The population starts with `population_size` random architectures. Each
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

  Returns:
    The runner.
  """
  if not 1 <= sample_size <= population_size:
    raise ValueError(f"regularized_evolution: need 1 <= sample_size "
                     f"({sample_size}) <= population_size ({population_size})")
  population: collections.deque = collections.deque()
  seen = set()
  while len(population) < population_size and runner.can_start_new():
    arch = sample_new(runner.space, rng, seen)
    if arch is None:
      break
    seen.add(space_lib.arch_key(arch))
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


def successive_halving(runner: runner_lib.Runner, rng: np.random.Generator,
                       min_epochs: int, eta: float,
                       max_epochs: int) -> runner_lib.Runner:
  """Successive halving (Jamieson & Talwalkar, 2016) over random samples.

  Rung 0 trains `budget_trials` distinct random architectures for
  `min_epochs`; each later rung keeps the top 1/eta by validation metric and
  trains the survivors on (from their checkpoints) to eta times the epochs,
  until one survivor or `max_epochs`. The seconds budget stops the search
  between trainings; the best trial is then taken from the highest rung.

  Args:
    runner: trains the trials (budget_trials = rung-0 architectures).
    rng: source of the random architectures.
    min_epochs: rung-0 epochs.
    eta: reduction factor (> 1).
    max_epochs: cap on any trial's epochs.

  Returns:
    The runner.
  """
  budgets = rung_epochs(min_epochs, eta, max_epochs,
                        runner.base_config.eval_every)
  seen = set()
  while runner.can_start_new():
    arch = sample_new(runner.space, rng, seen)
    if arch is None:
      break
    seen.add(space_lib.arch_key(arch))
    runner.run(arch, budgets[0])
  rung_trials = list(runner.trials)
  for rung, epochs in enumerate(budgets[1:], start=1):
    if len(rung_trials) <= 1:
      break
    survivors = halving_survivors(rung_trials, 1.0 / eta)
    logging.info("halving rung %d: %d of %d survive -> %d epochs", rung,
                 len(survivors), len(rung_trials), epochs)
    rung_trials = []
    for trial in survivors:
      if not runner.time_left():
        return runner
      rung_trials.append(runner.extend(trial, epochs, rung))
  return runner


STRATEGIES = ("random", "evolution", "halving")

__all__ = ["STRATEGIES", "halving_survivors", "random_search",
           "regularized_evolution", "rung_epochs", "sample_new",
           "successive_halving"]

"""Population-based training (--scheduler pbt | pb2): the population, what it may change, how.

A population of ``--num-samples`` members trains in parallel; every ``--perturbation-interval``
epochs the members in the bottom quarter (by the rung score) take over the latest checkpoint of
one in the top quarter and go on with explored hyperparameters: PBT perturbs each by x0.8 or
x1.2 (or, one time in four, resamples it), PB2 picks new values with its GP bandit. The trial
then continues exactly from the donor's state (msa.trial.restore_run): weights, optimiser
moments, schedule step, epoch and data order, with its own new learning rates, weight decay
and dropout.

Initial members come from the space's own define-by-run function, sampled at random (seeded):
Ray's population schedulers cannot take a search algorithm, so they are handed over as fixed
starting points. Bounds are the ranges the space suggests each value in.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import optuna
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pb2 import PB2

from msa.experiment_dir import MUTABLE_HYPERPARAMETERS
from search_spaces import get_space
from search_spaces.scale import SearchScale

# What may change while a member trains (MUTABLE_HYPERPARAMETERS, named in msa.experiment_dir):
# continuous values that the optimiser (learning rates,
# weight decay) or the dropout layers take at any step. Everything else is fixed per member:
# the model, widths, depths and heads change the weights' shapes; the batch size, schedule and
# warm-up the meaning of the schedule's step count; augmentation the feature cache.

PERTURBATION_FACTORS = (1.2, 0.8)
RESAMPLE_PROBABILITY = 0.25
QUANTILE_FRACTION = 0.25  # the bottom quarter copies the top quarter
POPULATION_CHECKPOINTS = 4  # kept per member: a donor's latest must outlive its copying


@dataclass(frozen=True)
class Bounds:
    low: float
    high: float
    log: bool

    def sample(self, rng: random.Random) -> float:
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)

    def clip(self, value: float) -> float:
        return min(self.high, max(self.low, value))


def initial_members(
    space: str, size: int, seed: int, scale: SearchScale
) -> tuple[list[dict], dict[str, Bounds]]:
    """``size`` configurations drawn at random from the space (seeded), and the bounds of each
    mutable hyperparameter that they all have (a value one member lacks, such as a frozen
    trunk's backbone_lr, is not explored: it would mean nothing to that member)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    define = get_space(space).at_scale(scale)
    members, shared = [], None
    for _ in range(size):
        trial = study.ask()
        constants = define(trial) or {}
        members.append({**trial.params, **constants})
        names = {name for name in trial.distributions if name in MUTABLE_HYPERPARAMETERS}
        shared = names if shared is None else shared & names
        study.tell(trial, 0.0)
    bounds = {}
    for name in sorted(shared or ()):
        distribution = study.trials[0].distributions[name]
        bounds[name] = Bounds(distribution.low, distribution.high, bool(getattr(distribution, "log", False)))
    return members, bounds


def explore(config: dict, bounds: dict[str, Bounds], rng: random.Random) -> dict:
    """PBT's explore step: each bounded value resampled (probability RESAMPLE_PROBABILITY) or
    multiplied by one of PERTURBATION_FACTORS, then clipped to its bounds."""
    explored = dict(config)
    for name, bound in bounds.items():
        if name not in explored:
            continue
        if rng.random() < RESAMPLE_PROBABILITY:
            explored[name] = bound.sample(rng)
        else:
            explored[name] = bound.clip(explored[name] * rng.choice(PERTURBATION_FACTORS))
    return explored


class Explorer:
    """``explore`` as PBT's custom_explore_fn: picklable (Ray saves the scheduler), seeded."""

    def __init__(self, bounds: dict[str, Bounds], seed: int):
        self.bounds, self.rng = bounds, random.Random(seed)

    def __call__(self, config: dict) -> dict:
        return explore(config, self.bounds, self.rng)


class UntilLastEpoch:
    """Perturbs no member at its last epoch: there would be nothing left to train."""

    max_epochs: int

    def on_trial_result(self, tune_controller, trial, result):
        if result.get("training_iteration", 0) >= self.max_epochs:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


class PopulationScheduler(UntilLastEpoch, PopulationBasedTraining):
    pass


class PB2Scheduler(UntilLastEpoch, PB2):
    pass


def population_scheduler(
    kind: str, bounds: dict[str, Bounds], metric: str, mode: str, interval: int, max_epochs: int, seed: int
):
    """Ray's PopulationBasedTraining (``kind`` "pbt") or PB2 ("pb2") over ``bounds``,
    synchronous: at each perturbation point every member waits for the population, so a small
    population exploits every interval instead of whenever a donor happens to be ahead."""
    common = dict(
        time_attr="training_iteration",
        metric=metric,
        mode=mode,
        perturbation_interval=interval,
        quantile_fraction=QUANTILE_FRACTION,
        synch=True,
    )
    if kind == "pbt":
        scheduler = PopulationScheduler(
            **common,
            custom_explore_fn=Explorer(bounds, seed),
            resample_probability=RESAMPLE_PROBABILITY,
            perturbation_factors=PERTURBATION_FACTORS,
        )
    else:
        scheduler = PB2Scheduler(
            **common, hyperparam_bounds={name: [bound.low, bound.high] for name, bound in bounds.items()}
        )
    scheduler.max_epochs = max_epochs
    return scheduler

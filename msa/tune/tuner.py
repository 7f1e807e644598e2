"""Building the Ray Tune Tuner: searcher, scheduler, resources, storage and checkpoints."""

from __future__ import annotations

import math
import os

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from msa.data import is_uri
from msa.data.experiment import TrialData
from msa.experiment_dir import POPULATION_SCHEDULERS, RUNG_SCORE, trial_folder
from msa.pareto import objective_modes
from msa.trial import TrialSettings
from msa.tune.options import BudgetOptions, ResourceOptions, SearchOptions
from msa.tune.population import POPULATION_CHECKPOINTS, initial_members, population_scheduler
from msa.tune.searcher import BudgetAwareOptunaSearch
from msa.tune.tracking.options import optuna_storage_url
from msa.tune.trainable import train_trial
from msa.tune.trial_logs import KeepTrialLogs
from search_spaces import get_space
from search_spaces.scale import SearchScale

TRIAL_MEMORY_ESTIMATE = 3 * 1024**3  # bytes: a video trial on the sample peaks around 2 GB
TPE_MAX_STARTUP_TRIALS = 10  # random trials before TPE models the space
# NSGA-II's generation: a quarter of the trials, so a small budget still breeds a few generations
# (Optuna's default of 50 would leave every trial of a 20-trial search in the random first one).
NSGA2_MIN_POPULATION, NSGA2_MAX_POPULATION = 2, 50


def concurrency(cluster: dict[str, float], resources: ResourceOptions, num_samples: int) -> int:
    """Trials that fit ``cluster`` (Ray's cluster_resources()) at once: by CPUs, GPUs and
    memory, capped by the number of trials."""
    fits = [math.floor(cluster.get("CPU", 1) / resources.cpus_per_trial)]
    if resources.gpus_per_trial > 0:
        fits.append(math.floor(cluster.get("GPU", 0) / resources.gpus_per_trial + 1e-9))
    if "memory" in cluster:
        fits.append(math.floor(cluster["memory"] / TRIAL_MEMORY_ESTIMATE))
    return max(1, min(num_samples, *fits))


def tpe_startup_trials(num_samples: int) -> int:
    """TPE's first trials are random; on a small budget a third of it, so TPE still gets to model."""
    return min(TPE_MAX_STARTUP_TRIALS, max(1, num_samples // 3))


def search_scale(data: TrialData, resources: ResourceOptions) -> SearchScale:
    """What the spaces size their batch choices by: this search's training clips and device."""
    return SearchScale(train_clips=len(data.clips("train")), accelerator=resources.gpus_per_trial > 0)


def nsga2_population(num_samples: int) -> int:
    return max(NSGA2_MIN_POPULATION, min(NSGA2_MAX_POPULATION, num_samples // 4))


def build_sampler(budget: BudgetOptions) -> optuna.samplers.BaseSampler:
    """--search: TPE (multi-objective when --objectives gives several), NSGA-II, or random."""
    if budget.search == "optuna":
        return optuna.samplers.TPESampler(
            seed=budget.seed, n_startup_trials=tpe_startup_trials(budget.num_samples)
        )
    if budget.search == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=budget.seed, population_size=nsga2_population(budget.num_samples)
        )
    return optuna.samplers.RandomSampler(seed=budget.seed)


def describe_objectives(budget: BudgetOptions) -> str:
    """A multi-objective search's header line: what is traded, how trials are scheduled and sampled."""
    first, *costs = budget.objectives
    sampler = {
        "optuna": "Optuna TPE (multi-objective)",
        "nsga2": f"Optuna NSGA-II (generations of {nsga2_population(budget.num_samples)})",
        "random": "random search",
    }[budget.search]
    return (
        f"multi-objective search: maximise {first}, minimise {', '.join(costs)}; {sampler}; "
        f"--scheduler {budget.scheduler}: every trial runs {budget.max_epochs} epochs (ASHA prunes on one "
        "metric and would drop the fast, slightly less accurate trials a Pareto front is for)"
    )


def build_searcher(
    space: str,
    budget: BudgetOptions,
    scale: SearchScale = SearchScale(),
    storage_url: str | None = None,
    study_name: str | None = None,
) -> BudgetAwareOptunaSearch:
    """The define-by-run Optuna search at ``scale``; with ``storage_url`` its study lives in that
    RDB under ``study_name`` (what optuna-dashboard shows), else in memory."""
    objectives = budget.objectives
    return BudgetAwareOptunaSearch(
        space=get_space(space).at_scale(scale),
        # Several objectives: Ray's OptunaSearch takes lists and makes a multi-objective study.
        metric=list(objectives) if objectives else budget.metric,
        mode=list(objective_modes(objectives)) if objectives else budget.mode,
        sampler=build_sampler(budget),
        max_epochs=budget.max_epochs,
        storage=optuna.storages.RDBStorage(storage_url) if storage_url else None,
        study_name=study_name if storage_url else None,
    )


def build_trial_scheduler(budget: BudgetOptions):
    """ASHA (or FIFO): which trials go on at each rung."""
    if budget.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        metric=RUNG_SCORE,  # the search metric with ties broken (see rung_score)
        mode=budget.mode,
        time_attr="training_iteration",
        max_t=budget.max_epochs,
        grace_period=budget.grace_period,
        reduction_factor=budget.reduction_factor,
    )


def trainable(resources: ResourceOptions, settings: TrialSettings, function=train_trial, **parameters):
    """``function(config, settings=settings, **parameters)`` as Tune's trainable, each trial
    given ``resources`` (the parameters go through Ray's object store once)."""
    per_trial = {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(function, settings=settings, **parameters), per_trial)


def run_config(
    storage: str,
    name: str,
    mode: str,
    max_failures: int,
    callbacks: list | None = None,
    checkpoints_to_keep: int = 1,
) -> tune.RunConfig:
    """Where trials write, which checkpoints they keep, how often a crashed one is retried, and
    the trackers' logger ``callbacks``."""
    return tune.RunConfig(
        name=name,
        storage_path=storage,
        callbacks=[KeepTrialLogs(), *(callbacks or [])],
        checkpoint_config=tune.CheckpointConfig(
            # The best by the best-trial rule (the rung score orders epochs as it does: the metric,
            # ties to the lower val loss), and (always) the latest, for resuming. With one to
            # keep, Ray also saves the experiment state after every trial checkpoint, so a killed
            # driver costs each running trial at most the epoch it was in.
            num_to_keep=checkpoints_to_keep,
            checkpoint_score_attribute=RUNG_SCORE,
            checkpoint_score_order=mode,
        ),
        # Each retry resumes from the trial's last checkpoint.
        failure_config=tune.FailureConfig(max_failures=max_failures),
        sync_config=tune.SyncConfig(sync_artifacts=True),  # trials' TensorBoard folders
        verbose=1,
    )


def storage_root(storage: str) -> str:
    """Ray needs an absolute local path (or a URI)."""
    return storage if is_uri(storage) else os.path.abspath(os.path.expanduser(storage))


def trial_name(trial) -> str:
    """Short trial folder names (Ray's default packs the whole config into them)."""
    return trial_folder(trial.trial_id)


def build_tuner(
    options: SearchOptions, settings: TrialSettings, name: str, callbacks: list | None = None
) -> tune.Tuner:
    """The search's Tuner; ``callbacks`` (the trackers') are saved with it, so --resume keeps them."""
    budget, resources = options.budget, options.resources
    scale = search_scale(settings.data, resources)
    max_concurrent = resources.max_concurrent or concurrency(
        ray.cluster_resources(), resources, budget.num_samples
    )
    if budget.scheduler in POPULATION_SCHEDULERS:
        # Ray's population schedulers take no search algorithm: the members start from fixed points.
        members, bounds = initial_members(options.space, budget.num_samples, budget.seed, scale)
        # Every key any member has; a member's own keys replace the None of those it lacks
        # (the trainable drops them: a define-by-run space gives members different keys).
        param_space = {key: None for member in members for key in member}
        search_alg = BasicVariantGenerator(points_to_evaluate=members)
        scheduler = population_scheduler(
            budget.scheduler,
            bounds,
            RUNG_SCORE,
            budget.mode,
            budget.perturbation_interval,
            budget.max_epochs,
            budget.seed,
        )
        checkpoints_to_keep = POPULATION_CHECKPOINTS
    else:
        storage_url = optuna_storage_url(options.tracking, options.output.storage, name)
        search_alg = build_searcher(options.space, budget, scale, storage_url, name)
        param_space = None
        scheduler = build_trial_scheduler(budget)
        checkpoints_to_keep = 1
    return tune.Tuner(
        trainable(resources, settings),
        param_space=param_space,
        # No metric here: the searcher and the scheduler each carry their own, and summaries
        # pick the best trial by the search metric themselves.
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=budget.num_samples,
            max_concurrent_trials=max_concurrent,
            time_budget_s=budget.time_budget,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
            # A trial's process (imports, Ray's worker set-up) takes longer to start than a cached
            # trial's epochs take to run: finished trials hand their process to the next one
            # (benchmarks/bench_overhead.py measures the share of slot time it saves).
            reuse_actors=True,
        ),
        run_config=run_config(
            storage_root(options.output.storage),
            name,
            budget.mode,
            resources.max_failures,
            callbacks,
            checkpoints_to_keep,
        ),
    )


def restore_tuner(options: SearchOptions, settings: TrialSettings, name: str) -> tune.Tuner:
    path = f"{storage_root(options.output.storage).rstrip('/')}/{name}"
    return tune.Tuner.restore(path, trainable=trainable(options.resources, settings), resume_errored=True)

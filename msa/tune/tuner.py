"""Building the Ray Tune Tuner: searcher, scheduler, resources, storage and checkpoints."""

from __future__ import annotations

import argparse
import math
import os

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from msa.data import is_uri
from msa.tune.searcher import BudgetAwareOptunaSearch
from msa.tune.trainable import RUNG_SCORE, TrialSettings, train_trial
from search_spaces import get_space

ASHA_REDUCTION_FACTOR = 3
TRIAL_MEMORY_ESTIMATE = 3 * 1024**3  # bytes: a video trial on the sample peaks around 2 GB


def default_concurrency(args: argparse.Namespace) -> int:
    """Trials that fit the cluster at once: by CPUs, GPUs and memory, capped by num_samples."""
    resources = ray.cluster_resources()
    fits = [math.floor(resources.get("CPU", 1) / args.cpus_per_trial)]
    if args.gpus_per_trial > 0:
        fits.append(math.floor(resources.get("GPU", 0) / args.gpus_per_trial + 1e-9))
    if "memory" in resources:
        fits.append(math.floor(resources["memory"] / TRIAL_MEMORY_ESTIMATE))
    return max(1, min(args.num_samples, *fits))


def build_searcher(args: argparse.Namespace) -> BudgetAwareOptunaSearch:
    space = get_space(args.space)
    if args.search == "optuna":
        # TPE's first trials are random; on a small budget a third of it, so TPE still gets to model.
        startup = min(10, max(1, args.num_samples // 3))
        sampler = optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=startup)
    else:
        sampler = optuna.samplers.RandomSampler(seed=args.seed)
    return BudgetAwareOptunaSearch(
        space=space.define, metric=args.metric, mode=args.mode, sampler=sampler, max_epochs=args.max_epochs
    )


def build_scheduler(args: argparse.Namespace):
    if args.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        metric=RUNG_SCORE,  # the search metric with ties broken (see rung_score)
        mode=args.mode,
        time_attr="training_iteration",
        max_t=args.max_epochs,
        grace_period=args.grace_period,
        reduction_factor=ASHA_REDUCTION_FACTOR,
    )


def trainable(args: argparse.Namespace, settings: TrialSettings):
    resources = {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_trial, settings=settings), resources)


def run_config(args: argparse.Namespace, name: str) -> tune.RunConfig:
    return tune.RunConfig(
        name=name,
        storage_path=storage_root(args.storage),
        checkpoint_config=tune.CheckpointConfig(
            # The best by the metric, and (always) the latest, for resuming. With one to keep,
            # Ray also saves the experiment state after every trial checkpoint, so a killed
            # driver costs each running trial at most the epoch it was in.
            num_to_keep=1,
            checkpoint_score_attribute=args.metric,
            checkpoint_score_order=args.mode,
        ),
        failure_config=tune.FailureConfig(max_failures=args.max_failures),  # each retry resumes from the last checkpoint
        sync_config=tune.SyncConfig(sync_artifacts=True),  # trials' TensorBoard folders
        verbose=1,
    )


def storage_root(storage: str) -> str:
    """Ray needs an absolute local path (or a URI)."""
    return storage if is_uri(storage) else os.path.abspath(os.path.expanduser(storage))


def trial_name(trial) -> str:
    """Short trial folder names (Ray's default packs the whole config into them)."""
    return f"trial_{trial.trial_id}"


def build_tuner(args: argparse.Namespace, settings: TrialSettings, name: str) -> tune.Tuner:
    max_concurrent = args.max_concurrent or default_concurrency(args)
    return tune.Tuner(
        trainable(args, settings),
        # No metric here: the searcher and the scheduler each carry their own, and summaries
        # pick the best trial by args.metric themselves.
        tune_config=tune.TuneConfig(
            search_alg=build_searcher(args),
            scheduler=build_scheduler(args),
            num_samples=args.num_samples,
            max_concurrent_trials=max_concurrent,
            time_budget_s=args.time_budget,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=run_config(args, name),
    )


def restore_tuner(args: argparse.Namespace, settings: TrialSettings, name: str) -> tune.Tuner:
    path = f"{storage_root(args.storage).rstrip('/')}/{name}"
    return tune.Tuner.restore(path, trainable=trainable(args, settings), resume_errored=True)

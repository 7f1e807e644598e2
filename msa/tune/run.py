"""Running a search end to end: Ray up, Tuner fit (or restore), test evaluation, summary, Ray down."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time

import ray

from msa.data.prepare import NoUsableClipsError
from msa.data.splits import SplitConfig, SplitError
from msa.tune.experiment import FoundData, TrialData, split_data
from msa.tune.options import ARGS_FILE, args_to_dict
from msa.tune.summary import evaluate_best, print_summary, summarise, write_json
from msa.tune.trainable import TrialSettings
from msa.tune.tuner import build_tuner, restore_tuner, storage_root
from msa.weights import WeightsBundle


def start_ray(args: argparse.Namespace) -> None:
    """Join the cluster at --address, or start a private local Ray without a dashboard (and
    with the token msa.tune.security set up before Ray was imported)."""
    if args.address:
        ray.init(address=args.address, log_to_driver=True)
    else:
        ray.init(include_dashboard=False, log_to_driver=True)


def check_cluster_gpus(args: argparse.Namespace) -> str | None:
    if args.gpus_per_trial > 0 and ray.cluster_resources().get("GPU", 0) < min(args.gpus_per_trial, 1):
        return f"--gpus-per-trial {args.gpus_per_trial}: the Ray cluster at {args.address} has no GPU"
    return None


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def fit_noticing_interrupts(tuner):
    """tuner.fit(), raising KeyboardInterrupt if it was stopped by Ctrl-C.

    On the first SIGINT Ray ends the run gracefully, saves the experiment state and returns
    normally; it then puts back the handler it found, and keeps its own otherwise. So the
    handler installed here is back in place exactly when the run was interrupted (and a second
    Ctrl-C goes straight to it).
    """
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    results = tuner.fit()
    interrupted = signal.getsignal(signal.SIGINT) is _raise_keyboard_interrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted:
        raise KeyboardInterrupt
    return results


def prepare_for_cluster(args: argparse.Namespace, found: FoundData, split: SplitConfig) -> TrialData:
    """Prepare the clips as Ray tasks over the cluster's nodes, then split. Raises
    NoUsableClipsError / SplitError."""
    from msa.tune.cluster import prepare_on_cluster

    decoded, failed, where = prepare_on_cluster(found)
    data, report = split_data(found, decoded, failed, args.classes, split)
    print(where)
    print_data(data, report)
    return data


def print_data(data: TrialData, report) -> None:
    print(report.summary())
    print(f"actors: train {data.actors['train']}, val {data.actors['val']}, test {data.actors['test']}")


def run_search(
    args: argparse.Namespace, data: TrialData | FoundData, name: str, split: SplitConfig, weights: dict[str, WeightsBundle]
) -> int:
    """Run the search on ``data``: prepared and split here, or (``--address``) found here and
    prepared over the cluster once Ray is up; ``weights`` are the backbones every trial loads."""
    experiment = f"{storage_root(args.storage).rstrip('/')}/{name}"
    started = time.perf_counter()
    start_ray(args)
    try:
        problem = check_cluster_gpus(args)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        if isinstance(data, FoundData):
            try:
                data = prepare_for_cluster(args, data, split)
            except (NoUsableClipsError, SplitError) as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
        return search(args, data, name, experiment, started, weights)
    finally:
        ray.shutdown()


def search(
    args: argparse.Namespace, data: TrialData, name: str, experiment: str, started: float, weights: dict[str, WeightsBundle]
) -> int:
    settings = TrialSettings(
        data=data,
        max_epochs=args.max_epochs,
        seed=args.seed,
        smoke_test=args.smoke_test,
        threads=max(1, math.floor(args.cpus_per_trial)),
        weights=weights,
        feature_cache=not getattr(args, "no_feature_cache", False),  # absent from searches saved before the flag
        metric=args.metric,
        mode=args.mode,
    )
    try:
        write_json(f"{experiment}/{ARGS_FILE}", args_to_dict(args))
        if args.address:
            from msa.tune.cluster import precompute_features
            from search_spaces import get_space

            print(precompute_features(settings, get_space(args.space).models, args.cpus_per_trial, args.gpus_per_trial))
        if args.resume:
            tuner = restore_tuner(args, settings, name)
        else:
            tuner = build_tuner(args, settings, name)
        results = fit_noticing_interrupts(tuner)
        test = evaluate_best(results, args, data)
        summary = summarise(results, args, data, test, weights)
        write_json(f"{experiment}/summary.json", summary)
    except KeyboardInterrupt:
        print(f"\ninterrupted; the search state is saved. Continue with:\n  python tune_main.py --space {args.space} --storage {args.storage} --name {name} --resume", file=sys.stderr)
        return 130
    print_summary(summary, experiment, time.perf_counter() - started)
    return 0 if summary["best_trial"] is not None else 1  # no trial finished an epoch: a failed run

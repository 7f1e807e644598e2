"""Running a search end to end: Ray up, Tuner fit (or restore), test evaluation, summary, Ray down."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable

import ray

from msa.baseline import baseline_for
from msa.data.experiment import FoundData, TrialData, split_data
from msa.data.folds import FoldError, folds_of
from msa.data.prepare import NoUsableClipsError
from msa.data.splits import SplitError
from msa.experiment_dir import ARGS_FILE, SUMMARY_FILE
from msa.trial import TrialSettings
from msa.tune.options import ResourceOptions, SearchOptions, UsageError
from msa.tune.summary import evaluate_best, print_summary, run_baseline, summarise, write_json
from msa.tune.tracking.trackers import Trackers
from msa.tune.tuner import build_tuner, restore_tuner, storage_root
from msa.weights import WeightsBundle

FACELESS_SHOWN = 5  # clips named when the face crop found no face in some


def start_ray(address: str | None) -> None:
    """Join the cluster at ``address``, or start a private local Ray without a dashboard (and
    with the token msa.tune.security set up before Ray was imported)."""
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(include_dashboard=False, log_to_driver=True)


def check_cluster_gpus(resources: ResourceOptions) -> str | None:
    if resources.gpus_per_trial > 0 and ray.cluster_resources().get("GPU", 0) < min(
        resources.gpus_per_trial, 1
    ):
        return (
            f"--gpus-per-trial {resources.gpus_per_trial}: the Ray cluster at {resources.address} has no GPU"
        )
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


def prepare_for_cluster(options: SearchOptions, found: FoundData) -> TrialData:
    """Prepare the clips as Ray tasks over the cluster's nodes, then split. Raises
    NoUsableClipsError / SplitError."""
    from msa.tune.cluster import prepare_on_cluster

    decoded, failed, where = prepare_on_cluster(found)
    data, report = split_data(found, decoded, failed, options.data.classes, options.split)
    print(where)
    print_data(data, report)
    return data


def print_data(data: TrialData, report) -> None:
    print(report.summary())
    if data.location.params.crop == "face":
        print(report.face_crop_summary(shown=FACELESS_SHOWN))
    if any(data.actors.values()):
        print(f"actors: train {data.actors['train']}, val {data.actors['val']}, test {data.actors['test']}")
    else:
        sizes = ", ".join(f"{part} {len(items)}" for part, items in data.parts.items())
        print(f"clips (no speakers: a random split): {sizes}")


def run_search(
    options: SearchOptions,
    data: TrialData | FoundData,
    weights: dict[str, WeightsBundle],
    trackers: Trackers | None = None,
) -> int:
    """Run the search on ``data``: prepared and split here, or (``--address``) found here and
    prepared over the cluster once Ray is up; ``weights`` are the backbones every trial loads;
    ``trackers`` (started before Ray) record it beside the experiment directory."""
    started = time.perf_counter()
    trackers = trackers or Trackers(options.experiment_name)
    return on_ray(
        options,
        data,
        lambda data: search(options, data, weights, trackers, started),
        folds=options.evaluation.crossval,
        folds_flag="--crossval",
    )


def on_ray(
    options: SearchOptions,
    data: TrialData | FoundData,
    work: Callable[[TrialData], int],
    folds: str | None = None,
    folds_flag: str = "--folds",
) -> int:
    """Ray up, then ``work(data)`` -> its exit status; Ray down whatever happens. Exits 2 first
    when the cluster lacks the GPUs asked for, or (``--address``: ``data`` found, not yet
    prepared) when the clips prepared over the cluster give no usable split or not ``folds``."""
    start_ray(options.resources.address)
    try:
        problem = check_cluster_gpus(options.resources)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        if isinstance(data, FoundData):
            try:
                data = prepare_for_cluster(options, data)
                if folds:
                    folds_of(data, folds, options.budget.seed, folds_flag)
            except (NoUsableClipsError, SplitError, FoldError) as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
        return work(data)
    finally:
        ray.shutdown()


def trial_settings(
    options: SearchOptions, data: TrialData, weights: dict[str, WeightsBundle]
) -> TrialSettings:
    """What every trial of this search shares."""
    return TrialSettings(
        data=data,
        max_epochs=options.budget.max_epochs,
        seed=options.budget.seed,
        smoke_test=options.smoke_test,
        threads=options.resources.threads,
        weights=weights,
        feature_cache=options.data.feature_cache,
        audio_features=options.data.audio_features,
        metric=options.budget.metric,
        mode=options.budget.mode,
    )


def search(
    options: SearchOptions,
    data: TrialData,
    weights: dict[str, WeightsBundle],
    trackers: Trackers,
    started: float,
) -> int:
    name = trackers.name
    experiment = f"{storage_root(options.output.storage).rstrip('/')}/{name}"
    try:  # (done before Ray for data prepared here; a cluster's data is known only now)
        options = options.sized_for(len(data.clips("train")))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    settings = trial_settings(options, data, weights)
    try:
        write_json(f"{experiment}/{ARGS_FILE}", options.to_json())
        if options.resources.address:
            from msa.tune.cluster import precompute_features
            from search_spaces import get_space

            print(precompute_features(settings, get_space(options.space).models, options.resources))
        tuner = (
            restore_tuner(options, settings, name)
            if options.output.resume
            else build_tuner(options, settings, name, trackers.callbacks(options.budget.max_epochs))
        )
        results = fit_noticing_interrupts(tuner)
        test = evaluate_best(results, options.budget, options.resources, data)
        baseline = run_baseline(baseline_for, data, options.resources)
        summary = summarise(results, options, data, test, weights, baseline)
        write_json(f"{experiment}/{SUMMARY_FILE}", summary)
        trackers.finish(summary, experiment)
    except KeyboardInterrupt:
        trackers.interrupted()
        print(
            "\ninterrupted; the search state is saved. Continue with:\n"
            f"  python tune_main.py --space {options.space} --storage {options.output.storage} --name {name} --resume",
            file=sys.stderr,
        )
        return 130
    print_summary(summary, experiment, time.perf_counter() - started)
    for line in trackers.where():
        print(line)
    if summary["best_trial"] is None:
        return 1  # no trial finished an epoch: a failed run
    if options.evaluation.crossval:
        return crossval_best(options, data, weights, summary["best_config"], experiment)
    return 0


def crossval_best(
    options: SearchOptions, data: TrialData, weights: dict[str, WeightsBundle], config: dict, experiment: str
) -> int:
    """--crossval: the search's best config cross-validated by actor over all of the data."""
    from msa.tune.crossval import cross_validate  # it builds on this module

    return cross_validate(
        options, options.evaluation.crossval, options.budget.max_epochs, data, weights, config, experiment
    )

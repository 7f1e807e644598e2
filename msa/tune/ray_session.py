"""What a search and a cross-validation share around Ray: Ray up and down (``on_ray``), the
clips prepared over a cluster's nodes, the settings every trial gets, and a Tuner fit that
notices Ctrl-C. msa.tune.run (the search) and msa.tune.crossval (the folds) build on it."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

import ray

from msa.data.experiment import FoundData, TrialData, split_data
from msa.data.folds import FoldError, folds_of
from msa.data.prepare import NoUsableClipsError
from msa.data.splits import SplitError
from msa.trial import TrialSettings
from msa.tune.cluster import prepare_on_cluster
from msa.tune.options import ResourceOptions, SearchOptions
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


def prepare_for_cluster(options: SearchOptions, found: FoundData) -> TrialData:
    """Prepare the clips as Ray tasks over the cluster's nodes, then split. Raises
    NoUsableClipsError / SplitError."""
    decoded, failed, where = prepare_on_cluster(found)
    data, report = split_data(found, decoded, failed, options.data.classes, options.split)
    print(where)
    print_data(data, report)
    return data


def print_data(data: TrialData, report) -> None:
    """The prepared clips in a few lines: what was kept and left out, and the split."""
    print(report.summary())
    if data.location.params.crop == "face":
        print(report.face_crop_summary(shown=FACELESS_SHOWN))
    if any(data.actors.values()):
        print(f"actors: train {data.actors['train']}, val {data.actors['val']}, test {data.actors['test']}")
    else:
        sizes = ", ".join(f"{part} {len(items)}" for part, items in data.parts.items())
        print(f"clips (no speakers: a random split): {sizes}")


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
        measure_latency="latency_ms" in options.budget.objectives,
    )


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

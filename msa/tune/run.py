"""Running a search end to end: Ray up, Tuner fit (or restore), test evaluation, summary, Ray down
(msa.tune.ray_session), then with --crossval the best configuration cross-validated (msa.tune.crossval);
with --nested a search per outer fold instead (msa.tune.nested)."""

from __future__ import annotations

import sys
import time

import ray

from msa.baseline import baseline_for
from msa.data.experiment import FoundData, TrialData
from msa.experiment_dir import ARGS_FILE, SUMMARY_FILE
from msa.tune.cluster import precompute_features
from msa.tune.crossval import cross_validate
from msa.tune.nested import nested_search
from msa.tune.options import SearchOptions, UsageError
from msa.tune.ray_session import fit_noticing_interrupts, on_ray, trial_settings
from msa.tune.summary import print_summary, run_baseline, start_evaluating_best, summarise, write_json
from msa.tune.tracking.trackers import Trackers
from msa.tune.tuner import build_tuner, describe_objectives, restore_tuner, storage_root
from msa.weights import WeightsBundle
from search_spaces import get_space


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
    if options.evaluation.nested:  # a search per outer fold instead of one
        return on_ray(
            options,
            data,
            lambda data: nested_search(options, data, weights, trackers.name),
            folds=options.evaluation.nested,
            folds_flag="--nested",
        )
    return on_ray(
        options,
        data,
        lambda data: search(options, data, weights, trackers, started),
        folds=options.evaluation.crossval,
        folds_flag="--crossval",
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
    if options.budget.objectives:
        print(describe_objectives(options.budget))
    try:
        write_json(f"{experiment}/{ARGS_FILE}", options.to_json())
        if options.resources.address:
            print(precompute_features(settings, get_space(options.space).models, options.resources))
        tuner = (
            restore_tuner(options, settings, name)
            if options.output.resume
            else build_tuner(options, settings, name, trackers.callbacks(options.budget.max_epochs))
        )
        results = fit_noticing_interrupts(tuner)
        evaluation = start_evaluating_best(results, options.budget, options.resources, data)
        baseline = run_baseline(baseline_for, data, options.resources)  # while the test clips are evaluated
        test = ray.get(evaluation) if evaluation is not None else None
        summary = summarise(results, options, data, test, weights, baseline)
        write_json(f"{experiment}/{SUMMARY_FILE}", summary)
        trackers.finish(summary, experiment)
    except KeyboardInterrupt:
        trackers.interrupted()
        print(
            "\ninterrupted; the search state is saved. Continue with:\n"
            f"  msa search --space {options.space} --storage {options.output.storage} --name {name} --resume",
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
    return cross_validate(
        options, options.evaluation.crossval, options.budget.max_epochs, data, weights, config, experiment
    )

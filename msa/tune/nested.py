"""Nested cross-validation: a whole search per outer fold, its best trial tested once on the fold.

For each outer fold (msa.data.folds) in turn: a search with the experiment's space, budget,
scheduler and searcher, seeded with the seed plus the fold's number, trains and validates on the
fold's ``search_data`` (its training and validation actors: the test actors' clips are not in
the data its trials are given). Once it ends, its best trial (the best-trial rule) is evaluated
once on the fold's test actors as a Ray task, and the classical baseline is fitted on the same
fold. The outer searches run one after the other, each with every trial slot of the cluster; a
search is msa.tune.tuner's, so it runs on a cluster (``--address``), retries crashed trials and
restores after a kill like any search. They share the feature cache: an outer fold's trials
compute only the entries of clips no earlier fold had in its search.

``EXPERIMENT/nested.json`` (msa.tune.nested_file) is rewritten after every outer fold; with
``--resume`` the folds it records as finished are kept, the interrupted fold's search is
restored from ``nested_<folds>/outer_<n>/`` and the rest are searched.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import ray
from ray import tune

from msa.baseline import baseline_for
from msa.data.experiment import TrialData
from msa.data.folds import Fold, folds_of, protocol, search_data
from msa.experiment_dir import (
    ARGS_FILE,
    CROSSVAL_FILE,
    NESTED_FILE,
    NESTED_PREFIX,
    OUTER_PREFIX,
    outer_search_folder,
)
from msa.tune.nested_file import (
    COMPLETED,
    FAILED,
    OuterOutcome,
    completed_folds,
    format_nested,
    nested_payload,
    outer_json,
    pending_json,
)
from msa.tune.options import EvaluationOptions, OutputOptions, SearchOptions, read_experiment_file
from msa.tune.ray_session import fit_noticing_interrupts, on_ray, trial_settings
from msa.tune.summary import best_trial, evaluate_checkpoint, run_baseline, with_trial_resources, write_json
from msa.tune.tuner import build_tuner, restore_tuner, storage_root
from msa.weights import WeightsBundle

BUDGET_KEYS = ("num_samples", "max_epochs", "grace_period", "scheduler", "search", "time_budget")


def outer_options(options: SearchOptions, experiment: str, fold: Fold) -> SearchOptions:
    """The search of outer fold ``fold``: the experiment's, seeded by the fold, stored inside it."""
    folds = options.evaluation.nested
    return replace(
        options,
        budget=replace(options.budget, seed=options.budget.seed + fold.number),
        output=OutputOptions(
            storage=f"{experiment}/{NESTED_PREFIX}{folds}", name=f"{OUTER_PREFIX}{fold.number}"
        ),
        evaluation=EvaluationOptions(),
    )


def feature_cost(results) -> tuple[int, float]:
    """(feature-cache entries the trials computed, the longest feature step), from their epochs."""
    computed, seconds = 0, 0.0
    for result in results:
        frame = result.metrics_dataframe
        if frame is None or frame.empty or "features_computed" not in frame:
            continue
        computed += int(frame["features_computed"].fillna(0).sum())
        seconds = max(seconds, float(frame["feature_seconds"].fillna(0).max()))
    return computed, seconds


def search_outer_fold(
    options: SearchOptions,
    fold: Fold,
    fold_data: TrialData,
    weights: dict[str, WeightsBundle],
    experiment: str,
) -> OuterOutcome:
    """Outer fold ``fold``'s search (restored where it was interrupted), then its best trial's
    one test evaluation and the baseline on the fold. Raises KeyboardInterrupt on Ctrl-C."""
    started = time.perf_counter()
    fold_options = outer_options(options, experiment, fold)
    settings = trial_settings(fold_options, search_data(fold_data), weights)
    name = fold_options.output.name
    if tune.Tuner.can_restore(outer_search_folder(experiment, options.evaluation.nested, fold.number)):
        tuner = restore_tuner(fold_options, settings, name)
    else:
        tuner = build_tuner(fold_options, settings, name)
    results = fit_noticing_interrupts(tuner)
    budget, resources = fold_options.budget, fold_options.resources
    best = best_trial(results, budget.metric, budget.mode)
    test, result, inner = None, None, {}
    if best is not None:
        result, checkpoint, inner = best
        evaluate = with_trial_resources(evaluate_checkpoint, resources)
        test = evaluate.remote(checkpoint, fold_data, budget.seed, resources.threads)
    baseline = run_baseline(baseline_for, fold_data, resources)
    test = ray.get(test) if test is not None else None
    computed, feature_seconds = feature_cost(results)
    return OuterOutcome(
        fold=fold,
        status=COMPLETED if test is not None else FAILED,
        trials=len(results),
        best_trial=result.path.rstrip("/").rsplit("/", 1)[-1] if result is not None else None,
        best_config=dict(result.config) if result is not None else None,
        inner=dict(inner),
        test=test,
        baseline=baseline,
        seconds=time.perf_counter() - started,
        features_computed=computed,
        feature_seconds=feature_seconds,
    )


def read_if_present(experiment: str, file: str) -> str | None:
    storage, _, name = experiment.rstrip("/").rpartition("/")
    try:
        return read_experiment_file(storage, name, file)
    except OSError:
        return None


def nested_cross_validate(
    options: SearchOptions, data: TrialData, weights: dict[str, WeightsBundle], experiment: str, resume: bool
) -> int:
    """Every outer fold of ``options.evaluation.nested`` searched and tested (Ray is up), nested.json
    rewritten after each -> the exit status: 0 when every fold completed, 1 when some search
    had no trial finish an epoch, 130 when stopped by Ctrl-C (with the command that resumes it)."""
    started = time.perf_counter()
    folds_arg, budget = options.evaluation.nested, options.budget
    folds = folds_of(data, folds_arg, budget.seed, "--nested")
    destination = f"{experiment.rstrip('/')}/{NESTED_FILE}"
    rows = {fold.number: pending_json(fold) for fold, _ in folds}
    if resume:
        rows |= completed_folds(read_if_present(experiment, NESTED_FILE))

    def payload() -> dict:
        return nested_payload(
            [rows[number] for number in sorted(rows)],
            experiment=experiment,
            space=options.space,
            folds=folds_arg,
            protocol=protocol(folds_arg),
            seed=budget.seed,
            metric=budget.metric,
            mode=budget.mode,
            labels=list(data.labels),
            budget={key: getattr(budget, key) for key in BUDGET_KEYS},
        )

    for fold, fold_data in folds:
        if rows[fold.number]["status"] == COMPLETED:
            print(f"outer fold {fold.number}: finished before (nested.json), kept")
            continue
        print(
            f"\n== outer fold {fold.number}/{len(folds)}: test actors {list(fold.test)} held out of its search"
        )
        try:
            outcome = search_outer_fold(options, fold, fold_data, weights, experiment)
        except KeyboardInterrupt:
            print(
                "\ninterrupted; finished outer folds are kept in nested.json. Continue with:\n"
                f"  {resume_command(options, experiment)}",
                file=sys.stderr,
            )
            return 130
        rows[fold.number] = outer_json(outcome)
        write_json(destination, payload())
    final = payload()
    write_json(destination, final)
    crossval_text = read_if_present(experiment, CROSSVAL_FILE)
    print()
    print(format_nested(final, json.loads(crossval_text) if crossval_text else None))
    print(f"in {(time.perf_counter() - started) / 60:.1f} min; nested.json: {destination}")
    return 0 if final["folds_completed"] == final["folds_total"] else 1


def resume_command(options: SearchOptions, experiment: str) -> str:
    """The command that continues an interrupted nested cross-validation of ``experiment``."""
    return f"msa crossval {experiment} --nested {options.evaluation.nested} --resume"


def nested_search(
    options: SearchOptions, data: TrialData, weights: dict[str, WeightsBundle], name: str
) -> int:
    """msa search --nested (Ray is up): the options saved as a search's, then the outer folds."""
    experiment = f"{storage_root(options.output.storage).rstrip('/')}/{name}"
    if not options.output.resume:
        write_json(f"{experiment}/{ARGS_FILE}", options.to_json())
    return nested_cross_validate(options, data, weights, experiment, options.output.resume)


def run_nested_command(
    options: SearchOptions, data, weights: dict[str, WeightsBundle], experiment: str, resume: bool
) -> int:
    """msa crossval --nested once its arguments and data are checked: Ray up, the folds, Ray down."""
    return on_ray(
        options,
        data,
        lambda data: nested_cross_validate(options, data, weights, experiment, resume),
        folds=options.evaluation.nested,
        folds_flag="--nested",
    )

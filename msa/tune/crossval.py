"""Cross-validation by actor of one configuration, as a Ray Tune grid over the folds.

Each fold is a trial of its own Ray experiment ``EXPERIMENT/crossval_<folds>/``: the config
with ``fold`` = 1..K, trained from scratch for ``epochs`` on the fold's training actors by the
search's own trainable (msa.tune.trainable), so the folds get the GPUs, the feature cache,
retries, resume and a cluster exactly as a search's trials do. Its best epoch is chosen on the
fold's validation actors (the best-trial rule, via the kept checkpoints); only then is that
checkpoint evaluated once on the fold's test actors, as a Ray task like a search's final test.
The classical baseline (msa.baseline) runs on every fold in one task. ``crossval.json``
(msa.tune.crossval_file) records it all.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import ray
from ray import tune

from msa.baseline import baseline_for_folds
from msa.data.experiment import FoundData, TrialData
from msa.data.folds import Fold, folds_of, protocol
from msa.experiment_dir import CROSSVAL_FILE, crossval_folder
from msa.trial import TrialSettings
from msa.tune.crossval_file import FoldOutcome, crossval_payload, format_crossval
from msa.tune.options import CrossvalOptions, SearchOptions
from msa.tune.ray_session import fit_noticing_interrupts, on_ray, trial_settings
from msa.tune.summary import (
    best_trial,
    error_message,
    evaluate_checkpoint,
    pretrained_summary,
    run_baseline,
    trial_status,
    with_trial_resources,
    write_json,
)
from msa.tune.trainable import train_trial
from msa.tune.tuner import concurrency, run_config, storage_root, trainable, trial_name
from msa.weights import WeightsBundle

FOLD_KEY = "fold"  # the grid's key in each fold trial's config


def train_fold(config: dict, settings: TrialSettings, folds: tuple[TrialData, ...]) -> None:
    """One fold: the search's trainable on the fold's clips."""
    fold = config[FOLD_KEY]
    trial_config = {key: value for key, value in config.items() if key != FOLD_KEY}
    train_trial(trial_config, replace(settings, data=folds[fold - 1]))


def crossval_tuner(
    options: SearchOptions,
    settings: TrialSettings,
    fold_datas: tuple[TrialData, ...],
    config: dict,
    experiment: str,
    folds: str,
) -> tune.Tuner:
    """The folds' Tuner: restored where a run of the same folds exists (finished folds stay as
    they are), else a new grid."""
    path = crossval_folder(experiment, folds)
    fold_trainable = trainable(options.resources, settings, train_fold, folds=fold_datas)
    if tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable=fold_trainable, resume_errored=True)
    resources = options.resources
    return tune.Tuner(
        fold_trainable,
        param_space={**config, FOLD_KEY: tune.grid_search(list(range(1, len(fold_datas) + 1)))},
        tune_config=tune.TuneConfig(
            num_samples=1,
            max_concurrent_trials=resources.max_concurrent
            or concurrency(ray.cluster_resources(), resources, len(fold_datas)),
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=run_config(
            storage_root(experiment), path.rsplit("/", 1)[1], options.budget.mode, resources.max_failures
        ),
    )


def evaluate_folds(
    results, folds: list[Fold], fold_datas: tuple[TrialData, ...], options: SearchOptions
) -> list[FoldOutcome]:
    """Each fold's best checkpoint (chosen on its validation actors) tested on its test actors,
    the folds in parallel; the baseline on every fold in one more task."""
    budget, resources = options.budget, options.resources
    by_fold = {result.config[FOLD_KEY]: result for result in results}
    evaluate = with_trial_resources(evaluate_checkpoint, resources)
    chosen, tasks = {}, {}
    for fold in folds:
        best = (
            best_trial([by_fold[fold.number]], budget.metric, budget.mode) if fold.number in by_fold else None
        )
        if best is not None:
            _, checkpoint, metrics = best
            chosen[fold.number] = metrics
            tasks[fold.number] = evaluate.remote(
                checkpoint, fold_datas[fold.number - 1], budget.seed, resources.threads
            )
    baselines = run_baseline(baseline_for_folds, fold_datas, resources)
    if isinstance(baselines, dict):  # it failed: the deep results stand without it
        baselines = [baselines] * len(folds)
    tests = dict(zip(tasks, ray.get(list(tasks.values()))))
    outcomes = []
    for fold, baseline in zip(folds, baselines, strict=True):
        result = by_fold.get(fold.number)
        outcomes.append(
            FoldOutcome(
                fold=fold,
                trial=Path(result.path).name if result is not None else None,
                status=trial_status(result) if result is not None else "PENDING",
                error=error_message(result.error)
                if result is not None and result.error is not None
                else None,
                val=chosen.get(fold.number, {}),
                test=tests.get(fold.number),
                baseline=baseline,
            )
        )
    return outcomes


def cross_validate(
    options: SearchOptions,
    folds_arg: str,
    epochs: int,
    data: TrialData,
    weights: dict[str, WeightsBundle],
    config: dict,
    experiment: str,
    out: str | None = None,
) -> int:
    """Cross-validate ``config`` over ``data``'s actors (Ray is up): train the folds, test each
    on its actors, write and print crossval.json -> the exit status: 0 when every fold
    finished, 1 when some failed, 130 when stopped by Ctrl-C (with the command that resumes it).
    Raises FoldError / SplitError for folds the data cannot make."""
    started = time.perf_counter()
    folds, fold_datas = zip(*folds_of(data, folds_arg, options.budget.seed))
    folds = list(folds)
    settings = replace(trial_settings(options, data, weights), max_epochs=epochs)
    tuner = crossval_tuner(options, settings, fold_datas, config, experiment, folds_arg)
    try:
        results = fit_noticing_interrupts(tuner)
    except KeyboardInterrupt:
        print(
            "\ninterrupted; finished folds are kept. Continue with:\n"
            f"  msa crossval {experiment} --folds {folds_arg} --resume",
            file=sys.stderr,
        )
        return 130
    outcomes = evaluate_folds(results, folds, fold_datas, options)
    if len(results):  # a restored run's own config, whatever was asked this time
        config = {key: value for key, value in results[0].config.items() if key != FOLD_KEY}
    best_metrics = next((outcome.val for outcome in outcomes if outcome.test), None)
    payload = crossval_payload(
        outcomes,
        experiment=experiment,
        space=options.space,
        folds=folds_arg,
        protocol=protocol(folds_arg),
        seed=options.budget.seed,
        epochs=epochs,
        metric=options.budget.metric,
        mode=options.budget.mode,
        labels=list(data.labels),
        config=config,
        pretrained=pretrained_summary(options.weights.pretrained, weights, best_metrics),
    )
    destination = out or f"{experiment.rstrip('/')}/{CROSSVAL_FILE}"
    write_json(destination, payload)
    print()
    print(format_crossval(payload))
    print(f"in {(time.perf_counter() - started) / 60:.1f} min; crossval.json: {destination}")
    return 0 if payload["folds_completed"] == payload["folds_total"] else 1


def run_crossval_command(
    options: SearchOptions,
    cv: CrossvalOptions,
    data: TrialData | FoundData,
    weights: dict[str, WeightsBundle],
    config: dict,
    experiment: str,
) -> int:
    """msa crossval once its arguments and data are checked: Ray up, the folds, Ray down."""
    epochs = cv.epochs or options.budget.max_epochs
    return on_ray(
        options,
        data,
        lambda data: cross_validate(options, cv.folds, epochs, data, weights, config, experiment, cv.out),
        folds=cv.folds,
    )

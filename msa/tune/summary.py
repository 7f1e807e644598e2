"""After a search: the best trial's best checkpoint evaluated once on the test actors, the
classical baseline on the same actors, and ``summary.json`` (its schema: docs/reference/files.md)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import ray

from msa.baseline import FEATURE_SETS
from msa.data import is_uri, remote_filesystem
from msa.data.experiment import TrialData
from msa.data.folds import suggested_folds
from msa.experiment_dir import (
    CHECKPOINT_FILE,
    COPIED_FROM,
    MUTABLE_HYPERPARAMETERS,
    POPULATION_SCHEDULERS,
    VAL_KEYS,
    finite,
    has_metric,
    lineage,
    ranking_key,
    trial_folder,
)
from msa.models import BACKBONE_BRANCHES, backbone_branches, model_config
from msa.trial.evaluation import evaluate_test_actors
from msa.tune.front import front_lines, front_summary
from msa.tune.options import BudgetOptions, ResourceOptions, SearchOptions
from msa.weights import WeightsBundle


def trial_status(result) -> str:
    if result.error is not None:
        return "ERROR"
    return "TERMINATED" if result.metrics else "PENDING"  # never started (e.g. --time-budget ran out)


def best_trial(results, metric: str, mode: str):
    """(result, checkpoint, the metrics reported with it) of the best kept checkpoint of any
    trial, by msa.experiment_dir's best-trial rule (the analysis uses the same); None when no
    epoch finished with a finite value."""
    candidates = [
        (result, checkpoint, metrics)
        for result in results
        for checkpoint, metrics in (result.best_checkpoints or [])
        if has_metric(metrics, metric)
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda candidate: ranking_key(candidate[2], metric, mode))


def start_evaluating_best(results, budget: BudgetOptions, resources: ResourceOptions, data: TrialData):
    """Start the one evaluation of the best checkpoint on the test actors -> its Ray object ref
    (``ray.get`` gives the test metrics), None when no epoch finished. A Ray task with a trial's
    resources: on a cluster it runs on a worker (a GPU one when trials get GPUs), whose cache it
    completes with the test clips first; the caller computes the baseline meanwhile."""
    best = best_trial(results, budget.metric, budget.mode)
    if best is None:
        return None
    _, checkpoint, _ = best
    task = with_trial_resources(evaluate_checkpoint, resources)
    return task.remote(checkpoint, data, budget.seed, resources.threads)


def with_trial_resources(function, resources: ResourceOptions):
    """``function`` as a Ray task that gets what a trial gets (a GPU node's when trials get GPUs)."""
    return ray.remote(function).options(num_cpus=resources.cpus_per_trial, num_gpus=resources.gpus_per_trial)


def run_baseline(function, data, resources: ResourceOptions):
    """``function(data, threads)``: msa.baseline's baseline_for (summary.json's ``baseline``) or
    baseline_for_folds, seconds of CPU. Run in this process, whose machine prepared the clips; on
    a cluster (``--address``) as a Ray task, on a node that prepares what it lacks. A failure is
    returned as {"error": ...} with a warning: the deep results stand without it."""
    try:
        if resources.address is None:
            return function(data, resources.threads)
        task = ray.remote(function).options(num_cpus=resources.cpus_per_trial)
        return ray.get(task.remote(data, resources.threads))
    except Exception as error:
        message = error_message(error)
        print(f"warning: the classical baseline failed: {message}", file=sys.stderr)
        return {"error": message}


def evaluate_checkpoint(checkpoint, data: TrialData, seed: int, threads: int) -> dict:
    """evaluate_test_actors on a Ray checkpoint (fetched from the storage where it lives)."""
    with checkpoint.as_directory() as folder:
        return evaluate_test_actors(Path(folder) / CHECKPOINT_FILE, data, seed, threads)


def summarise(
    results,
    options: SearchOptions,
    data: TrialData,
    test: dict | None,
    weights: dict[str, WeightsBundle],
    baseline: dict | None = None,
) -> dict:
    """summary.json (its schema: docs/reference/files.md)."""
    metric, mode, pretrained = options.budget.metric, options.budget.mode, options.weights.pretrained
    statuses = Counter(trial_status(r) for r in results)
    best = best_trial(results, metric, mode)
    summary = {
        "space": options.space,
        "metric": metric,
        "mode": mode,
        "num_trials": len(results),
        "trials_by_status": dict(sorted(statuses.items())),
        "best_trial": None,
        "best_config": None,
        "best_val": None,
        "schedule": None,  # population searches: the best member's hyperparameters per epoch
        **front_summary(results, options.budget),  # --objectives: the Pareto-optimal trials
        "test": test,
        "baseline": baseline,
        "data": data.summary(),
        "pretrained": pretrained_summary(pretrained, weights, None),
        # Trials that ended ERROR (retries used up) and why; trials stopped for a NaN / inf loss.
        "errors": {Path(r.path).name: error_message(r.error) for r in results if r.error is not None},
        "stopped_non_finite": {
            Path(r.path).name: r.metrics["stop_reason"]
            for r in results
            if r.error is None and (r.metrics or {}).get("stop_reason")
        },
    }
    if best is not None:
        result, _, metrics = best
        summary["best_trial"] = Path(result.path).name
        summary["best_config"] = dict(result.config)
        summary["best_val"] = {k: metrics[k] for k in VAL_KEYS if k in metrics}
        summary["pretrained"] = pretrained_summary(pretrained, weights, metrics)
        if options.budget.scheduler in POPULATION_SCHEDULERS:
            summary["schedule"] = member_schedule(results, metrics["trial_id"])
    return summary


def member_schedule(results, trial_id: str) -> list[dict]:
    """summary.json's ``schedule`` of a population search: every epoch that made the best
    member's weights (msa.experiment_dir.lineage: inherited ones from the members it copied),
    with the mutable hyperparameters it trained with, whose run (trial folder) it was, and
    the folder of the trial it copied on the epoch after an exploit."""
    histories = {}
    for result in results:
        frame = result.metrics_dataframe
        if frame is None or frame.empty:
            continue
        rows = frame.to_dict("records")
        histories[str(rows[0]["trial_id"])] = [
            {
                "epoch": int(row["epoch"]),
                COPIED_FROM: row.get(COPIED_FROM) if isinstance(row.get(COPIED_FROM), str) else "",
                "config": {
                    key.removeprefix("config/"): value
                    for key, value in row.items()
                    if key.startswith("config/")
                },
            }
            for row in rows
            if "epoch" in row
        ]
    return [
        {
            "epoch": row["epoch"],
            "trial": trial_folder(row["trial"]),
            COPIED_FROM: trial_folder(row[COPIED_FROM]) if row[COPIED_FROM] else "",
            **{
                name: row["config"][name]
                for name in MUTABLE_HYPERPARAMETERS
                if finite(row["config"].get(name)) is not None
            },
        }
        for row in lineage(histories, trial_id)
    ]


def pretrained_summary(mode: str, weights: dict[str, WeightsBundle], best_metrics: dict | None) -> dict:
    """summary.json's ``pretrained``: the --pretrained mode and, per branch, whether the best
    trial loaded a backbone, from which source, and the sha256 of its weights (None: random)."""
    summary: dict = {"mode": mode}
    for branch in BACKBONE_BRANCHES:
        bundle = weights.get(branch)
        loaded = bool((best_metrics or {}).get(f"pretrained_{branch}"))
        summary[branch] = {
            "loaded": loaded,
            "source": bundle.source if loaded else None,
            "sha256": best_metrics.get(f"pretrained_{branch}_sha256") if loaded else None,
        }
    return summary


def describe_pretrained(pretrained: dict, model: str) -> str:
    """One line: what each backbone of the best trial's model (a registered name) started from."""
    backbones = backbone_branches(model_config(model))
    if not backbones:
        return f"none ({model} has no pretrained backbone: trained from scratch)"
    parts = []
    for branch in backbones:
        record = pretrained[branch]
        parts.append(
            f"{branch} {record['source']} (sha256 {record['sha256'][:12]})"
            if record["loaded"]
            else f"{branch} random"
        )
    return ", ".join(parts)


def _speakers(actors: list) -> str:
    return f"actors {actors}" if actors else "(speakers unknown: clips drawn at random)"


def print_baseline(baseline: dict | None, test: dict) -> None:
    """The classical baselines' test scores under the best trial's, and a line when one wins."""
    if not baseline:
        return
    if "error" in baseline:
        print(f"baseline: failed ({baseline['error']})")
        return
    print("classical baselines on the same actors (logistic regression, C chosen on val):")
    present = [name for name in FEATURE_SETS if name in baseline]  # audio files: "audio" alone
    for name in present:
        scores = baseline[name]
        print(
            f"  {name + ' features':<22}test accuracy {scores['accuracy']:.3f}  macro-F1 {scores['f1_macro']:.3f}  "
            f"UAR {scores['uar']:.3f}   (val accuracy {scores['val_accuracy']:.3f})"
        )
    winners = [name for name in present if baseline[name]["accuracy"] > test["accuracy"]]
    if winners:
        names = ", ".join(winners[:-1]) + (" and " if len(winners) > 1 else "") + winners[-1]
        print(
            f"note: the {names} baseline{'s' if len(winners) > 1 else ''} beat{'' if len(winners) > 1 else 's'} the best trial on the test actors"
        )


def error_message(error: BaseException) -> str:
    """One line for a trial's error: the exception the trainable raised, not Ray's wrapping."""
    cause = getattr(error, "cause", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    message = lines[-1] if lines else ""
    name = type(cause).__name__
    return message if message.startswith(name) else f"{name}: {message}"


def write_json(destination: str, payload: dict) -> None:
    """Write a JSON file to a local path or a storage URI (pyarrow filesystems)."""
    text = json.dumps(payload, indent=2)
    if not is_uri(destination):
        path = Path(destination)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return
    fs, path = remote_filesystem(destination)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as handle:
        handle.write(text.encode())


def print_summary(summary: dict, experiment: str, seconds: float) -> None:
    statuses = ", ".join(f"{n} {status}" for status, n in summary["trials_by_status"].items())
    print(f"\n== {summary['space']}: {summary['num_trials']} trials ({statuses}) in {seconds / 60:.1f} min")
    for trial, message in summary["errors"].items():
        print(f"  {trial} ERROR: {message}")
    for trial, reason in summary["stopped_non_finite"].items():
        print(f"  {trial} stopped: {reason}")
    if summary["best_trial"] is None:
        print("no trial finished an epoch; nothing to evaluate")
        return
    val, test = summary["best_val"], summary["test"]
    print(f"best trial {summary['best_trial']} (epoch {val.get('epoch')}), config:")
    for key, value in sorted(summary["best_config"].items()):
        print(f"  {key} = {value:.3g}" if isinstance(value, float) else f"  {key} = {value}")
    print(
        f"val   accuracy {val['val_acc']:.3f}  macro-F1 {val['val_f1']:.3f}  UAR {val['val_uar']:.3f}   {_speakers(summary['data']['actors']['val'])}"
    )
    print(
        f"test  accuracy {test['accuracy']:.3f}  macro-F1 {test['f1_macro']:.3f}  UAR {test['uar']:.3f}   {_speakers(summary['data']['actors']['test'])}"
    )
    print_baseline(summary.get("baseline"), test)
    for line in front_lines(summary, experiment):
        print(line)
    print(
        f"chance: {1 / len(test['labels']):.3f}; pretrained weights (--pretrained {summary['pretrained']['mode']}): {describe_pretrained(summary['pretrained'], summary['best_config']['model'])}"
    )
    print(f"\nsummary:     {experiment}/summary.json")
    if experiment.startswith("file://"):
        print(f"tensorboard: tensorboard --logdir {experiment.removeprefix('file://')}")
    elif is_uri(experiment):
        print(
            f"tensorboard: copy {experiment} here (gsutil -m rsync -r / aws s3 sync), then tensorboard --logdir THAT_FOLDER"
        )
    else:
        print(f"tensorboard: tensorboard --logdir {experiment}")
    print(f"report:      msa report {experiment}")
    data = summary["data"]
    speakers = {speaker for part in data["actors"].values() for speaker in part}
    folds = suggested_folds(data.get("dataset", "ravdess"), speakers)
    if folds is not None:
        print(f"crossval:    msa crossval {experiment} --folds {folds}")
    print(f"notebook:    make notebook EXPERIMENT={experiment}   (or make notebook-html: headless)")
    print(f"predict:     msa predict {experiment} RECORDING.mp4 [--subtitles RECORDING.vtt]")
    print(f"export:      msa export {experiment} --format onnx --out model.onnx")

"""``crossval.json``: what a cross-validation by actor measured (its schema: docs/reference/files.md),
built from the folds' outcomes and printed as a table. No Ray in here."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from msa.data.folds import Fold
from msa.experiment_dir import TEST_METRICS

FOLD_VAL_KEYS = ("val_acc", "val_uar", "val_f1", "val_loss")  # at the tested epoch


@dataclass(frozen=True)
class FoldOutcome:
    """One fold after its trial: the epoch tested (None when the trial never finished one)."""

    fold: Fold
    trial: str | None  # the trial's folder in the folds' Ray experiment
    status: str  # TERMINATED, ERROR, or PENDING (never ran: an interrupted run)
    error: str | None
    val: dict  # the chosen epoch's reported metrics ({} when none)
    test: dict | None  # msa.trial.evaluation's block on the fold's test actors
    baseline: dict | None  # msa.baseline's block on the fold's parts


def crossval_payload(
    outcomes: list[FoldOutcome],
    *,
    experiment: str,
    space: str,
    folds: str,
    protocol: str,
    seed: int,
    epochs: int,
    metric: str,
    mode: str,
    labels: list[str],
    config: dict,
    pretrained: dict,
) -> dict:
    """crossval.json: per fold, the mean and sample std of each test metric over the folds that
    finished, the pooled confusion matrix (their sum) and the same for each baseline."""
    folds_json = [fold_json(outcome) for outcome in outcomes]
    done = [fold for fold in folds_json if fold["confusion_matrix"] is not None]
    payload = {
        "experiment": experiment,
        "space": space,
        "folds_preset": folds,
        "protocol": protocol,
        "seed": seed,
        "epochs": epochs,
        "metric": metric,
        "mode": mode,
        "labels": labels,
        "config": config,
        "pretrained": pretrained,
        "folds": folds_json,
        "folds_completed": len(done),
        "folds_total": len(folds_json),
        **aggregate(
            [{key: fold[key] for key in TEST_METRICS} | {"matrix": fold["confusion_matrix"]} for fold in done]
        ),
        "baseline": baseline_aggregate(folds_json),
    }
    return payload


def fold_json(outcome: FoldOutcome) -> dict:
    fold, test = outcome.fold, outcome.test
    return {
        "fold": fold.number,
        "train_actors": list(fold.train),
        "val_actors": list(fold.val),
        "test_actors": list(fold.test),
        "trial": outcome.trial,
        "status": outcome.status,
        "error": outcome.error,
        "epoch": outcome.val.get("epoch") if test else None,
        **{key: (outcome.val.get(key) if test else None) for key in FOLD_VAL_KEYS},
        **{key: (test[key] if test else None) for key in TEST_METRICS},
        "confusion_matrix": test["confusion_matrix"] if test else None,
        "baseline": outcome.baseline,
    }


def aggregate(rows: list[dict]) -> dict:
    """{"mean", "std", "pooled_confusion_matrix"} of rows holding TEST_METRICS and a "matrix"."""
    if not rows:
        return {"mean": None, "std": None, "pooled_confusion_matrix": None}
    mean = {key: statistics.fmean(row[key] for row in rows) for key in TEST_METRICS}
    std = {key: statistics.stdev(row[key] for row in rows) for key in TEST_METRICS} if len(rows) > 1 else None
    pooled = [
        [sum(values) for values in zip(*matrix_rows)] for matrix_rows in zip(*(r["matrix"] for r in rows))
    ]
    return {"mean": mean, "std": std, "pooled_confusion_matrix": pooled}


def baseline_aggregate(folds_json: list[dict]) -> dict | None:
    """Per baseline feature set, aggregate() over the folds whose baseline ran."""
    blocks = [fold["baseline"] for fold in folds_json if fold["baseline"] and "error" not in fold["baseline"]]
    if not blocks:
        return None
    feature_sets = [key for key, value in blocks[0].items() if isinstance(value, dict)]
    return {
        name: aggregate(
            [
                {key: block[name][key] for key in TEST_METRICS} | {"matrix": block[name]["confusion_matrix"]}
                for block in blocks
            ]
        )
        for name in feature_sets
    }


def _number(value, width: int = 5) -> str:
    return (
        f"{value:.3f}".rjust(width) if isinstance(value, float) and math.isfinite(value) else "-".rjust(width)
    )


def _actors(actors: list[int]) -> str:
    return ",".join(str(a) for a in actors)


def format_crossval(payload: dict) -> str:
    """The console table: a row per fold, then mean and std, the baselines beside."""
    feature_sets = list((payload["baseline"] or {}).keys())
    header = (
        f"{'fold':>4}  {'test actors':<16} {'val actors':<14} {'epoch':>5}  {'WAR':>5}  {'UAR':>5}  {'F1':>5}"
    )
    if feature_sets:
        header += "   baseline WAR " + "/".join(feature_sets)
    lines = [
        f"== cross-validation of {payload['space']} ({payload['folds_preset']}: {payload['protocol']}): "
        f"{payload['folds_completed']}/{payload['folds_total']} folds, {payload['epochs']} epochs each",
        header,
    ]
    for fold in payload["folds"]:
        row = (
            f"{fold['fold']:>4}  {_actors(fold['test_actors']):<16} {_actors(fold['val_actors']):<14} "
            f"{fold['epoch'] if fold['epoch'] is not None else '-':>5}  "
            f"{_number(fold['accuracy'])}  {_number(fold['uar'])}  {_number(fold['f1_macro'])}"
        )
        baseline = fold["baseline"] or {}
        if feature_sets and "error" not in baseline:
            row += "   " + " / ".join(_number(baseline[name]["accuracy"]) for name in feature_sets)
        if fold["status"] != "TERMINATED" or fold["confusion_matrix"] is None:
            row += f"   {fold['status']}" + (f": {fold['error']}" if fold["error"] else "")
        lines.append(row)
    for stat in ("mean", "std"):
        values = payload[stat]
        if values is None:
            continue
        row = f"{stat:>4}  {'':<16} {'':<14} {'':>5}  " + "  ".join(
            _number(values[key]) for key in TEST_METRICS
        )
        if feature_sets:
            row += "   " + " / ".join(
                _number((payload["baseline"][name][stat] or {}).get("accuracy")) for name in feature_sets
            )
        lines.append(row)
    lines.append(
        f"chance: {1 / len(payload['labels']):.3f}; WAR = accuracy over all test clips, UAR = mean recall"
    )
    return "\n".join(lines)

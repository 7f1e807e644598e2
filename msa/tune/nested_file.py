"""``nested.json``: what a nested cross-validation measured (its schema: docs/reference/files.md
#nested-json), built from the outer folds' outcomes, read back for ``--resume`` and printed as a
table. No Ray in here.

Per outer fold: its speakers, the search's best configuration and inner validation score, the
one test evaluation on the fold's speakers, the classical baselines on the same fold, and what
the fold's search cost (wall time, feature-cache entries it had to compute). Over the folds: the
mean and sample std of the test metrics (crossval.json's arithmetic), and how much the chosen
configurations agree. The file is rewritten after every outer fold, so a killed run keeps the
folds that finished (status COMPLETED).
"""

from __future__ import annotations

import json
import math
import numbers
from collections import Counter
from dataclasses import dataclass

from msa.data.folds import Fold
from msa.experiment_dir import TEST_METRICS
from msa.tune.crossval_file import FOLD_VAL_KEYS, aggregate, baseline_aggregate

COMPLETED = "COMPLETED"  # the fold's search finished and its best trial was tested
FAILED = "FAILED"  # the fold's search finished without a trial that reported an epoch
PENDING = "PENDING"  # not searched yet (an interrupted run)
INNER_PROTOCOL = (
    "one inner split: each outer fold's search trains on the fold's training actors and "
    "validates on its validation actors; the fold's test actors are not in its data"
)


@dataclass(frozen=True)
class OuterOutcome:
    """One outer fold after its search and its one test evaluation."""

    fold: Fold
    status: str  # COMPLETED or FAILED
    trials: int
    best_trial: str | None  # the trial folder in the fold's search
    best_config: dict | None
    inner: dict  # the best trial's reported metrics at its chosen epoch ({} when none)
    test: dict | None  # msa.trial.evaluation's block on the fold's test actors
    baseline: dict | None  # msa.baseline's block on the fold's parts
    seconds: float  # wall time of the fold: search, test evaluation and baseline
    features_computed: int  # feature-cache entries the fold's trials computed (the rest were hits)
    feature_seconds: float  # the longest feature step (first epoch) of the fold's trials


def outer_json(outcome: OuterOutcome) -> dict:
    fold, test = outcome.fold, outcome.test
    return {
        **fold_speakers(fold),
        "status": outcome.status,
        "trials": outcome.trials,
        "best_trial": outcome.best_trial,
        "best_config": outcome.best_config,
        "epoch": outcome.inner.get("epoch"),
        **{key: outcome.inner.get(key) for key in FOLD_VAL_KEYS},
        **{key: (test[key] if test else None) for key in TEST_METRICS},
        "confusion_matrix": test["confusion_matrix"] if test else None,
        "baseline": outcome.baseline,
        "seconds": round(outcome.seconds, 1),
        "features_computed": outcome.features_computed,
        "feature_seconds": round(outcome.feature_seconds, 2),
    }


def pending_json(fold: Fold) -> dict:
    """The row of an outer fold not searched yet: its speakers, every result None."""
    row = outer_json(OuterOutcome(fold, PENDING, 0, None, None, {}, None, None, 0.0, 0, 0.0))
    return {**row, "seconds": None, "features_computed": None, "feature_seconds": None}


def fold_speakers(fold: Fold) -> dict:
    return {
        "fold": fold.number,
        "train_actors": list(fold.train),
        "val_actors": list(fold.val),
        "test_actors": list(fold.test),
    }


def nested_payload(
    outer: list[dict],
    *,
    experiment: str,
    space: str,
    folds: str,
    protocol: str,
    seed: int,
    metric: str,
    mode: str,
    labels: list[str],
    budget: dict,
) -> dict:
    """nested.json from the outer folds' rows (outer_json / pending_json), in fold order."""
    done = [row for row in outer if row["status"] == COMPLETED]
    return {
        "experiment": experiment,
        "space": space,
        "folds_preset": folds,
        "protocol": protocol,
        "inner_folds": 1,
        "inner_protocol": INNER_PROTOCOL,
        "seed": seed,
        "metric": metric,
        "mode": mode,
        "labels": labels,
        "budget": budget,
        "outer_folds": outer,
        "folds_completed": len(done),
        "folds_total": len(outer),
        **aggregate(
            [{key: row[key] for key in TEST_METRICS} | {"matrix": row["confusion_matrix"]} for row in done]
        ),
        "baseline": baseline_aggregate(done),
        "agreement": agreement([row["best_config"] for row in done]),
        "feature_cache": {
            "entries_computed": sum(row["features_computed"] for row in done),
            "per_fold": [row["features_computed"] for row in done],
        },
    }


def _number(value) -> float | None:
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else None


def agreement(configs: list[dict]) -> dict:
    """Per hyperparameter the folds chose: the most common value and the share of folds that
    chose it (1.0: all agree); for numbers also the smallest and largest chosen. A fold whose
    configuration lacks the key (a define-by-run branch it did not take) counts as None."""
    keys = sorted({key for config in configs for key in config})
    result = {}
    for key in keys:
        values = [config.get(key) for config in configs]
        counts = Counter(json.dumps(value, sort_keys=True) for value in values)
        common, count = counts.most_common(1)[0]
        numbers_chosen = [number for number in map(_number, values) if number is not None]
        result[key] = {
            "most_common": json.loads(common),
            "share": count / len(values),
            "min": min(numbers_chosen) if numbers_chosen else None,
            "max": max(numbers_chosen) if numbers_chosen else None,
        }
    return result


def completed_folds(text: str | None) -> dict[int, dict]:
    """Outer fold number -> its row, for the folds nested.json (``text``) records as COMPLETED;
    {} when there is no file yet or it is not valid JSON (the folds are searched again)."""
    try:
        payload = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    rows = payload.get("outer_folds") if isinstance(payload, dict) else None
    return {row["fold"]: row for row in rows or [] if row.get("status") == COMPLETED}


def _value(value, width: int = 5) -> str:
    return (
        f"{value:.3f}".rjust(width) if isinstance(value, float) and math.isfinite(value) else "-".rjust(width)
    )


def optimism(nested: dict, crossval: dict | None) -> dict | None:
    """Non-nested minus nested mean test WAR and UAR (positive: the non-nested CV flatters the
    recipe); None without a crossval.json or a completed fold on either side."""
    if not crossval or not crossval.get("mean") or not nested.get("mean"):
        return None
    return {key: crossval["mean"][key] - nested["mean"][key] for key in ("accuracy", "uar")}


def format_nested(payload: dict, crossval: dict | None = None) -> str:
    """The console table: a row per outer fold (inner score, test, baselines, cost), mean and
    std, the agreement of the chosen configurations, and beside a crossval.json its optimism."""
    feature_sets = list((payload["baseline"] or {}).keys())
    metric = payload["metric"]
    header = (
        f"{'fold':>4}  {'test actors':<14} {'model':<20} {'inner':>5}  {'WAR':>5}  {'UAR':>5}  {'F1':>5}"
        f"  {'min':>5}  {'entries':>7}"
    )
    if feature_sets:
        header += "   baseline WAR " + "/".join(feature_sets)
    lines = [
        f"== nested cross-validation of {payload['space']} ({payload['folds_preset']}: {payload['protocol']}): "
        f"{payload['folds_completed']}/{payload['folds_total']} outer folds, "
        f"{payload['budget']['num_samples']} trials x {payload['budget']['max_epochs']} epochs each; "
        f"inner = {metric} on the fold's validation actors",
        header,
    ]
    for row in payload["outer_folds"]:
        model = (row["best_config"] or {}).get("model", "-")
        minutes = row["seconds"] / 60 if row["seconds"] is not None else None
        line = (
            f"{row['fold']:>4}  {','.join(map(str, row['test_actors'])):<14} {model:<20} "
            f"{_value(row.get(metric))}  {_value(row['accuracy'])}  {_value(row['uar'])}  "
            f"{_value(row['f1_macro'])}  {_value(minutes)}  {row['features_computed'] if row['features_computed'] is not None else '-':>7}"
        )
        baseline = row["baseline"] or {}
        if feature_sets and baseline and "error" not in baseline:
            line += "   " + " / ".join(_value(baseline[name]["accuracy"]) for name in feature_sets)
        if row["status"] != COMPLETED:
            line += f"   {row['status']}"
        lines.append(line)
    for stat in ("mean", "std"):
        values = payload[stat]
        if values is not None:
            row = f"{stat:>4}  {'':<14} {'':<20} {'':>5}  " + "  ".join(
                _value(values[k]) for k in TEST_METRICS
            )
            lines.append(row)
    agreeing = [
        f"{key} {entry['share']:.0%}"
        + (
            f" ({entry['min']:.3g}..{entry['max']:.3g})"
            if entry["min"] is not None and entry["share"] < 1
            else ""
        )
        for key, entry in payload["agreement"].items()
    ]
    if agreeing:
        lines.append("folds agreeing on the most common choice: " + ", ".join(agreeing))
    gap = optimism(payload, crossval)
    if gap is not None:
        lines.append(
            f"non-nested CV (crossval.json, {crossval['folds_preset']}): WAR {crossval['mean']['accuracy']:.3f}, "
            f"UAR {crossval['mean']['uar']:.3f}; optimism (non-nested - nested): "
            f"WAR {gap['accuracy']:+.3f}, UAR {gap['uar']:+.3f}"
        )
    lines.append(
        f"chance: {1 / len(payload['labels']):.3f}; WAR = accuracy over all test clips, UAR = mean recall; "
        "min = the fold's wall time; entries = feature-cache entries its search computed (the rest were cache hits)"
    )
    return "\n".join(lines)

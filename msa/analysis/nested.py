"""Nested cross-validation (nested.json) beside the non-nested one (crossval.json) and the baselines.

``msa search --nested FOLDS`` (or ``msa crossval EXPERIMENT --nested FOLDS``) writes
``EXPERIMENT/nested.json`` (NESTED_FILE; msa.tune.nested_file writes it, its schema is
docs/reference/files.md#nested-json): per outer fold a whole search on the fold's other speakers,
its best trial tested once on the fold. Its mean is the recipe's score on speakers that neither
training nor the choice of configuration saw; crossval.json's mean, where the configuration was
chosen once on validation actors that some folds test on, is above it by the optimism
(non-nested minus nested). Nothing here needs Ray.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from msa.analysis.baselines import BASELINE_SETS
from msa.analysis.crossval import actors_text, baseline_blocks, best_baseline, fold_baseline, mean_std_text
from msa.analysis.files import ExperimentFiles
from msa.experiment_dir import NESTED_FILE, TEST_METRICS, finite

NESTED_COMMAND = "msa crossval EXPERIMENT --nested K"  # how to make one
REQUIRED_KEYS = ("folds_preset", "protocol", "outer_folds", "folds_completed", "folds_total", "mean", "std")
REQUIRED_FOLD_KEYS = ("fold", "test_actors", "status", "best_config", *TEST_METRICS)
COMPLETED = "COMPLETED"  # an outer fold whose search finished and was tested
OPTIMISM_KEYS = {"accuracy": "WAR", "uar": "UAR"}  # what the optimism is stated for


def load_nested(files: ExperimentFiles) -> dict | None:
    """nested.json, None when there is none. Raises ValueError naming the file when it is not
    valid JSON or lacks what the report reads."""
    nested = files.read_json_object(NESTED_FILE)
    if nested is None:
        return None
    where = files.path(NESTED_FILE)
    missing = [key for key in REQUIRED_KEYS if key not in nested]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    for position, fold in enumerate(nested["outer_folds"], start=1):
        lacking = [key for key in REQUIRED_FOLD_KEYS if not isinstance(fold, dict) or key not in fold]
        if lacking:
            raise ValueError(f"{where}: outer fold {position} lacks {', '.join(lacking)}")
    return nested


def same_folds(nested: Mapping, cv: Mapping | None) -> bool:
    """Whether crossval.json tested the same speakers fold by fold (same --folds, same seed)."""
    if not cv:
        return False
    tests = [sorted(fold["test_actors"]) for fold in nested["outer_folds"]]
    return tests == [sorted(fold["test_actors"]) for fold in cv["folds"]]


def optimism(nested: Mapping, cv: Mapping | None) -> dict[str, float] | None:
    """Non-nested minus nested mean test WAR and UAR; None without both means."""
    if not cv or not cv.get("mean") or not nested.get("mean"):
        return None
    return {key: cv["mean"][key] - nested["mean"][key] for key in OPTIMISM_KEYS}


def nested_comparison(nested: Mapping, cv: Mapping | None) -> pd.DataFrame:
    """Mean ± std over the folds: nested CV, non-nested CV (crossval.json, when there is one) and
    the classical baselines fitted on the nested run's folds."""
    rows = [
        {
            "evaluation": "nested CV (a search per outer fold)",
            **{
                name: mean_std_text(nested["mean"][key], (nested["std"] or {}).get(key))
                for key, name in TEST_METRICS.items()
            },
        }
    ]
    if cv and cv.get("mean"):
        rows.append(
            {
                "evaluation": f"non-nested CV of {cv['config'].get('model', 'one configuration')} ({cv['folds_preset']})",
                **{
                    name: mean_std_text(cv["mean"][key], (cv["std"] or {}).get(key))
                    for key, name in TEST_METRICS.items()
                },
            }
        )
    for name, record in baseline_blocks(nested).items():
        if record is None:  # a feature set the data lacks (video on audio files)
            continue
        mean, std = (record or {}).get("mean") or {}, (record or {}).get("std") or {}
        rows.append(
            {
                "evaluation": f"baseline {name}",
                **{label: mean_std_text(mean.get(key), std.get(key)) for key, label in TEST_METRICS.items()},
            }
        )
    return pd.DataFrame(rows, columns=["evaluation", *TEST_METRICS.values()])


def nested_table(nested: Mapping, cv: Mapping | None) -> pd.DataFrame:
    """One row per outer fold: its test actors, the model its search chose and the inner score,
    the nested test WAR / UAR, the non-nested ones on the same fold (when crossval.json has the
    same folds), the best baseline's WAR, and the fold's wall time and feature entries computed."""
    metric = nested.get("metric", "val_acc")
    by_fold = {fold["fold"]: fold for fold in cv["folds"]} if same_folds(nested, cv) else {}
    rows = []
    for fold in nested["outer_folds"]:
        other = by_fold.get(fold["fold"], {})
        best = best_baseline({name: fold_baseline(fold, name) for name in BASELINE_SETS})
        rows.append(
            {
                "fold": str(fold["fold"]),
                "test actors": actors_text(fold["test_actors"]),
                "status": fold["status"],
                "chosen model": (fold["best_config"] or {}).get("model"),
                f"inner {metric}": finite(fold.get(metric)),
                "nested WAR": finite(fold["accuracy"]),
                "nested UAR": finite(fold["uar"]),
                "non-nested WAR": finite(other.get("accuracy")),
                "non-nested UAR": finite(other.get("uar")),
                "best baseline WAR": best[1]["accuracy"] if best else None,
                "best baseline": best[0] if best else None,
                "minutes": finite(fold.get("seconds")) / 60
                if finite(fold.get("seconds")) is not None
                else None,
                "entries computed": fold.get("features_computed"),
            }
        )
    table = pd.DataFrame(rows)
    if not by_fold:
        table = table.drop(columns=["non-nested WAR", "non-nested UAR"])
    return table


def agreement_table(nested: Mapping) -> pd.DataFrame:
    """Per hyperparameter: the most common choice, the share of folds that made it, the range."""
    rows = [
        {
            "hyperparameter": key,
            "most common": entry["most_common"],
            "share of folds": f"{entry['share']:.0%}",
            "range": f"{entry['min']:.3g} – {entry['max']:.3g}" if entry.get("min") is not None else None,
        }
        for key, entry in (nested.get("agreement") or {}).items()
    ]
    return pd.DataFrame(rows, columns=["hyperparameter", "most common", "share of folds", "range"])


def nested_notes(nested: Mapping, cv: Mapping | None) -> list[str]:
    """The optimism stated, or why it cannot be; incomplete folds; what the cache saved."""
    notes = []
    gap = optimism(nested, cv)
    if gap is None:
        notes.append(
            "no non-nested cross-validation to compare with (crossval.json): "
            "msa crossval EXPERIMENT --folds FOLDS makes one"
            if not cv
            else "no completed fold on one side: no optimism to state"
        )
    else:
        stated = ", ".join(f"{name} {gap[key]:+.3f}" for key, name in OPTIMISM_KEYS.items())
        notes.append(
            f"optimism (non-nested minus nested mean): {stated}; positive means the non-nested CV, whose "
            "configuration was chosen on validation actors some folds test on, flatters the recipe"
        )
        if not same_folds(nested, cv):
            notes.append(
                f"crossval.json used other folds ({cv['folds_preset']}) than nested.json ({nested['folds_preset']}): "
                "compare the means only"
            )
    if nested["folds_completed"] < nested["folds_total"]:
        notes.append(
            f"{nested['folds_completed']} of {nested['folds_total']} outer folds completed: "
            "the means cover those only (msa crossval EXPERIMENT --nested FOLDS --resume continues)"
        )
    cache = nested.get("feature_cache") or {}
    if cache.get("per_fold"):
        notes.append(
            "feature-cache entries computed per outer fold: "
            + ", ".join(map(str, cache["per_fold"]))
            + " (the folds share one cache: a fold computes only the entries no earlier fold computed for the same frozen layers)"
        )
    return notes

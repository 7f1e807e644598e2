"""What the trackers record, in the shapes they take: flat parameters and real-valued metrics."""

from __future__ import annotations

import numbers

MAX_PARAM_LENGTH = 6000  # characters MLflow keeps of a parameter's value


def flat_params(values: dict, prefix: str = "") -> dict[str, str]:
    """Nested dicts as "a/b" keys, values as strings (None left out)."""
    params = {}
    for key, value in values.items():
        if isinstance(value, dict):
            params.update(flat_params(value, f"{prefix}{key}/"))
        elif value is not None:
            params[f"{prefix}{key}"] = str(value)[:MAX_PARAM_LENGTH]
    return params


def numeric(values: dict, prefix: str = "") -> dict[str, float]:
    """The real-number entries of ``values`` (bools, strings and lists left out), nested dicts
    flattened with "_"."""
    metrics = {}
    for key, value in values.items():
        if isinstance(value, dict):
            metrics.update(numeric(value, f"{prefix}{key}_"))
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            metrics[f"{prefix}{key}"] = float(value)
    return metrics


def search_result(summary: dict) -> dict[str, float]:
    """summary.json's numbers the trackers show for the whole search: test_<metric> of the best
    trial on the test actors, best_<val metric> (best_val_acc, ..., best_epoch) at its chosen
    epoch, and each classical
    baseline's baseline_<features>_accuracy (on the same test actors)."""
    metrics = {
        **numeric(summary.get("test") or {}, "test_"),
        **numeric(summary.get("best_val") or {}, "best_"),
    }
    for feature_set, block in (summary.get("baseline") or {}).items():
        if isinstance(block, dict) and isinstance(block.get("accuracy"), numbers.Real):
            metrics[f"baseline_{feature_set}_accuracy"] = float(block["accuracy"])
    return metrics

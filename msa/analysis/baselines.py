"""The classical baselines beside the best trial on the test actors.

When a search finishes, summary.json's ``baseline`` block holds a multinomial logistic
regression per feature set (BASELINE_SETS: MFCC statistics, frame statistics, both), fitted
on the search's training actors, its regularisation chosen on the validation actors and scored
on the same test actors as the best trial's ``test`` block::

    "baseline": {"audio": {"accuracy", "uar", "f1_macro", "val_accuracy", "c", "dims",
                           "confusion_matrix"}, "video": {...}, "audiovisual": {...}, "seconds"}

Older searches have no such block; a failed fit leaves ``{"error": "..."}`` (for the block or
for one set). Nothing here needs Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from msa.experiment_dir import BASELINE_FEATURE_SETS, TEST_METRICS, finite

BASELINE_SETS = BASELINE_FEATURE_SETS  # in display order
NO_BASELINE = "no baseline in this summary.json (searches before the classical baselines have none)"


@dataclass(frozen=True)
class BaselineComparison:
    """The best trial and the classical baselines on the test actors, and what to note."""

    table: pd.DataFrame  # one row per model; empty when there is nothing to compare
    notes: list[str] = field(default_factory=list)  # what is missing, failed, or beats the best trial
    caption: str = ""  # which actors, how long the baselines took


def baseline_error(record) -> str | None:
    """The error a baseline block (or one set of it) records; a description when it is no dict."""
    if record is None:
        return None
    if not isinstance(record, Mapping):
        return f"unreadable baseline record {record!r}"
    error = record.get("error")
    return None if error is None else str(error)


def beats(baseline: Mapping | None, reference: float | None, key: str = "accuracy") -> bool:
    """Whether a baseline's ``key`` is strictly above ``reference`` (both finite)."""
    value = finite((baseline or {}).get(key))
    return value is not None and reference is not None and value > reference


def baseline_comparison(source) -> BaselineComparison:
    """The table "test actors: best trial vs classical baselines" of an Experiment (or of a
    summary.json dict; None: no summary yet): rows best trial, baseline audio / video /
    audiovisual; columns accuracy, UAR, macro-F1, val accuracy, and the baselines'
    regularisation C and feature dimensions. Notes say why a row is missing and when a
    baseline beats the best trial's test accuracy."""
    summary = getattr(source, "summary", source)
    if summary is None:
        return BaselineComparison(
            pd.DataFrame(), ["no summary.json yet (written when the search finishes): no baseline"]
        )
    block = summary.get("baseline")
    if block is None:
        return BaselineComparison(pd.DataFrame(), [NO_BASELINE])
    if error := baseline_error(block):
        return BaselineComparison(pd.DataFrame(), [f"the classical baselines failed: {error}"])
    test, val = summary.get("test") or {}, summary.get("best_val") or {}
    rows, notes = [], []
    if test:
        rows.append(
            {
                "model": f"best trial ({summary.get('best_trial')})",
                **{name: finite(test.get(key)) for key, name in TEST_METRICS.items()},
                "val accuracy": finite(val.get("val_acc")),
                "C": None,
                "dims": None,
            }
        )
    else:
        notes.append("summary.json has no test evaluation of a best trial: the baselines are shown alone")
    reference = finite(test.get("accuracy"))
    for name in BASELINE_SETS:
        record = block.get(name)
        if record is None and name != "audio" and "audio" in block:
            continue  # data without video: the audio baseline alone
        if record is None:
            notes.append(f"no {name} baseline in this summary.json")
            continue
        if error := baseline_error(record):
            notes.append(f"the {name} baseline failed: {error}")
            continue
        rows.append(
            {
                "model": f"baseline {name}",
                **{label: finite(record.get(key)) for key, label in TEST_METRICS.items()},
                "val accuracy": finite(record.get("val_accuracy")),
                "C": finite(record.get("c")),
                "dims": None if finite(record.get("dims")) is None else int(record["dims"]),
            }
        )
        if beats(record, reference):
            notes.append(
                f"the classical {name} baseline beats the best trial on the test actors "
                f"(accuracy {record['accuracy']:.3f} vs {reference:.3f})"
            )
    actors = (summary.get("data") or {}).get("actors") or {}
    seconds = finite(block.get("seconds"))
    caption = (
        f"test actors {actors.get('test', '?')}, validation actors {actors.get('val', '?')}; "
        "each baseline is a multinomial logistic regression fitted on the training actors, "
        "its C chosen on the validation actors"
        + (f" (all three in {seconds:.1f} s)" if seconds is not None else "")
    )
    table = pd.DataFrame(rows, columns=["model", *TEST_METRICS.values(), "val accuracy", "C", "dims"])
    table["dims"] = pd.array(table["dims"].tolist(), dtype="Int64")
    return BaselineComparison(table, notes, caption)

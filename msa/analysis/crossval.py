"""Cross-validation by actor of one configuration: crossval.json, read and tabulated.

``msa crossval EXPERIMENT --folds K`` trains one configuration (by default the
search's best) once per fold of actors and writes ``EXPERIMENT/crossval.json`` (CROSSVAL_FILE)::

    {"experiment", "space", "folds_preset": "ravdess6" | "4", "protocol", "seed", "epochs",
     "metric", "mode", "labels": [...], "config": {...}, "pretrained": {"mode", "video", "audio"},
     "folds": [{"fold", "train_actors", "val_actors", "test_actors", "trial", "status", "error",
                "epoch", "val_acc", "val_uar", "val_f1", "val_loss",
                "accuracy", "uar", "f1_macro", "confusion_matrix",            # None when it failed
                "baseline": {"audio": {...}, "video": {...}, "audiovisual": {...}}}, ...],
     "folds_completed", "folds_total",
     "mean": {"accuracy", "uar", "f1_macro"}, "std": {...},   # sample std; None below 2 folds
     "pooled_confusion_matrix": [[int]],                       # the completed folds' test matrices summed
     "baseline": {"audio": {"mean", "std", "pooled_confusion_matrix"}, "video": ..., "audiovisual": ...}}

The baselines are msa.analysis.baselines' classical models, fitted per fold on the same actors.
The figures are in msa.analysis.crossval_figures. Nothing here needs Ray.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd

from msa.analysis.baselines import BASELINE_SETS, baseline_error
from msa.analysis.files import ExperimentFiles
from msa.analysis.pretrained import describe_pretrained_branches
from msa.experiment_dir import CROSSVAL_FILE, TEST_METRICS, finite

CROSSVAL_COMMAND = "msa crossval EXPERIMENT --folds K"  # how to make one
REQUIRED_KEYS = (
    "folds_preset",
    "protocol",
    "labels",
    "config",
    "folds",
    "folds_completed",
    "folds_total",
    "mean",
    "std",
    "pooled_confusion_matrix",
)
REQUIRED_FOLD_KEYS = ("fold", "test_actors", "val_actors", "status", *TEST_METRICS)
COMPLETED = "TERMINATED"  # a fold's status when it trained and was evaluated on its test actors


# ----------------------------------------------------------------------------- reading


def load_crossval(source) -> dict | None:
    """crossval.json of an experiment (a location, an ExperimentFiles or an Experiment) -> the
    parsed dict, None when there is none. Raises ValueError naming the file when it is not
    valid JSON or lacks keys (REQUIRED_KEYS, REQUIRED_FOLD_KEYS in each fold)."""
    files = getattr(source, "files", source)
    if not isinstance(files, ExperimentFiles):
        files = ExperimentFiles(os.fspath(files))
    cv = files.read_json_object(CROSSVAL_FILE)
    if cv is None:
        return None
    check_crossval(cv, files.path(CROSSVAL_FILE))
    return cv


def check_crossval(cv, where: str = CROSSVAL_FILE) -> None:
    """Raise ValueError (naming ``where``) when ``cv`` lacks what the analysis reads."""
    if not isinstance(cv, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(cv).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in cv]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    if not isinstance(cv["folds"], list):
        raise ValueError(f"{where}: folds is not a list")
    for position, fold in enumerate(cv["folds"], start=1):
        missing = [key for key in REQUIRED_FOLD_KEYS if not isinstance(fold, dict) or key not in fold]
        if missing:
            raise ValueError(f"{where}: fold {position} lacks {', '.join(missing)}")
    for block in ("mean", "std"):
        if not isinstance(cv[block], dict) or any(key not in cv[block] for key in TEST_METRICS):
            raise ValueError(f"{where}: {block} needs {', '.join(TEST_METRICS)}")


def completed(fold: Mapping) -> bool:
    """Whether the fold trained and has test metrics."""
    return fold.get("status") == COMPLETED and finite(fold.get("accuracy")) is not None


def completed_folds(cv: Mapping) -> list[dict]:
    return [fold for fold in cv["folds"] if completed(fold)]


def fold_baseline(fold: Mapping, name: str) -> dict | None:
    """One fold's baseline of feature set ``name``; None when missing or failed."""
    record = (fold.get("baseline") or {}).get(name)
    return None if record is None or baseline_error(record) else record


def actors_text(actors) -> str:
    """[1, 2, 3, 4, 7] -> "1–4, 7"; "?" for none."""
    runs: list[list[int]] = []
    for actor in sorted(int(a) for a in actors or []):
        if runs and actor == runs[-1][-1] + 1:
            runs[-1].append(actor)
        else:
            runs.append([actor])
    return ", ".join(f"{run[0]}" if len(run) == 1 else f"{run[0]}–{run[-1]}" for run in runs) or "?"


def config_text(config: Mapping) -> str:
    """{"model": "video_iter2", "lr": 0.001} -> "model=video_iter2, lr=0.001"."""
    return ", ".join(
        f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in config.items()
    )


def mean_std_text(mean, std) -> str:
    """ "0.500 ± 0.050"; the mean alone without a std (fewer than 2 folds); "–" without a mean."""
    mean, std = finite(mean), finite(std)
    if mean is None:
        return "–"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


# ----------------------------------------------------------------------------- tables


def crossval_overview(cv: Mapping) -> pd.DataFrame:
    """crossval.json in a few lines, like msa.analysis.overview: protocol, folds, training,
    the configuration, the weights and the result."""
    errors = [f"fold {f['fold']}: {f.get('error') or f['status']}" for f in cv["folds"] if not completed(f)]
    pretrained = cv.get("pretrained") or {}
    rows = {
        "experiment": cv.get("experiment", "?"),
        "space": cv.get("space", "?"),
        "protocol": cv["protocol"],
        "folds": f"preset {cv['folds_preset']}: {cv['folds_completed']} of {cv['folds_total']} completed"
        + (f" ({'; '.join(errors)})" if errors else ""),
        "training": f"up to {cv.get('epochs', '?')} epochs per fold, each fold's epoch chosen by "
        f"{cv.get('metric', '?')} ({cv.get('mode', '?')}) on its validation actors; seed {cv.get('seed', '?')}",
        "config": config_text(cv["config"]),
        "pretrained": f"--pretrained {pretrained.get('mode', '?')}: {describe_pretrained_branches(pretrained)}"
        if pretrained
        else "not recorded",
        "test actors, mean ± std": ", ".join(
            f"{name} {mean_std_text(cv['mean'][key], cv['std'][key])}" for key, name in TEST_METRICS.items()
        ),
    }
    if cv["labels"]:
        rows["chance"] = f"{1 / len(cv['labels']):.3f} ({len(cv['labels'])} classes)"
    return pd.DataFrame({"": list(rows), "value": list(rows.values())})


def best_baseline(records: Mapping[str, Mapping | None], key: str = "accuracy") -> tuple[str, dict] | None:
    """(feature set, record) of the baseline with the highest finite ``key``; None without."""
    scored = [(name, records[name]) for name in BASELINE_SETS if finite((records.get(name) or {}).get(key))]
    return max(scored, key=lambda pair: pair[1][key], default=None)


def crossval_table(cv: Mapping) -> pd.DataFrame:
    """One row per fold (fold, test actors, val actors, status, epoch, accuracy, UAR,
    macro-F1, the best baseline's accuracy and feature set; error when a fold failed), then the
    "mean" and "std" rows as crossval.json gives them (the baseline columns: the baseline
    with the best mean accuracy)."""
    rows = []
    for fold in cv["folds"]:
        best = best_baseline({name: fold_baseline(fold, name) for name in BASELINE_SETS})
        rows.append(
            {
                "fold": str(fold["fold"]),
                "test actors": actors_text(fold["test_actors"]),
                "val actors": actors_text(fold["val_actors"]),
                "status": fold["status"],
                "epoch": fold.get("epoch"),
                **{name: finite(fold.get(key)) for key, name in TEST_METRICS.items()},
                "best baseline accuracy": best[1]["accuracy"] if best else None,
                "best baseline": best[0] if best else None,
                "error": fold.get("error"),
            }
        )
    blocks = baseline_blocks(cv)
    best = best_baseline({name: (record or {}).get("mean") for name, record in blocks.items()})
    for block in ("mean", "std"):
        record = (blocks[best[0]].get(block) or {}) if best else {}
        rows.append(
            {
                "fold": block,
                **{name: finite(cv[block].get(key)) for key, name in TEST_METRICS.items()},
                "best baseline accuracy": finite(record.get("accuracy")),
                "best baseline": best[0] if best else None,
            }
        )
    table = pd.DataFrame(rows)
    table["epoch"] = pd.array([None if finite(e) is None else int(e) for e in table["epoch"]], dtype="Int64")
    if table["error"].isna().all():
        table = table.drop(columns="error")
    return table


def baseline_blocks(cv: Mapping) -> dict[str, dict | None]:
    """Feature set -> crossval.json's baseline summary over the folds; None when missing or failed."""
    block = cv.get("baseline") or {}
    if baseline_error(block):
        return dict.fromkeys(BASELINE_SETS)
    return {name: None if baseline_error(block.get(name)) else block.get(name) for name in BASELINE_SETS}


def crossval_comparison(cv: Mapping) -> pd.DataFrame:
    """Mean ± std over the folds' test actors of the configuration and of each classical
    baseline (fitted per fold on the same actors): rows model, columns accuracy, UAR, macro-F1."""
    model = cv["config"].get("model", "the configuration")
    rows = [
        {
            "model": f"{model} (cross-validated)",
            **{name: mean_std_text(cv["mean"][key], cv["std"][key]) for key, name in TEST_METRICS.items()},
        }
    ]
    for name, record in baseline_blocks(cv).items():
        mean, std = (record or {}).get("mean") or {}, (record or {}).get("std") or {}
        rows.append(
            {
                "model": f"baseline {name}",
                **{label: mean_std_text(mean.get(key), std.get(key)) for key, label in TEST_METRICS.items()},
            }
        )
    return pd.DataFrame(rows, columns=["model", *TEST_METRICS.values()])


def crossval_notes(cv: Mapping) -> list[str]:
    """What to keep in mind: failed folds, a missing std, missing baselines, a baseline that
    beats the configuration on average."""
    notes = []
    failed = [str(f["fold"]) for f in cv["folds"] if not completed(f)]
    if failed:
        notes.append(
            f"fold{'s' if len(failed) > 1 else ''} {', '.join(failed)} did not complete: "
            "the mean, std and pooled matrix cover the completed folds only"
        )
    if len(completed_folds(cv)) < 2:
        notes.append("fewer than 2 completed folds: no standard deviation")
    block = cv.get("baseline")
    if block is None:
        notes.append("no baseline in this crossval.json")
    elif error := baseline_error(block):
        notes.append(f"the classical baselines failed: {error}")
    reference = finite(cv["mean"].get("accuracy"))
    for name, record in baseline_blocks(cv).items():
        mean = finite(((record or {}).get("mean") or {}).get("accuracy"))
        if mean is not None and reference is not None and mean > reference:
            notes.append(
                f"the classical {name} baseline beats the configuration on average over the folds "
                f"(mean accuracy {mean:.3f} vs {reference:.3f})"
            )
    return notes

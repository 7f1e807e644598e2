"""The experiment directory's contract: what ``msa search`` writes and analysis reads.

One search writes one directory ``STORAGE/NAME/`` (a local path or a storage URI)::

    STORAGE/NAME/
        msa_args.json                      ARGS_FILE: the command line (--resume reads it back)
        summary.json                       SUMMARY_FILE: written when the search ends
        optuna.db                          OPTUNA_DB_FILE: the Optuna study (--optuna-storage default)
        mlflow.db, mlartifacts/            MLFLOW_DB_FILE, MLFLOW_ARTIFACTS_DIR: the MLflow store (--mlflow)
        wandb_summary/wandb/               WANDB_SUMMARY_DIR: the W&B summary run's files (--wandb)
        crossval.json                      CROSSVAL_FILE: msa crossval's result
        crossval_<folds>/                  CROSSVAL_PREFIX + --folds: the folds' own Ray experiment
        nested.json                        NESTED_FILE: a nested cross-validation's result
        nested_<folds>/outer_<n>/          NESTED_PREFIX + --nested, OUTER_PREFIX + n: outer fold n's search
        experiment_state-<time>.json       Ray's trial statuses (STATE_PREFIX ... STATE_SUFFIX)
        report.html, report_<name>.png     REPORT_FILE, FIGURE_PREFIX: msa report's output
        trial_<id>/                        TRIAL_PREFIX + Ray's trial id, one folder per trial
            params.json                    PARAMS_FILE: the trial's configuration
            result.json                    RESULT_FILE: one JSON line per epoch (TRIAL_METRICS, RUNG_SCORE, ...)
            error.txt, error.pkl           ERROR_TEXT, ERROR_PICKLE: Ray's record of the trial's failures
            checkpoint_<n>/checkpoint.pt   CHECKPOINT_PREFIX, CHECKPOINT_FILE: the kept checkpoints
            tensorboard/                   TENSORBOARD_DIR: our TensorBoard events
            wandb/offline-run-*/           the trial's W&B run, when --wandb logs offline

docs/reference/files.md documents it for users. This module names every
file in it, the metrics each trial reports, how ASHA compares trials (RUNG_SCORE,
DEFAULT_REDUCTION_FACTOR) and THE best-trial rule (``ranking_key``), so that the search
(``msa.tune``) and the analysis (``msa.analysis``) cannot disagree. It imports neither Ray nor
pandas (analysis reads directories long after Ray is gone), nor ``msa.tune``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

# ----------------------------------------------------------------------------- files

ARGS_FILE = "msa_args.json"  # the parsed command line, saved for --resume
SUMMARY_FILE = "summary.json"
OPTUNA_DB_FILE = "optuna.db"  # --optuna-storage default: the search's Optuna study (sqlite)
MLFLOW_DB_FILE = "mlflow.db"  # --mlflow without a URI: the search's MLflow tracking store (sqlite)
MLFLOW_ARTIFACTS_DIR = "mlartifacts"  # ... and its artifacts (summary.json, report.html)
WANDB_SUMMARY_DIR = "wandb_summary"  # --wandb: the search's summary run writes its files here
CROSSVAL_FILE = "crossval.json"  # a cross-validation by actor of one configuration
CROSSVAL_PREFIX = "crossval_"  # + the --folds value: the folds' Ray experiment, inside this one
NESTED_FILE = "nested.json"  # a nested cross-validation: a whole search per outer fold
NESTED_PREFIX = "nested_"  # + the --nested value: the outer folds' searches, inside this one
OUTER_PREFIX = "outer_"  # + the outer fold's number: that fold's search (a Ray experiment)
PARAMS_FILE = "params.json"  # Ray's: the trial's configuration; marks a folder as a trial's
RESULT_FILE = "result.json"  # Ray's: one JSON line per reported epoch
PROGRESS_FILE = "progress.csv"  # Ray's: the same as CSV (analysis reads RESULT_FILE)
ERROR_TEXT, ERROR_PICKLE = "error.txt", "error.pkl"  # Ray's: a "Failure # N" block per failure
STATE_PREFIX, STATE_SUFFIX = "experiment_state-", ".json"  # Ray's; names end in a sortable timestamp
TRIAL_PREFIX = "trial_"  # trial folders are TRIAL_PREFIX + Ray's trial id
CHECKPOINT_PREFIX = "checkpoint_"  # Ray's checkpoint folders inside a trial folder
CHECKPOINT_FILE = "checkpoint.pt"  # what each checkpoint folder holds (msa.train.save_checkpoint)
TENSORBOARD_DIR = "tensorboard"  # inside the trial folder; synced with each checkpoint
REPORT_FILE = "report.html"  # python -m msa.report
FIGURE_PREFIX = "report_"  # report_<name>.png beside REPORT_FILE


def trial_folder(trial_id: str) -> str:
    """The folder of a trial, relative to the experiment directory."""
    return f"{TRIAL_PREFIX}{trial_id}"


def crossval_folder(experiment: str, folds: str) -> str:
    """The Ray experiment of a cross-validation's folds, inside the search's directory."""
    return f"{experiment.rstrip('/')}/{CROSSVAL_PREFIX}{folds}"


def outer_search_folder(experiment: str, folds: str, number: int) -> str:
    """The search of a nested cross-validation's outer fold ``number``, inside the experiment."""
    return f"{experiment.rstrip('/')}/{NESTED_PREFIX}{folds}/{OUTER_PREFIX}{number}"


# ----------------------------------------------------------------------------- metrics

# Per-epoch metrics every trial reports in result.json (docs/reference/files.md); --metric is one of them.
TRIAL_METRICS = ("val_acc", "val_f1", "val_uar", "val_loss", "train_acc", "train_loss")
VAL_KEYS = ("val_acc", "val_f1", "val_uar", "val_loss", "epoch")  # summary.json's best_val
# A test evaluation's metrics (summary.json's test, crossval.json's folds, mean and std) -> how
# people read them. accuracy is WAR: correct / all test clips; UAR: the mean of per-class recalls.
TEST_METRICS = {"accuracy": "accuracy", "uar": "UAR", "f1_macro": "macro-F1"}
TIE_METRIC = "val_loss"  # what breaks ties of the search metric, lower first
DEFAULT_METRIC, DEFAULT_MODE = "val_acc", "max"  # tune_main.py's --metric and --mode
MODES = ("max", "min")


def default_mode(metric: str) -> str:
    """The direction a metric improves in: "min" for a loss, "max" for everything else."""
    return "min" if metric.endswith("_loss") else "max"


# summary.json's "baseline" and crossval.json's baselines: one block per feature set (msa.baseline)
BASELINE_FEATURE_SETS = ("audio", "video", "audiovisual")  # audiovisual: audio and video side by side


# How a trial ended, in the report's and the trackers' words (trial_outcome).
TRIAL_OUTCOMES = ("finished", "stopped early", "errored", "running", "pending")


def trial_outcome(status: str, epochs: int, max_epochs: int) -> str:
    """One of TRIAL_OUTCOMES, from Ray's trial status and the last epoch it reported: a
    TERMINATED trial short of ``max_epochs`` was stopped early (by ASHA, or a non-finite loss)."""
    if status == "ERROR":
        return "errored"
    if status == "TERMINATED":
        return "stopped early" if epochs < max_epochs else "finished"
    return "running" if epochs > 0 else "pending"


# ----------------------------------------------------------------------------- population lineage

POPULATION_SCHEDULERS = ("pbt", "pb2")  # --scheduler values that train a population (msa.tune.population)
# What a population member may change while it trains (why these: msa.tune.population), and
# what summary.json's schedule holds per epoch.
MUTABLE_HYPERPARAMETERS = ("lr", "backbone_lr", "weight_decay", "dropout", "pool_dropout")
COPIED_FROM = "copied_from"  # per epoch: the trial whose checkpoint this epoch continued ("" for its own)


def lineage(histories: Mapping[str, Sequence[Mapping]], trial: str, until: int | None = None) -> list[dict]:
    """The epochs that made ``trial``'s weights (up to epoch ``until``), oldest first.

    ``histories`` maps each trial id to its result.json lines (each with "epoch", "config" and
    COPIED_FROM). A population member that took over a donor's checkpoint at epoch E inherited
    the donor's epochs before E: those come from the donor's own lineage up to E - 1. Each row
    is a result line with "trial" added (whose run trained that epoch); an epoch reported twice
    (a retried trial) counts once, the later report."""
    by_epoch: dict[int, Mapping] = {}
    for row in histories.get(trial, ()):
        if until is None or row["epoch"] <= until:
            by_epoch[int(row["epoch"])] = row
    rows = [by_epoch[epoch] for epoch in sorted(by_epoch)]
    copies = [index for index, row in enumerate(rows) if row.get(COPIED_FROM)]
    own = rows[copies[-1] :] if copies else rows
    inherited = lineage(histories, own[0][COPIED_FROM], own[0]["epoch"] - 1) if copies else []
    return inherited + [{**row, "trial": trial} for row in own]


# ----------------------------------------------------------------------------- ASHA

DEFAULT_REDUCTION_FACTOR = 3  # --reduction-factor: ASHA keeps about the best 1/3 at each rung
RUNG_SCORE = "rung_score"  # what ASHA ranks trials by at its rungs, reported every epoch
TIE_BREAK = 1e-4  # weight of val_loss in the rung score: below 1/N accuracy for val sets of N < ~2000 clips


def rung_score(metrics: dict, metric: str, mode: str) -> float:
    """The search metric with ties broken by validation loss, for ASHA's rungs.

    Accuracy on a few dozen validation clips moves in steps of 1/N, so trials tie often, and
    ASHA promotes every trial that ties its rung's cut-off instead of only the best third.
    The loss term is too small to reorder two different accuracies."""
    value = metrics[metric]
    if metric.endswith("_loss"):
        return value  # continuous: no ties to break
    return (
        value - TIE_BREAK * metrics["val_loss"] if mode == "max" else value + TIE_BREAK * metrics["val_loss"]
    )


# ----------------------------------------------------------------------------- the best-trial rule


def finite(value) -> float | None:
    """``value`` as a float when it is a finite real number; None otherwise (missing, NaN,
    infinite, pandas' <NA>, a string)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def ranking_key(metrics: Mapping, metric: str, mode: str) -> tuple:
    """THE best-trial rule, as a sort key: the better reported epoch sorts first.

    First the search ``metric`` in ``mode``'s direction, then the lower validation loss (ties
    are common for accuracy on a few clips), then the lower trial id (so a search summarised
    again picks the same trial). A missing or non-finite value sorts after every finite one:
    NaN never wins. ``metrics`` is one reported epoch (a result.json line, a checkpoint's
    metrics, or a trial's best epoch)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    value, loss = finite(metrics.get(metric)), finite(metrics.get(TIE_METRIC))
    return (
        value is None,
        0.0 if value is None else (-value if mode == "max" else value),
        loss is None,
        0.0 if loss is None else loss,
        str(metrics.get("trial_id") or ""),
    )


def can_be_best(metrics: Mapping, earlier: Sequence[Mapping], metric: str, mode: str) -> bool:
    """Whether an epoch's checkpoint can end up as its trial's best: at least as good as every
    ``earlier`` epoch by the rung score (which decides the checkpoint Ray keeps) or by the
    best-trial rule (which decides the one evaluated). Only such checkpoints need the frozen
    weights (msa.train.save_checkpoint's trainable_only)."""
    if not earlier:
        return True
    scores = [row[RUNG_SCORE] for row in earlier]
    best_score = max(scores) if mode == "max" else min(scores)
    by_score = metrics[RUNG_SCORE] >= best_score if mode == "max" else metrics[RUNG_SCORE] <= best_score
    by_rule = ranking_key(metrics, metric, mode) <= min(ranking_key(row, metric, mode) for row in earlier)
    return by_score or by_rule


def has_metric(metrics: Mapping, metric: str) -> bool:
    """Whether ``metrics`` holds a finite ``metric``: only such an epoch can be the best."""
    return finite(metrics.get(metric)) is not None


def best_index(rows: Sequence[Mapping], metric: str, mode: str) -> int | None:
    """Position of the best row by ``ranking_key`` (the first of equals); None when no row has
    a finite ``metric``."""
    scored = [i for i, row in enumerate(rows) if has_metric(row, metric)]
    if not scored:
        return None
    return min(scored, key=lambda i: ranking_key(rows[i], metric, mode))


def best_result(results: Iterable[Mapping], metric: str, mode: str) -> dict:
    """The best of ``results`` (e.g. a trial's epochs) by ``ranking_key``; {} when none has a
    finite ``metric``."""
    results = list(results)
    index = best_index(results, metric, mode)
    return {} if index is None else dict(results[index])

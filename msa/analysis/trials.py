"""What each trial folder says, as records and as the trial and epoch frames.

A trial's ``status`` is Ray's own, read from the newest ``experiment_state-*.json`` (Ray saves
it every few seconds), except that a trial recorded there as PENDING / RUNNING / PAUSED whose
last result says ``done`` is TERMINATED (it ended after the last save). A trial missing from
that file (or every trial, when there is none) gets a status derived from its folder:
ERROR with an ``error.txt`` / ``error.pkl``, PENDING without a reported epoch, TERMINATED when
its last result says ``done``, RUNNING otherwise. Column ``status_from`` says which rule gave
it ("ray", "ray+done" or "files"). In an interrupted search the trials Ray was running stay
RUNNING: they are the ones ``--resume`` continues. ``stopped_early`` marks TERMINATED trials
that ran fewer than ``--max-epochs`` epochs: stopped by ASHA (or by ``--time-budget``).

A trial's best epoch is the one ``msa.experiment_dir.ranking_key`` ranks first, the rule
summary.json's best trial follows too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from msa.analysis.files import ExperimentFiles
from msa.experiment_dir import (
    CHECKPOINT_PREFIX,
    ERROR_PICKLE,
    ERROR_TEXT,
    PARAMS_FILE,
    RESULT_FILE,
    STATE_PREFIX,
    STATE_SUFFIX,
    TIE_METRIC,
    TRIAL_METRICS,
    TRIAL_PREFIX,
    best_index,
    best_result,
    trial_folder,
    trial_outcome,
)

CONFIG_PREFIX = "config/"  # trial frame columns holding the flattened configuration, as Ray names them
# Ray's bookkeeping in each result line, left out of the epoch frame (the config is in the trial frame).
RAY_BOOKKEEPING = frozenset(
    {
        "config",
        "done",
        "should_checkpoint",
        "training_iteration",
        "trial_id",
        "date",
        "pid",
        "hostname",
        "node_ip",
        "time_since_restore",
        "iterations_since_restore",
        "experiment_tag",
    }
)
UNFINISHED = frozenset({"PENDING", "RUNNING", "PAUSED"})
TRIAL_COLUMNS = [
    "trial",
    "trial_id",
    "status",
    "outcome",
    "stopped_early",
    "epochs",
    "best_epoch",
    *[f"best_{name}" for name in TRIAL_METRICS],
    *[f"last_{name}" for name in TRIAL_METRICS],
    "time_total_s",
    "pretrained_video",
    "pretrained_audio",
    "pretrained_video_sha256",
    "pretrained_audio_sha256",
    "failures",
    "error",
    "status_from",
    "checkpoints",
]
EPOCH_COLUMNS = [
    "trial",
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_f1",
    "val_uar",
    "lr",
]  # first, in this order


@dataclass(frozen=True)
class RayTrialState:
    """What Ray's experiment state file says of one trial."""

    trial_id: str
    status: str  # PENDING / RUNNING / PAUSED / TERMINATED / ERROR
    config: dict


@dataclass(frozen=True)
class TrialRecord:
    """What one trial folder (and Ray's state file, where it lists the trial) says."""

    folder: str
    trial_id: str
    config: dict
    results: list[dict]  # one per epoch, in epoch order, each epoch once
    checkpoints: tuple[str, ...]  # kept checkpoint folders
    error: str | None  # the last line of the last failure in error.txt
    failures: int  # failures recorded in error.txt (Ray retries a failed trial up to twice)
    ray_status: str | None  # from experiment_state-*.json, None when not listed there


# ----------------------------------------------------------------------------- reading


def parse_results(text: str) -> list[dict]:
    """result.json's lines, one per epoch in epoch order. A line that does not parse is one a
    running trial is writing; an epoch reported twice (a trial resumed from a checkpoint older
    than its last report) keeps its later report."""
    by_epoch: dict[int, dict] = {}
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        epoch = row.get("epoch", row.get("training_iteration"))
        if isinstance(epoch, int):
            by_epoch[epoch] = {**row, "epoch": epoch}
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def parse_errors(text: str) -> tuple[str, int]:
    """(the last line of the last failure, how many failures) from Ray's error.txt, which gets a
    "Failure # N (occurred at ...)" header and the error's text per failure."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    failures = sum(line.startswith("Failure #") for line in lines)
    return (lines[-1] if lines else "unknown error"), max(failures, 1)


def read_ray_state(files: ExperimentFiles, names: list[str]) -> dict[str, RayTrialState]:
    """Trial folder -> its state in the newest experiment_state-*.json.

    Ray's format: {"trial_data": [[trial JSON string, run metadata JSON string], ...], ...}. It
    is Ray's internal file, so anything unexpected means "no state" and statuses are derived."""
    states = sorted(name for name in names if name.startswith(STATE_PREFIX) and name.endswith(STATE_SUFFIX))
    if not states:
        return {}
    state = files.read_json(states[-1])  # names end in a sortable timestamp
    try:
        trials = {}
        for trial_json, _ in state["trial_data"]:
            trial = json.loads(trial_json)
            folder = trial.get("relative_logdir") or trial_folder(trial["trial_id"])
            trials[folder] = RayTrialState(trial["trial_id"], trial["status"], trial.get("config") or {})
        return trials
    except (TypeError, KeyError, ValueError):
        return {}


def read_error(files: ExperimentFiles, folder: str, entries: dict[str, bool]) -> tuple[str | None, int]:
    """(the last failure's last line, failures) from the trial's error files; (None, 0) without."""
    if ERROR_TEXT in entries:
        return parse_errors(files.read_text(f"{folder}/{ERROR_TEXT}"))
    return (f"see {ERROR_PICKLE}", 1) if ERROR_PICKLE in entries else (None, 0)


def read_trial(
    files: ExperimentFiles, folder: str, entries: dict[str, bool], state: RayTrialState | None
) -> TrialRecord:
    """One trial from its folder's ``entries`` (name -> is a folder) and Ray's ``state`` of it."""
    results = parse_results(files.read_text(f"{folder}/{RESULT_FILE}") or "")
    config = files.read_json(f"{folder}/{PARAMS_FILE}") or (state.config if state else None) or {}
    error, failures = read_error(files, folder, entries)
    trial_id = (
        (state.trial_id if state else None)
        or (results[-1].get("trial_id") if results else None)
        or folder.removeprefix(TRIAL_PREFIX)
    )
    return TrialRecord(
        folder=folder,
        trial_id=trial_id,
        config=config,
        results=results,
        checkpoints=tuple(
            sorted(name for name, is_dir in entries.items() if is_dir and name.startswith(CHECKPOINT_PREFIX))
        ),
        error=error,
        failures=failures,
        ray_status=state.status if state else None,
    )


def trial_status(record: TrialRecord) -> tuple[str, str]:
    """(status, the rule that gave it): see the module doc."""
    done = bool(record.results) and bool(record.results[-1].get("done"))
    if record.ray_status is not None:
        if record.ray_status in UNFINISHED and done:
            return "TERMINATED", "ray+done"
        return record.ray_status, "ray"
    if record.error is not None:
        return "ERROR", "files"
    if not record.results:
        return "PENDING", "files"
    return ("TERMINATED" if done else "RUNNING"), "files"


# ----------------------------------------------------------------------------- frames


def flatten(config: dict, prefix: str = CONFIG_PREFIX) -> dict:
    """{"a": {"b": 1}, "c": [8, 16]} -> {"config/a/b": 1, "config/c": (8, 16)}: lists (JSON's
    tuples) become tuples, so that every value can be compared and counted."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def trial_row(record: TrialRecord, metric: str, mode: str, max_epochs: int) -> dict:
    status, status_from = trial_status(record)
    best = best_result(record.results, metric, mode)
    last = record.results[-1] if record.results else {}
    epochs = last.get("epoch", 0)
    return {
        "trial": record.folder,
        "trial_id": record.trial_id,
        "status": status,
        "outcome": trial_outcome(status, epochs, max_epochs),
        "stopped_early": trial_outcome(status, epochs, max_epochs) == "stopped early",
        "epochs": epochs,
        "best_epoch": best.get("epoch"),
        **{f"best_{name}": best.get(name) for name in TRIAL_METRICS},
        **{f"last_{name}": last.get(name) for name in TRIAL_METRICS},
        "time_total_s": last.get("time_total_s"),
        "pretrained_video": last.get("pretrained_video"),
        "pretrained_audio": last.get("pretrained_audio"),
        "pretrained_video_sha256": last.get("pretrained_video_sha256"),
        "pretrained_audio_sha256": last.get("pretrained_audio_sha256"),
        "failures": record.failures,
        "error": record.error,
        "status_from": status_from,
        "checkpoints": record.checkpoints,
    }


def trials_frame(records: list[TrialRecord], metric: str, mode: str, max_epochs: int) -> pd.DataFrame:
    """One row per trial, in folder order.

    Columns: trial (folder name), trial_id, status (Ray's: TERMINATED / ERROR / RUNNING / PENDING /
    PAUSED), outcome (msa.experiment_dir.trial_outcome: finished, stopped early, errored, running,
    pending), stopped_early (TERMINATED before max_epochs), epochs (the last epoch reported, 0
    for none), best_epoch (the best epoch by msa.experiment_dir.ranking_key), best_<m> and
    last_<m> for each m in TRIAL_METRICS (best_: at best_epoch, as summary.json's best_val;
    last_: at the last epoch), time_total_s (Ray's training seconds, summed over restarts),
    pretrained_video / pretrained_audio (weights the trial loaded) and pretrained_video_sha256
    / pretrained_audio_sha256 (their sha256, "" for random weights), failures, error (the last
    failure's last line), status_from (the status rule, see the module doc), checkpoints (kept
    checkpoint folders), then config/<key> per configuration key (nullable dtypes: a key that
    applies to some trials only is <NA> elsewhere).
    """
    frame = pd.DataFrame(
        [trial_row(record, metric, mode, max_epochs) for record in records], columns=TRIAL_COLUMNS
    )
    for column in ("epochs", "failures"):
        frame[column] = frame[column].astype(int)
    frame["best_epoch"] = frame["best_epoch"].astype("Int64")
    configs = [flatten(record.config) for record in records]
    keys = sorted({key for config in configs for key in config})
    for key in keys:
        frame[key] = pd.array([config.get(key) for config in configs])
    return frame


def epochs_frame(records: list[TrialRecord]) -> pd.DataFrame:
    """One row per trial and epoch, sorted by trial and epoch.

    Columns: trial, epoch, then everything the trial reported that is not Ray's bookkeeping
    (RAY_BOOKKEEPING): train_loss, train_acc, val_loss, val_acc, val_f1, val_uar, lr,
    pretrained_video, pretrained_audio, timestamp, checkpoint_dir_name (the checkpoint saved with
    that epoch; only the best and the latest are kept), time_this_iter_s, time_total_s,
    copied_from (population searches: whose checkpoint the epoch continued), and config/<key>
    (the configuration it trained with, which a population search changes over time).
    """
    rows = [
        {
            "trial": record.folder,
            **{k: v for k, v in result.items() if k not in RAY_BOOKKEEPING and not isinstance(v, dict)},
            # the configuration the epoch trained with: a population member's changes over time
            **flatten(result.get("config") or {}),
        }
        for record in records
        for result in record.results
    ]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["trial", "epoch", *TRIAL_METRICS, "lr"])
    order = [c for c in EPOCH_COLUMNS if c in frame] + [c for c in frame if c not in EPOCH_COLUMNS]
    return frame[order].sort_values(["trial", "epoch"], ignore_index=True)


# ----------------------------------------------------------------------------- the best-trial rule on frames


def best_trial_position(trials: pd.DataFrame, metric: str, mode: str) -> int | None:
    """Position in the trial frame ``trials`` of the best trial by msa.experiment_dir's rule
    (each trial at its best epoch); None when no trial has a finite best ``metric``."""
    return best_index(best_epoch_rows(trials, metric), metric, mode)


def best_epoch_rows(trials: pd.DataFrame, metric: str) -> list[dict]:
    """Each trial's best epoch as the rule reads it: the metric, val_loss and the trial id."""

    def column(name: str) -> list:
        return list(trials[name]) if name in trials else [None] * len(trials)

    return [
        {TIE_METRIC: loss, metric: value, "trial_id": trial_id}
        for value, loss, trial_id in zip(
            column(f"best_{metric}"), column(f"best_{TIE_METRIC}"), column("trial_id")
        )
    ]


def best_epoch_position(epochs: pd.DataFrame, metric: str, mode: str) -> int | None:
    """Position in an epoch frame of its best epoch by the rule (the first of equals)."""
    return best_index(epochs.to_dict("records"), metric, mode)

"""Reading an experiment directory (``STORAGE/NAME/``, a local path or a storage URI) into
tidy pandas frames, without Ray: what the analysis notebook and ``python -m msa.report`` use.

    experiment = load_experiment("ray_results/video_transformer-20260101-120000")
    experiment.trials      # one row per trial      (columns: see trials_frame)
    experiment.epochs      # one row per trial-epoch (columns: see epochs_frame)
    experiment.summary     # summary.json, or None while the search runs or after an interruption
    model, extra = load_best_model(experiment)

It works on a finished search, a running one (trials without results yet, a last line being
written), an interrupted one (no summary.json) and a resumed one (epochs reported twice: the
later report wins, as it is the one the trial's history continued from).

A trial's ``status`` is Ray's own, read from the newest ``experiment_state-*.json`` (Ray saves
it every few seconds), except that a trial recorded there as PENDING / RUNNING / PAUSED whose
last result says ``done`` is TERMINATED (it ended after the last save). A trial missing from
that file (or every trial, when there is none) gets a status derived from its folder:
ERROR with an ``error.txt`` / ``error.pkl``, PENDING without a reported epoch, TERMINATED when
its last result says ``done``, RUNNING otherwise. Column ``status_from`` says which rule gave
it ("ray", "ray+done" or "files"). In an interrupted search the trials Ray was running stay
RUNNING: they are the ones ``--resume`` continues. ``stopped_early`` marks TERMINATED trials
that ran fewer than ``--max-epochs`` epochs: stopped by ASHA (or by ``--time-budget``).

Importance, rung and comparison tables are computed here too, so the notebook and the report
show the same numbers.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pyarrow.fs

from msa.data import remote_filesystem
from search_spaces import CHOICE_LABELS  # where one is present, ``model`` was not searched

ARGS_FILE = "msa_args.json"
SUMMARY_FILE = "summary.json"
PARAMS_FILE = "params.json"
RESULT_FILE = "result.json"
ERROR_TEXT, ERROR_PICKLE = "error.txt", "error.pkl"
CHECKPOINT_FILE = "checkpoint.pt"
STATE_PREFIX, STATE_SUFFIX = "experiment_state-", ".json"

CONFIG_PREFIX = "config/"  # trial frame columns holding the flattened configuration, as Ray names them
DEFAULT_METRIC, DEFAULT_MODE = "val_acc", "max"  # tune_main.py's defaults
# Per-epoch metrics every trial reports (README.md, Searching); the trial frame has each at the best and last epoch.
TRIAL_METRICS = ("val_acc", "val_f1", "val_uar", "val_loss", "train_acc", "train_loss")
# Ray's bookkeeping in each result line, left out of the epoch frame (the config is in the trial frame).
RAY_BOOKKEEPING = frozenset({
    "config", "done", "should_checkpoint", "training_iteration", "trial_id", "date", "pid", "hostname",
    "node_ip", "time_since_restore", "iterations_since_restore", "experiment_tag",
})
UNFINISHED = frozenset({"PENDING", "RUNNING", "PAUSED"})
TRIAL_COLUMNS = [
    "trial", "trial_id", "status", "stopped_early", "epochs", "best_epoch",
    *[f"best_{name}" for name in TRIAL_METRICS], *[f"last_{name}" for name in TRIAL_METRICS],
    "time_total_s", "pretrained_video", "pretrained_audio", "pretrained_video_sha256", "pretrained_audio_sha256", "failures", "error", "status_from", "checkpoints",
]

ASHA_REDUCTION_FACTOR = 3  # msa.tune.tuner's; restated so that reading results never imports Ray
MIN_TRIALS_FOR_IMPORTANCE = 4
TOP_TRIALS_FOR_IMPORTANCE = 5  # PED-ANOVA contrasts the best trials with all; its docs advise 5 at least
# A positive float parameter is taken as log-scaled (a learning rate, a weight decay) when its
# values span this factor and spread more evenly on a log axis than on a linear one.
LOG_SCALE_SPAN = 10.0


# ----------------------------------------------------------------------------- files


class ExperimentFiles:
    """The files of one experiment directory, local or behind a storage URI (pyarrow.fs)."""

    def __init__(self, location: str | os.PathLike):
        location = str(location)
        if "://" in location:
            self.fs, root = remote_filesystem(location)
        else:
            self.fs, root = pyarrow.fs.LocalFileSystem(), str(Path(location).expanduser().resolve())
        self.location = location
        self.root = root.rstrip("/")

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pyarrow.fs.LocalFileSystem)

    def path(self, relative: str = "") -> str:
        return f"{self.root}/{relative}" if relative else self.root

    def listdir(self, relative: str = "") -> dict[str, bool]:
        """Entry name -> is a folder; empty for a missing folder."""
        selector = pyarrow.fs.FileSelector(self.path(relative), allow_not_found=True)
        return {info.base_name: info.type == pyarrow.fs.FileType.Directory for info in self.fs.get_file_info(selector)}

    def read_bytes(self, relative: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.path(relative)) as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def read_text(self, relative: str) -> str | None:
        data = self.read_bytes(relative)
        return None if data is None else data.decode(errors="replace")

    def read_json(self, relative: str) -> Any:
        """The parsed file; None when it is missing or not (yet) valid JSON."""
        text = self.read_text(relative)
        try:
            return None if text is None else json.loads(text)
        except json.JSONDecodeError:
            return None

    def write_bytes(self, relative: str, data: bytes) -> str:
        path = self.path(relative)
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(path) as handle:
            handle.write(data)
        return path

    def delete(self, relative: str) -> None:
        self.fs.delete_file(self.path(relative))

    def local_file(self, relative: str, folder: str) -> Path:
        """A local path to the file: itself when local, else a copy downloaded into ``folder``."""
        if self.is_local:
            return Path(self.path(relative))
        data = self.read_bytes(relative)
        if data is None:
            raise FileNotFoundError(self.path(relative))
        target = Path(folder) / relative.replace("/", "_")
        target.write_bytes(data)
        return target


# ----------------------------------------------------------------------------- trials


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


def read_ray_state(files: ExperimentFiles, names: list[str]) -> dict[str, dict]:
    """Trial folder -> {"trial_id", "status", "config"} from the newest experiment_state-*.json.

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
            folder = trial.get("relative_logdir") or f"trial_{trial['trial_id']}"
            trials[folder] = {"trial_id": trial["trial_id"], "status": trial["status"], "config": trial.get("config") or {}}
        return trials
    except (TypeError, KeyError, ValueError):
        return {}


def read_error(files: ExperimentFiles, folder: str, entries: dict[str, bool]) -> tuple[str | None, int]:
    """(the last failure's last line, failures) from the trial's error files; (None, 0) without."""
    if ERROR_TEXT in entries:
        return parse_errors(files.read_text(f"{folder}/{ERROR_TEXT}"))
    return ("see error.pkl", 1) if ERROR_PICKLE in entries else (None, 0)


def read_trial(files: ExperimentFiles, folder: str, entries: dict[str, bool], state: dict | None) -> TrialRecord:
    """One trial from its folder's ``entries`` (name -> is a folder) and Ray's ``state`` of it."""
    results = parse_results(files.read_text(f"{folder}/{RESULT_FILE}") or "")
    config = files.read_json(f"{folder}/{PARAMS_FILE}") or (state or {}).get("config") or {}
    error, failures = read_error(files, folder, entries)
    trial_id = (state or {}).get("trial_id") or (results[-1].get("trial_id") if results else None) or folder.removeprefix("trial_")
    return TrialRecord(
        folder=folder,
        trial_id=trial_id,
        config=config,
        results=results,
        checkpoints=tuple(sorted(name for name, is_dir in entries.items() if is_dir and name.startswith("checkpoint_"))),
        error=error,
        failures=failures,
        ray_status=(state or {}).get("status"),
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


def flatten(config: dict, prefix: str = CONFIG_PREFIX) -> dict:
    """{"a": {"b": 1}} -> {"config/a/b": 1}."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def best_index(values: Any, mode: str) -> int:
    """Position of the best value (the first, on a tie), ignoring NaN."""
    values = np.asarray(values, dtype=float)
    return int(np.nanargmax(values) if mode == "max" else np.nanargmin(values))


def best_result(results: list[dict], metric: str, mode: str) -> dict:
    """The epoch with the best finite ``metric`` (the first, on a tie); {} when there is none."""
    scored = [row for row in results if isinstance(row.get(metric), (int, float)) and math.isfinite(row[metric])]
    if not scored:
        return {}
    return scored[best_index([row[metric] for row in scored], mode)]


def trial_row(record: TrialRecord, metric: str, mode: str, max_epochs: int) -> dict:
    status, status_from = trial_status(record)
    best = best_result(record.results, metric, mode)
    last = record.results[-1] if record.results else {}
    epochs = last.get("epoch", 0)
    return {
        "trial": record.folder,
        "trial_id": record.trial_id,
        "status": status,
        "stopped_early": status == "TERMINATED" and epochs < max_epochs,
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
    PAUSED), stopped_early (TERMINATED before max_epochs), epochs (the last epoch reported, 0
    for none), best_epoch (the epoch with the best search metric), best_<m> and last_<m> for
    each m in TRIAL_METRICS (best_: at best_epoch, as summary.json's best_val; last_: at the
    last epoch), time_total_s (Ray's training seconds, summed over restarts), pretrained_video
    / pretrained_audio (weights the trial loaded) and pretrained_video_sha256 /
    pretrained_audio_sha256 (their sha256, "" for random weights), failures, error (the last failure's last
    line), status_from (the status rule, see the module doc), checkpoints (kept checkpoint
    folders), then config/<key> per configuration key (nullable dtypes: a key that applies to
    some trials only is <NA> elsewhere).
    """
    frame = pd.DataFrame([trial_row(record, metric, mode, max_epochs) for record in records], columns=TRIAL_COLUMNS)
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
    that epoch; only the best two and the latest are kept), time_this_iter_s, time_total_s.
    """
    rows = [
        {"trial": record.folder, **{k: v for k, v in result.items() if k not in RAY_BOOKKEEPING and not isinstance(v, dict)}}
        for record in records
        for result in record.results
    ]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["trial", "epoch", *TRIAL_METRICS, "lr"])
    leading = ["trial", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "val_uar", "lr"]
    order = [c for c in leading if c in frame] + [c for c in frame if c not in leading]
    return frame[order].sort_values(["trial", "epoch"], ignore_index=True)


# ----------------------------------------------------------------------------- the experiment


@dataclass(frozen=True, eq=False)
class Experiment:
    """Everything an experiment directory says; see the module doc."""

    files: ExperimentFiles
    args: dict  # msa_args.json: the tune_main.py command line ({} when missing)
    summary: dict | None  # summary.json; None while the search runs or after an interruption
    trials: pd.DataFrame  # see trials_frame
    epochs: pd.DataFrame  # see epochs_frame
    metric: str  # the search metric and its mode (max / min)
    mode: str
    max_epochs: int  # --max-epochs (the most epochs any trial reported, when msa_args.json is missing)

    @property
    def name(self) -> str:
        return self.files.root.rsplit("/", 1)[-1]

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def space(self) -> str | None:
        return self.args.get("space") or (self.summary or {}).get("space")

    @property
    def best_trial(self) -> str | None:
        """summary.json's best trial; before it exists, the trial with the best metric so far."""
        if self.summary and self.summary.get("best_trial"):
            return self.summary["best_trial"]
        scored = self.trials.dropna(subset=[f"best_{self.metric}"])
        if scored.empty:
            return None
        return scored["trial"].iloc[best_index(scored[f"best_{self.metric}"], self.mode)]

    @property
    def params(self) -> list[str]:
        """Configuration columns of the trial frame (with their CONFIG_PREFIX)."""
        return [column for column in self.trials if column.startswith(CONFIG_PREFIX)]

    def trial(self, name: str) -> pd.Series:
        return self.trials.set_index("trial").loc[name]


def load_experiment(location: str | os.PathLike) -> Experiment:
    """Read an experiment directory (a local path or a storage URI); needs no running Ray.
    Raises FileNotFoundError when ``location`` holds no experiment."""
    files = ExperimentFiles(location)
    entries = files.listdir()
    args = files.read_json(ARGS_FILE) or {}
    summary = files.read_json(SUMMARY_FILE)
    state = read_ray_state(files, list(entries))
    listings = {name: files.listdir(name) for name, is_dir in entries.items() if is_dir}
    # Trial folders are those with Ray's params.json; a trial Ray lists but never started has none.
    folders = sorted({name for name, listing in listings.items() if PARAMS_FILE in listing} | set(state))
    if not folders and not args:
        raise FileNotFoundError(f"{location}: not an experiment directory (no {ARGS_FILE}, no trial folders)")
    records = [read_trial(files, folder, listings.get(folder, {}), state.get(folder)) for folder in folders]
    metric = args.get("metric") or (summary or {}).get("metric") or DEFAULT_METRIC
    mode = args.get("mode") or (summary or {}).get("mode") or ("min" if metric.endswith("_loss") else DEFAULT_MODE)
    epochs = epochs_frame(records)
    max_epochs = args.get("max_epochs") or int(epochs["epoch"].max() if len(epochs) else 0)
    return Experiment(files, args, summary, trials_frame(records, metric, mode, max_epochs), epochs, metric, mode, max_epochs)


# ----------------------------------------------------------------------------- the best model


def best_checkpoint(experiment: Experiment, trial: str | None = None) -> str:
    """The kept checkpoint file (relative to the experiment) of ``trial`` (default: the best
    trial) at its best epoch, which summary.json records for the best trial; if that one was
    not kept, the kept one with the best metric. Raises FileNotFoundError when none is kept."""
    trial = trial or experiment.best_trial
    if trial is None:
        raise FileNotFoundError(f"{experiment.files.location}: no trial reported an epoch yet")
    row = experiment.trial(trial)
    epoch = row["best_epoch"]
    if experiment.summary and experiment.summary.get("best_trial") == trial and experiment.summary.get("best_val"):
        epoch = experiment.summary["best_val"].get("epoch", epoch)
    epochs = experiment.epochs[(experiment.epochs["trial"] == trial) & experiment.epochs["checkpoint_dir_name"].isin(row["checkpoints"])]
    if epochs.empty:
        raise FileNotFoundError(f"{experiment.files.location}/{trial}: no checkpoint kept")
    at_best = epochs[epochs["epoch"] == epoch]
    if at_best.empty:
        at_best = epochs.iloc[[best_index(epochs[experiment.metric], experiment.mode)]]
    return f"{trial}/{at_best['checkpoint_dir_name'].iloc[0]}/{CHECKPOINT_FILE}"


def load_best_model(experiment: Experiment, trial: str | None = None, map_location: str = "cpu"):
    """(model, extra) rebuilt from the best checkpoint (see best_checkpoint) alone; ``extra``
    holds the checkpoint's epoch, labels, pretrained flags and metrics."""
    from msa.train import model_from_checkpoint  # torch: only when a model is wanted

    relative = best_checkpoint(experiment, trial)
    with tempfile.TemporaryDirectory() as folder:
        return model_from_checkpoint(experiment.files.local_file(relative, folder), map_location=map_location)


class DataUnavailable(RuntimeError):
    """The experiment's data (or its split) cannot be rebuilt on this machine."""


def rebuild_val_evaluation(experiment: Experiment, model, batch_size: int = 8) -> dict:
    """Evaluate ``model`` on the validation actors, rebuilding them from the data and the
    prepared-clip cache named in msa_args.json -> msa.train.evaluate's dict (loss, accuracy,
    f1_macro, uar, confusion_matrix rows = true).

    The one place analysis reads more than the experiment directory: the trainable does not
    store validation predictions, so the val confusion matrix is recomputed. Clips missing from
    the cache are prepared (decoded) first. Raises DataUnavailable when the data folder is not
    on this machine or splits into other validation actors than the search used.
    """
    from msa.data import default_cache_dir, is_uri
    from msa.data.dataset import ClipDataset, make_loader
    from msa.data.decode import PrepareParams
    from msa.data.labels import LabelSet
    from msa.data.sample import sample_dir
    from msa.data.splits import SplitConfig
    from msa.train import evaluate
    from msa.tune.experiment import prepare_experiment_data

    args = experiment.args
    if not args:
        raise DataUnavailable(f"no {ARGS_FILE}: the data and split of this search are unknown")
    cache = Path(args["cache"]) if args.get("cache") else default_cache_dir()
    root = (experiment.summary or {}).get("data", {}).get("root") or args.get("data") or sample_dir(cache)
    if not is_uri(root) and not Path(root).is_dir():
        raise DataUnavailable(f"the data folder {root} is not on this machine")
    split = SplitConfig(args["split"], args["seed"], tuple(args["val_actors"]), tuple(args["test_actors"]))
    params = PrepareParams(num_frames=args["frames"], image_size=args["image_size"])
    try:
        data, _ = prepare_experiment_data(root, cache, args["classes"], split, params, progress=False)
    except (FileNotFoundError, ValueError) as error:  # NoUsableClipsError and SplitError are ValueErrors
        raise DataUnavailable(str(error)) from error
    recorded = (experiment.summary or {}).get("data", {}).get("actors", {}).get("val")
    if recorded is not None and list(recorded) != list(data.actors["val"]):
        raise DataUnavailable(f"the data here gives validation actors {data.actors['val']}, the search used {recorded}")
    modalities = tuple(key for key in ("video", "audio") if key in model.input_keys)
    dataset = ClipDataset(data.clips("val"), LabelSet("val", data.labels), modalities)
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, seed=args["seed"])
    return evaluate(model.eval(), loader, len(data.labels))


# ----------------------------------------------------------------------------- ASHA rungs


def asha_rungs(experiment: Experiment) -> list[int]:
    """The epochs at which ASHA compared trials: Ray's milestones grace_period * 3**k below
    max_epochs ([] for --scheduler fifo)."""
    args = experiment.args
    if args.get("scheduler", "asha") != "asha" or not args.get("grace_period"):
        return []
    grace, top = args["grace_period"], experiment.max_epochs
    count = int(math.log(top / grace) / math.log(ASHA_REDUCTION_FACTOR) + 1)
    return [grace * ASHA_REDUCTION_FACTOR**k for k in range(count) if grace * ASHA_REDUCTION_FACTOR**k < top]


def survival(experiment: Experiment) -> pd.DataFrame:
    """One row per epoch 1..max_epochs. Columns: epoch, trials (that reported that epoch),
    rung (True at an ASHA rung)."""
    reached = experiment.trials["epochs"].to_numpy()
    rungs = set(asha_rungs(experiment))
    epochs = range(1, max(experiment.max_epochs, int(reached.max(initial=0))) + 1)
    return pd.DataFrame({
        "epoch": list(epochs),
        "trials": [int((reached >= epoch).sum()) for epoch in epochs],
        "rung": [epoch in rungs for epoch in epochs],
    })


def rung_outcomes(experiment: Experiment) -> pd.DataFrame:
    """One row per ASHA rung and trial that reached it. Columns: rung (epoch), trial, the
    search metric at that epoch (named as the metric), outcome: "continued" (trained past the
    rung), "stopped" (TERMINATED there: ASHA stopped it), "errored" or "running"."""
    epochs, trials = experiment.epochs, experiment.trials.set_index("trial")
    rows = []
    for rung in asha_rungs(experiment):
        at_rung = epochs[epochs["epoch"] == rung]
        for trial, value in zip(at_rung["trial"], at_rung[experiment.metric]):
            row = trials.loc[trial]
            if row["epochs"] > rung:
                outcome = "continued"
            else:
                outcome = {"TERMINATED": "stopped", "ERROR": "errored"}.get(row["status"], "running")
            rows.append({"rung": rung, "trial": trial, experiment.metric: value, "outcome": outcome})
    return pd.DataFrame(rows, columns=["rung", "trial", experiment.metric, "outcome"])


# ----------------------------------------------------------------------------- hyperparameters


def searched_params(experiment: Experiment, trials: pd.DataFrame | None = None) -> list[str]:
    """Configuration columns that vary across ``trials`` (default: all), without
    ``config/model`` where a choice label (``trunk``, ``audio_layers``) decided it."""
    trials = experiment.trials if trials is None else trials
    labelled = any(f"{CONFIG_PREFIX}{label}" in trials for label in CHOICE_LABELS)
    return [
        column
        for column in experiment.params
        if trials[column].nunique(dropna=True) > 1 and not (labelled and column == f"{CONFIG_PREFIX}model")
    ]


def is_numeric_param(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def is_log_scale(values: pd.Series) -> bool:
    """Whether a float parameter looks log-scaled (see LOG_SCALE_SPAN)."""
    if not is_numeric_param(values) or pd.api.types.is_integer_dtype(values.dtype):
        return False
    present = values.dropna().to_numpy(float)
    if len(present) < 2 or present.min() <= 0 or present.max() / present.min() < LOG_SCALE_SPAN:
        return False
    return unevenness(np.log(present)) < unevenness(present)


def unevenness(values: np.ndarray) -> float:
    """Kolmogorov distance between the values, rescaled to [0, 1], and an even spread."""
    scaled = np.sort((values - values.min()) / (values.max() - values.min()))
    steps = np.arange(len(scaled) + 1) / len(scaled)
    return float(max(np.max(steps[1:] - scaled), np.max(scaled - steps[:-1])))


def python_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def infer_distribution(values: pd.Series) -> optuna.distributions.BaseDistribution:
    """An Optuna distribution covering the values a parameter took: integers -> IntDistribution,
    floats -> FloatDistribution (log where is_log_scale), anything else (strings, booleans,
    mixed types) -> CategoricalDistribution. Ranges are the observed ones: the space's own
    bounds are not stored in the experiment."""
    present = values.dropna()
    if pd.api.types.is_integer_dtype(present.dtype) and not pd.api.types.is_bool_dtype(present.dtype):
        return optuna.distributions.IntDistribution(int(present.min()), int(present.max()))
    if is_numeric_param(present):
        return optuna.distributions.FloatDistribution(float(present.min()), float(present.max()), log=is_log_scale(present))
    choices = sorted({python_value(v) for v in present}, key=lambda v: (type(v).__name__, str(v)))
    return optuna.distributions.CategoricalDistribution(choices)


@dataclass(frozen=True)
class Importances:
    """Hyperparameter importances of one evaluator (empty ``values`` when not computed)."""

    values: dict[str, float]  # parameter (without CONFIG_PREFIX) -> importance, summing to 1, largest first
    evaluator: str
    target: str  # the trial frame column whose values were explained
    trials: int  # how many trials it used
    notes: tuple[str, ...]  # why nothing was computed, or Optuna's caveats about the result


def param_importances(experiment: Experiment, evaluator: optuna.importance.BaseImportanceEvaluator | None = None) -> Importances:
    """Importance of each searched hyperparameter for the best search metric a trial reached,
    by an Optuna importance evaluator over an in-memory study built from the TERMINATED
    trials (finished or stopped early; errored and running trials are left out).

    The default evaluator is PED-ANOVA (no scikit-learn needed, conditional parameters
    handled): it measures how differently each parameter is distributed among the best
    trials (here the top TOP_TRIALS_FOR_IMPORTANCE at least, 10% on large searches) than among
    all. Pass ``optuna.importance.FanovaImportanceEvaluator()`` for fANOVA where scikit-learn
    is installed. A parameter that only some trials have is given only to those trials.
    """
    target = f"best_{experiment.metric}"
    trials = experiment.trials[(experiment.trials["status"] == "TERMINATED") & experiment.trials[target].notna()]
    count = len(trials)
    if evaluator is None:
        quantile = min(0.5, max(0.1, TOP_TRIALS_FOR_IMPORTANCE / max(count, 1)))
        evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
    name = type(evaluator).__name__.removesuffix("ImportanceEvaluator")

    def result(values: dict[str, float], *notes: str) -> Importances:
        return Importances(values, name, target, count, tuple(notes))

    if count < MIN_TRIALS_FOR_IMPORTANCE:
        return result({}, f"importance needs at least {MIN_TRIALS_FOR_IMPORTANCE} finished trials; this search has {count}")
    params = searched_params(experiment, trials)
    if not params:
        return result({}, "no hyperparameter took more than one value in the finished trials")
    study = quiet_study("maximize" if experiment.mode == "max" else "minimize")
    distributions = {param: infer_distribution(trials[param]) for param in params}
    for _, row in trials.iterrows():
        present = {param: python_value(row[param]) for param in params if not pd.isna(row[param])}
        study.add_trial(optuna.trial.create_trial(
            params=present, distributions={param: distributions[param] for param in present}, value=float(row[target])
        ))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = optuna.importance.get_param_importances(study, evaluator=evaluator, params=params)
    if len(values) > 1 and len(set(values.values())) == 1:  # PED-ANOVA's answer when its best trials are all trials
        return result({}, f"the best trials cannot be told apart from the others (ties in {target}): no parameter stands out")
    notes = sorted({str(w.message).replace("`", "") for w in caught})
    return result({param.removeprefix(CONFIG_PREFIX): value for param, value in values.items()}, *notes)


def quiet_study(direction: str) -> optuna.Study:
    """An in-memory study, created without Optuna's INFO line."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.create_study(direction=direction)
    finally:
        optuna.logging.set_verbosity(verbosity)


def compare_choices(experiment: Experiment, param: str) -> pd.DataFrame:
    """One row per value of a categorical configuration column (e.g. ``config/model``).
    Columns: the value (named as the parameter without prefix), trials, finished (TERMINATED),
    best / median (of the trials' best search metric), most_epochs, best_trial."""
    target = f"best_{experiment.metric}"
    rows = []
    for value, group in experiment.trials.groupby(param, sort=True):
        # On a tie the trial that trained longest is the better witness.
        scored = group.dropna(subset=[target]).sort_values("epochs", ascending=False, kind="stable")
        best = scored.iloc[best_index(scored[target], experiment.mode)] if len(scored) else None
        rows.append({
            param.removeprefix(CONFIG_PREFIX): value,
            "trials": len(group),
            "finished": int((group["status"] == "TERMINATED").sum()),
            "best": None if best is None else best[target],
            "median": scored[target].median() if len(scored) else None,
            "most_epochs": int(group["epochs"].max()),
            "best_trial": None if best is None else best["trial"],
        })
    return pd.DataFrame(rows)

"""One experiment directory as an ``Experiment``, and its best checkpoint as a model.

    experiment = load_experiment("ray_results/video_transformer-20260101-120000")
    experiment.trials      # one row per trial      (columns: msa.analysis.trials.trials_frame)
    experiment.epochs      # one row per trial-epoch (columns: msa.analysis.trials.epochs_frame)
    experiment.summary     # summary.json, or None while the search runs or after an interruption
    experiment.crossval    # crossval.json (python -m msa.crossval), or None; read when first asked for
    model, extra = load_best_model(experiment)

It works on a finished search, a running one (trials without results yet, a last line being
written), an interrupted one (no summary.json) and a resumed one (epochs reported twice: the
later report wins, as it is the one the trial's history continued from).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from msa.analysis.crossval import load_crossval
from msa.analysis.files import ExperimentFiles
from msa.analysis.trials import (
    CONFIG_PREFIX,
    best_epoch_position,
    best_trial_position,
    epochs_frame,
    read_ray_state,
    read_trial,
    trials_frame,
)
from msa.experiment_dir import (
    ARGS_FILE,
    CHECKPOINT_FILE,
    DEFAULT_METRIC,
    PARAMS_FILE,
    SUMMARY_FILE,
    default_mode,
)


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
        """summary.json's best trial; before it exists, the best trial so far by the same rule
        (msa.experiment_dir.ranking_key)."""
        if self.summary and self.summary.get("best_trial"):
            return self.summary["best_trial"]
        position = best_trial_position(self.trials, self.metric, self.mode)
        return None if position is None else self.trials["trial"].iloc[position]

    @property
    def params(self) -> list[str]:
        """Configuration columns of the trial frame (with their CONFIG_PREFIX)."""
        return [column for column in self.trials if column.startswith(CONFIG_PREFIX)]

    def trial(self, name: str) -> pd.Series:
        return self.trials.set_index("trial").loc[name]

    @cached_property
    def crossval(self) -> dict | None:
        """crossval.json (msa.analysis.crossval.load_crossval), read the first time it is asked
        for; None when the experiment has none. Raises ValueError when it is invalid."""
        return None if self.files is None else load_crossval(self.files)


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
    mode = args.get("mode") or (summary or {}).get("mode") or default_mode(metric)
    epochs = epochs_frame(records)
    max_epochs = args.get("max_epochs") or int(epochs["epoch"].max() if len(epochs) else 0)
    return Experiment(
        files,
        args,
        summary,
        trials_frame(records, metric, mode, max_epochs),
        epochs,
        metric,
        mode,
        max_epochs,
    )


# ----------------------------------------------------------------------------- the best model


def best_checkpoint(experiment: Experiment, trial: str | None = None) -> str:
    """The kept checkpoint file (relative to the experiment) of ``trial`` (default: the best
    trial) at its best epoch, which summary.json records for the best trial; if that one was
    not kept, the best kept one by the rule. Raises FileNotFoundError when none is kept."""
    trial = trial or experiment.best_trial
    if trial is None:
        raise FileNotFoundError(f"{experiment.files.location}: no trial reported an epoch yet")
    row = experiment.trial(trial)
    epoch = row["best_epoch"]
    if (
        experiment.summary
        and experiment.summary.get("best_trial") == trial
        and experiment.summary.get("best_val")
    ):
        epoch = experiment.summary["best_val"].get("epoch", epoch)
    epochs = experiment.epochs[
        (experiment.epochs["trial"] == trial)
        & experiment.epochs["checkpoint_dir_name"].isin(row["checkpoints"])
    ]
    if epochs.empty:
        raise FileNotFoundError(f"{experiment.files.location}/{trial}: no checkpoint kept")
    at_best = epochs[epochs["epoch"] == epoch]
    if at_best.empty:
        position = best_epoch_position(epochs, experiment.metric, experiment.mode)
        at_best = epochs.iloc[[len(epochs) - 1 if position is None else position]]  # none finite: the latest
    return f"{trial}/{at_best['checkpoint_dir_name'].iloc[0]}/{CHECKPOINT_FILE}"


def load_best_model(experiment: Experiment, trial: str | None = None, map_location: str = "cpu"):
    """(model, extra) rebuilt from the best checkpoint (see best_checkpoint) alone; ``extra``
    holds the checkpoint's epoch, labels, pretrained flags and metrics."""
    return load_model(experiment, best_checkpoint(experiment, trial), map_location)


def load_model(experiment: Experiment, relative: str, map_location: str = "cpu"):
    """(model, extra) rebuilt from the checkpoint file at ``relative`` (to the experiment, as
    best_checkpoint names it), fetched from a storage URI when the experiment is remote."""
    from msa.train import model_from_checkpoint  # torch: only when a model is wanted

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
    from msa.data.experiment import prepare_experiment_data
    from msa.data.labels import LabelSet
    from msa.data.sample import sample_dir
    from msa.data.splits import SplitConfig
    from msa.train import evaluate

    args = experiment.args
    if not args:
        raise DataUnavailable(f"no {ARGS_FILE}: the data and split of this search are unknown")
    cache = Path(args["cache"]) if args.get("cache") else default_cache_dir()
    root = (experiment.summary or {}).get("data", {}).get("root") or args.get("data") or sample_dir(cache)
    if not is_uri(root) and not Path(root).exists():
        raise DataUnavailable(f"the data {root} is not on this machine")
    split = SplitConfig(args["split"], args["seed"], tuple(args["val_actors"]), tuple(args["test_actors"]))
    # (msa_args.json files written before --crop existed: the fixed crop)
    params = PrepareParams(
        num_frames=args["frames"], image_size=args["image_size"], crop=args.get("crop", "fixed")
    )
    try:
        data, _ = prepare_experiment_data(
            root, cache, args["classes"], split, params, progress=False, dataset=args.get("dataset", "auto")
        )
    except (
        FileNotFoundError,
        ValueError,
    ) as error:  # DatasetError, NoUsableClipsError, SplitError: ValueErrors
        raise DataUnavailable(str(error)) from error
    recorded = (experiment.summary or {}).get("data", {}).get("actors", {}).get("val")
    if recorded is not None and list(recorded) != list(data.actors["val"]):
        raise DataUnavailable(
            f"the data here gives validation actors {data.actors['val']}, the search used {recorded}"
        )
    modalities = tuple(key for key in ("video", "audio") if key in model.input_keys)
    dataset = ClipDataset(data.clips("val"), LabelSet("val", data.labels), modalities)
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, seed=args["seed"])
    return evaluate(model.eval(), loader, len(data.labels))


@dataclass(frozen=True)
class Confusion:
    """One confusion matrix of the best checkpoint."""

    title: str
    labels: list[str]
    counts: np.ndarray  # rows = true class, columns = predicted


def confusion_matrices(
    experiment: Experiment, evaluate_val: bool = True
) -> tuple[list[Confusion], list[str]]:
    """The best checkpoint's confusion matrices -> ([val, test] where available, notes on what
    is missing and why). Val is recomputed (rebuild_val_evaluation); test is summary.json's,
    evaluated once when the search finished."""
    matrices, notes, summary = [], [], experiment.summary or {}
    actors = summary.get("data", {}).get("actors", {})
    if not evaluate_val:
        notes.append("validation matrix skipped (evaluate_val=False)")
    elif experiment.best_trial is None:
        notes.append("validation matrix: no trial has reported an epoch yet")
    else:
        try:
            model, extra = load_best_model(experiment)
            val = rebuild_val_evaluation(experiment, model)
            matrices.append(
                Confusion(
                    f"validation actors {actors.get('val', '')}: accuracy {val['accuracy']:.3f}\n"
                    f"epoch {extra['epoch']} of {experiment.best_trial}",
                    list(extra["labels"]),
                    np.asarray(val["confusion_matrix"]),
                )
            )
        except (DataUnavailable, FileNotFoundError) as error:
            notes.append(f"validation matrix not shown: {error}")
    test = summary.get("test")
    if test:
        matrices.append(
            Confusion(
                f"test actors {actors.get('test', '')}: accuracy {test['accuracy']:.3f}\nnever seen by any trial",
                list(test["labels"]),
                np.asarray(test["confusion_matrix"]),
            )
        )
    else:
        notes.append(
            "test matrix not available: summary.json (written when the search finishes) has no test evaluation"
        )
    return matrices, notes

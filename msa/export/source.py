"""MODEL of ``python -m msa.export``: an experiment directory's best checkpoint, or a checkpoint
file, rebuilt alone (msa.train.model_from_checkpoint), and what is known of the clips it was
trained on."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from msa.data.decode import PrepareParams
from msa.experiment_dir import ARGS_FILE, PARAMS_FILE, SUMMARY_FILE
from msa.models import EmotionModel
from msa.pareto import ObjectiveError, pick
from msa.train import model_from_checkpoint

VAL_METRICS = ("val_acc", "val_f1", "val_uar", "val_loss")
ARGS_NAMES = {"frames": "num_frames"}  # msa_args.json's names of PrepareParams fields, where they differ


class SourceError(ValueError):
    """MODEL names nothing that holds a model (one line, naming it)."""


@dataclass
class ModelSource:
    """A rebuilt model and what the export records about it."""

    model: EmotionModel
    extra: dict  # the checkpoint's extra: epoch, labels, pretrained, metrics, ...
    location: str  # MODEL as given
    checkpoint: str  # the checkpoint file (relative to the experiment for a directory)
    name: str = ""  # the registered configuration the trial trained ("" when unknown)
    trial: str = ""  # the trial folder, when known
    args: dict = field(default_factory=dict)  # the search's msa_args.json, when found

    def prepare_params(
        self, frames: int | None = None, image_size: int | None = None
    ) -> tuple[PrepareParams, str]:
        """The clips' preprocessing -> (PrepareParams, where its numbers come from): the
        checkpoint's own record (``preprocessing``, written by trials since the crop became an
        option), else the search's msa_args.json (``frames``, ``image_size`` and any other
        PrepareParams field it holds), else msa.data.decode's defaults; ``frames`` /
        ``image_size`` given on the command line win."""
        known = {f.name for f in fields(PrepareParams)}
        if self.extra.get("preprocessing"):
            params = {key: value for key, value in self.extra["preprocessing"].items() if key in known}
            origin = "the checkpoint"
        else:
            recorded = {ARGS_NAMES.get(key, key): value for key, value in self.args.items()}
            params = {key: value for key, value in recorded.items() if key in known}
            origin = ARGS_FILE if params else "msa.data.decode defaults (the checkpoint does not record them)"
        given = {key: value for key, value in (("num_frames", frames), ("image_size", image_size)) if value}
        if given:
            origin = "the command line" if not params else f"the command line and {origin}"
            params.update(given)
        return PrepareParams(**params), origin

    def description(self) -> dict[str, Any]:
        """Where the weights come from, for the exported file's metadata."""
        metrics = self.extra.get("metrics") or {}
        return {
            "source": self.location,
            "checkpoint": self.checkpoint,
            "trial": self.trial,
            "epoch": self.extra.get("epoch"),
            "val_metrics": {key: metrics[key] for key in VAL_METRICS if key in metrics},
        }


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def from_checkpoint(path: str | os.PathLike) -> ModelSource:
    """A checkpoint file (CheckpointError, one line, when it cannot rebuild a model). One inside
    an experiment directory (``TRIAL/checkpoint_N/checkpoint.pt``) also gets the search's
    msa_args.json and the trial's configuration name."""
    path = Path(path)
    model, extra = model_from_checkpoint(path, map_location="cpu")
    trial = path.resolve().parent.parent
    params = _read_json(trial / PARAMS_FILE)
    name = params.get("model", "")
    return ModelSource(
        model,
        extra,
        str(path),
        str(path),
        name=name if isinstance(name, str) else "",
        trial=trial.name if params else "",
        args=_read_json(trial.parent / ARGS_FILE) if params else {},
    )


def from_experiment(location: str, trial: str | None = None) -> ModelSource:
    """An experiment directory (a local path or a storage URI): its best trial's best kept
    checkpoint (msa.analysis.best_checkpoint), or ``trial``'s."""
    # The analysis layer (pandas, matplotlib) only when a directory is exported.
    from msa.analysis.experiment import best_checkpoint, load_experiment, load_model
    from msa.analysis.trials import CONFIG_PREFIX

    try:
        experiment = load_experiment(location)
        relative = best_checkpoint(experiment, trial)
    except KeyError:
        raise SourceError(f"{location}: no trial {trial}") from None
    model, extra = load_model(experiment, relative)
    chosen = relative.split("/", 1)[0]
    name = experiment.trial(chosen).get(f"{CONFIG_PREFIX}model", "")
    return ModelSource(
        model,
        extra,
        location,
        relative,
        name=name if isinstance(name, str) else "",
        trial=chosen,
        args=experiment.args,
    )


def picked_trial(location: str, constraints: str) -> str:
    """--pick "latency_ms<50": the trial of the experiment's Pareto front (summary.json) with the
    best first objective under ``constraints`` (msa.pareto.pick). Raises SourceError (one line)."""
    from msa.analysis.files import ExperimentFiles

    if "://" not in location and not Path(location).is_dir():
        raise SourceError(f"--pick needs an experiment directory; {location} is not one")
    summary = ExperimentFiles(location).read_json(SUMMARY_FILE) or {}
    if not summary.get("pareto_front"):
        raise SourceError(
            f"--pick: {location}/{SUMMARY_FILE} has no Pareto front (a finished msa search --objectives writes one)"
        )
    try:
        return pick(summary["pareto_front"], constraints, summary["objectives"])["trial"]
    except ObjectiveError as error:
        raise SourceError(str(error)) from None


def chosen_trial(location: str, trial: str | None, constraints: str | None) -> str | None:
    """The trial --trial names, or --pick chooses from the front; None: the best trial."""
    if trial and constraints:
        raise SourceError("give --trial or --pick, not both")
    return picked_trial(location, constraints) if constraints else trial


def load_source(location: str, trial: str | None = None) -> ModelSource:
    """MODEL -> ModelSource; SourceError, FileNotFoundError or CheckpointError (one line each)."""
    if "://" in location or Path(location).is_dir():
        return from_experiment(location, trial)
    if trial:
        raise SourceError(f"--trial needs an experiment directory; {location} is not one")
    if not Path(location).exists():
        raise SourceError(
            f"{location} does not exist (MODEL is an experiment directory or a checkpoint file)"
        )
    return from_checkpoint(location)

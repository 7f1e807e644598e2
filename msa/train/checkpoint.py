"""Checkpoints: a model's configuration beside its weights, so the file alone rebuilds it.

Layout (plain containers only, so torch.load(weights_only=True) reads it):
    {"format": CHECKPOINT_FORMAT, "model_config": config_to_dict(...), "model_state": state_dict,
     "extra": {...},   # e.g. optimizer / scheduler state dicts, epoch
     "frozen_omitted": [module, ...]}  # only in a trainable-only checkpoint (below)
Writes are atomic (msa.atomic: a temporary file in the same folder, fsynced, then os.replace).

A trainable-only checkpoint (``trainable_only=True``) leaves out the frozen modules' tensors
(all of ResNet-18, 45 MB, in a video_iter2 checkpoint whose own layers are 20 KB): it resumes a
run whose model was rebuilt with the same frozen weights (``restore_state``), but does not
rebuild a model alone, so model_from_checkpoint refuses it. Trials write one at epochs that can
be neither their best nor a search's result (msa.tune.trainable).
"""

import os
from pathlib import Path
from typing import Any

import torch

from msa.atomic import atomic_path
from msa.models import EmotionModel, config_from_dict, config_to_dict, create_model

CHECKPOINT_FORMAT = 1
_KEYS = ("format", "model_config", "model_state", "extra")
FROZEN_OMITTED = "frozen_omitted"  # the key a trainable-only checkpoint adds: the modules it leaves out


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not an msa checkpoint."""


def save_checkpoint(
    path: str | os.PathLike,
    model: EmotionModel,
    durable: bool = True,
    trainable_only: bool = False,
    **extra: Any,
) -> Path:
    """Atomically write `model` (config + weights; ``trainable_only``: without its frozen
    modules, see the module doc) and `extra` (plain data and tensors) to `path`.

    ``durable=False`` skips the fsync, for a file that is copied elsewhere and deleted (a Ray
    checkpoint's staging folder): forcing to disk what is about to be deleted cost a cached
    trial more than an epoch."""
    path = Path(path)
    omitted = model.frozen_modules if trainable_only else ()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_config": config_to_dict(model.config),
        "model_state": {key: value for key, value in model.state_dict().items() if not _inside(key, omitted)},
        "extra": extra,
    }
    if omitted:
        payload[FROZEN_OMITTED] = list(omitted)
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        torch.save(payload, f)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint's dict (see the module doc); CheckpointError names the path on any failure."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as error:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {error}") from error
    if not isinstance(payload, dict) or set(payload) - {FROZEN_OMITTED} != set(_KEYS):
        raise CheckpointError(f"{path} is not an msa checkpoint (expected keys {', '.join(_KEYS)})")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {payload['format']}; this msa reads {CHECKPOINT_FORMAT}"
        )
    return payload


def _inside(key: str, modules) -> bool:
    return any(key.startswith(f"{module}.") for module in modules)


def restore_state(
    model: EmotionModel, payload: dict[str, Any], path: str | os.PathLike = "checkpoint"
) -> None:
    """Load a checkpoint's weights into ``model``, built from the same configuration; a
    trainable-only checkpoint leaves the model's frozen modules as they are (they must be the
    frozen weights it was trained with: the search's pretrained weights or seeded initialisation).
    Raises CheckpointError naming ``path`` when the weights do not fit."""
    omitted = payload.get(FROZEN_OMITTED, [])
    if omitted and tuple(omitted) != model.frozen_modules:
        raise CheckpointError(
            f"checkpoint {path} left out frozen modules {omitted}; this model freezes {list(model.frozen_modules)}"
        )
    # The tensors a trainable-only checkpoint left out are the model's own: load the rest strictly.
    kept = {key: value for key, value in model.state_dict().items() if _inside(key, omitted)}
    try:
        model.load_state_dict({**kept, **payload["model_state"]})
    except RuntimeError as error:  # e.g. written before a layer was added to the model
        problem = str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
        raise CheckpointError(
            f"checkpoint {path} does not fit this msa's model (an older msa wrote it?): {problem}"
        ) from error


def model_from_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[EmotionModel, dict[str, Any]]:
    """Rebuild the model from the file alone -> (model with its weights, the checkpoint's extra)."""
    payload = load_checkpoint(path, map_location)
    if payload.get(FROZEN_OMITTED):
        raise CheckpointError(
            f"checkpoint {path} holds only the trainable weights (its frozen {', '.join(payload[FROZEN_OMITTED])} "
            "were left out at an epoch that was not its trial's best): use the trial's best checkpoint"
        )
    try:
        config = config_from_dict(payload["model_config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} holds an invalid model config: {error}") from error
    model, _ = create_model(config, config.num_classes, pretrained="off")
    restore_state(model, payload, path)
    return model.to(map_location), payload["extra"]

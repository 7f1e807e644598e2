"""Loading pretrained backbone weights into a model: the only place in msa.models that reads files.

Weights come as ``msa.weights.WeightsFiles``: resolved by the caller (a search's driver, which
may have downloaded them, and ships them to every trial), or looked up here in this machine's
caches, never downloaded. A speech encoder's architecture is its weights' own config.json, so
the model is built for the weights rather than the weights forced into a fixed architecture.

Modes for what the caller did not resolve: "off" never looks; "auto" loads what this machine
has and otherwise keeps random weights after one warning; "on" raises
PretrainedWeightsUnavailable naming what is missing and how to get it.

What was loaded is reported per branch as plain data (stored in checkpoints and summaries):
{"loaded": bool, "source": str | None, "sha256": str | None}.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping

import torch

from msa.models.audio import arch_from_config
from msa.models.config import AudioConfig, ModelConfig, with_overrides
from msa.models.model import EmotionModel
from msa.weights import WeightsFiles, WeightsUnavailable, find_weights

PRETRAINED_MODES = ("auto", "on", "off")
BACKBONE_BRANCHES = ("video", "audio")
NOT_LOADED = {"loaded": False, "source": None, "sha256": None}


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights were asked for and are not on this machine."""


class PretrainedWeightsWarning(UserWarning):
    """pretrained="auto" went on with random weights."""


def loaded_record(stored: dict | bool) -> dict:
    """A branch's record as a checkpoint stored it; checkpoints before per-branch records held
    only whether the branch loaded weights."""
    if isinstance(stored, dict):
        return stored
    return {**NOT_LOADED, "loaded": bool(stored)}


def weight_source(config: ModelConfig, branch: str) -> str:
    """Where the config says the branch's backbone weights come from."""
    return config.video.video_weights if branch == "video" else config.audio.audio_weights


def backbone_branches(config: ModelConfig) -> tuple[str, ...]:
    """Branches with a pretrainable backbone (the small from-scratch CNN and the spectrogram
    family have none)."""
    branches = []
    if config.video is not None and config.video.trunk == "resnet18":
        branches.append("video")
    if isinstance(config.audio, AudioConfig):
        branches.append("audio")
    return tuple(branches)


def find_local_weights(config: ModelConfig, mode: str, skip: tuple[str, ...] = ()) -> dict[str, WeightsFiles]:
    """The backbone weights of ``config`` on this machine, per ``mode`` (see the module doc);
    branches in ``skip`` are not looked up."""
    if mode not in PRETRAINED_MODES:
        raise ValueError(f"pretrained must be one of {', '.join(PRETRAINED_MODES)}; got {mode!r}")
    if mode == "off":
        return {}
    found, missing = {}, []
    for branch in backbone_branches(config):
        if branch in skip:
            continue
        try:
            found[branch] = find_weights(branch, weight_source(config, branch))
        except WeightsUnavailable as error:
            missing.append(f"{branch}: {error}, or pass local files (--{branch}-weights PATH)")
    if missing and mode == "on":
        raise PretrainedWeightsUnavailable("pretrained='on' but weights are missing:\n" + "\n".join(missing))
    if missing:
        warnings.warn(
            "pretrained='auto': continuing with RANDOM weights where pretrained ones are missing:\n"
            + "\n".join(missing),
            PretrainedWeightsWarning,
            stacklevel=3,
        )
    return found


def for_weights(config: ModelConfig, weights: Mapping[str, WeightsFiles]) -> ModelConfig:
    """``config`` with the speech encoder's architecture read from its weights' config.json."""
    if "audio" not in weights or not isinstance(config.audio, AudioConfig):
        return config
    encoder = json.loads((weights["audio"].folder / "config.json").read_text())
    return with_overrides(config, audio_arch=arch_from_config(encoder))


def load_weights(model: EmotionModel, weights: Mapping[str, WeightsFiles]) -> dict[str, dict]:
    """Load each given backbone into ``model`` -> what was loaded, per branch (see module doc)."""
    loaded = {branch: dict(NOT_LOADED) for branch in BACKBONE_BRANCHES}
    for branch, files in weights.items():
        if branch not in model.branches:
            continue
        if branch == "video":
            _load_video(model.branches["video"], files)
        else:
            _load_audio(model.branches["audio"], files)
        loaded[branch] = {"loaded": True, "source": files.source, "sha256": files.sha256}
    return loaded


def _load_video(branch, files: WeightsFiles) -> None:
    """A torchvision ResNet-18 state dict; only the children this trunk keeps."""
    state = torch.load(files.folder / files.files[0], map_location="cpu", weights_only=True)
    kept = set(branch.trunk._modules)
    branch.trunk.load_state_dict({k: v for k, v in state.items() if k.split(".", 1)[0] in kept})


def _load_audio(branch, files: WeightsFiles) -> None:
    """transformers' own loader (it maps old parameter names, e.g. weight-norm ones), into the
    branch's encoder built from the same config. Checkpoint keys the encoder has no use for
    (pretraining heads, the SpecAugment embedding the branch turns off) are expected and not
    reported; a parameter the checkpoint lacks, or has in another shape, is an error."""
    from transformers import AutoModel  # imported here: see msa.models.speech_encoders
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # its load report would list the expected extras
    try:
        loaded, info = AutoModel.from_pretrained(
            files.folder, config=branch.backbone.config, output_loading_info=True
        )
    finally:
        transformers_logging.set_verbosity(verbosity)
    problems = sorted(info["missing_keys"]) + sorted(str(key) for key in info["mismatched_keys"])
    if problems:
        raise PretrainedWeightsUnavailable(
            f"audio weights {files.source}: {files.folder} does not fit its own config.json: {', '.join(problems[:5])}"
        )
    branch.backbone.load_state_dict(loaded.state_dict())

"""Loading pretrained backbone weights, offline-safe: the only place in msa.models that reads files.

Nothing here downloads. torchvision's weights are read from the file its own download would
have written (torch.hub.get_dir()/checkpoints/), Hugging Face's with local_files_only=True, so
on a machine without internet a missing file is reported at once instead of hanging.

Modes: "off" never looks; "auto" loads what it finds and otherwise keeps random weights after
one warning; "on" raises PretrainedWeightsUnavailable naming what is missing and how to get it.
"""

import os
import warnings
from pathlib import Path

import torch
from torchvision.models import ResNet18_Weights
from transformers import Wav2Vec2Config, Wav2Vec2Model

from msa.models.model import EmotionModel

PRETRAINED_MODES = ("auto", "on", "off")


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights were asked for and are not on this machine."""


class PretrainedWeightsWarning(UserWarning):
    """pretrained="auto" went on with random weights."""


def resnet18_state_dict(source: str) -> dict[str, torch.Tensor]:
    """torchvision ResNet-18 state dict from a file path or a ResNet18_Weights name."""
    path = Path(source).expanduser()
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    if source not in ResNet18_Weights.__members__:
        raise PretrainedWeightsUnavailable(
            f"video weights {source!r}: no such file, and not a torchvision ResNet18_Weights name "
            f"({', '.join(ResNet18_Weights.__members__)})"
        )
    url = ResNet18_Weights[source].url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if not cached.is_file():
        raise PretrainedWeightsUnavailable(
            f"ResNet-18 weights {source} are not in torchvision's cache: {cached} is missing. "
            f"Download {url} to that path (where there is internet, "
            f"`python -c \"import torchvision; torchvision.models.resnet18(weights='{source}')\"` does it; "
            f"TORCH_HOME moves the cache), or pass a local .pth file as the video weights (--video-weights PATH)."
        )
    return torch.load(cached, map_location="cpu", weights_only=True)


def wav2vec2_state_dict(source: str, config: Wav2Vec2Config) -> dict[str, torch.Tensor]:
    """wav2vec 2.0 state dict for the architecture `config`, from a local folder (as written by
    save_pretrained) or a hub id already in the Hugging Face cache."""
    path = Path(source).expanduser()
    if path.is_dir():
        return Wav2Vec2Model.from_pretrained(path, config=config).state_dict()
    if path.is_absolute() or source.startswith((".", "~")):
        raise PretrainedWeightsUnavailable(f"audio weights {source!r}: no such folder")
    try:
        return Wav2Vec2Model.from_pretrained(source, config=config, local_files_only=True).state_dict()
    except OSError as error:
        raise PretrainedWeightsUnavailable(
            f"wav2vec 2.0 weights {source!r} are not in the Hugging Face cache "
            f"(HF_HOME / HF_HUB_CACHE). Where there is internet, run `hf download {source}`, or save the "
            f"model with save_pretrained and pass that folder as the audio weights (--audio-weights PATH)."
        ) from error


def _load_video(branch) -> None:
    state = resnet18_state_dict(branch.config.video_weights)
    kept = set(branch.trunk._modules)
    branch.trunk.load_state_dict({k: v for k, v in state.items() if k.split(".", 1)[0] in kept})


def _load_audio(branch) -> None:
    branch.wav2vec2.load_state_dict(wav2vec2_state_dict(branch.config.audio_weights, branch.wav2vec2.config))


_LOADERS = {"video": _load_video, "audio": _load_audio}


def load_pretrained(model: EmotionModel, mode: str) -> dict[str, bool]:
    """Load each branch's backbone weights per `mode`; returns what was really loaded,
    {"video": bool, "audio": bool} (False for a branch the model lacks or that has no backbone)."""
    if mode not in PRETRAINED_MODES:
        raise ValueError(f"pretrained must be one of {', '.join(PRETRAINED_MODES)}; got {mode!r}")
    loaded = dict.fromkeys(_LOADERS, False)
    if mode == "off":
        return loaded
    missing = []
    for name, branch in model.branches.items():
        if not branch.pretrained_modules:
            continue
        try:
            _LOADERS[name](branch)
        except PretrainedWeightsUnavailable as error:
            missing.append(f"{name}: {error}")
        else:
            loaded[name] = True
    if missing and mode == "on":
        raise PretrainedWeightsUnavailable("pretrained='on' but weights are missing:\n" + "\n".join(missing))
    if missing:
        warnings.warn(
            "pretrained='auto': continuing with RANDOM weights where pretrained ones are missing:\n"
            + "\n".join(missing),
            PretrainedWeightsWarning,
            stacklevel=3,
        )
    return loaded

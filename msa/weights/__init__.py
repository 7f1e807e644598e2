"""Pretrained backbone weights onto this machine: torchvision's ResNet-18 for the video branch, a
Hugging Face speech encoder (wav2vec 2.0, HuBERT, WavLM) for the audio branch.

files = find_weights("video", "IMAGENET1K_V1")              # on this machine only, never the network
files = fetch_weights("audio", "facebook/wav2vec2-base")    # find, else download into the standard cache
cached_weights()                                            # what `python -m msa.weights list` prints
bundle = WeightsBundle.pack(files); bundle.materialize(cache) # ship to a machine without them

Sources: video, a ResNet18_Weights name, an http(s) URL or a .pth/.pt file (video.py); audio, a
hub id, optionally "ID@REVISION", or a save_pretrained folder (audio.py). Downloads go where
torchvision and transformers look themselves (torch.hub.get_dir()/checkpoints, the Hugging Face
hub cache). Anything missing or unreachable raises WeightsUnavailable with a one-line message;
an unreachable source fails within about FETCH_TIMEOUT.

Sits below msa.models, which imports it: imports nothing else of msa, nor Ray.
"""

from msa.weights import audio, video
from msa.weights.audio import DEFAULT_AUDIO_WEIGHTS, SPEECH_MODEL_TYPES
from msa.weights.bundle import WeightsBundle
from msa.weights.files import FETCH_TIMEOUT, WeightsFiles, WeightsUnavailable
from msa.weights.listing import cached_weights
from msa.weights.video import DEFAULT_VIDEO_WEIGHTS

__all__ = [
    "DEFAULT_AUDIO_WEIGHTS",
    "DEFAULT_VIDEO_WEIGHTS",
    "FETCH_TIMEOUT",
    "SPEECH_MODEL_TYPES",
    "WeightsBundle",
    "WeightsFiles",
    "WeightsUnavailable",
    "cached_weights",
    "fetch_weights",
    "find_weights",
]

_BRANCHES = {"video": video, "audio": audio}


def find_weights(branch: str, source: str) -> WeightsFiles:
    """The weights `source` names for `branch` ("video" or "audio"), on this machine; never touches the network."""
    return _branch(branch).find(source)


def fetch_weights(
    branch: str, source: str, progress: bool = True, timeout: float = FETCH_TIMEOUT
) -> WeightsFiles:
    """find_weights, else download into the standard cache (progress bars on stderr) and return
    what find_weights then finds. `timeout` (s) bounds every wait for the network, not the download."""
    return _branch(branch).fetch(source, progress=progress, timeout=timeout)


def _branch(name: str):
    if name not in _BRANCHES:
        raise ValueError(f"branch must be one of {', '.join(_BRANCHES)}; got {name!r}")
    return _BRANCHES[name]

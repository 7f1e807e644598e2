"""Video backbone weights: torchvision's ResNet-18 checkpoints.

A source is a torchvision ResNet18_Weights name (IMAGENET1K_V1, or its alias DEFAULT), an
http(s) URL of a checkpoint, or a local .pth/.pt file. Names and URLs live where torchvision's
own download puts them, torch.hub.get_dir()/checkpoints/<file name of the URL> ($TORCH_HOME
moves it), so a file fetched here is the one torchvision.models.resnet18(weights=...) loads,
and the other way round.

As in torchvision, a file name carrying a hash prefix (resnet18-f37072fd.pth, torch.hub's
HASH_REGEX) is checked when downloaded, not when found: the sha256 of the bytes must start with it.
"""

import os
from pathlib import Path
from urllib.parse import urlparse

import torch

from msa.weights.download import download
from msa.weights.files import FETCH_TIMEOUT, WeightsFiles, WeightsUnavailable, weights_files

DEFAULT_VIDEO_WEIGHTS = "IMAGENET1K_V1"
CHECKPOINT_SUFFIXES = (".pth", ".pt")


def resnet18_weights():
    """torchvision's ResNet18_Weights enum, imported when first asked for: torchvision.models
    loads torch._dynamo (seconds), which a command that only lists or fetches need not wait for."""
    from torchvision.models import ResNet18_Weights

    return ResNet18_Weights


def checkpoints_dir() -> Path:
    """torchvision's download cache, read now (it follows $TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def checkpoint_names() -> dict[str, str]:
    """{cached file name: weights name} of ResNet18_Weights (aliases such as DEFAULT left out)."""
    return {_file_name(weights.url): weights.name for weights in resnet18_weights()}


def find(source: str) -> WeightsFiles:
    """The checkpoint `source` names, on this machine; never touches the network."""
    url = _url(source)
    path = Path(source).expanduser() if url is None else checkpoints_dir() / _file_name(url)
    if not path.is_file():
        if url is None:
            raise WeightsUnavailable(f"video weights {source!r}: no such file")
        raise WeightsUnavailable(
            f"video weights {source}: not downloaded ({path} is missing); "
            f"`msa weights fetch --video {source}` gets it"
        )
    return weights_files("video", source, path.parent, other=[], weights=[path.name])


def fetch(source: str, progress: bool = True, timeout: float = FETCH_TIMEOUT) -> WeightsFiles:
    """find(source), downloading a name's or URL's checkpoint into torchvision's cache first if missing."""
    url = _url(source)
    if url is not None and not (path := checkpoints_dir() / _file_name(url)).is_file():
        match = torch.hub.HASH_REGEX.search(path.name)
        what = f"video weights {source}" if url == source else f"video weights {source} ({url})"
        download(
            url,
            path,
            hash_prefix=match.group(1) if match else None,
            progress=progress,
            timeout=timeout,
            what=what,
        )
    return find(source)


def _url(source: str) -> str | None:
    """The URL a name or URL source downloads from; None for a local file."""
    weights = resnet18_weights()
    if source in weights.__members__:
        return weights[source].url
    if urlparse(source).scheme in ("http", "https"):
        if not _file_name(source):
            raise WeightsUnavailable(f"video weights {source}: the URL names no file")
        return source
    if Path(source).suffix in CHECKPOINT_SUFFIXES:
        return None
    raise WeightsUnavailable(
        f"video weights {source!r}: not a torchvision ResNet18_Weights name ({', '.join(weights.__members__)}), "
        f"an http(s) URL or a {'/'.join(CHECKPOINT_SUFFIXES)} file"
    )


def _file_name(url: str) -> str:
    """The cached file's name, as torch.hub.load_state_dict_from_url derives it."""
    return os.path.basename(urlparse(url).path)

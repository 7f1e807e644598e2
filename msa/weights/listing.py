"""What pretrained backbones this machine's caches hold, as `python -m msa.weights list` shows them.

Video: every .pth/.pt file in torchvision's checkpoint cache ($TORCH_HOME/hub/checkpoints); the
source is the ResNet18_Weights name whose URL downloads that file, else the file's path.
Audio: every snapshot in the Hugging Face hub cache whose config.json has a model_type of
SPEECH_MODEL_TYPES and that holds usable weights; the source is the repo id, with "@REF" for a
snapshot the default branch ("main") does not point to. Filtering on the model type keeps the
listing to speech encoders: it never hashes the gigabytes of an unrelated language model.
Each source listed is one find_weights() accepts.
"""

import json
from pathlib import Path

from huggingface_hub import constants, scan_cache_dir

from msa.weights import audio, video
from msa.weights.audio import SPEECH_MODEL_TYPES
from msa.weights.files import WeightsFiles, WeightsUnavailable


def cached_weights() -> list[dict]:
    """One record per cached backbone: {branch, source, path, size (bytes), sha256}, video first."""
    return [describe(files) for files in [*_video(), *_audio()]]


def describe(files: WeightsFiles) -> dict:
    """The record of a backbone; path is what to pass as a local source (the file, or the model folder)."""
    path = files.paths[0] if files.branch == "video" else files.folder
    return {
        "branch": files.branch,
        "source": files.source,
        "path": str(path),
        "size": files.size,
        "sha256": files.sha256,
    }


def _video() -> list[WeightsFiles]:
    folder = video.checkpoints_dir()
    if not folder.is_dir():
        return []
    names = video.checkpoint_names()
    return [
        video.find(names.get(path.name, str(path)))
        for path in sorted(folder.iterdir())
        if path.suffix in video.CHECKPOINT_SUFFIXES and path.is_file()
    ]


def _audio() -> list[WeightsFiles]:
    if not Path(constants.HF_HUB_CACHE).is_dir():
        return []
    found = []
    for repo in sorted(scan_cache_dir(constants.HF_HUB_CACHE).repos, key=lambda repo: repo.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda revision: revision.commit_hash):
            if _model_type(revision.snapshot_path) not in SPEECH_MODEL_TYPES:
                continue
            ref = "main" if "main" in revision.refs else min(revision.refs, default=revision.commit_hash)
            try:
                found.append(audio.find(repo.repo_id if ref == "main" else f"{repo.repo_id}@{ref}"))
            except WeightsUnavailable:  # a snapshot with a config but no (complete) weights
                continue
    return found


def _model_type(snapshot: Path) -> str | None:
    try:
        return json.loads((snapshot / audio.CONFIG).read_text()).get("model_type")
    except (OSError, ValueError):
        return None

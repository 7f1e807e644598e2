"""Pretrained weights for a whole search: resolved once by the driver, shipped to every trial.

The driver finds each backbone the space can use in the standard caches, or downloads it
(``msa.weights``), before Ray starts. What it resolved travels to the trials inside their
settings as a ``WeightsBundle`` (the files' bytes as numpy arrays, which Ray's object store
hands to every process on a node without copying), and each node writes the files once into
its own cache (``CACHE/weights/<sha256>/``), so worker nodes need no internet, no hub token and
no cache of their own, and every trial on every node loads the same bytes.

Policy (``--pretrained``): ``off`` resolves nothing; ``on`` downloads what is missing and stops
the search if that fails; ``auto`` does the same, except that on the embedded sample it goes on
with random weights after a warning (a search on real data without the weights would answer
another question than the one asked).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msa.weights import DEFAULT_AUDIO_WEIGHTS, DEFAULT_VIDEO_WEIGHTS, WeightsFiles, WeightsUnavailable, fetch_weights
from msa.weights.files import weights_digest
from msa.tune.options import UsageError

WEIGHTS_DIR = "weights"  # inside a node's msa cache


@dataclass(frozen=True)
class WeightsBundle:
    """One backbone's files in memory, picklable, for machines that lack them."""

    branch: str
    source: str
    sha256: str
    files: tuple[tuple[str, np.ndarray], ...]  # (name relative to the folder, its bytes as uint8)

    @classmethod
    def pack(cls, weights: WeightsFiles) -> WeightsBundle:
        """Memory-map the files: Ray copies them into its object store without the driver
        reading them onto its heap."""
        files = tuple(
            (name, np.asarray(np.memmap(weights.folder / name, dtype=np.uint8, mode="r")))
            for name in weights.files
        )
        return cls(weights.branch, weights.source, weights.sha256, files)

    @property
    def size(self) -> int:
        return sum(data.nbytes for _, data in self.files)

    def materialize(self, cache: Path) -> WeightsFiles:
        """The files under ``cache/weights/<sha256>/``, written there first if this node lacks
        them: into a temporary folder, checked against the sha256, then renamed into place, so
        a reader never sees a partial copy and concurrent trials both succeed."""
        folder = cache / WEIGHTS_DIR / f"{self.branch}-{self.sha256}"
        if not folder.is_dir():
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
            try:
                for name, data in self.files:
                    path = staging / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    data.tofile(path)
                written = weights_digest(staging, list(self.weight_names()))
                if written != self.sha256:
                    raise OSError(f"{self.branch} weights written to {staging} hash to {written}, not {self.sha256}")
                try:
                    os.rename(staging, folder)
                except OSError:
                    if not folder.is_dir():  # not a concurrent writer that won the race
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        names = tuple(name for name, _ in self.files)
        return WeightsFiles(self.branch, self.source, folder, names, self.sha256, self.size)

    def weight_names(self) -> tuple[str, ...]:
        """The files the digest covers (everything but the config)."""
        return tuple(name for name, _ in self.files if name != "config.json" and not name.endswith(".index.json"))


FETCH_HINT = {"video": "--video", "audio": "--audio"}


def weight_sources(args) -> dict[str, str]:
    """Each backbone's source: --video-weights / --audio-weights, else the default."""
    return {"video": args.video_weights or DEFAULT_VIDEO_WEIGHTS, "audio": args.audio_weights or DEFAULT_AUDIO_WEIGHTS}


def resolve_search_weights(
    branches: tuple[str, ...], mode: str, sources: dict[str, str], real_data: bool, progress: bool = True
) -> dict[str, WeightsBundle]:
    """Each backbone in ``branches`` ("video", "audio") found or downloaded here, per ``mode``.

    Raises UsageError (one line naming both ways out) when a backbone cannot be had and the
    search may not go on without it; otherwise prints a warning and leaves it out (random)."""
    if mode == "off":
        return {}
    bundles = {}
    for branch in branches:
        source = sources[branch]
        try:
            weights = fetch_weights(branch, source, progress=progress)
        except WeightsUnavailable as error:
            reason = str(error)
            if mode == "on" or real_data:
                raise UsageError(
                    f"--pretrained {mode}: {reason}; get them on a connected machine with "
                    f"`python -m msa.weights fetch {FETCH_HINT[branch]} {source}` (then copy the cache here), "
                    f"or pass --pretrained off to train from random weights on purpose"
                ) from None
            print(f"warning: {reason}; the embedded sample trains the {branch} backbone from RANDOM weights", file=sys.stderr)
            continue
        print(f"{branch} weights: {source} ({weights.size / 2**20:.1f} MB, sha256 {weights.sha256[:12]}) from {weights.folder}")
        bundles[branch] = WeightsBundle.pack(weights)
    return bundles

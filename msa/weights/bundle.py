"""A backbone's weights shipped to a machine that lacks them, and written into its cache.

A WeightsBundle holds the files' bytes as numpy arrays (picklable; Ray's object store hands
numpy arrays to every process on a node without copying them), built from a WeightsFiles on
the machine that has them (``pack``: memory-mapped, so packing reads nothing onto the heap).
``materialize`` writes them once under a cache (``CACHE/weights/<branch>-<sha256>/``): checked
against the sha256, published by rename, so readers never see a partial copy and concurrent
writers both succeed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msa.weights.files import WeightsFiles, weights_digest

WEIGHTS_DIR = "weights"  # inside a node's msa cache


@dataclass(frozen=True)
class WeightsBundle:
    """One backbone's files in memory, picklable, for machines that lack them."""

    branch: str
    source: str
    sha256: str
    files: tuple[tuple[str, np.ndarray], ...]  # (name relative to the folder, its bytes as uint8)
    digested: tuple[str, ...]  # the names sha256 covers (WeightsFiles.digested)

    @classmethod
    def pack(cls, weights: WeightsFiles) -> WeightsBundle:
        """Memory-map the files: Ray copies them into its object store without the driver
        reading them onto its heap."""
        files = tuple(
            (name, np.asarray(np.memmap(weights.folder / name, dtype=np.uint8, mode="r")))
            for name in weights.files
        )
        return cls(weights.branch, weights.source, weights.sha256, files, weights.digested)

    @property
    def size(self) -> int:
        return sum(data.nbytes for _, data in self.files)

    def materialize(self, cache: Path) -> WeightsFiles:
        """The files under ``cache/weights/<branch>-<sha256>/``, written there first if this node lacks
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
                written = weights_digest(staging, list(self.digested))
                if written != self.sha256:
                    raise OSError(
                        f"{self.branch} weights written to {staging} hash to {written}, not {self.sha256}"
                    )
                try:
                    os.rename(staging, folder)
                except OSError:
                    if not folder.is_dir():  # not a concurrent writer that won the race
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        names = tuple(name for name, _ in self.files)
        return WeightsFiles(self.branch, self.source, folder, names, self.digested, self.sha256, self.size)


def shipped_weights(cache: Path) -> list[Path]:
    """The folder of every backbone written under ``cache`` (what materialize made)."""
    root = cache / WEIGHTS_DIR
    return (
        sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if root.is_dir()
        else []
    )

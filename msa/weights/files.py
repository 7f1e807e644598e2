"""What a backbone's weights are on this machine (WeightsFiles), the one error this package
raises (WeightsUnavailable), and how weights are fingerprinted (sha256, streamed)."""

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

FETCH_TIMEOUT = (
    30.0  # s: an unreachable source fails within about this (a stall bound, not a total download time)
)
HASH_CHUNK = 1 << 20  # bytes read at a time while hashing: a 360 MB file never sits in memory


class WeightsUnavailable(RuntimeError):
    """Weights that cannot be found or fetched; the message is one line naming the source and why."""


@dataclass(frozen=True)
class WeightsFiles:
    """A backbone's weights on this machine.

    files are relative to folder: video ("resnet18-f37072fd.pth",); audio ("config.json",
    "model.safetensors"), or config.json + an index + its shards, or pytorch_model.bin.
    sha256 fingerprints the weights only, the files in ``digested`` (see weights_digest); size
    counts every listed file.
    """

    branch: str  # "video" or "audio"
    source: str  # as the user named it
    folder: Path
    files: tuple[str, ...]
    digested: tuple[str, ...]  # the weights among files (not config.json, not a shard index)
    sha256: str
    size: int  # bytes

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(self.folder / name for name in self.files)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, streamed; remembered per (real path, size, mtime) in this
    process, so that building a model in every trial does not re-read 360 MB of weights."""
    stat = os.stat(path)
    return _file_sha256(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _file_sha256(real_path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(real_path, "rb") as file:
        while chunk := file.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def weights_digest(folder: Path, weights: list[str]) -> str:
    """The WeightsFiles.sha256 of weight files in `folder`: one file's own sha256; for shards, the
    sha256 of "NAME SHA256\\n" lines in name order (so one shard's change changes the digest)."""
    if len(weights) == 1:
        return file_sha256(folder / weights[0])
    lines = "".join(f"{name} {file_sha256(folder / name)}\n" for name in sorted(weights))
    return hashlib.sha256(lines.encode()).hexdigest()


def weights_files(
    branch: str, source: str, folder: Path, other: list[str], weights: list[str]
) -> WeightsFiles:
    """The record of `weights` (digested) and `other` files (e.g. config.json) in `folder`."""
    names = [*other, *weights]
    return WeightsFiles(
        branch=branch,
        source=source,
        folder=folder,
        files=tuple(names),
        digested=tuple(weights),
        sha256=weights_digest(folder, weights),
        size=sum((folder / name).stat().st_size for name in names),
    )

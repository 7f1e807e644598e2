"""Frozen-prefix feature cache: what a branch's frozen layers compute, computed once per dataset.

A branch whose first layers are frozen (a ResNet-18 trunk up to its first trainable child;
wav2vec 2.0's conv encoder and any frozen transformer layers) gives the same output for a clip
in every epoch of every trial that shares those layers and weights. The cache keeps that output
per clip on disk, read memory-mapped, and trials train from it:

    <cache>/features/<branch>-<fingerprint>[-float16]/meta.json       what the table holds
                                                    /<clip key>.npy  (L, ...): one clip's prefix output
                                                    /.lock           held while entries are computed

Entries are float32, or float16 in a table of their own (the `-float16` folder): half the bytes
(a wav2vec2-base table at layer 10 is ~0.8 GB of float32 for RAVDESS) at logits within 1e-3 and
probabilities within 1e-4 of float32's, measured on random-weight models (docs/explanation/cache.md).
The model receives them as float32 either way: PrefixCachedModel casts the batch, after it is
loaded and moved.

The fingerprint hashes the branch's prefix signature (frozen module names, architecture, input
normalisation) and the bytes of every frozen tensor; an entry is named by the prepared clip's
key, which hashes the source file's identity and the decoding parameters. Change any of them
and another entry is used. Entries are written under a temporary name and published by rename;
computing holds an exclusive lock on the table, so concurrent trials compute each entry once
(on a filesystem without locks both may compute, and one identical copy wins).

Layer: uses msa.data (prepared clips) and the branches' prefix methods; no Ray, no training.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from msa.data.dataset import ClipDataset, make_loader
from msa.data.prepare import PreparedClip, exclusive_lock

FEATURES_DIR = "features"
FORMAT_VERSION = 1  # bump when an entry's layout or meaning changes
ENTRY_DTYPES = ("float32", "float16")  # what a table's entries may be stored as
DEFAULT_ENTRY_DTYPE = "float32"
META_FILE = "meta.json"
LOCK_FILE = ".lock"


def features_dir(cache: str | os.PathLike) -> Path:
    return Path(cache) / FEATURES_DIR


def feature_key(branch: str) -> str:
    """The batch key that carries a branch's cached prefix (its mask is `<key>_mask`)."""
    return f"{branch}_features"


def prefix_fingerprint(branch: nn.Module) -> str:
    """Hash of everything that decides the branch's `frozen_prefix` output for a given clip."""
    signature = {"format": FORMAT_VERSION, **branch.prefix_signature()}
    digest = hashlib.sha256(json.dumps(signature, sort_keys=True, default=str).encode())
    for name in branch.frozen_modules:
        for key, tensor in sorted(branch.get_submodule(name).state_dict().items()):
            tensor = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}.{key} {tensor.dtype} {tuple(tensor.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy())  # hashed in place: wav2vec 2.0 is ~380 MB
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class FeatureTable:
    """The cached prefix outputs of one (branch, frozen weights, boundary, entry dtype) for every clip."""

    root: Path
    dtype: str = DEFAULT_ENTRY_DTYPE  # one of ENTRY_DTYPES: how entries are stored

    @classmethod
    def for_branch(
        cls, branch: nn.Module, cache: str | os.PathLike, dtype: str = DEFAULT_ENTRY_DTYPE
    ) -> FeatureTable:
        if dtype not in ENTRY_DTYPES:
            raise ValueError(f"feature entries are one of {', '.join(ENTRY_DTYPES)}; got {dtype!r}")
        name = f"{branch.prefix_signature()['branch']}-{prefix_fingerprint(branch)}"
        # float32 tables keep the name they had before entries could be float16, so they stay valid.
        suffix = "" if dtype == DEFAULT_ENTRY_DTYPE else f"-{dtype}"
        return cls(features_dir(cache) / f"{name}{suffix}", dtype)

    def entry(self, clip: PreparedClip) -> Path:
        return self.root / f"{clip.entry.name}.npy"

    def missing(self, clips: Iterable[PreparedClip]) -> list[PreparedClip]:
        return [clip for clip in clips if not self.entry(clip).is_file()]

    def load(self, clip: PreparedClip) -> np.ndarray:
        """One clip's prefix output (L, ...) in the table's dtype, memory-mapped: trials on a
        machine share one copy."""
        return np.load(self.entry(clip), mmap_mode="r")

    def compute(
        self,
        branch: nn.Module,
        clips: Sequence[PreparedClip],
        batch_size: int = 8,
        progress: bool = True,
        lock: bool = True,
    ) -> int:
        """Compute and publish the entries `clips` lack, in batches on the branch's device.
        Returns how many this call computed (0 when another process already had). Without
        ``lock`` the caller promises that no other caller computes these clips now (the
        disjoint shares msa.tune.cluster hands out), so shares run in parallel."""
        if not self.missing(clips):
            return 0
        self.root.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.root / LOCK_FILE) if lock else contextlib.nullcontext():
            todo = self.missing(clips)  # another process may have computed them while we waited
            if not todo:
                return 0
            self._write_meta(branch)
            modality = branch.input_keys[0]
            loader = make_loader(ClipDataset(todo, None, modalities=(modality,)), batch_size, shuffle=False)
            device = next(branch.parameters()).device
            done = 0
            bar = tqdm(
                total=len(todo),
                desc=f"{self.root.name} features",
                unit="clip",
                disable=not progress,
                mininterval=2.0,
            )
            with bar:
                for batch in loader:
                    inputs = {key: batch[key].to(device) for key in branch.input_keys}
                    entries = branch.prefix_entries(branch.frozen_prefix(**inputs))
                    for clip, entry in zip(todo[done : done + len(entries)], entries, strict=True):
                        self._publish(clip, entry.float().cpu().numpy())
                    done += len(entries)
                    bar.update(len(entries))
            return done

    def _publish(self, clip: PreparedClip, array: np.ndarray) -> None:
        with np.errstate(over="ignore"):  # an overflow is reported below, as an error
            stored = array.astype(self.dtype, copy=False)
        if np.isfinite(array).all() and not np.isfinite(stored).all():
            # float16 ends at 65504: an entry beyond it would turn into inf, and the trial's loss into NaN.
            raise OverflowError(
                f"{clip.display}: prefix output beyond {self.dtype}'s range "
                f"(|x| up to {np.abs(array).max():.4g}); use float32 entries"
            )
        temporary = self.root / f".{clip.entry.name}.{uuid.uuid4().hex}.tmp"
        with open(temporary, "wb") as handle:
            np.save(handle, stored)
        os.replace(temporary, self.entry(clip))

    def _write_meta(self, branch: nn.Module) -> None:
        path = self.root / META_FILE
        if path.is_file():
            return
        meta = {
            "format": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "dtype": self.dtype,
            **branch.prefix_signature(),
        }
        temporary = self.root / f".{META_FILE}.{uuid.uuid4().hex}.tmp"
        temporary.write_text(json.dumps(meta, indent=1, default=str))
        os.replace(temporary, path)


def cache_plan(model: nn.Module, augmented: Iterable[str] = (), enabled: bool = True) -> dict[str, str]:
    """Branch name -> "cached", or why its prefix is computed in every step instead."""
    augmented = set(augmented)
    plan = {}
    for name, branch in model.branches.items():
        if not enabled:
            plan[name] = "off: feature cache disabled"
        elif not branch.has_frozen_prefix:
            plan[name] = "off: nothing frozen"
        elif name in augmented:
            plan[name] = "off: input augmented"
        else:
            plan[name] = "cached"
    return plan


class PrefixCachedModel(nn.Module):
    """`model` fed from cached prefix features for the branches in `cached` and from raw inputs
    for the others. Same logits as `model` on the same clips; checkpoints hold `model` itself.

    input_keys: `<branch>_features` and `<branch>_features_mask` for a cached branch (entries
    padded by msa.data's collate), the branch's own input keys otherwise."""

    def __init__(self, model: nn.Module, cached: Iterable[str]):
        super().__init__()
        self.model = model
        self.cached = tuple(cached)
        unknown = set(self.cached) - set(model.branches)
        if unknown:
            raise ValueError(f"model has no branch {', '.join(sorted(unknown))}")

    @property
    def input_keys(self) -> tuple[str, ...]:
        keys = []
        for name, branch in self.model.branches.items():
            keys += (
                [feature_key(name), f"{feature_key(name)}_mask"] if name in self.cached else branch.input_keys
            )
        return tuple(keys)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        prefix = {}
        for name, branch in self.model.branches.items():
            if name in self.cached:
                key = feature_key(name)
                # Entries travel in their stored dtype (half the bytes from the loader's workers and
                # to the GPU for a float16 table); the trainable rest computes from float32.
                features = inputs[key].float()
                prefix[name] = branch.prefix_from_entries(features, inputs[f"{key}_mask"])
            else:
                prefix[name] = branch.frozen_prefix(**{key: inputs[key] for key in branch.input_keys})
        return self.model.forward_from_prefix(prefix)


def list_tables(cache: str | os.PathLike) -> list[dict]:
    """Every feature table under the cache: name, branch, frozen modules, entry dtype, entries,
    bytes, created."""
    tables = []
    root = features_dir(cache)
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir():
            continue
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except (OSError, ValueError):
            meta = {}
        entries = list(folder.glob("*.npy"))
        tables.append(
            {
                "name": folder.name,
                "branch": meta.get("branch", "?"),
                "frozen": meta.get("frozen", []),
                # meta.json files written before entries could be float16 name no dtype: float32.
                "dtype": meta.get("dtype", DEFAULT_ENTRY_DTYPE) if meta else "?",
                "entries": len(entries),
                "bytes": sum(path.stat().st_size for path in entries),
                "created": meta.get("created", "?"),
            }
        )
    return tables


def clear_features(cache: str | os.PathLike) -> int:
    """Delete every feature table; returns the bytes freed. Prepared clips are kept."""
    root = features_dir(cache)
    freed = sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) if root.is_dir() else 0
    shutil.rmtree(root, ignore_errors=True)
    return freed

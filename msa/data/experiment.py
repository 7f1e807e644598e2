"""The data side of an experiment, settled in the driver and handed to every trial.

The driver finds the data (``find_data``: a folder, a storage URI or the embedded sample),
has every usable clip prepared (``prepare_locally`` here, or ``msa.tune.cluster`` over a Ray
cluster), splits by actor (``split_data``) and passes a ``TrialData`` to every trial once
(through Ray's object store, by msa.tune): clip names, sources and cache keys, never the arrays.

A prepared clip is found by its key under *this node's* cache (``--cache`` as given, or each
node's ``$MSA_CACHE`` / ``~/.cache/msa``), so a cluster works with one shared cache or with a
cache per node; a node that lacks entries (say a GPU node the autoscaler just started)
prepares them at its first trial, once for all the trials on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from msa.data import default_cache_dir, is_uri
from msa.data.decode import PrepareParams
from msa.data.labels import EMOTIONS, get_label_set
from msa.data.prepare import (
    NoUsableClipsError,
    PreparedClip,
    PrepareReport,
    clips_dir,
    complete_cache,
    entry_key,
    exclusive_lock,
    finish_report,
    is_prepared,
    usable_clips,
)
from msa.data.ravdess import ClipName, Found, Source, discover
from msa.data.sample import SampleSpec, ensure_sample
from msa.data.splits import PARTS, SplitConfig, split_actors, split_clips


@dataclass(frozen=True)
class ClipItem:
    """One usable clip as the driver found it: what every node needs to find or prepare it."""

    name: ClipName
    source: Source  # where its bytes are (a file, or a zip member), as the driver saw them
    key: str  # its entry's name in a cache: the source's identity and the decoding parameters
    display: str  # the path shown to users (a file, or zip::member)


@dataclass(frozen=True)
class DataLocation:
    """Where every node finds the data and its cache."""

    root: str  # the data root as the driver found it: a folder or a storage URI
    cache: str | None  # --cache as given; None: each node's $MSA_CACHE or ~/.cache/msa
    params: PrepareParams
    sample: SampleSpec | None = None  # no --data: each node generates the sample into its own cache

    def node_cache(self) -> Path:
        return Path(self.cache).expanduser() if self.cache else default_cache_dir()

    def node_root(self) -> str:
        """The data root on this node (the embedded sample is generated here if it is not yet)."""
        if self.sample is None:
            return self.root
        cache = self.node_cache()
        with exclusive_lock(cache / "locks" / "sample.lock"):
            return str(ensure_sample(cache, self.sample, progress=False))

    def jobs(self, items: list[ClipItem]) -> list[tuple[Found, Path]]:
        """(what to decode, the entry to publish) of each clip item on this node."""
        entries = clips_dir(self.node_cache())
        root = self.root if self.sample is None else self.node_root()
        jobs = []
        for item in items:
            source = item.source
            if root != self.root:  # the sample, generated into this node's own cache
                source = replace(source, path=root + source.path[len(self.root) :])
            jobs.append((Found(source, item.name, None), entries / item.key))
        return jobs

    def prepare_here(
        self, items: list[ClipItem], workers: int | None = 1, progress: bool = False
    ) -> tuple[int, dict[str, str]]:
        """Prepare the clips this node's cache lacks -> (decoded here, item display -> failure)."""
        entries = clips_dir(self.node_cache())
        items = [item for item in items if not is_prepared(entries / item.key)]
        if not items:  # the usual case at a trial's start: no source is touched (nor the sample made)
            return 0, {}
        jobs = self.jobs(items)
        decoded, failed = complete_cache(
            jobs, self.node_cache(), self.params, workers=workers, progress=progress
        )
        here = {found.source.display: item.display for (found, _), item in zip(jobs, items)}
        return decoded, {here[display]: reason for display, reason in failed.items()}


@dataclass(frozen=True)
class FoundData:
    """What the driver found: every file, and a picklable item per usable clip."""

    location: DataLocation
    found: list[Found]
    items: list[ClipItem] = field(repr=False)  # one per usable clip

    @property
    def actors(self) -> list[int]:
        """The actors with a usable clip."""
        return sorted({item.name.actor for item in self.items})


@dataclass(frozen=True)
class TrialData:
    """What every trial needs to build its loaders: clips per part and the label order."""

    labels: tuple[str, ...]
    parts: dict[str, list[ClipItem]]  # part -> its clips
    actors: dict[str, list[int]]
    location: DataLocation
    num_clips: int  # usable clips found (before the label set drops any)
    skipped: int  # files left out, with a reason, by preparation

    @property
    def root(self) -> str:
        return self.location.root

    def node_cache(self) -> Path:
        return self.location.node_cache()

    def clips(self, *parts: str) -> list[PreparedClip]:
        """The clips of ``parts`` ("train", "val", "test"), in that order, in this node's cache."""
        entries = clips_dir(self.node_cache())
        return [
            PreparedClip(item.name, item.display, entries / item.key)
            for part in parts
            for item in self.parts[part]
        ]

    def ensure_here(
        self, parts: tuple[str, ...] = PARTS, workers: int | None = None, progress: bool = False
    ) -> int:
        """Prepare the clips of ``parts`` missing from this node's cache -> how many were decoded."""
        items = [item for part in parts for item in self.parts[part]]
        decoded, failed = self.location.prepare_here(items, workers=workers, progress=progress)
        if failed:
            display, reason = next(iter(failed.items()))
            raise RuntimeError(
                f"{len(failed)} clips that decoded elsewhere failed here, e.g. {display}: {reason}"
            )
        return decoded

    def summary(self) -> dict:
        """The ``data`` block of summary.json."""
        return {"root": self.root, "clips": self.num_clips, "skipped": self.skipped, "actors": self.actors}


def find_data(
    data: str | os.PathLike | None,
    cache: str | os.PathLike | None,
    params: PrepareParams,
    sample: SampleSpec = SampleSpec(),
) -> FoundData:
    """Discover the data under ``data`` (``sample`` when None, generated into this node's
    cache). Raises FileNotFoundError / NoUsableClipsError."""
    cache_arg = str(Path(cache).expanduser().resolve()) if cache is not None else None
    if data is None:
        data = ensure_sample(Path(cache_arg).expanduser() if cache_arg else default_cache_dir(), sample)
    else:
        sample = None
    root = str(data) if is_uri(data) else str(Path(data).expanduser().resolve())
    location = DataLocation(root, cache_arg, params, sample)
    found = discover(root)
    items = [
        ClipItem(f.name, f.source, entry_key(f.source, params), f.source.display)
        for f in usable_clips(found, root)
    ]
    return FoundData(location, found, items)


def prepare_locally(found: FoundData, progress: bool = True) -> tuple[int, dict[str, str]]:
    """Prepare every usable clip in this machine's cache on all its cores -> (decoded, failures)."""
    return found.location.prepare_here(found.items, workers=None, progress=progress)


def split_data(
    found: FoundData, decoded: int, failed: dict[str, str], classes: str, split: SplitConfig
) -> tuple[TrialData, PrepareReport]:
    """Drop the clips that failed to decode, split the rest by actor. Raises NoUsableClipsError /
    SplitError."""
    entries = clips_dir(found.location.node_cache())
    report = finish_report(
        found.location.root,
        found.found,
        {item.display: entries / item.key for item in found.items},
        failed,
        attempted=decoded + len(failed),
    )
    label_set = get_label_set(classes)
    items = [item for item in found.items if item.display not in failed]
    items = [item for item in items if label_set.index(EMOTIONS[item.name.emotion - 1]) is not None]
    if not items:
        raise NoUsableClipsError(
            f"--data {found.location.root}: no usable clip of the classes {', '.join(label_set.labels)}"
        )
    names = [item.name for item in items]
    required = [EMOTIONS.index(label) + 1 for label in label_set.labels]
    parts = split_clips(names, split, required)
    trial_data = TrialData(
        labels=label_set.labels,
        parts={part: [items[i] for i in parts[part]] for part in PARTS},
        actors=split_actors(names, parts),
        location=found.location,
        num_clips=len(report.clips),
        skipped=len(report.skipped),
    )
    return trial_data, report


def prepare_experiment_data(
    data: str | os.PathLike | None,
    cache: str | os.PathLike | None,
    classes: str,
    split: SplitConfig,
    params: PrepareParams,
    progress: bool = True,
) -> tuple[TrialData, PrepareReport]:
    """Find, prepare on this machine and split. Raises FileNotFoundError / NoUsableClipsError /
    SplitError for unusable data."""
    found = find_data(data, cache, params)
    decoded, failed = prepare_locally(found, progress=progress)
    return split_data(found, decoded, failed, classes, split)

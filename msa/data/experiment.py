"""The data side of an experiment, settled in the driver and handed to every trial.

The driver finds the data (``find_data``: a folder, a storage URI or the embedded sample),
has every usable clip prepared (``prepare_locally`` here, or ``msa.tune.cluster`` over a Ray
cluster), maps labels to the search's classes and splits by speaker (``split_data``) and passes
a ``TrialData`` to every trial once (through Ray's object store, by msa.tune): clip records,
sources and cache keys, never the arrays.

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
from msa.data.datasets import AUTO, ClipRecord, Corpus, Found, SpeakerId, read_dataset
from msa.data.decode import PrepareParams
from msa.data.labels import class_map
from msa.data.prepare import (
    NoUsableClipsError,
    PreparedClip,
    PrepareReport,
    clip_display,
    clips_dir,
    complete_cache,
    entry_key,
    exclusive_lock,
    finish_report,
    is_prepared,
    usable_clips,
)
from msa.data.sample import SampleSpec, ensure_sample
from msa.data.sources import Source
from msa.data.splits import PARTS, SplitConfig, SplitError, split_actors, split_clips


@dataclass(frozen=True)
class ClipItem:
    """One usable clip as the driver found it: what every node needs to find or prepare it."""

    record: ClipRecord  # its label (after split_data: its class), speaker, gender, span
    source: Source  # where its bytes are (a file, or a zip member), as the driver saw them
    key: str  # its entry's name in a cache: the source's identity and the decoding parameters
    display: str  # the path shown to users (a file, or zip::member, with its span)


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
            jobs.append((Found(source, item.record, None), entries / item.key))
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
        here = {clip_display(found): item.display for (found, _), item in zip(jobs, items)}
        return decoded, {here[display]: reason for display, reason in failed.items()}


@dataclass(frozen=True)
class FoundData:
    """What the driver found: the corpus, and a picklable item per usable clip."""

    location: DataLocation
    corpus: Corpus = field(repr=False)
    items: list[ClipItem] = field(repr=False)  # one per usable clip

    @property
    def actors(self) -> list[SpeakerId]:
        """The speakers with a usable clip."""
        return sorted({item.record.speaker for item in self.items} - {None})

    @property
    def genders(self) -> dict[SpeakerId, str | None]:
        """Each speaker's gender (None: unknown)."""
        return {item.record.speaker: item.record.gender for item in self.items}


@dataclass(frozen=True)
class TrialData:
    """What every trial needs to build its loaders: clips per part and the class order."""

    labels: tuple[str, ...]  # the classes, in class-index order (each item's record.label is one)
    parts: dict[str, list[ClipItem]]  # part -> its clips
    actors: dict[str, list[SpeakerId]]  # part -> its speakers
    location: DataLocation
    num_clips: int  # usable clips found (before the classes drop any)
    skipped: int  # files left out, with a reason, by preparation
    dataset: str = ""  # the corpus's registry name

    @property
    def root(self) -> str:
        return self.location.root

    def node_cache(self) -> Path:
        return self.location.node_cache()

    def clips(self, *parts: str) -> list[PreparedClip]:
        """The clips of ``parts`` ("train", "val", "test"), in that order, in this node's cache."""
        entries = clips_dir(self.node_cache())
        return [
            PreparedClip(item.record, item.display, entries / item.key)
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
        return {
            "root": self.root,
            "dataset": self.dataset,
            "clips": self.num_clips,
            "skipped": self.skipped,
            "actors": self.actors,
        }


def find_data(
    data: str | os.PathLike | None,
    cache: str | os.PathLike | None,
    params: PrepareParams,
    sample: SampleSpec = SampleSpec(),
    dataset: str = AUTO,
) -> FoundData:
    """Read the corpus at ``data`` as ``dataset`` (``sample`` when None, generated into this
    node's cache). Raises FileNotFoundError / DatasetError / NoUsableClipsError."""
    cache_arg = str(Path(cache).expanduser().resolve()) if cache is not None else None
    if data is None:
        data = ensure_sample(Path(cache_arg).expanduser() if cache_arg else default_cache_dir(), sample)
    else:
        sample = None
    root = str(data) if is_uri(data) else str(Path(data).expanduser().resolve())
    location = DataLocation(root, cache_arg, params, sample)
    corpus = read_dataset(root, dataset)
    items = [
        ClipItem(f.record, f.source, entry_key(f.source, params, f.record), clip_display(f))
        for f in usable_clips(corpus, root)
    ]
    return FoundData(location, corpus, items)


def prepare_locally(found: FoundData, progress: bool = True) -> tuple[int, dict[str, str]]:
    """Prepare every usable clip in this machine's cache on all its cores -> (decoded, failures)."""
    return found.location.prepare_here(found.items, workers=None, progress=progress)


def split_data(
    found: FoundData, decoded: int, failed: dict[str, str], classes: str, split: SplitConfig
) -> tuple[TrialData, PrepareReport]:
    """Drop the clips that failed to decode, map labels to the ``classes`` (a --classes value),
    split the rest by speaker. Raises NoUsableClipsError / DatasetError / SplitError."""
    entries = clips_dir(found.location.node_cache())
    corpus = found.corpus
    report = finish_report(
        found.location.root,
        corpus,
        {item.display: entries / item.key for item in found.items},
        failed,
        attempted=decoded + len(failed),
    )
    items = [item for item in found.items if item.display not in failed]
    present = {item.record.label for item in items}
    classes_map = class_map(
        classes, [label for label in corpus.labels if label in present], corpus.class_presets, corpus.dataset
    )
    classes_of = {item.display: classes_map.class_of(item.record.label) for item in items}
    items = [
        replace(item, record=replace(item.record, label=classes_of[item.display]))
        for item in items
        if classes_of[item.display] is not None
    ]
    if not items:
        raise NoUsableClipsError(
            f"--data {found.location.root}: no usable clip of the classes {', '.join(classes_map.classes)}"
        )
    if split.method == "actor" and not corpus.has_speakers:
        raise SplitError(
            f"--data {found.location.root}: the data ({corpus.title}) names no speakers, so no split can keep "
            "them apart; give a manifest with a speaker column, or --split random (speakers then leak "
            "into the test set and inflate results: one published RAVDESS system scores 95.8 % on a "
            "random split and 48.1 % with one speaker left out)"
        )
    records = [item.record for item in items]
    parts = split_clips(records, split, classes_map.classes)
    trial_data = TrialData(
        labels=classes_map.classes,
        parts={part: [items[i] for i in parts[part]] for part in PARTS},
        actors=split_actors(records, parts),
        location=found.location,
        num_clips=len(report.clips),
        skipped=len(report.skipped),
        dataset=corpus.dataset,
    )
    return trial_data, report


def prepare_experiment_data(
    data: str | os.PathLike | None,
    cache: str | os.PathLike | None,
    classes: str,
    split: SplitConfig,
    params: PrepareParams,
    progress: bool = True,
    dataset: str = AUTO,
) -> tuple[TrialData, PrepareReport]:
    """Find, prepare on this machine and split. Raises FileNotFoundError / DatasetError /
    NoUsableClipsError / SplitError for unusable data."""
    found = find_data(data, cache, params, dataset=dataset)
    decoded, failed = prepare_locally(found, progress=progress)
    return split_data(found, decoded, failed, classes, split)

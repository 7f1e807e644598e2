"""Datasets: one module per layout, a registry, and detection (``--dataset auto``).

    corpus = read_dataset("~/RAVDESS-speech")       # auto: detected from the names
    corpus.describe()   # dataset: RAVDESS audio-only speech (ravdess-audio), 1440 audio clips, 24 speakers, ...
    corpus.found        # a Found per file: its Source and a ClipRecord, or why it is left out

Detection, in order: a ``.csv`` file, or a folder with a Hugging Face ``metadata.csv`` at its
top, is a manifest; otherwise the file names decide: RAVDESS audio-video (``01``/``02``-...),
RAVDESS audio-only (``03``-...) and CREMA-D (``1001_DFA_ANG_XX``) names are counted, and
exactly one of them must be present (two are "mixed data", an error naming both); with none,
media files inside at least two folders are label folders. Anything else is an error naming
what was found. Nothing above the data layer names a dataset: it reads the ``Corpus``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from msa.data import is_uri
from msa.data.datasets import crema_d, folders, manifest, ravdess
from msa.data.datasets.records import ClipRecord, Corpus, DatasetError, Found, SpeakerId
from msa.data.media import media_kind
from msa.data.sources import Source, list_sources

AUTO = "auto"


@dataclass(frozen=True)
class NamedDataset:
    """A dataset recognised by its file names."""

    name: str
    naming: str  # the pattern, as users know it
    matches: Callable[[Source], bool]
    read: Callable[[str, list[Source], str], Corpus]


NAMED = {
    "ravdess": NamedDataset(
        "ravdess", "01-01-EE-II-SS-RR-AA", ravdess.is_audio_video_name, ravdess.read_audio_video
    ),
    "ravdess-audio": NamedDataset(
        "ravdess-audio", "03-01-EE-II-SS-RR-AA", ravdess.is_audio_only_name, ravdess.read_audio_only
    ),
    "crema-d": NamedDataset("crema-d", crema_d.NAMING, crema_d.is_crema_d_name, crema_d.read),
}
DATASETS = (*NAMED, "manifest", "folders")
DATASET_CHOICES = (AUTO, *DATASETS)
# The RAVDESS fold presets' speakers, for msa.data.folds.
RAVDESS_DATASETS = ("ravdess", "ravdess-audio")
RAVDESS_ACTORS = ravdess.ACTORS


def read_dataset(root: str | os.PathLike, dataset: str = AUTO) -> Corpus:
    """The corpus under ``root`` (a folder, a storage URI, a manifest CSV) read as ``dataset``
    (AUTO: detected). Raises FileNotFoundError for a missing root, DatasetError for data that
    is not (or not only) that dataset."""
    root = str(root)
    if dataset not in DATASET_CHOICES:
        raise DatasetError(f"--dataset {dataset}: choose from {', '.join(DATASET_CHOICES)}")
    local = not is_uri(root)
    if local and not Path(root).exists():
        raise FileNotFoundError(f"--data {root}: no such file or folder")
    if dataset == "manifest" or (dataset == AUTO and local and manifest.is_manifest(root)):
        if not (local and manifest.is_manifest(root)):
            raise DatasetError(
                f"--data {root}: a manifest is a .csv file or a folder with {manifest.METADATA_FILE}"
            )
        return manifest.read(root)
    if local and Path(root).is_file():
        raise DatasetError(f"--data {root}: a file, but not a manifest (.csv)")
    sources, bad_zips = list_sources(root)
    corpus = _read_listed(root, sources, dataset)
    unreadable = [Found(zip_file, None, reason) for zip_file, reason in bad_zips]
    return replace(corpus, found=unreadable + corpus.found)


def _read_listed(root: str, sources: list[Source], dataset: str) -> Corpus:
    """The corpus of the files listed under a folder or URI: by --dataset, or detected."""
    counts = {name: sum(1 for source in sources if named.matches(source)) for name, named in NAMED.items()}
    media = sum(1 for source in sources if media_kind(source.filename))
    if dataset in NAMED:
        evidence = (
            f"--dataset {dataset}: {counts[dataset]} of {len(sources)} files named {NAMED[dataset].naming}"
        )
        return NAMED[dataset].read(root, sources, evidence)
    if dataset == "folders":
        return folders.read(root, sources, f"--dataset folders: {media} media files")
    present = {name: count for name, count in counts.items() if count}
    if len(present) > 1:
        found = ", ".join(
            f"{count} named like {name} ({NAMED[name].naming})" for name, count in present.items()
        )
        raise DatasetError(f"--data {root}: mixed data: {found}; choose one with --dataset")
    if present:
        ((name, count),) = present.items()
        evidence = f"detected from {count} of {len(sources)} files named {NAMED[name].naming}"
        return NAMED[name].read(root, sources, evidence)
    if folders.looks_like_label_folders(root, sources):
        labels = sorted({folders.label_folder(root, s) for s in sources if media_kind(s.filename)})
        return folders.read(root, sources, f"detected: {media} media files in {len(labels)} label folders")
    raise DatasetError(
        f"--data {root}: cannot tell the dataset: {len(sources)} files, {media} of them media, none named like "
        f"RAVDESS ({NAMED['ravdess'].naming}) or CREMA-D ({crema_d.NAMING}) and not in LABEL/ folders; "
        f"give a manifest CSV (path,label,speaker) or --dataset"
    )


FIXED_CROP_DATASET = "RAVDESS"  # the dataset whose framing the fixed crop (msa.data.decode.crop_box) fits


def fixed_crop_dataset(filename: str) -> str | None:
    """FIXED_CROP_DATASET when ``filename`` is named like one of its audio-video clips, else None."""
    name = ravdess.parse_or_none(filename)
    return FIXED_CROP_DATASET if name is not None and name.modality == ravdess.AUDIO_VIDEO else None


__all__ = [
    "AUTO",
    "DATASETS",
    "DATASET_CHOICES",
    "FIXED_CROP_DATASET",
    "RAVDESS_ACTORS",
    "RAVDESS_DATASETS",
    "ClipRecord",
    "Corpus",
    "DatasetError",
    "Found",
    "SpeakerId",
    "fixed_crop_dataset",
    "read_dataset",
]

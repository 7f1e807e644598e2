"""What every dataset adapter returns, and what everything above the data layer reads.

A dataset module turns the files under ``--data`` into a ``Corpus``: one ``Found`` per file
(its ``Source`` and either a ``ClipRecord`` or the one reason it is left out), the dataset's
label vocabulary, the class presets it publishes, and the evidence it was recognised by.

A ``ClipRecord`` is the same for every dataset: a label, a speaker (an ``int`` where the
dataset's speaker ids are numbers, as RAVDESS's actors and CREMA-D's speakers are, else a
``str``; one kind per corpus), a gender where it is known, an optional time span within the
source, and whether the source has video.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from msa.data.sources import Source

SpeakerId = int | str

MALE, FEMALE = "male", "female"
GENDER_WORDS = {"m": MALE, "male": MALE, "man": MALE, "f": FEMALE, "female": FEMALE, "woman": FEMALE}

# Reasons a file is left out, as the prepare report and its manifest CSV print them.
EMPTY = "empty"
UNREADABLE = "unreadable"
NO_AUDIO = "no audio track"
NO_VIDEO = "no video track"
TOO_SHORT = "too short"
DUPLICATE = "duplicate"
NOT_MEDIA = "not a media file"
BAD_NAME = "bad name"


class DatasetError(ValueError):
    """Data that cannot be read as the dataset asked for (a bad manifest row, mixed layouts, an
    unknown label): one line naming the file or row, exit status 2 before Ray starts."""


@dataclass(frozen=True)
class ClipRecord:
    """One labelled clip, whatever the dataset."""

    label: str  # a label of the dataset's vocabulary (after --classes: a class name)
    speaker: SpeakerId | None  # None: the layout names no speakers (LABEL/ folders)
    gender: str | None = None  # MALE, FEMALE, another word a manifest gives, or None: unknown
    span: tuple[float, float] | None = None  # (start, end) seconds within the source; None: all of it
    has_video: bool = True  # False: an audio file, prepared without frames
    clip_id: str = ""  # unique within the corpus: the same clip found twice is a duplicate


@dataclass(frozen=True)
class Found:
    """One file (or manifest row) under the data root: a usable clip (reason None) or why not."""

    source: Source
    record: ClipRecord | None
    reason: str | None

    @property
    def included(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class Corpus:
    """A dataset as read: every file found, its vocabulary and how it was recognised."""

    dataset: str  # the registry name (msa.data.datasets.DATASETS)
    title: str  # "RAVDESS audio-only speech"
    labels: tuple[str, ...]  # the vocabulary, in the dataset's own order
    found: list[Found] = field(repr=False)
    evidence: str = ""  # why this dataset: "480 of 480 files named 03-01-EE-II-SS-RR-AA"
    class_presets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # --classes NAME -> labels
    notes: tuple[str, ...] = ()  # what a user should know ("no speakers", "genders unknown")

    @property
    def included(self) -> list[Found]:
        return [item for item in self.found if item.included]

    @property
    def has_video(self) -> bool:
        """Every usable clip has video (a corpus with any audio file trains audio models only)."""
        included = self.included
        return bool(included) and all(item.record.has_video for item in included)

    @property
    def has_speakers(self) -> bool:
        return any(item.record.speaker is not None for item in self.included)

    @property
    def speakers(self) -> list[SpeakerId]:
        return sorted({item.record.speaker for item in self.included if item.record.speaker is not None})

    def describe(self) -> str:
        """One line: what was detected, and from what."""
        included = self.included
        media = "audio-video" if self.has_video else "audio"
        speakers = f"{len(self.speakers)} speakers" if self.has_speakers else "no speakers"
        return (
            f"dataset: {self.title} ({self.dataset}), {len(included)} {media} clips, {speakers}, "
            f"{len(self.labels)} labels ({', '.join(self.labels)}); {self.evidence}"
        )


def span_text(span: tuple[float, float] | None) -> str:
    """How a clip's span is written after its path ("@1.5-3.25"; nothing without a span)."""
    return "" if span is None else f"@{span[0]:g}-{span[1]:g}"


def gender_of(text: str | None) -> str | None:
    """A gender column's cell -> MALE, FEMALE, another word lower-cased, or None when blank."""
    word = (text or "").strip().lower()
    return GENDER_WORDS.get(word, word or None)


def speaker_ids(texts: list[str]) -> list[SpeakerId]:
    """Speaker cells -> ids: all numbers -> ints (so 7 and 07 are one speaker), else strings."""
    texts = [text.strip() for text in texts]
    if texts and all(text.isdigit() for text in texts):
        return [int(text) for text in texts]
    return texts


def mark_duplicates(found: list[Found]) -> list[Found]:
    """The same clip (by clip_id) found twice is used once; later copies are reported."""
    seen: set[str] = set()
    result = []
    for item in found:
        if item.included:
            if item.record.clip_id in seen:
                item = Found(item.source, item.record, DUPLICATE)
            seen.add(item.record.clip_id)
        result.append(item)
    return result

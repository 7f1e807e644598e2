"""RAVDESS: the audio-video speech set (``ravdess``) and the audio-only speech set (``ravdess-audio``).

A RAVDESS file is named ``MM-VV-EE-II-SS-RR-AA.ext``: modality (01 audio-video, 02 video-only,
03 audio-only), vocal channel (01 speech, 02 song), emotion, intensity, statement, repetition,
actor. Actors are the speakers: odd actors are male, even actors female. The distribution's
``Video_Speech_Actor_XX.zip`` files hold modalities 01 and 02 as .mp4;
``Audio_Speech_Actors_01-24.zip`` holds modality 03 as .wav. Either set may be folders, zips or
a mix. Each adapter keeps its own modality's speech and reports every other file with one reason.
"""

from __future__ import annotations

import re
from dataclasses import astuple, dataclass
from pathlib import PurePosixPath

from msa.data.datasets.records import (
    BAD_NAME,
    EMPTY,
    FEMALE,
    MALE,
    NOT_MEDIA,
    ClipRecord,
    Corpus,
    Found,
    mark_duplicates,
)
from msa.data.media import media_kind
from msa.data.sources import Source

# Emotion codes 01..08, in RAVDESS order: the vocabulary of both sets.
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
# --classes presets: all eight, and the seed project's four classes in its write-up's order.
CLASS_PRESETS = {"all8": EMOTIONS, "seed4": ("sad", "happy", "disgust", "angry")}
ACTORS = tuple(range(1, 25))  # 12 male (odd), 12 female (even)
NAMING = "MM-VV-EE-II-SS-RR-AA"
NAME_PATTERN = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
AUDIO_VIDEO, VIDEO_ONLY_MODALITY, AUDIO_ONLY_MODALITY = 1, 2, 3

# Reasons a RAVDESS file is left out.
SONG = "song"
VIDEO_ONLY = "video-only"
AUDIO_ONLY = "audio-only (read it with --dataset ravdess-audio)"
WITH_VIDEO = "audio-video (read it with --dataset ravdess)"


class BadNameError(ValueError):
    pass


@dataclass(frozen=True)
class ClipName:
    """The seven fields of a RAVDESS file name, as integers."""

    modality: int
    vocal_channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @classmethod
    def parse(cls, filename: str) -> ClipName:
        stem = PurePosixPath(filename).name.rsplit(".", 1)[0]
        match = NAME_PATTERN.match(stem)
        if not match:
            raise BadNameError(f"{filename!r} is not a RAVDESS name {NAMING}")
        name = cls(*(int(field) for field in match.groups()))
        checks = {
            "modality": name.modality in (1, 2, 3),
            "vocal channel": name.vocal_channel in (1, 2),
            "emotion": 1 <= name.emotion <= len(EMOTIONS),
            "intensity": name.intensity in (1, 2),
            "statement": name.statement in (1, 2),
            "repetition": name.repetition in (1, 2),
            "actor": 1 <= name.actor <= 99,
        }
        bad = [field for field, ok in checks.items() if not ok]
        if bad:
            raise BadNameError(f"{filename!r} has an invalid {', '.join(bad)} field")
        return name

    @property
    def emotion_name(self) -> str:
        return EMOTIONS[self.emotion - 1]

    @property
    def gender(self) -> str:
        return MALE if self.actor % 2 == 1 else FEMALE

    @property
    def clip_id(self) -> str:
        """The name without extension; unique within a RAVDESS download."""
        return "-".join(f"{value:02d}" for value in astuple(self))

    def record(self) -> ClipRecord:
        return ClipRecord(
            label=self.emotion_name,
            speaker=self.actor,
            gender=self.gender,
            has_video=self.modality == AUDIO_VIDEO,
            clip_id=self.clip_id,
        )


def parse_or_none(filename: str) -> ClipName | None:
    try:
        return ClipName.parse(filename)
    except BadNameError:
        return None


def is_audio_video_name(source: Source) -> bool:
    """A video file named like one of the audio-video set (modality 01 or 02)."""
    name = parse_or_none(source.filename)
    is_video = media_kind(source.filename) == "video"
    return name is not None and is_video and name.modality in (AUDIO_VIDEO, VIDEO_ONLY_MODALITY)


def is_audio_only_name(source: Source) -> bool:
    """A media file named like one of the audio-only set (modality 03)."""
    name = parse_or_none(source.filename)
    return (
        name is not None and media_kind(source.filename) is not None and name.modality == AUDIO_ONLY_MODALITY
    )


def classify(source: Source, modality: int) -> Found:
    """Decide from the name and size alone whether a file is a usable clip of ``modality``."""
    kind = media_kind(source.filename)
    name = parse_or_none(source.filename)
    if name is None:
        return Found(source, None, BAD_NAME if kind else NOT_MEDIA)
    reason = None
    if name.modality == VIDEO_ONLY_MODALITY:
        reason = VIDEO_ONLY
    elif name.modality != modality:
        reason = AUDIO_ONLY if name.modality == AUDIO_ONLY_MODALITY else WITH_VIDEO
    elif name.vocal_channel == 2:
        reason = SONG
    elif kind is None or (modality == AUDIO_VIDEO and kind != "video"):
        reason = NOT_MEDIA
    elif source.size == 0:
        reason = EMPTY
    return Found(source, name.record(), reason)


def _read(root: str, sources: list[Source], modality: int, dataset: str, title: str, evidence: str) -> Corpus:
    found = mark_duplicates([classify(source, modality) for source in sources])
    return Corpus(dataset, title, EMOTIONS, found, evidence, CLASS_PRESETS)


def read_audio_video(root: str, sources: list[Source], evidence: str = "") -> Corpus:
    return _read(root, sources, AUDIO_VIDEO, "ravdess", "RAVDESS audio-video speech", evidence)


def read_audio_only(root: str, sources: list[Source], evidence: str = "") -> Corpus:
    return _read(root, sources, AUDIO_ONLY_MODALITY, "ravdess-audio", "RAVDESS audio-only speech", evidence)

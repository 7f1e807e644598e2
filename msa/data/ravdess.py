"""RAVDESS file names and discovery.

A RAVDESS clip is named ``MM-VV-EE-II-SS-RR-AA.mp4``: modality, vocal channel, emotion,
intensity, statement, repetition, actor. We keep audio-video (modality 01) speech (vocal
channel 01) and report every other file found with exactly one reason.

``discover(root)`` walks a folder of ``Actor_XX/`` folders, ``Video_Speech_Actor_XX.zip`` files
or a mix (at the root or nested), reading zips in place. It only looks at names and sizes;
whether a clip decodes is decided later, when it is prepared.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import astuple, dataclass
from pathlib import Path, PurePosixPath

from msa.data.labels import EMOTIONS

VIDEO_EXTENSIONS = (".mp4",)
NAME_PATTERN = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
JUNK_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}

# Reasons a file is left out; the manifest's `reason` column uses exactly these strings.
SONG = "song"
VIDEO_ONLY = "video-only"
AUDIO_ONLY = "audio-only"
BAD_NAME = "bad name"
NOT_A_VIDEO = "not a video"
EMPTY = "empty"
UNREADABLE = "unreadable"
NO_AUDIO = "no audio track"
DUPLICATE = "duplicate"
UNSAFE_ZIP = "unsafe zip"


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
            raise BadNameError(f"{filename!r} is not a RAVDESS name MM-VV-EE-II-SS-RR-AA")
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
    def is_male(self) -> bool:
        return self.actor % 2 == 1

    @property
    def clip_id(self) -> str:
        """The name without extension; unique within a RAVDESS download."""
        return "-".join(f"{value:02d}" for value in astuple(self))

    def exclusion_reason(self) -> str | None:
        """Why this clip is not an audio-video speech clip, or None when it is one."""
        if self.modality == 2:
            return VIDEO_ONLY
        if self.modality == 3:
            return AUDIO_ONLY
        if self.vocal_channel == 2:
            return SONG
        return None


@dataclass(frozen=True)
class Source:
    """Where a file's bytes live: a plain file, or a member of a zip read in place.

    ``size`` and ``mtime_ns`` (of the file, or of the zip plus the member's CRC) identify the
    content, so that a changed file is never matched with a stale prepared entry.
    """

    path: str
    size: int
    mtime_ns: int
    member: str | None = None
    crc: int | None = None

    @property
    def display(self) -> str:
        return f"{self.path}::{self.member}" if self.member else self.path

    @property
    def filename(self) -> str:
        return PurePosixPath(self.member).name if self.member else Path(self.path).name

    def identity(self) -> tuple:
        return (os.path.abspath(self.path), self.size, self.mtime_ns, self.member, self.crc)


@dataclass(frozen=True)
class Found:
    """One file found under the data root: a usable clip (reason None) or a reason it is not."""

    source: Source
    name: ClipName | None
    reason: str | None

    @property
    def included(self) -> bool:
        return self.reason is None


class UnsafeZipError(ValueError):
    pass


def is_junk(part: str) -> bool:
    """Hidden files, macOS resource forks and OS litter: skipped silently, not reported."""
    return part.startswith(".") or part in JUNK_NAMES


def classify(source: Source) -> Found:
    """Decide from the name and size alone whether a file is a usable clip."""
    filename = source.filename
    is_video = filename.lower().endswith(VIDEO_EXTENSIONS)
    try:
        name = ClipName.parse(filename)
    except BadNameError:
        return Found(source, None, BAD_NAME if is_video else NOT_A_VIDEO)
    reason = name.exclusion_reason()
    if reason is None and not is_video:
        reason = NOT_A_VIDEO
    if reason is None and source.size == 0:
        reason = EMPTY
    return Found(source, name, reason)


def check_member_name(zip_path: Path, member: str) -> None:
    """Refuse absolute and parent-relative member names, which would escape any target folder."""
    posix = PurePosixPath(member.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or re.match(r"^[A-Za-z]:", member):
        raise UnsafeZipError(f"{zip_path}: unsafe member name {member!r} (absolute or '..')")


def zip_members(zip_path: Path) -> list[Source]:
    """The non-junk file members of a zip. Raises UnsafeZipError before returning any member."""
    stat = zip_path.stat()
    with zipfile.ZipFile(zip_path) as archive:
        infos = archive.infolist()
    for info in infos:
        check_member_name(zip_path, info.filename)
    return [
        Source(str(zip_path), info.file_size, stat.st_mtime_ns, info.filename, info.CRC)
        for info in infos
        if not info.is_dir() and not any(is_junk(part) for part in PurePosixPath(info.filename).parts)
    ]


def discover(root: str | os.PathLike) -> list[Found]:
    """Every non-junk file under ``root``, classified; zips are opened and their members listed.

    The same clip found twice (say a zip and its extracted folder) is used once; the later
    copy is reported as a duplicate. Order is deterministic (sorted paths).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder")
    found: list[Found] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_junk(d))
        for filename in sorted(filenames):
            if is_junk(filename):
                continue
            path = Path(dirpath) / filename
            if filename.lower().endswith(".zip"):
                found.extend(_discover_zip(path))
            else:
                stat = path.stat()
                found.append(classify(Source(str(path), stat.st_size, stat.st_mtime_ns)))
    return _mark_duplicates(found)


def _discover_zip(path: Path) -> list[Found]:
    stat = path.stat()
    whole = Source(str(path), stat.st_size, stat.st_mtime_ns)
    try:
        members = zip_members(path)
    except UnsafeZipError as error:
        return [Found(whole, None, f"{UNSAFE_ZIP}: {error}")]
    except (zipfile.BadZipFile, OSError):
        return [Found(whole, None, UNREADABLE)]
    return [classify(member) for member in members]


def _mark_duplicates(found: list[Found]) -> list[Found]:
    seen: set[str] = set()
    result = []
    for item in found:
        if item.included:
            if item.name.clip_id in seen:
                item = Found(item.source, item.name, DUPLICATE)
            seen.add(item.name.clip_id)
        result.append(item)
    return result

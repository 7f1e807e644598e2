"""RAVDESS file names and discovery.

A RAVDESS clip is named ``MM-VV-EE-II-SS-RR-AA.mp4``: modality, vocal channel, emotion,
intensity, statement, repetition, actor. We keep audio-video (modality 01) speech (vocal
channel 01) and report every other file found with exactly one reason.

``discover(root)`` walks a folder of ``Actor_XX/`` folders, ``Video_Speech_Actor_XX.zip`` files
or a mix (at the root or nested), reading zips in place. The root may be a local folder or a
storage URI (``gs://bucket/RAVDESS``, ``s3://...``, ``file:///...``) listed and read through
pyarrow's filesystems, zips included (read by range, never downloaded whole). It only looks at
names and sizes; whether a clip decodes is decided later, when it is prepared.
"""

from __future__ import annotations

import errno
import io
import os
import re
import zipfile
from dataclasses import astuple, dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from msa.data import is_uri, remote_filesystem
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

REMOTE_BUFFER = 1 << 20  # bytes per ranged read of a file behind a storage URI


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
    """Where a file's bytes live: a plain file, or a member of a zip read in place; ``path`` is
    a local path or a storage URI.

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
        return PurePosixPath(self.member or _without_query(self.path)).name

    def identity(self) -> tuple:
        path = self.path if is_uri(self.path) else os.path.abspath(self.path)
        return (path, self.size, self.mtime_ns, self.member, self.crc)

    def open(self) -> BinaryIO:
        """The file's bytes (the whole zip for a member), seekable, local or remote."""
        if is_uri(self.path):
            filesystem, path = remote_filesystem(self.path)
            return io.BufferedReader(_RemoteFile(filesystem.open_input_file(path)), REMOTE_BUFFER)
        return open(self.path, "rb")

    def open_member(self) -> BinaryIO:
        """The bytes of this file, or of this zip member."""
        if self.member is None:
            return self.open()
        archive = zipfile.ZipFile(self.open())
        return archive.open(self.member)  # closing the member leaves the archive to the collector


class _RemoteFile(io.RawIOBase):
    """A pyarrow random-access file as a Python raw file: zipfile reads a remote zip's
    directory and members by range through it (pyarrow's own seek rejects what Python's
    file objects report as OSError)."""

    def __init__(self, native):
        self._native = native

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._native.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        start = {io.SEEK_SET: 0, io.SEEK_CUR: self._native.tell(), io.SEEK_END: self._native.size()}[whence]
        if start + offset < 0:
            raise OSError(errno.EINVAL, "seek before the start of the file")
        return self._native.seek(start + offset)

    def readinto(self, buffer) -> int:
        data = self._native.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._native.close()
        super().close()


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


def check_member_name(zip_path: str, member: str) -> None:
    """Refuse absolute and parent-relative member names, which would escape any target folder."""
    posix = PurePosixPath(member.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or re.match(r"^[A-Za-z]:", member):
        raise UnsafeZipError(f"{zip_path}: unsafe member name {member!r} (absolute or '..')")


def zip_members(whole: Source) -> list[Source]:
    """The non-junk file members of a zip. Raises UnsafeZipError before returning any member."""
    with whole.open() as handle, zipfile.ZipFile(handle) as archive:
        infos = archive.infolist()
    for info in infos:
        check_member_name(whole.path, info.filename)
    return [
        Source(whole.path, info.file_size, whole.mtime_ns, info.filename, info.CRC)
        for info in infos
        if not info.is_dir() and not any(is_junk(part) for part in PurePosixPath(info.filename).parts)
    ]


def discover(root: str | os.PathLike) -> list[Found]:
    """Every non-junk file under ``root`` (a folder or a storage URI), classified; zips are
    opened and their members listed.

    The same clip found twice (say a zip and its extracted folder) is used once; the later
    copy is reported as a duplicate. Order is deterministic (sorted paths).
    """
    found: list[Found] = []
    for source in list_uri(str(root)) if is_uri(root) else list_folder(Path(root)):
        if source.filename.lower().endswith(".zip"):
            found.extend(_discover_zip(source))
        else:
            found.append(classify(source))
    return _mark_duplicates(found)


def list_folder(root: Path) -> list[Source]:
    """Every non-junk file under a local folder, in sorted order."""
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder")
    sources = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_junk(d))
        for filename in sorted(f for f in filenames if not is_junk(f)):
            stat = (Path(dirpath) / filename).stat()
            sources.append(Source(str(Path(dirpath) / filename), stat.st_size, stat.st_mtime_ns))
    return sorted(sources, key=lambda source: source.path)  # the order list_uri gives


def list_uri(root: str) -> list[Source]:
    """Every non-junk file under a storage URI, in sorted order, each named by its own URI
    (the root's query string, such as an S3 endpoint, kept)."""
    import pyarrow.fs

    try:
        filesystem, base = remote_filesystem(root)
        if filesystem.get_file_info(base).type != pyarrow.fs.FileType.Directory:
            raise FileNotFoundError(f"--data {root}: no such folder")
        infos = filesystem.get_file_info(pyarrow.fs.FileSelector(base, recursive=True))
    except (pyarrow.ArrowException, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise FileNotFoundError(f"--data {root}: cannot be listed ({error})") from None
    prefix, _, query = root.partition("?")
    sources = []
    for info in infos:
        relative = PurePosixPath(info.path).relative_to(base.rstrip("/") or "/")
        if info.type != pyarrow.fs.FileType.File or any(is_junk(part) for part in relative.parts):
            continue
        uri = f"{prefix.rstrip('/')}/{relative}" + (f"?{query}" if query else "")
        sources.append(Source(uri, info.size, info.mtime_ns or 0))
    return sorted(sources, key=lambda source: source.path)


def _without_query(path: str) -> str:
    return path.partition("?")[0] if is_uri(path) else path


def _discover_zip(whole: Source) -> list[Found]:
    try:
        members = zip_members(whole)
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

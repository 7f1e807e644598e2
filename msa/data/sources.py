"""Where a dataset's files are: a local folder or a storage URI, zips read in place.

``list_sources(root)`` walks a folder (or a ``gs://`` / ``s3://`` / ``file://`` URI, listed and
read through pyarrow's filesystems) and returns a ``Source`` per non-junk file, the members of
every zip listed in place of the zip (read by range, never extracted or downloaded whole). It
only looks at names and sizes; whether a file decodes is decided when it is prepared.
"""

from __future__ import annotations

import errno
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from msa.data import is_uri, remote_filesystem

JUNK_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
REMOTE_BUFFER = 1 << 20  # bytes per ranged read of a file behind a storage URI


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
        return PurePosixPath(self.member or without_query(self.path)).name

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


class UnsafeZipError(ValueError):
    pass


def is_junk(part: str) -> bool:
    """Hidden files, macOS resource forks and OS litter: skipped silently, not reported."""
    return part.startswith(".") or part in JUNK_NAMES


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


def without_query(path: str) -> str:
    return path.partition("?")[0] if is_uri(path) else path


def list_sources(root: str | os.PathLike) -> tuple[list[Source], list[tuple[Source, str]]]:
    """Every non-junk file under ``root`` (a folder or a storage URI), zip members in place of
    their zip, in sorted order -> (sources, [(a zip that cannot be listed, why)])."""
    sources, bad_zips = [], []
    for source in list_uri(str(root)) if is_uri(root) else list_folder(Path(root)):
        if not source.filename.lower().endswith(".zip"):
            sources.append(source)
            continue
        try:
            sources.extend(zip_members(source))
        except UnsafeZipError as error:
            bad_zips.append((source, f"unsafe zip: {error}"))
        except (zipfile.BadZipFile, OSError):
            bad_zips.append((source, "unreadable"))
    return sources, bad_zips

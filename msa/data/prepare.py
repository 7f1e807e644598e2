"""The prepared-clip cache: every usable clip decoded once, stored memory-mappable.

Layout under the cache root::

    clips/<entry key>/video.npy   uint8 (T, H, W, C); absent for an audio file
                     /audio.npy   float32 (S,)
                     /meta.json   the source, its span (if any) and the decoding parameters
                                  (with crop "face": also the crop used and the face box found)
    tmp/                          work folders of preparations in progress
    locks/                        advisory locks of processes completing the cache together
    cache-id                      a random id: machines that read the same id share this cache

An entry's key hashes the source file's identity (path, size, mtime; for a zip member also
its name and CRC), its span within the file where it has one, and the decoding parameters it
depends on: every PrepareParams field for a file with video (``crop`` only when it is not
"fixed", so that caches prepared before it existed keep their keys), only the sample rate for
an audio file (so that searches with other frame settings share it). What the key hashes does
not depend on the dataset adapter: the same file read as RAVDESS or through a manifest is one
entry, and caches prepared before datasets existed keep their keys. An entry is written into ``tmp/`` and published by one ``os.rename``: a
preparation killed midway leaves only a work folder, never a half entry, and two processes
preparing the same clip both succeed with one published copy.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import socket
import sys
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from msa.data import is_uri
from msa.data.datasets import AUTO, ClipRecord, Corpus, Found, read_dataset
from msa.data.datasets.records import span_text
from msa.data.decode import DecodeError, PrepareParams, decode_audio, decode_cropped_video
from msa.data.sources import Source

# Bump when the entry layout or decoding changes meaning. 2: audio decoded with PyAV and resampled
# over the whole clip at once (msa.audio_format), not by decord frame by frame.
CACHE_FORMAT_VERSION = 2
CACHE_ID_FILE = "cache-id"
MANIFEST_COLUMNS = ("path", "included", "reason", "label", "speaker", "gender", "start", "end")


class NoUsableClipsError(ValueError):
    pass


@dataclass(frozen=True)
class PreparedClip:
    """A usable clip and where its prepared arrays are."""

    record: ClipRecord
    display: str  # the path shown to users: a file, or zip::member (with its span, if any)
    entry: Path

    def load(self, mmap: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """(video uint8 (T, H, W, C) or None for an audio file, audio float32 (S,)),
        memory-mapped by default so that trials on one machine share one copy in the page cache."""
        mode = "r" if mmap else None
        video = np.load(self.entry / "video.npy", mmap_mode=mode) if self.record.has_video else None
        return video, np.load(self.entry / "audio.npy", mmap_mode=mode)


@dataclass
class PrepareReport:
    """What a preparation found and did."""

    root: str
    corpus: Corpus
    clips: list[PreparedClip]
    failed: dict[str, str]  # display path -> decode failure reason
    decoded: int

    @property
    def found(self) -> list[Found]:
        return self.corpus.found

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) for every file left out, each exactly once."""
        left_out = [(f.source.display, f.reason) for f in self.found if not f.included]
        return left_out + list(self.failed.items())

    def summary(self) -> str:
        skipped = count_reasons(reason for _, reason in self.skipped) or "none"
        speakers = {clip.record.speaker for clip in self.clips} - {None}
        reused = len(self.clips) - self.decoded
        return (
            f"{len(self.found)} files under {self.root}: {len(self.clips)} usable clips from "
            f"{len(speakers) or 'no named'} speakers ({self.decoded} decoded, {reused} already prepared); skipped: {skipped}"
        )

    def write_manifest(self, path: str | os.PathLike) -> None:
        """One CSV row per file found, in the manifest format of docs/reference/datasets.md."""
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(MANIFEST_COLUMNS)
            for found in self.found:
                display = clip_display(found)
                reason = found.reason or self.failed.get(display, "")
                fields = ["", "", "", "", ""]
                if found.record is not None:
                    record = found.record
                    span = record.span or ("", "")
                    fields = [record.label, _blank(record.speaker), _blank(record.gender), *span]
                writer.writerow([display, "no" if reason else "yes", reason, *fields])

    def without_face(self) -> list[str]:
        """The clips prepared with crop "face" in which no sampled frame showed a face, so that
        they got the fixed crop (read from their meta.json; none for crop "fixed")."""
        faceless = []
        for clip in self.clips:
            if not clip.record.has_video:
                continue
            meta = json.loads((clip.entry / "meta.json").read_text())
            if meta["params"].get("crop") == "face" and meta.get("crop_used") != "face":
                faceless.append(clip.display)
        return faceless

    def face_crop_summary(self, shown: int | None = None) -> str:
        """What the face crop did, for the console: how many clips showed no face, then (up to
        ``shown`` of) their names."""
        faceless = self.without_face()
        lines = [f"face crop: no face found in {len(faceless)} of {len(self.clips)} clips (fixed crop there)"]
        lines += [f"  no face in {path}" for path in faceless[:shown]]
        if shown is not None and len(faceless) > shown:
            lines.append(f"  ... and {len(faceless) - shown} more")
        return "\n".join(lines)


def count_reasons(reasons: Iterable[str]) -> str:
    """ "2 song, 1 unreadable": how many files each reason left out (its text before any ":
    detail"), by reason."""
    counts = Counter(reason.split(":")[0] for reason in reasons)
    return ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items()))


def _blank(value) -> str:
    return "" if value is None else str(value)


def clip_display(found: Found) -> str:
    """The path shown to users: a file, or zip::member, with its span where it has one."""
    return found.source.display + span_text(found.record.span if found.record is not None else None)


def entry_params(record: ClipRecord, params: PrepareParams) -> dict:
    """The decoding parameters an entry depends on: all of them with video, the rate without."""
    return params.to_dict() if record.has_video else {"sample_rate": params.sample_rate, "media": "audio"}


def entry_key(source: Source, params: PrepareParams, record: ClipRecord) -> str:
    parts = [CACHE_FORMAT_VERSION, source.identity(), entry_params(record, params)]
    if record.span is not None:
        parts.append(list(record.span))
    payload = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def clips_dir(cache: Path) -> Path:
    return cache / "clips"


def prepare(
    root: str | os.PathLike,
    cache: str | os.PathLike,
    params: PrepareParams = PrepareParams(),
    workers: int | None = None,
    progress: bool = True,
    dataset: str = AUTO,
) -> PrepareReport:
    """Read the corpus under ``root`` (a folder, a storage URI or a manifest) as ``dataset``
    and make sure each usable clip is in the cache.

    Clips already prepared with the same source identity and params are not decoded again.
    Raises FileNotFoundError for a missing root, DatasetError for data that is not the dataset,
    NoUsableClipsError when nothing is usable.
    """
    cache = Path(cache)
    corpus = read_dataset(root, dataset)
    usable = usable_clips(corpus, root)
    entries = [(f, clips_dir(cache) / entry_key(f.source, params, f.record)) for f in usable]
    todo = [(f, entry) for f, entry in entries if not is_prepared(entry)]
    failed = prepare_entries(todo, cache, params, workers=workers, progress=progress)
    return finish_report(root, corpus, {clip_display(f): entry for f, entry in entries}, failed, len(todo))


def usable_clips(corpus: Corpus, root) -> list[Found]:
    """The corpus's usable clips. Raises NoUsableClipsError saying why every file was left out."""
    usable = corpus.included
    if not usable:
        why = count_reasons(found.reason for found in corpus.found) or "no files"
        raise NoUsableClipsError(
            f"--data {root}: no usable {corpus.title} clip among {len(corpus.found)} files ({why})"
        )
    return usable


def finish_report(
    root, corpus: Corpus, entries: dict[str, Path], failed: dict[str, str], attempted: int
) -> PrepareReport:
    """The report of a preparation of ``entries`` (display path -> entry) in which ``attempted``
    clips were decoded and ``failed`` ones could not be. Raises NoUsableClipsError if none is left."""
    by_display = {clip_display(f): f for f in corpus.found if f.included}
    clips = [PreparedClip(by_display[d].record, d, entry) for d, entry in entries.items() if d not in failed]
    if not clips:
        why = count_reasons(failed.values())
        raise NoUsableClipsError(
            f"--data {root}: none of the {len(entries)} candidate clips could be decoded ({why})"
        )
    return PrepareReport(str(root), corpus, clips, failed, decoded=attempted - len(failed))


def is_prepared(entry: Path) -> bool:
    return (entry / "meta.json").exists()


def prepare_entries(
    todo: list[tuple[Found, Path]],
    cache: Path,
    params: PrepareParams,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, str]:
    """Decode each clip of ``todo`` and publish it as its entry, on ``workers`` processes
    (default: every core). Returns display path -> failure reason for clips that did not decode."""
    if not todo:
        return {}
    _clean_stale_work_folders(cache / "tmp")
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    jobs = [(found, entry, cache, params) for found, entry in todo]
    failed: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc="preparing clips", unit="clip", disable=not progress, file=sys.stderr)
    if workers == 1:
        results = map(_prepare_one, jobs)
    else:
        # Not fork: a parent that already ran decord, torch or CUDA can deadlock a forked child.
        pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("forkserver"), initializer=_one_thread_per_worker
        )
        results = pool.map(_prepare_one, jobs, chunksize=1)
    try:
        for display, error in results:
            if error:
                failed[display] = error
            bar.update()
    finally:
        bar.close()
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    return failed


def complete_cache(
    todo: list[tuple[Found, Path]],
    cache: Path,
    params: PrepareParams,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[int, dict[str, str]]:
    """Prepare the entries of ``todo`` that this cache lacks, once for all the processes that ask
    at the same time: the first takes the cache's lock and decodes, the others wait for it and
    find the entries there. Returns (clips decoded here, display path -> failure reason)."""
    if all(is_prepared(entry) for _, entry in todo):
        return 0, {}
    with exclusive_lock(cache / "locks" / "prepare.lock"):
        missing = [(found, entry) for found, entry in todo if not is_prepared(entry)]
        failed = prepare_entries(missing, cache, params, workers=workers, progress=progress)
    return len(missing) - len(failed), failed


@contextlib.contextmanager
def exclusive_lock(path: Path):
    """An advisory lock on ``path`` (its folder made if need be) for this process, released on
    exit (or when it dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        with contextlib.suppress(OSError):  # no locks on this filesystem: atomic publish still holds
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cache_id(cache: Path) -> str:
    """This cache's random id, made on first use. Processes on different machines that read the
    same id share the cache (a shared filesystem); different ids mean node-local caches."""
    path = cache / CACHE_ID_FILE
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        draft = cache / f".{CACHE_ID_FILE}.{uuid.uuid4().hex}"
        draft.write_text(uuid.uuid4().hex)
        try:
            os.link(draft, path)  # atomic and never replaces: the first machine's id wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def _one_thread_per_worker() -> None:
    """Each worker decodes one clip at a time; torch's own thread pool would only oversubscribe
    (so would OpenCV's: msa.data.faces turns it to one thread where it is used)."""
    import torch

    torch.set_num_threads(1)


def _prepare_one(job: tuple[Found, Path, Path, PrepareParams]) -> tuple[str, str | None]:
    """Decode one clip and publish its entry. Returns (display path, failure reason or None)."""
    found, entry, cache, params = job
    work = cache / "tmp" / f"{os.getpid()}-{socket.gethostname()}-{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    try:
        record = found.record
        media_path = _materialise(found.source, work)
        audio = decode_audio(media_path, params, record.span)
        video = decode_cropped_video(media_path, params, record.span) if record.has_video else None
        if Path(media_path).parent == work:
            os.remove(media_path)  # the fetched copy must not be published with the entry
        np.save(work / "audio.npy", audio)
        meta = {"source": found.source.display, "params": entry_params(record, params)}
        if record.span is not None:
            meta["span"] = list(record.span)
        if video is not None:
            np.save(work / "video.npy", video.frames)
        if video is not None and params.crop != "fixed":
            face = video.face
            meta["crop_used"] = video.crop  # "fixed" where no sampled frame showed a face
            meta["face_box"] = None if face is None else [face.left, face.top, face.width, face.height]
        (work / "meta.json").write_text(json.dumps(meta))
        entry.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(work, entry)
        except OSError:
            if not (entry / "meta.json").exists():  # not a lost race: a real failure
                raise
        return clip_display(found), None
    except DecodeError as error:
        return clip_display(found), error.reason
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _materialise(source: Source, work: Path) -> str:
    """A filesystem path decord and PyAV can open: a local file itself, or a zip member or
    remote file copied into the cache's work folder under its own extension (member names were
    checked when the zip was listed)."""
    if source.member is None and not is_uri(source.path):
        return source.path
    target = work / ("clip" + PurePosixPath(source.filename).suffix)
    with source.open_member() as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return str(target)


def _clean_stale_work_folders(tmp: Path) -> None:
    """Remove work folders left by killed preparations on this host (their process is gone).
    Folders of other hosts sharing the cache are left alone."""
    if not tmp.is_dir():
        return
    host = socket.gethostname()
    for work in tmp.iterdir():
        pid, _, rest = work.name.partition("-")
        if pid.isdigit() and rest.startswith(f"{host}-") and not _process_alive(int(pid)):
            shutil.rmtree(work, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""Label folders (``folders``): ``ROOT/LABEL/...`` media files, the label the first folder's name.

The layout names no speakers, so no split can keep speakers apart: an actor split is refused
and ``--split random`` (clips drawn at random, speakers leaking between parts) must be asked
for. Files directly under the root, outside a label folder, are reported and left out.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from msa.data import is_uri
from msa.data.datasets.records import EMPTY, NOT_MEDIA, ClipRecord, Corpus, Found
from msa.data.media import media_kind, probe
from msa.data.sources import Source

NOT_IN_LABEL_FOLDER = "not in a label folder"


def label_folder(root: str, source: Source) -> str | None:
    """The first folder of the file's path below ``root`` (for a zip member: of its member
    path), or None for a file at the top."""
    relative = PurePosixPath(source.member) if source.member else PurePosixPath(source.path).relative_to(root)
    return relative.parts[0] if len(relative.parts) > 1 else None


def looks_like_label_folders(root: str, sources: list[Source]) -> bool:
    """Media files, every one inside a folder below the root, in at least two folders."""
    media = [s for s in sources if media_kind(s.filename)]
    folders = {label_folder(root, s) for s in media}
    return bool(media) and None not in folders and len(folders) >= 2


def _has_video(source: Source, kind: str) -> bool:
    """A video container holds video unless a local file's header says it holds audio alone."""
    if kind != "video" or source.member is not None or is_uri(source.path):
        return kind == "video"
    header = probe(source.path)
    return header is None or header.has_video


def read(root: str, sources: list[Source], evidence: str = "") -> Corpus:
    found = []
    for source in sources:
        kind, label = media_kind(source.filename), label_folder(root, source)
        if kind is None:
            found.append(Found(source, None, NOT_MEDIA))
        elif label is None:
            found.append(Found(source, None, NOT_IN_LABEL_FOLDER))
        else:
            record = ClipRecord(label, None, has_video=_has_video(source, kind), clip_id=source.display)
            found.append(Found(source, record, EMPTY if source.size == 0 else None))
    labels = tuple(sorted({item.record.label for item in found if item.record is not None}))
    notes = ("LABEL/ folders name no speakers: no speaker-disjoint splits (--split random leaks speakers)",)
    return Corpus("folders", "label folders", labels, found, evidence, notes=notes)

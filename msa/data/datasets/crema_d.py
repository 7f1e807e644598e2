"""CREMA-D (``crema-d``): 7,442 clips of 91 actors, six emotions, named ``1001_DFA_ANG_XX.ext``.

The name's fields are the actor (1001-1091), the sentence (DFA, IEO, ...), the emotion (ANG,
DIS, FEA, HAP, NEU, SAD) and the intensity (LO, MD, HI, XX). The distribution has the same clip
as video (``VideoFlash/*.flv``) and audio (``AudioWAV/*.wav``, ``AudioMP3/*.mp3``): where both
are present the video is used and the audio copies are reported as duplicates, so a multimodal
search and an audio search see the same clips. Genders come from ``VideoDemographics.csv``
(``ActorID,...,Sex,...``) anywhere under the root; without it they are unknown and said so.
"""

from __future__ import annotations

import csv
import io
import re

from msa.data.datasets.records import (
    BAD_NAME,
    EMPTY,
    NOT_MEDIA,
    ClipRecord,
    Corpus,
    DatasetError,
    Found,
    gender_of,
    mark_duplicates,
)
from msa.data.media import media_kind
from msa.data.sources import Source

# Emotion codes in CREMA-D's own order, named as the other datasets name them.
EMOTION_CODES = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
EMOTIONS = tuple(EMOTION_CODES.values())
NAMING = "1001_DFA_ANG_XX"
NAME_PATTERN = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
DEMOGRAPHICS_FILE = "VideoDemographics.csv"
PREFERENCE = {"video": 0, "audio": 1}  # which copy of a clip is kept


def stem(source: Source) -> str:
    return source.filename.rsplit(".", 1)[0]


def is_crema_d_name(source: Source) -> bool:
    match = NAME_PATTERN.match(stem(source))
    return match is not None and match.group(3) in EMOTION_CODES


def read_genders(sources: list[Source]) -> dict[int, str | None] | None:
    """Actor id -> gender from the demographics CSV, or None when there is none."""
    table = next((s for s in sources if s.filename == DEMOGRAPHICS_FILE), None)
    if table is None:
        return None
    with table.open_member() as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig").read()
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"ActorID", "Sex"} <= set(rows[0]):
        raise DatasetError(f"{table.display}: expected columns ActorID and Sex")
    try:
        return {int(row["ActorID"]): gender_of(row["Sex"]) for row in rows}
    except ValueError as error:
        raise DatasetError(f"{table.display}: a non-numeric ActorID ({error})") from None


def classify(source: Source, genders: dict[int, str | None] | None) -> Found:
    kind = media_kind(source.filename)
    match = NAME_PATTERN.match(stem(source))
    if kind is None:
        return Found(source, None, NOT_MEDIA)
    if match is None or match.group(3) not in EMOTION_CODES:
        return Found(source, None, BAD_NAME)
    actor = int(match.group(1))
    record = ClipRecord(
        label=EMOTION_CODES[match.group(3)],
        speaker=actor,
        gender=(genders or {}).get(actor),
        has_video=kind == "video",
        clip_id=stem(source),
    )
    return Found(source, record, EMPTY if source.size == 0 else None)


def read(root: str, sources: list[Source], evidence: str = "") -> Corpus:
    genders = read_genders(sources)
    media = [s for s in sources if s.filename != DEMOGRAPHICS_FILE]
    # Video copies first, so that they are the ones kept (a stable sort keeps the path order).
    media.sort(key=lambda s: PREFERENCE.get(media_kind(s.filename) or "", 2))
    found = mark_duplicates([classify(source, genders) for source in media])
    found.sort(key=lambda item: item.source.display)
    notes = (
        ()
        if genders
        else (f"no {DEMOGRAPHICS_FILE} under {root}: genders unknown, folds not gender-balanced",)
    )
    return Corpus("crema-d", "CREMA-D", EMOTIONS, found, evidence, notes=notes)

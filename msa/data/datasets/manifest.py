"""A team's own labels (``manifest``): a CSV naming each clip, or a Hugging Face metadata.csv.

msa's manifest is a CSV with the columns ``path,label,speaker[,gender][,start,end]``: paths
relative to the CSV (or absolute), any label words, speaker ids (all numbers -> int ids), an
optional gender (m/male, f/female or another word) and an optional span in seconds, so that
many clips may come from one long recording. Any other column is an error, as are a missing
file, a duplicate row, ``start >= end`` and a span past the file's end: one line naming the CSV
and its line.

The Hugging Face ``audiofolder`` / ``videofolder`` convention is read as a manifest too: a folder
whose ``metadata.csv`` has a ``file_name`` column (paths relative to the folder), a label column
(the first of LABEL_COLUMNS) and, where present, speaker, gender and span columns; its other
columns are the dataset's own features and are ignored.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from msa.data.datasets.records import (
    EMPTY,
    ClipRecord,
    Corpus,
    DatasetError,
    Found,
    gender_of,
    span_text,
    speaker_ids,
)
from msa.data.media import MediaProbe, media_kind, probe
from msa.data.sources import Source

REQUIRED = ("path", "label", "speaker")
OPTIONAL = ("gender", "start", "end")
METADATA_FILE = "metadata.csv"  # Hugging Face audiofolder / videofolder
HF_FILE_COLUMN = "file_name"
LABEL_COLUMNS = ("label", "emotion", "labels", "class")
SPEAKER_COLUMNS = ("speaker", "speaker_id", "actor", "actor_id", "client_id")
GENDER_COLUMNS = ("gender", "sex")
SPAN_END_TOLERANCE = 0.05  # seconds a span may end past the file's duration (containers round it)


def is_manifest(root: str) -> bool:
    """A CSV file, or a folder with a Hugging Face metadata.csv at its top."""
    path = Path(root)
    return (path.is_file() and path.suffix.lower() == ".csv") or (path / METADATA_FILE).is_file()


def read(root: str, evidence: str = "") -> Corpus:
    """Every row of the manifest at ``root`` (a CSV, or a folder with metadata.csv). Raises
    DatasetError naming the file and line of the first bad row."""
    path = Path(root)
    hugging_face = path.is_dir()
    table = path / METADATA_FILE if hugging_face else path
    rows = read_rows(table)
    columns = hf_columns(table, rows[0]) if hugging_face else msa_columns(table, rows[0])
    base = table.parent
    speakers = (
        speaker_ids([row.get(columns["speaker"], "") for row in rows]) if "speaker" in columns else None
    )
    found, seen, probes = [], {}, {}
    for index, row in enumerate(rows):
        line = index + 2  # the header is line 1
        where = f"{table} line {line}"
        cell = {key: (row.get(column) or "").strip() for key, column in columns.items()}
        if not cell["path"] or not cell["label"]:
            raise DatasetError(f"{where}: empty {'path' if not cell['path'] else 'label'}")
        if speakers is not None and not cell["speaker"]:
            raise DatasetError(f"{where}: empty speaker")
        file = Path(cell["path"]).expanduser()
        file = file if file.is_absolute() else base / file
        if not file.is_file():
            raise DatasetError(f"{where}: no such file {cell['path']}")
        span = parse_span(cell.get("start", ""), cell.get("end", ""), where)
        identity = (str(file.resolve()), span)
        if identity in seen:
            raise DatasetError(
                f"{where}: duplicate of line {seen[identity]} ({cell['path']}{span_text(span)})"
            )
        seen[identity] = line
        is_video = media_kind(file.name) == "video"
        # The header is read where it decides something (a span's end; whether a video
        # container holds video), once per file however many rows cut it.
        if (span is not None or is_video) and file not in probes:
            probes[file] = probe(file)
        if span is not None:
            check_span_in_file(file, span, where, probes[file])
        stat = file.stat()
        record = ClipRecord(
            label=cell["label"],
            speaker=speakers[index] if speakers is not None else None,
            gender=gender_of(cell.get("gender")),
            span=span,
            has_video=is_video and (probes[file] is None or probes[file].has_video),
            clip_id=f"{cell['path']}{span_text(span)}",
        )
        source = Source(str(file), stat.st_size, stat.st_mtime_ns)
        found.append(Found(source, record, EMPTY if stat.st_size == 0 else None))
    labels = tuple(sorted({item.record.label for item in found}))
    notes = () if speakers is not None else (f"{table} has no speaker column: no speaker-disjoint splits",)
    title = "Hugging Face metadata.csv" if hugging_face else "manifest CSV"
    return Corpus("manifest", title, labels, found, evidence or f"{len(rows)} rows in {table}", notes=notes)


def read_rows(table: Path) -> list[dict[str, str]]:
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{table}: cannot be read as CSV ({error})") from None
    if not header or not rows:
        raise DatasetError(
            f"{table}: empty (expected a header {','.join(REQUIRED)}[,gender][,start,end] and a row per clip)"
        )
    if any(None in row for row in rows):
        line = next(i + 2 for i, row in enumerate(rows) if None in row)
        raise DatasetError(f"{table} line {line}: more cells than the header has columns")
    return rows


def msa_columns(table: Path, first: dict) -> dict[str, str]:
    """msa's own manifest: exactly the known columns, the required ones present."""
    columns = [column.strip() for column in first]
    unknown = [column for column in columns if column not in REQUIRED + OPTIONAL]
    if unknown:
        raise DatasetError(
            f"{table}: unknown column {unknown[0]!r} (expected {','.join(REQUIRED)}[,gender][,start,end])"
        )
    missing = [column for column in REQUIRED if column not in columns]
    if missing:
        raise DatasetError(
            f"{table}: no {missing[0]!r} column (expected {','.join(REQUIRED)}[,gender][,start,end])"
        )
    if ("start" in columns) != ("end" in columns):
        raise DatasetError(f"{table}: give both a start and an end column, or neither")
    return {column: column for column in columns}


def hf_columns(table: Path, first: dict) -> dict[str, str]:
    """A Hugging Face metadata.csv: file_name, the first label column, optional speaker/gender/span."""
    columns = list(first)
    if HF_FILE_COLUMN not in columns:
        raise DatasetError(f"{table}: no {HF_FILE_COLUMN!r} column (the Hugging Face audiofolder convention)")
    label = next((c for c in LABEL_COLUMNS if c in columns), None)
    if label is None:
        raise DatasetError(f"{table}: no label column (one of {', '.join(LABEL_COLUMNS)})")
    chosen = {"path": HF_FILE_COLUMN, "label": label}
    for key, names in (("speaker", SPEAKER_COLUMNS), ("gender", GENDER_COLUMNS)):
        found = next((c for c in names if c in columns), None)
        if found:
            chosen[key] = found
    if "start" in columns and "end" in columns:
        chosen.update(start="start", end="end")
    return chosen


def parse_span(start: str, end: str, where: str) -> tuple[float, float] | None:
    if not start and not end:
        return None
    if not start or not end:
        raise DatasetError(f"{where}: give both start and end, or neither")
    try:
        span = (float(start), float(end))
    except ValueError:
        raise DatasetError(f"{where}: start and end must be seconds, got {start!r}, {end!r}") from None
    if not all(math.isfinite(value) for value in span) or span[0] < 0:
        raise DatasetError(f"{where}: start and end must be finite seconds >= 0, got {start}, {end}")
    if span[0] >= span[1]:
        raise DatasetError(f"{where}: start {start} >= end {end}")
    return span


def check_span_in_file(file: Path, span: tuple[float, float], where: str, header: MediaProbe | None) -> None:
    """A span must end within the file (SPAN_END_TOLERANCE). A file whose duration cannot be
    read is left to preparation, which reports it."""
    duration = header.duration if header is not None else None
    if duration is not None and span[1] > duration + SPAN_END_TOLERANCE:
        raise DatasetError(
            f"{where}: span {span[0]:g}-{span[1]:g} s ends past the end of {file.name} ({duration:.2f} s)"
        )

"""Where ``msa predict --live`` writes each span the moment it is classified.

- Standard output (the default): one JSON object per line, flushed at once: the keys of a
  ``.json`` output's items (msa.predict.timeline.json_item: ``start``, ``end``, ``text``, ``top``,
  ``probability``, ``probabilities``, ``source``) and ``latency``, the seconds from the moment the
  span's last sample arrived to this line being written.
- ``--out`` ``.vtt`` / ``.srt`` / ``.csv``: the formats of file mode, appended one cue or row at a
  time, each with a single ``write`` of whole lines, so a reader tailing the file sees whole cues.
  A timeline's cue runs from the previous cue's end (the window's start for the first) to its
  window's end, so cues tile the stream without overlapping; a subtitle cue keeps its times and
  text behind its tag, as in file mode.
- ``--out`` ``.json``: file mode's document, replaced atomically after every span (msa.atomic), so
  it is a whole JSON document whenever it is read.

The file is valid after every span: a stream cut at any moment leaves nothing half-written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from msa.atomic import atomic_path
from msa.predict.subtitles import WEBVTT_EXTENSION, WEBVTT_HEADER, Cue, subrip_block, webvtt_block
from msa.predict.timeline import (
    CSV_EXTENSION,
    JSON_EXTENSION,
    OUTPUT_EXTENSIONS,
    TIME_DECIMALS,
    WindowPrediction,
    csv_header,
    csv_row,
    emotion_tag,
    json_document,
    json_item,
)

LATENCY_DECIMALS = 3  # s: milliseconds


@dataclass(frozen=True)
class LiveRow:
    """One classified span: its times, its cue's text (None for a window), its prediction, and
    its latency in seconds."""

    start: float
    end: float
    text: str | None
    prediction: WindowPrediction
    latency: float


class LiveOutput(ABC):
    def __init__(self, labels: Sequence[str]):
        self.labels = tuple(labels)

    @abstractmethod
    def write(self, row: LiveRow) -> None:
        """Write ``row`` whole, now."""

    def close(self) -> None:  # noqa: B027 (most outputs hold nothing open between rows)
        """Nothing more will come."""


class JsonLines(LiveOutput):
    """One JSON object per span on ``stream`` (standard output), flushed at once."""

    def __init__(self, labels: Sequence[str], stream: TextIO | None = None):
        super().__init__(labels)
        self.stream = stream or sys.stdout

    def write(self, row: LiveRow) -> None:
        item = json_item(self.labels, row.start, row.end, row.text, row.prediction)
        item["latency"] = round(row.latency, LATENCY_DECIMALS)
        self.stream.write(json.dumps(item, ensure_ascii=False) + "\n")
        self.stream.flush()


class AppendedFile(LiveOutput):
    """A .vtt, .srt or .csv file: its header written (atomically) when opened, then one cue or
    row per span, appended with one write."""

    def __init__(self, labels: Sequence[str], path: Path):
        super().__init__(labels)
        self.path, self.extension = path, path.suffix.lower()
        self.cues_written, self.tiled_until = 0, 0.0
        with atomic_path(path) as temporary:
            temporary.write_text(self._header(), encoding="utf-8")
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def _header(self) -> str:
        if self.extension == CSV_EXTENSION:
            return self._csv_line(csv_header(self.labels))
        return WEBVTT_HEADER + "\n" if self.extension == WEBVTT_EXTENSION else ""

    @staticmethod
    def _csv_line(fields: list[str]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(fields)
        return buffer.getvalue()

    def write(self, row: LiveRow) -> None:
        if self.extension == CSV_EXTENSION:
            text = self._csv_line(csv_row(self.labels, row.start, row.end, row.text, row.prediction))
        else:
            text = self._cue_text(row)
        os.write(self.fd, text.encode("utf-8"))

    def _cue_text(self, row: LiveRow) -> str:
        prediction = row.prediction
        tag = emotion_tag(prediction.label(self.labels), prediction.top_probability)
        if row.text is None:  # a window: its cue tiles on from the cue before it
            start = max(row.start, min(self.tiled_until, row.end))
            cue = Cue(round(start, TIME_DECIMALS), round(row.end, TIME_DECIMALS), tag)
            self.tiled_until = row.end
        else:
            cue = Cue(row.start, row.end, f"{tag} {row.text}" if row.text else tag)
        self.cues_written += 1
        if self.extension == WEBVTT_EXTENSION:
            return "\n" + webvtt_block(cue) + "\n"
        return subrip_block(self.cues_written, cue) + "\n\n"

    def close(self) -> None:
        os.close(self.fd)


class JsonFile(LiveOutput):
    """A .json file, replaced atomically by the whole document after every span."""

    def __init__(self, labels: Sequence[str], path: Path):
        super().__init__(labels)
        self.path = path
        self.items: list[dict] = []
        self._replace()

    def write(self, row: LiveRow) -> None:
        self.items.append(json_item(self.labels, row.start, row.end, row.text, row.prediction))
        self._replace()

    def _replace(self) -> None:
        with atomic_path(self.path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
            json_document(handle, self.labels, self.items)


def open_output(labels: Sequence[str], out: str | None) -> LiveOutput:
    """JSON lines on standard output, or the file ``out`` (by its extension)."""
    if out is None:
        return JsonLines(labels)
    path = Path(out)
    extension = path.suffix.lower()
    if extension not in OUTPUT_EXTENSIONS:
        raise ValueError(f"--out {out}: unknown extension (expected {', '.join(OUTPUT_EXTENSIONS)})")
    if path.is_dir():
        raise ValueError(f"--out {out}: a folder; --live writes one file")
    return JsonFile(labels, path) if extension == JSON_EXTENSION else AppendedFile(labels, path)

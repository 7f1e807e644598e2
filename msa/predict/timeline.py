"""A recording's emotions over time, and the files ``python -m msa.predict`` writes them to.

The command classifies spans of a recording: the cues of the user's subtitles (subtitle mode)
or, without subtitles, overlapping ``sliding_windows`` (timeline mode). Each span gets a
``WindowPrediction``: the class probabilities and what they came from (``source``), or no
probabilities when it could not be classified (no face on screen, no audio track).
``merge_segments`` turns a timeline's windows into segments of one emotion each.

``write_output`` writes, by the output's extension:

- ``.vtt`` / ``.srt``: every cue with its text prefixed by its emotion (``[happy 0.82] Hello``,
  ``[no face] Hello``); in timeline mode one cue per segment, whose text is the tag alone;
- ``.csv``: one row per cue or window: ``start,end,text,top,top_probability,source`` and one
  column per class probability (empty where unclassified);
- ``.json``: ``{"labels": [...], "items": [{"start", "end", "text", "top", "probability",
  "source", "probabilities": {label: p}}]}`` (``text`` null for windows; ``top``,
  ``probability`` null and ``probabilities`` empty where unclassified).

Times are seconds, written to the millisecond. Every file is written atomically (msa.atomic: a
temporary file beside it, then ``os.replace``), so a failed write leaves no partial file and an existing
one untouched. Pure Python: the command imports torch, not this module.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import TextIO

from msa.atomic import atomic_path
from msa.predict.subtitles import (
    SUBRIP_EXTENSION,
    SUBTITLE_EXTENSIONS,
    WEBVTT_EXTENSION,
    Cue,
    format_subrip,
    format_webvtt,
)

CLASSIFIED_SOURCES = ("audio+video", "audio", "video")  # the modalities a prediction used
UNCLASSIFIED_SOURCES = ("no face", "no audio")  # why a window has no prediction
SUBTITLE_FORMATTERS = {WEBVTT_EXTENSION: format_webvtt, SUBRIP_EXTENSION: format_subrip}
CSV_EXTENSION, JSON_EXTENSION = ".csv", ".json"
OUTPUT_EXTENSIONS = (*SUBTITLE_EXTENSIONS, CSV_EXTENSION, JSON_EXTENSION)
CSV_COLUMNS = ("start", "end", "text", "top", "top_probability", "source")  # then one per label
TAG_DECIMALS = 2  # [happy 0.82]
PROBABILITY_DECIMALS = 4  # in .csv and .json
TIME_DECIMALS = 3  # milliseconds
SEGMENT_SOURCE_SEPARATOR = ", "  # a segment merged from windows of several sources
HOP_COUNT_TOLERANCE = 1e-9  # float noise in (duration - window) / hop: 8.000000000000002 hops are 8


@dataclass(frozen=True)
class WindowPrediction:
    """What one span of the recording was classified as: ``probabilities`` in the label set's
    order (any sequence of numbers, kept as a tuple of floats; empty when unclassified) and
    ``source``, one of CLASSIFIED_SOURCES or UNCLASSIFIED_SOURCES."""

    start: float
    end: float
    probabilities: tuple[float, ...]
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "probabilities", tuple(float(p) for p in self.probabilities))
        span = f"window {self.start:.3f}-{self.end:.3f} s"
        if not 0 <= self.start <= self.end:
            raise ValueError(f"{span}: start and end must satisfy 0 <= start <= end")
        if self.source not in CLASSIFIED_SOURCES + UNCLASSIFIED_SOURCES:
            raise ValueError(
                f"{span}: unknown source {self.source!r} "
                f"(expected one of {', '.join(CLASSIFIED_SOURCES + UNCLASSIFIED_SOURCES)})"
            )
        if (self.source in CLASSIFIED_SOURCES) != bool(self.probabilities):
            raise ValueError(
                f"{span}: source {self.source!r} "
                + ("needs probabilities" if self.source in CLASSIFIED_SOURCES else "means no probabilities")
            )
        if not all(math.isfinite(p) for p in self.probabilities):
            raise ValueError(f"{span}: probabilities must be finite, got {self.probabilities}")

    @property
    def classified(self) -> bool:
        return bool(self.probabilities)

    @property
    def top_probability(self) -> float | None:
        return max(self.probabilities) if self.probabilities else None

    def label(self, labels: Sequence[str]) -> str:
        """The top emotion (the first of equal ones), or the source when unclassified."""
        if not self.classified:
            return self.source
        if len(self.probabilities) != len(labels):
            raise ValueError(
                f"window {self.start:.3f}-{self.end:.3f} s has {len(self.probabilities)} probabilities "
                f"for {len(labels)} labels"
            )
        return labels[self.probabilities.index(max(self.probabilities))]


@dataclass(frozen=True)
class Segment:
    """Consecutive windows with one top emotion (or one reason for no prediction): ``label`` is
    the emotion or the unclassified source, ``probability`` the emotion's mean probability over
    the windows (None when unclassified), ``source`` their sources in order of appearance."""

    start: float
    end: float
    label: str
    probability: float | None
    source: str
    windows: int


@dataclass(frozen=True)
class AnnotatedCue:
    """A subtitle cue and the prediction for its span."""

    cue: Cue
    prediction: WindowPrediction


Row = tuple[float, float, str | None, WindowPrediction]  # an output's start, end, text and prediction


def sliding_windows(duration: float, window: float, hop: float) -> list[tuple[float, float]]:
    """(start, end) of windows of ``window`` seconds every ``hop`` seconds over ``duration``; the
    last one ends at the duration (closer to the one before it when the hops do not fit), and a
    recording shorter than a window is one window of its length."""
    for name, value in (("duration", duration), ("window", window), ("hop", hop)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"sliding windows: {name} must be a number of seconds > 0, got {value}")
    if duration <= window:
        return [(0.0, duration)]
    hops_before_last = math.ceil((duration - window) / hop - HOP_COUNT_TOLERANCE)
    starts = [index * hop for index in range(hops_before_last)] + [duration - window]
    return [(start, start + window) for start in starts]


def merge_segments(predictions: Sequence[WindowPrediction], labels: Sequence[str]) -> list[Segment]:
    """Runs of consecutive windows with the same ``label`` as segments, from the start of a run's
    first window to the start of the next run's (where windows overlap; segments never do) or to
    the end of its last window, whichever is earlier."""
    runs: list[list[WindowPrediction]] = []
    for prediction in predictions:
        if runs and prediction.start < runs[-1][-1].start:
            raise ValueError(
                f"window {prediction.start:.3f}-{prediction.end:.3f} s starts before the window "
                f"above it ({runs[-1][-1].start:.3f} s); windows must be in time order"
            )
        if runs and prediction.label(labels) == runs[-1][0].label(labels):
            runs[-1].append(prediction)
        else:
            runs.append([prediction])
    segments = []
    for index, run in enumerate(runs):
        end = run[-1].end if index + 1 == len(runs) else min(run[-1].end, runs[index + 1][0].start)
        sources = dict.fromkeys(prediction.source for prediction in run)
        probability = fmean(p.top_probability for p in run) if run[0].classified else None
        segments.append(
            Segment(
                run[0].start,
                end,
                run[0].label(labels),
                probability,
                SEGMENT_SOURCE_SEPARATOR.join(sources),
                len(run),
            )
        )
    return segments


def emotion_tag(label: str, probability: float | None) -> str:
    """``[happy 0.82]``, or ``[no face]`` without a probability."""
    return f"[{label}]" if probability is None else f"[{label} {probability:.{TAG_DECIMALS}f}]"


def write_output(
    path: str | os.PathLike, labels: Sequence[str], items: Sequence[AnnotatedCue] | Sequence[WindowPrediction]
) -> Path:
    """Write the annotated cues (subtitle mode) or a timeline's windows (timeline mode) to
    ``path`` in the format its extension names (see the module doc); returns the path."""
    path = Path(path)
    extension = path.suffix.lower()
    if extension not in OUTPUT_EXTENSIONS:
        raise ValueError(
            f"{path}: unknown output extension {extension or '(none)'!r} (expected {', '.join(OUTPUT_EXTENSIONS)})"
        )
    items = list(items)
    if not (
        all(isinstance(item, AnnotatedCue) for item in items)
        or all(isinstance(item, WindowPrediction) for item in items)
    ):
        raise TypeError("write_output takes AnnotatedCue items or WindowPrediction items, not a mix")
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8", newline="") as handle:
        if extension == CSV_EXTENSION:
            _write_csv(handle, labels, _rows(items))
        elif extension == JSON_EXTENSION:
            _write_json(handle, labels, _rows(items))
        else:
            handle.write(SUBTITLE_FORMATTERS[extension](_tagged_cues(labels, items)))
    return path


def _tagged_cues(labels: Sequence[str], items: list[AnnotatedCue] | list[WindowPrediction]) -> list[Cue]:
    """The subtitle cues of an output: each cue's text behind its tag, or one tag per segment."""
    if items and isinstance(items[0], AnnotatedCue):
        cues = []
        for item in items:
            tag = emotion_tag(item.prediction.label(labels), item.prediction.top_probability)
            text = f"{tag} {item.cue.text}" if item.cue.text else tag
            cues.append(Cue(item.cue.start, item.cue.end, text, item.cue.identifier, item.cue.settings))
        return cues
    return [
        Cue(segment.start, segment.end, emotion_tag(segment.label, segment.probability))
        for segment in merge_segments(items, labels)
    ]


def _rows(items: list[AnnotatedCue] | list[WindowPrediction]) -> list[Row]:
    """(start, end, text, prediction) of each cue (its text) or window (no text)."""
    return [
        (item.cue.start, item.cue.end, item.cue.text, item.prediction)
        if isinstance(item, AnnotatedCue)
        else (item.start, item.end, None, item)
        for item in items
    ]


def _write_csv(handle: TextIO, labels: Sequence[str], rows: list[Row]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(csv_header(labels))
    writer.writerows(csv_row(labels, *row) for row in rows)


def csv_header(labels: Sequence[str]) -> list[str]:
    return [*CSV_COLUMNS, *labels]


def csv_row(
    labels: Sequence[str], start: float, end: float, text: str | None, prediction: WindowPrediction
) -> list[str]:
    """One ``.csv`` row (see the module doc); msa.predict.live appends them one at a time."""
    probabilities = prediction.probabilities or (None,) * len(labels)
    return [
        f"{start:.{TIME_DECIMALS}f}",
        f"{end:.{TIME_DECIMALS}f}",
        text or "",
        prediction.label(labels) if prediction.classified else "",
        _decimal(prediction.top_probability),
        prediction.source,
        *(_decimal(p) for p in probabilities),
    ]


def _decimal(probability: float | None) -> str:
    return "" if probability is None else f"{probability:.{PROBABILITY_DECIMALS}f}"


def json_items(
    labels: Sequence[str], items: Sequence[AnnotatedCue] | Sequence[WindowPrediction]
) -> list[dict]:
    """The ``items`` of the JSON output (see the module doc): one per cue or window."""
    return [json_item(labels, *row) for row in _rows(list(items))]


def _write_json(handle: TextIO, labels: Sequence[str], rows: list[Row]) -> None:
    json_document(handle, labels, [json_item(labels, *row) for row in rows])


def json_document(handle: TextIO, labels: Sequence[str], items: list[dict]) -> None:
    json.dump({"labels": list(labels), "items": items}, handle, indent=1, ensure_ascii=False)
    handle.write("\n")


def json_item(
    labels: Sequence[str], start: float, end: float, text: str | None, prediction: WindowPrediction
) -> dict:
    """One entry of a ``.json`` output's items (see the module doc)."""
    return {
        "start": round(start, TIME_DECIMALS),
        "end": round(end, TIME_DECIMALS),
        "text": text,
        "top": prediction.label(labels) if prediction.classified else None,
        "probability": _rounded(prediction.top_probability),
        "source": prediction.source,
        "probabilities": {name: _rounded(p) for name, p in zip(labels, prediction.probabilities)},
    }


def _rounded(probability: float | None) -> float | None:
    return None if probability is None else round(probability, PROBABILITY_DECIMALS)

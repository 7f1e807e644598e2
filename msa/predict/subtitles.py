"""Subtitle files in and out: WebVTT (.vtt) and SubRip (.srt) cues.

``python -m msa.predict`` annotates the cues of a user's subtitles with the emotion of each
one's span, so it must read what real tools write (a BOM, CRLF line ends, cue identifiers and
settings, NOTE / STYLE / REGION blocks, ``MM:SS.mmm`` timings, blank lines at the end) and write
back files the same players accept. Anything else is a ``SubtitleError`` naming the file and the
line, since a silently skipped cue would be a transcript with a hole in it.

Cues keep their order and may overlap; their starts must not go backwards (both formats require
it, and the windows that classify them are matched in time order). Reading drops what a cue does
not hold: STYLE and REGION blocks, comments, SubRip's coordinates.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

WEBVTT_EXTENSION, SUBRIP_EXTENSION = ".vtt", ".srt"
SUBTITLE_EXTENSIONS = (WEBVTT_EXTENSION, SUBRIP_EXTENSION)
WEBVTT_HEADER = "WEBVTT"
WEBVTT_SKIPPED_BLOCKS = ("NOTE", "STYLE", "REGION")  # comments and styling: no cue inside
TIMING_ARROW = "-->"

# Hours are optional in WebVTT and required in SubRip; both take any number of hour digits.
# SubRip's separator is a comma; a point (what some converters write) is accepted when reading.
WEBVTT_TIMESTAMP = re.compile(r"(?:(\d+):)?([0-5]\d):([0-5]\d)\.(\d{3})")
SUBRIP_TIMESTAMP = re.compile(r"(\d+):([0-5]\d):([0-5]\d)[,.](\d{3})")
WEBVTT_TIMING_SYNTAX = "HH:MM:SS.mmm --> HH:MM:SS.mmm"
SUBRIP_TIMING_SYNTAX = "HH:MM:SS,mmm --> HH:MM:SS,mmm"


class SubtitleError(ValueError):
    """A subtitle file that cannot be read; the message names the file and, if any, the line."""


@dataclass(frozen=True)
class Cue:
    """One subtitle: its span in seconds, its text (lines joined by newlines), the identifier it
    had in the file (a WebVTT cue id, a SubRip number) and its WebVTT settings (``align:start``)."""

    start: float
    end: float
    text: str
    identifier: str | None = None
    settings: str = ""


def read_subtitles(path: str | os.PathLike) -> list[Cue]:
    """The cues of a .vtt or .srt file (chosen by its extension), in file order."""
    path = Path(path)
    extension = path.suffix.lower()
    if extension not in SUBTITLE_EXTENSIONS:
        raise SubtitleError(
            f"{path}: unknown subtitle extension {extension or '(none)'!r} (expected .vtt or .srt)"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # drops a byte-order mark
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise SubtitleError(
            f"{path} line {line}: not UTF-8 (byte 0x{raw[error.start]:02x}); save the file as UTF-8"
        ) from None
    if not text.strip():
        raise SubtitleError(f"{path}: empty file")
    parse = parse_webvtt if extension == WEBVTT_EXTENSION else parse_subrip
    return parse(text, name=str(path))


def parse_webvtt(text: str, name: str = "<webvtt>") -> list[Cue]:
    """The cues of WebVTT ``text``; ``name`` is the file its errors name."""
    text = text.removeprefix("\ufeff")
    blocks = _blocks(text)
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if first_line != WEBVTT_HEADER and not first_line.startswith((WEBVTT_HEADER + " ", WEBVTT_HEADER + "\t")):
        raise SubtitleError(f"{name} line 1: missing {WEBVTT_HEADER!r} header (got {first_line!r})")
    # The header block (the WEBVTT line and its metadata lines) ends at a blank line; a timing
    # line right under it is tolerated as the start of the first cue.
    _, header = blocks.pop(0)
    timing_at = next((index for index, line in enumerate(header) if TIMING_ARROW in line), None)
    if timing_at is not None:
        blocks.insert(0, (1 + timing_at, header[timing_at:]))
    cues = []
    for number, lines in blocks:
        keyword = lines[0].split(maxsplit=1)[0]
        if keyword in WEBVTT_SKIPPED_BLOCKS and TIMING_ARROW not in lines[0]:
            continue
        identifier = None
        if TIMING_ARROW not in lines[0]:
            identifier = lines[0]
            if len(lines) < 2 or TIMING_ARROW not in lines[1]:
                raise SubtitleError(
                    f"{name} line {number}: {identifier!r} is not followed by a cue timing "
                    f"(expected {WEBVTT_TIMING_SYNTAX} on the next line)"
                )
            lines, number = lines[1:], number + 1
        start, end, settings = _timing(
            lines[0], WEBVTT_TIMESTAMP, WEBVTT_TIMING_SYNTAX, f"{name} line {number}"
        )
        cues.append(Cue(start, end, "\n".join(lines[1:]), identifier, settings))
        _check_order(cues, f"{name} line {number}")
    return cues


def parse_subrip(text: str, name: str = "<subrip>") -> list[Cue]:
    """The cues of SubRip ``text``; ``name`` is the file its errors name. A cue without its
    number line (some tools write none) is read too."""
    cues = []
    for number, lines in _blocks(text.removeprefix("\ufeff")):
        identifier = None
        if TIMING_ARROW not in lines[0]:
            identifier = lines[0].strip()
            if not identifier.isdigit():
                raise SubtitleError(f"{name} line {number}: expected a cue number, got {lines[0]!r}")
            if len(lines) < 2 or TIMING_ARROW not in lines[1]:
                raise SubtitleError(
                    f"{name} line {number}: cue {identifier} is not followed by a cue timing "
                    f"(expected {SUBRIP_TIMING_SYNTAX} on the next line)"
                )
            lines, number = lines[1:], number + 1
        start, end, _ = _timing(lines[0], SUBRIP_TIMESTAMP, SUBRIP_TIMING_SYNTAX, f"{name} line {number}")
        cues.append(Cue(start, end, "\n".join(lines[1:]), identifier))
        _check_order(cues, f"{name} line {number}")
    return cues


def format_webvtt(cues: Sequence[Cue]) -> str:
    """A WebVTT file holding ``cues``: their identifiers, timings, settings and text."""
    return "\n\n".join([WEBVTT_HEADER, *(webvtt_block(cue) for cue in cues)]) + "\n"


def webvtt_block(cue: Cue) -> str:
    """One WebVTT cue block, without the blank line that separates blocks."""
    timing = f"{format_timestamp(cue.start)} {TIMING_ARROW} {format_timestamp(cue.end)}"
    lines = [cue.identifier] if cue.identifier else []
    lines.append(f"{timing} {cue.settings}" if cue.settings else timing)
    if cue.text:
        lines.append(cue.text)
    return "\n".join(lines)


def format_subrip(cues: Sequence[Cue]) -> str:
    """A SubRip file holding ``cues``, numbered from 1 (SubRip's numbers are a sequence, so the
    identifiers are not kept) with their timings and text."""
    return "".join(subrip_block(index, cue) + "\n\n" for index, cue in enumerate(cues, start=1))


def subrip_block(number: int, cue: Cue) -> str:
    """SubRip cue ``number``, without the blank line that separates blocks."""
    timing = f"{format_timestamp(cue.start, ',')} {TIMING_ARROW} {format_timestamp(cue.end, ',')}"
    return "\n".join([str(number), timing, *([cue.text] if cue.text else [])])


def format_timestamp(seconds: float, decimal_separator: str = ".") -> str:
    """``HH:MM:SS.mmm`` (WebVTT) or, with ``decimal_separator=","``, ``HH:MM:SS,mmm`` (SubRip),
    milliseconds rounded."""
    if not seconds >= 0:
        raise ValueError(f"a subtitle timestamp must be >= 0 seconds, got {seconds}")
    minutes, milliseconds = divmod(round(seconds * 1000), 60_000)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{milliseconds // 1000:02d}{decimal_separator}{milliseconds % 1000:03d}"


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """The blocks of ``text`` (runs of non-blank lines), each with its first line's number."""
    return list(_iterate_blocks(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")))


def _iterate_blocks(lines: list[str]) -> Iterator[tuple[int, list[str]]]:
    block: list[str] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            block.append(line)
        elif block:
            yield number - len(block), block
            block = []
    if block:
        yield len(lines) + 1 - len(block), block


def _timing(line: str, timestamp: re.Pattern[str], syntax: str, where: str) -> tuple[float, float, str]:
    """Start, end and the rest of a timing line (WebVTT's cue settings)."""
    left, right = line.split(TIMING_ARROW, 1)
    end_and_rest = right.split(maxsplit=1)
    start = timestamp.fullmatch(left.strip())
    end = timestamp.fullmatch(end_and_rest[0]) if end_and_rest else None
    if start is None or end is None:
        raise SubtitleError(f"{where}: bad timing {line.strip()!r} (expected {syntax})")
    start_seconds, end_seconds = _seconds(start), _seconds(end)
    if end_seconds < start_seconds:
        raise SubtitleError(f"{where}: cue ends before it starts ({line.strip()!r})")
    return start_seconds, end_seconds, end_and_rest[1].strip() if len(end_and_rest) > 1 else ""


def _seconds(match: re.Match[str]) -> float:
    hours, minutes, seconds, milliseconds = (int(group or 0) for group in match.groups())
    return hours * 3600 + minutes * 60 + seconds + milliseconds / 1000


def _check_order(cues: list[Cue], where: str) -> None:
    if len(cues) > 1 and cues[-1].start < cues[-2].start:
        raise SubtitleError(
            f"{where}: cue starts at {format_timestamp(cues[-1].start)}, before the cue above it "
            f"({format_timestamp(cues[-2].start)}); cues must be in time order"
        )

"""The annotated-transcript page (``msa predict ... --html OUT.html``): one self-contained HTML
file a person opens in a browser, with no server and nothing loaded from the network.

It shows the recording in a ``<video>`` (``<audio>`` for a file without video; none for a live
stream that left no file), the transcript below it (one row per cue, or per merged segment in
timeline mode: times, text, the top emotion as a coloured tag with its probability, the full
distribution on hover, and what the span used), the timeline drawn as stacked probabilities in
the PNG's colours (``msa.predict.plot.class_colour``) with a cursor that follows playback, a
legend, the model and its labels, and a filter by emotion. Clicking a row or the timeline seeks.

Safety: every string the page shows (cue text, file names, the model's name) travels as JSON in a
``<script type="application/json">`` block with ``<``, ``>`` and ``&`` escaped (so ``</script>``
in a cue cannot end the block), and the page's script puts it into the DOM as text
(``textContent``), never as markup. A Content-Security-Policy lets only the page's own script and
style (by their hashes) run, and no request leave: media from the page's folder or a data: URI.

The media is referenced by a path relative to the page's folder (URL-encoded per segment), so
the two move together; or embedded as a base64 data: URI (``embed_media``, up to
EMBED_MEDIA_LIMIT). The page's script and style are package data (``msa/predict/player/``),
inlined. The file is written atomically (msa.atomic). Pure Python.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from statistics import fmean
from urllib.parse import quote

from msa.atomic import atomic_path
from msa.predict.plot import (
    AUDIO_ONLY_COLOUR,
    AUDIO_ONLY_LABEL,
    CUE_BOUNDARY_COLOUR,
    UNCLASSIFIED_COLOURS,
    class_colour,
)
from msa.predict.timeline import (
    PROBABILITY_DECIMALS,
    TIME_DECIMALS,
    AnnotatedCue,
    WindowPrediction,
    json_items,
    merge_segments,
)

HTML_EXTENSIONS = (".html", ".htm")
MB = 1_000_000  # bytes
EMBED_MEDIA_LIMIT = 50 * MB  # the largest recording --embed-media puts in a page (which grows by 4/3)
# data: URIs carry a type; browsers sniff the container anyway, so the common ones suffice.
MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
}
PLAYER_PACKAGE, PLAYER_SCRIPT, PLAYER_STYLE = "msa.predict", "player/player.js", "player/player.css"
DATA_ELEMENT_ID = "msa-data"
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<meta name="referrer" content="no-referrer">
<title>Emotions</title>
<style>{style}</style>
</head>
<body>
<noscript>This page needs JavaScript to show the annotated transcript.</noscript>
<main id="player"><svg id="chart" role="img" aria-label="emotions over time"></svg></main>
<script type="application/json" id="{data_id}">{data}</script>
<script>{script}</script>
</body>
</html>
"""
# Only the page's own script and style run, nothing is fetched; media come from the page's
# folder (file: or the same origin when served) or from the page itself (data:).
POLICY = (
    "default-src 'none'; script-src '{script}'; style-src '{style}'; "
    "media-src 'self' file: data: blob:; img-src data:; base-uri 'none'; form-action 'none'"
)


class PlayerError(ValueError):
    """A bad --html argument: the page's extension, or media too large to embed (one line)."""


def check_player(path: str | os.PathLike, media: Path | None, embed_media: bool) -> None:
    """Raise PlayerError when ``path`` is not an .html file or ``media`` is to be embedded but is
    over EMBED_MEDIA_LIMIT (a missing media file is the caller's error to report)."""
    if Path(path).suffix.lower() not in HTML_EXTENSIONS:
        raise PlayerError(f"--html {path}: unknown extension (expected {', '.join(HTML_EXTENSIONS)})")
    if embed_media and media is not None and media.is_file():
        size = media.stat().st_size
        if size > EMBED_MEDIA_LIMIT:
            raise PlayerError(
                f"--embed-media: {media} is {size / MB:.1f} MB, over the {EMBED_MEDIA_LIMIT / MB:g} MB "
                "a page embeds (leave --embed-media out: the page then refers to the file beside it)"
            )


def write_player(
    path: str | os.PathLike,
    labels: Sequence[str],
    items: Sequence[AnnotatedCue] | Sequence[WindowPrediction],
    *,
    media: Path | None,
    duration: float,
    model: str,
    video: bool = True,
    embed_media: bool = False,
    title: str | None = None,
) -> Path:
    """Write the page for ``items`` (AnnotatedCue: one row per cue; WindowPrediction: a
    timeline's windows, one row per merged segment) over ``duration`` seconds, classified by
    ``model`` (its description) into ``labels``. ``media``: the recording (None: no player),
    shown in a <video> when ``video`` else an <audio>; ``title``: the page's heading (default:
    the media's file name). Returns the path."""
    path = Path(path)
    check_player(path, media, embed_media)
    items = list(items)
    windows = bool(items) and isinstance(items[0], WindowPrediction)
    entries = json_items(labels, items)
    data = {
        "title": title or (media.name if media is not None else "Emotions"),
        "model": model,
        "labels": list(labels),
        "colours": {label: class_colour(index) for index, label in enumerate(labels)},
        "unclassified_colours": UNCLASSIFIED_COLOURS,
        "audio_only": {"colour": AUDIO_ONLY_COLOUR, "label": AUDIO_ONLY_LABEL},
        "cue_boundary_colour": CUE_BOUNDARY_COLOUR,
        "duration": round(max([duration, *(entry["end"] for entry in entries)]), TIME_DECIMALS),
        "mode": "windows" if windows else "cues",
        "rows": segment_rows(items, labels) if windows else entries,
        "windows": entries if windows else None,
        "media": None if media is None else media_element(path, media, video, embed_media),
    }
    with atomic_path(path) as temporary:
        temporary.write_text(page(data), encoding="utf-8")
    return path


def segment_rows(windows: Sequence[WindowPrediction], labels: Sequence[str]) -> list[dict]:
    """The transcript rows of a timeline: its merged segments (msa.predict.timeline.merge_segments)
    as the JSON output's items, with their windows' mean distribution and ``windows``, their count."""
    rows, first = [], 0
    for segment in merge_segments(windows, labels):
        run = windows[first : first + segment.windows]
        first += segment.windows
        mean = [fmean(values) for values in zip(*(w.probabilities for w in run))] if run[0].classified else []
        rows.append(
            {
                "start": round(segment.start, TIME_DECIMALS),
                "end": round(segment.end, TIME_DECIMALS),
                "text": None,
                "top": segment.label if segment.probability is not None else None,
                "probability": _rounded(segment.probability),
                "source": segment.source,
                "probabilities": {label: _rounded(p) for label, p in zip(labels, mean)},
                "windows": segment.windows,
            }
        )
    return rows


def media_element(page_path: Path, media: Path, video: bool, embed: bool) -> dict:
    """The player's element: its kind, ``src`` (a data: URI, or the path from the page's folder,
    URL-encoded per segment) and the file's name to show."""
    if embed:
        media_type = MEDIA_TYPES.get(media.suffix.lower(), "video/mp4" if video else "audio/mp4")
        source = f"data:{media_type};base64,{base64.b64encode(media.read_bytes()).decode('ascii')}"
    else:
        try:
            relative = os.path.relpath(os.path.abspath(media), os.path.abspath(page_path.parent))
            source = "/".join(quote(part, safe="") for part in relative.split(os.sep))
        except ValueError:  # another drive (Windows): no relative path exists
            source = media.absolute().as_uri()
    return {"kind": "video" if video else "audio", "src": source, "name": media.name, "embedded": embed}


def page(data: dict) -> str:
    """The HTML page showing ``data`` (write_player's), its script and style inlined."""
    player = files(PLAYER_PACKAGE)
    script = player.joinpath(PLAYER_SCRIPT).read_text(encoding="utf-8")
    style = player.joinpath(PLAYER_STYLE).read_text(encoding="utf-8")
    for name, text, closing in ((PLAYER_SCRIPT, script, "</script"), (PLAYER_STYLE, style, "</style")):
        if closing in text.lower():
            raise ValueError(f"{name} holds {closing!r}, which would end its element early")
    policy = POLICY.format(script=_csp_hash(script), style=_csp_hash(style))
    return PAGE.format(
        policy=policy, style=style, data_id=DATA_ELEMENT_ID, data=script_json(data), script=script
    )


def script_json(data) -> str:
    """``data`` as JSON safe inside a <script> element: no ``<``, ``>`` or ``&`` left to end it
    or to start markup (each becomes its \\u escape, which JSON.parse reads back)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _rounded(probability: float | None) -> float | None:
    return None if probability is None else round(probability, PROBABILITY_DECIMALS)

"""A recording's emotions over time as a figure (``python -m msa.predict ... --plot OUT.png``).

The x axis is the time in seconds (``m:ss`` past two minutes), the y axis each class's
probability, 0 to 1: stacked areas (``style="stacked"``, the classes summing to 1 at every
moment) or one line per class (``style="lines"``), each class in the same colour in both.
A timeline's windows are drawn at their centres; subtitle cues as steps, constant over each cue,
with a thin vertical line at every cue's start and end. Spans that could not be classified (no
face on screen, no audio track) are gaps shaded grey, one legend entry per reason.

Figures are plain matplotlib ``Figure`` objects (no pyplot state), as in msa.analysis, so this
runs headless; matplotlib is imported only when a figure is drawn. The file is written atomically
(msa.atomic) in the format its extension names.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from msa.atomic import atomic_path
from msa.figure_files import save_figure
from msa.predict.subtitles import Cue
from msa.predict.timeline import WindowPrediction

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOT_STYLES = ("stacked", "lines")
PLOT_EXTENSIONS = (".png", ".svg", ".pdf")
DEFAULT_TITLE = "Emotions over time"
# Class i gets the i-th colour (mod 9): matplotlib's qualitative tab10 without its grey (#7f7f7f),
# which the grey shading of spans without a prediction would be mistaken for. Hex strings, so that
# the HTML page (msa.predict.html) draws in the same colours without importing matplotlib.
CLASS_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
)
UNCLASSIFIED_COLOURS = {"no face": "#dee2e6", "no audio": "#ced4da"}  # light greys behind the gaps
# Hatching over spans a model with audio and video classified from the audio alone (no face).
AUDIO_ONLY_HATCH, AUDIO_ONLY_COLOUR, AUDIO_ONLY_LABEL = "//", "#343a40", "audio only (no face)"
CUE_BOUNDARY_COLOUR = "#495057"
CUE_BOUNDARY_WIDTH = 0.6  # points
LINE_WIDTH = 1.6  # points
HEIGHT = 4.0  # inches
MIN_WIDTH, MAX_WIDTH = 10.0, 24.0  # inches: MIN_WIDTH up to SHORT_RECORDING, then growing
SHORT_RECORDING = 60.0  # seconds
SECONDS_PER_EXTRA_INCH = 30.0  # beyond SHORT_RECORDING, up to MAX_WIDTH (reached at 8 minutes)
MINUTE_TICKS_AFTER = 120.0  # seconds: longer recordings get m:ss ticks on whole minutes
MAX_MINUTE_TICKS = 12


def class_colour(index: int) -> str:
    """The colour of class ``index`` (in the labels' order), as ``#rrggbb``."""
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def timeline_figure(
    labels: Sequence[str],
    predictions: Sequence[WindowPrediction],
    cues: Sequence[Cue] | None = None,
    style: str = "stacked",
    title: str = "",
    duration: float | None = None,
) -> Figure:
    """The figure of the predictions (one per cue, in the cues' order, when ``cues`` are given;
    otherwise a timeline's windows, in time order) for classes ``labels``; the time axis spans
    the predictions, or the whole recording when its ``duration`` is given."""
    import numpy as np
    from matplotlib.figure import Figure

    if not predictions:
        raise ValueError("nothing to plot: no predictions")
    if style not in PLOT_STYLES:
        raise ValueError(f"unknown plot style {style!r} (expected {' or '.join(PLOT_STYLES)})")
    if cues is not None and len(cues) != len(predictions):
        raise ValueError(
            f"{len(cues)} cues for {len(predictions)} predictions: expected one prediction per cue"
        )
    for prediction in predictions:
        prediction.label(labels)  # raises when a classified one's probability count is not len(labels)

    start, end = min(p.start for p in predictions), max(p.end for p in predictions)
    if duration is not None:
        start, end = 0.0, max(end, duration)
    duration = end - start
    width = min(MAX_WIDTH, MIN_WIDTH + max(0.0, duration - SHORT_RECORDING) / SECONDS_PER_EXTRA_INCH)
    fig = Figure(figsize=(width, HEIGHT), layout="constrained")
    ax = fig.subplots()
    x, probabilities = _series(predictions, len(labels), steps=cues is not None)
    x, probabilities = np.array(x), np.array(probabilities).T  # one row per class
    colours = [class_colour(i) for i in range(len(labels))]
    if style == "stacked":
        ax.stackplot(x, probabilities, labels=labels, colors=colours, alpha=0.9)
    else:
        for label, values, colour in zip(labels, probabilities, colours):
            ax.plot(x, values, color=colour, lw=LINE_WIDTH, label=label)
    shaded = set()
    for prediction in predictions:
        if not prediction.classified:
            first = prediction.source not in shaded
            shaded.add(prediction.source)
            colour = UNCLASSIFIED_COLOURS[prediction.source]
            ax.axvspan(
                prediction.start,
                prediction.end,
                color=colour,
                lw=0,
                zorder=0,
                label=prediction.source if first else None,
            )
    if "audio+video" in {p.source for p in predictions}:  # a multimodal model: mark its audio-only spans
        for index, prediction in enumerate(p for p in predictions if p.source == "audio"):
            ax.axvspan(
                prediction.start,
                prediction.end,
                fill=False,
                hatch=AUDIO_ONLY_HATCH,
                edgecolor=AUDIO_ONLY_COLOUR,
                lw=0,
                label=AUDIO_ONLY_LABEL if index == 0 else None,
            )
    if cues:
        boundaries = sorted({time for cue in cues for time in (cue.start, cue.end)})
        ax.vlines(boundaries, 0, 1, color=CUE_BOUNDARY_COLOUR, lw=CUE_BOUNDARY_WIDTH, label="cue start / end")
    ax.set(xlim=(start, end) if duration > 0 else None, ylim=(0, 1), ylabel="probability")
    ax.set_title(title or DEFAULT_TITLE)
    ax.grid(axis="y", alpha=0.25)
    _time_axis(ax, duration)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize="small")
    return fig


def draw_timeline(
    path: str | os.PathLike,
    labels: Sequence[str],
    predictions: Sequence[WindowPrediction],
    cues: Sequence[Cue] | None = None,
    style: str = "stacked",
    title: str = "",
    duration: float | None = None,
) -> Path:
    """Draw ``timeline_figure(labels, predictions, cues, style, title, duration)`` into ``path`` (.png,
    .svg or .pdf, by its extension), atomically; returns the path."""
    path = Path(path)
    extension = path.suffix.lower()
    if extension not in PLOT_EXTENSIONS:
        raise ValueError(
            f"{path}: unknown plot extension {extension or '(none)'!r} (expected {', '.join(PLOT_EXTENSIONS)})"
        )
    fig = timeline_figure(labels, predictions, cues, style, title, duration)
    with atomic_path(path) as temporary:  # its name ends in .tmp: the format goes explicitly
        save_figure(fig, temporary, extension[1:])
    return path


def _series(
    predictions: Sequence[WindowPrediction], classes: int, steps: bool
) -> tuple[list[float], list[tuple[float, ...]]]:
    """Times and each one's probabilities (NaN where unclassified: a gap): the windows' centres,
    or with ``steps`` each prediction's start and end (cut at the next one's start, so overlapping
    cues do not fold the time axis back), a NaN point where nothing covers the time between two."""
    missing = (math.nan,) * classes
    times: list[float] = []
    rows: list[tuple[float, ...]] = []
    for index, prediction in enumerate(predictions):
        values = prediction.probabilities or missing
        if not steps:
            times.append((prediction.start + prediction.end) / 2)
            rows.append(values)
            continue
        following = predictions[index + 1].start if index + 1 < len(predictions) else math.inf
        end = max(prediction.start, min(prediction.end, following))
        times += [prediction.start, end]
        rows += [values, values]
        if end < following < math.inf:
            times.append(end)
            rows.append(missing)
    return times, rows


def _time_axis(ax: Axes, duration: float) -> None:
    """Seconds, or m:ss on whole minutes (about MAX_MINUTE_TICKS at most) past MINUTE_TICKS_AFTER."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    if duration <= MINUTE_TICKS_AFTER:
        ax.set_xlabel("time (s)")
        return
    ax.xaxis.set_major_locator(MultipleLocator(60 * math.ceil(duration / 60 / MAX_MINUTE_TICKS)))
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda seconds, _: f"{int(seconds) // 60}:{int(seconds) % 60:02d}")
    )
    ax.set_xlabel("time (m:ss)")

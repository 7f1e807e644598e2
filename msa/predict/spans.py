"""The spans of a recording that get classified, and which frames the model sees in each.

A span is a subtitle cue (subtitle mode) or a sliding window (timeline mode). Its audio is every
sample in [start, end). Its video is ``num_frames`` frames, chosen two ways:

- a cue, as training samples a clip: the frames shown in [start, end) are the clip, and
  ``msa.data.decode.sample_frame_indices`` picks from them, so a cue spanning exactly a prepared
  clip shows the model the frames it saw in training;
- a window, on one grid for the whole recording: a frame every ``window / num_frames`` seconds
  (each grid point takes the frame on screen then), so every window holds ``num_frames`` evenly
  spaced frames, as a clip of its length would, and overlapping windows share their frames: a
  frame is decoded, cropped and embedded once, not once per window that shows it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from msa.data.decode import sample_frame_indices
from msa.predict.subtitles import Cue
from msa.predict.timeline import sliding_windows

# Cue times are written to the millisecond, so a frame shown at a cue's start may be up to half a
# millisecond before the time the file gives.
TIME_TOLERANCE = 0.0005  # s
GRID_TOLERANCE = 1e-9  # relative: float noise in start / step


@dataclass(frozen=True)
class Span:
    """One span to classify: [start, end) seconds, its frames (indices into the recording's
    frame times, in time order, possibly repeated; empty without video) and its cue, if any."""

    start: float
    end: float
    frames: tuple[int, ...]
    cue: Cue | None = None


def frames_shown(frame_times: np.ndarray, start: float, end: float) -> tuple[int, int]:
    """[first, stop) indices of the frames whose times lie in [start, end)."""
    first = int(np.searchsorted(frame_times, start - TIME_TOLERANCE))
    stop = int(np.searchsorted(frame_times, end - TIME_TOLERANCE))
    return first, max(first, stop)


def frame_at(frame_times: np.ndarray, time: float) -> int:
    """The index of the frame on screen at ``time`` (the first frame before the first one)."""
    return max(0, int(np.searchsorted(frame_times, time + TIME_TOLERANCE, side="right")) - 1)


def cue_frames(frame_times: np.ndarray | None, start: float, end: float, num_frames: int) -> tuple[int, ...]:
    """A cue's frames as training samples a clip's: ``num_frames`` spread over the frames shown
    in [start, end) (all of them when fewer); the frame on screen at its middle when none is."""
    if frame_times is None or len(frame_times) == 0:
        return ()
    first, stop = frames_shown(frame_times, start, end)
    if stop == first:
        return (frame_at(frame_times, (start + end) / 2),)
    return tuple(int(first + i) for i in sample_frame_indices(stop - first, num_frames))


def grid_frames(frame_times: np.ndarray | None, start: float, end: float, step: float) -> tuple[int, ...]:
    """The frames on screen at the grid times (j + 0.5) * step that lie in [start, end)."""
    if frame_times is None or len(frame_times) == 0:
        return ()
    first = math.ceil(start / step - 0.5 - GRID_TOLERANCE)
    stop = math.ceil(end / step - 0.5 - GRID_TOLERANCE)
    return tuple(frame_at(frame_times, (j + 0.5) * step) for j in range(first, max(first + 1, stop)))


def cue_spans(cues: Sequence[Cue], frame_times: np.ndarray | None, num_frames: int) -> list[Span]:
    return [Span(c.start, c.end, cue_frames(frame_times, c.start, c.end, num_frames), c) for c in cues]


def window_spans(
    duration: float, window: float, hop: float, frame_times: np.ndarray | None, num_frames: int
) -> list[Span]:
    step = window / num_frames
    return [
        Span(start, end, grid_frames(frame_times, start, end, step))
        for start, end in sliding_windows(duration, window, hop)
    ]

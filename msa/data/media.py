"""Reading media files with PyAV: audio as planar float32 at the source's rate, the one form
``msa.audio_format.to_model_audio`` converts from.

Preparing a clip reads its whole audio track (``read_audio``); ``python -m msa.predict`` streams
a recording through the same per-frame conversion (``planar_samples``), so a span of a recording
and a clip with the same samples reach the model identically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

# What a dataset's files may be, by extension (PyAV reads them all): a file with an audio
# extension is prepared without frames.
SEEK_MARGIN = 1.0  # seconds decoded before a span's start: lossy decoders settle before the span
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".oga", ".wma", ".aif", ".aiff")
VIDEO_EXTENSIONS = (".mp4", ".flv", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv")


@dataclass(frozen=True)
class MediaProbe:
    """What a file's header says, without decoding it."""

    has_video: (
        bool  # a video stream that is not a cover picture (mkv, webm, mov and mp4 may hold audio alone)
    )
    duration: float | None  # seconds, as the container states it; None: not stated


def probe(path: str | os.PathLike) -> MediaProbe | None:
    """A local file's MediaProbe, or None when PyAV cannot open it (preparation then reports why)."""
    import av

    try:
        with av.open(str(path)) as container:
            has_video = any(
                not stream.disposition & av.stream.Disposition.attached_pic
                for stream in container.streams.video
            )
            duration = container.duration / av.time_base if container.duration is not None else None
            stream = (container.streams.audio or container.streams.video or [None])[0]
            if duration is None and stream is not None and stream.duration is not None:
                duration = float(stream.duration * stream.time_base)
            return MediaProbe(has_video, duration)
    except (av.FFmpegError, OSError, ValueError):
        return None


def media_kind(filename: str) -> str | None:
    """ "audio", "video" or None (not a media file), from the extension alone."""
    name = filename.lower()
    if name.endswith(AUDIO_EXTENSIONS):
        return "audio"
    if name.endswith(VIDEO_EXTENSIONS):
        return "video"
    return None


class MediaError(RuntimeError):
    """A file PyAV cannot open or decode, or without the stream asked for (one line, naming it)."""


@dataclass(frozen=True)
class DecodedAudio:
    """An audio track: ``samples`` planar float32 (C, N) at ``rate`` Hz, channels ``layout``."""

    samples: np.ndarray
    rate: int
    layout: str


def first_line(error: BaseException) -> str:
    """An error in one line: decord's carry a C++ backtrace, exporters' pages of context; the
    first line says what went wrong."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def error_line(error: BaseException) -> str:
    """FFmpeg's message without its errno and file name (the caller names the file)."""
    strerror = getattr(error, "strerror", None)
    return strerror.strip() if strerror else first_line(error)


def planar_samples(frame) -> np.ndarray:
    """One decoded av.AudioFrame -> float32 (C, n): planar as it is, interleaved split into
    channels, integer formats scaled to [-1, 1)."""
    array = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        if info.min == 0:  # u8: offset binary
            array = array.astype(np.float32) - (info.max + 1) / 2
            return array / ((info.max + 1) / 2)
        return array.astype(np.float32) / -float(info.min)
    return array.astype(np.float32, copy=False)


def read_audio(path: str | os.PathLike, span: tuple[float, float] | None = None) -> DecodedAudio:
    """The first audio track of a file: whole, or the samples of ``span`` (start, end seconds),
    cut where they stand in the whole track. For a span the decoder seeks to SEEK_MARGIN before
    its start and stops at its end, so clips cut from a long recording do not each decode all of
    it. MediaError when the file cannot be opened or decoded, or has no audio track or no samples."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path}: no audio track")
            stream = container.streams.audio[0]
            origin = stream.start_time or 0  # the pts of the track's first sample
            seek = span is not None and span[0] > SEEK_MARGIN and stream.time_base is not None
            if seek:
                container.seek(origin + int((span[0] - SEEK_MARGIN) / stream.time_base), stream=stream)
            pieces, first, rate, layout = [], 0, None, None
            for frame in container.decode(stream):
                if not pieces:
                    rate, layout = frame.sample_rate, frame.layout.name
                    if seek and frame.pts is None:  # nowhere to place it: decode the track from its start
                        return read_audio_from_start(path, span)
                    if seek:
                        first = round(float((frame.pts - origin) * stream.time_base) * rate)
                pieces.append(planar_samples(frame))
                if span is not None and first + sum(p.shape[1] for p in pieces) >= span[1] * rate:
                    break
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        raise MediaError(f"{path}: {error_line(error)}") from None
    if not pieces or sum(piece.shape[1] for piece in pieces) == 0:
        raise MediaError(f"{path}: no audio samples")
    samples = np.concatenate(pieces, axis=1)
    if span is not None:
        start, end = (round(seconds * rate) - first for seconds in span)
        samples = samples[:, max(start, 0) : max(end, 0)]
    return DecodedAudio(samples, rate, layout)


def read_audio_from_start(path: str | os.PathLike, span: tuple[float, float]) -> DecodedAudio:
    """``span`` of the track decoded from its start (a file whose frames carry no timestamps)."""
    whole = read_audio(path)
    start, end = (round(seconds * whole.rate) for seconds in span)
    return DecodedAudio(whole.samples[:, start:end], whole.rate, whole.layout)

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
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".oga", ".wma", ".aif", ".aiff")
VIDEO_EXTENSIONS = (".mp4", ".flv", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv")


def has_video_stream(path: str | os.PathLike) -> bool | None:
    """Whether a local file holds a video stream (a cover picture is none), read from its
    header; None when PyAV cannot open it (preparation then reports why). Containers such as
    mkv, webm, mov and mp4 hold audio alone as often as video."""
    import av

    try:
        with av.open(str(path)) as container:
            return any(
                not stream.disposition & av.stream.Disposition.attached_pic
                for stream in container.streams.video
            )
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


def read_audio(path: str | os.PathLike) -> DecodedAudio:
    """The first audio track of a file, whole. MediaError when the file cannot be opened or
    decoded, or has no audio track or no samples."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path}: no audio track")
            stream = container.streams.audio[0]
            pieces, rate, layout = [], None, None
            for frame in container.decode(stream):
                pieces.append(planar_samples(frame))
                rate, layout = rate or frame.sample_rate, layout or frame.layout.name
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        raise MediaError(f"{path}: {error_line(error)}") from None
    if not pieces or sum(piece.shape[1] for piece in pieces) == 0:
        raise MediaError(f"{path}: no audio samples")
    return DecodedAudio(np.concatenate(pieces, axis=1), rate, layout)

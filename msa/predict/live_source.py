"""A live source for ``msa predict MODEL --live SOURCE``, decoded on a thread of its own.

SOURCE is what a meeting tool or a capture gives (``parse_source``):

- ``-``: a stream on stdin (``ffmpeg ... -f matroska -`` or ``-f mpegts -``);
- a URL FFmpeg opens: ``rtsp://``, ``srt://``, ``udp://``, ``http(s)://`` (HLS) and the like;
- a capture device, ``FORMAT:DEVICE``: ``v4l2:/dev/video0``, ``alsa:default``, ``pulse:default``;
- a file that is still being written (``follow``): read as it grows.

``SourceReader`` opens it, decodes the tracks the model needs and puts on a queue, in decoding
order: the frames on screen at the live pass's frame grid (``GridFrame``: RGB only for those, a few
per second), the audio (``LiveAudio``), then ``StreamEnd``; or a ``SourceFailure`` (one line naming
SOURCE). Every item carries ``arrival``, the monotonic clock when its packet was read: the moment
its data was there, which the live pass measures latency from. The thread never waits on the
consumer (an unbounded queue, drained on every pass), so a slow model cannot stall the capture.

Times are seconds of stream time from the stream's start (the earliest stream start, as
msa.predict.media does for files).
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from msa.data.media import MediaError, error_line, planar_samples

STDIN = "-"
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "tcp", "http", "https")
DEVICE_FORMATS = ("v4l2", "alsa", "pulse", "avfoundation", "dshow", "x11grab", "gdigrab", "lavfi")
READ_SIZE = 1 << 16  # bytes per read from stdin or a followed file: what is there, up to this
FOLLOW_POLL = 0.05  # s between looks at a followed file that has no new bytes yet


@dataclass(frozen=True)
class Source:
    """A parsed SOURCE: ``kind`` is "stdin", "url", "device" or "file"; ``target`` what FFmpeg
    opens (the URL, the device name, the file's path); ``format`` a device's input format."""

    text: str
    kind: str
    target: str
    format: str | None = None


def parse_source(text: str, follow: bool) -> Source:
    """SOURCE -> a Source; ValueError (one line naming it) for what is none of the kinds."""
    if text == STDIN:
        return Source(text, "stdin", text)
    scheme, separator, rest = text.partition("://")
    if separator and scheme.lower() in URL_SCHEMES:
        return Source(text, "url", text)
    device_format, separator, device = text.partition(":")
    if separator and device_format in DEVICE_FORMATS and device:
        return Source(text, "device", device, device_format)
    if separator and not os.path.exists(text) and len(device_format) > 1:
        raise ValueError(
            f"--live {text}: unknown source (a URL scheme of {', '.join(URL_SCHEMES)}, a device "
            f"FORMAT:DEVICE with FORMAT one of {', '.join(DEVICE_FORMATS)}, '-' for stdin, or a file with --follow)"
        )
    if not os.path.isfile(text):
        raise ValueError(f"--live {text}: no such file")
    if not follow:
        raise ValueError(
            f"--live {text}: a file; give --follow to read one that is still being written "
            "(for a finished recording, leave out --live)"
        )
    return Source(text, "file", text)


@dataclass(frozen=True)
class SourceInfo:
    """What the opened stream holds (the tracks the reader decodes)."""

    has_video: bool
    has_audio: bool
    audio_rate: int | None
    audio_layout: str | None
    audio_channels: int
    width: int
    height: int

    def describe(self) -> str:
        parts = [f"video {self.width}x{self.height}" if self.has_video else "no video"]
        parts.append(f"audio {self.audio_rate} Hz {self.audio_layout}" if self.has_audio else "no audio")
        return ", ".join(parts)


@dataclass(frozen=True)
class GridFrame:
    """The frame on screen at grid points ``indices`` (time (j + 0.5) * step for each j), RGB
    uint8 (H, W, 3); ``time`` the stream time up to which the grid is now filled."""

    indices: tuple[int, ...]
    rgb: np.ndarray
    time: float
    arrival: float


@dataclass(frozen=True)
class LiveAudio:
    """Audio planar float32 (C, n) from sample ``offset`` at the track's rate."""

    offset: int
    samples: np.ndarray
    arrival: float


@dataclass(frozen=True)
class StreamEnd:
    """The source ended (end of file or of the pipe)."""

    arrival: float


@dataclass(frozen=True)
class SourceFailure:
    """The source could not be opened or read: one line naming it."""

    message: str
    arrival: float


class _Pipe:
    """stdin for FFmpeg: ``read`` returns what has arrived (up to n bytes) instead of waiting for
    n, so a packet is demuxed when its bytes are there, not when a buffer fills."""

    def __init__(self, fd: int, reader: SourceReader):
        self.fd, self.reader = fd, reader

    def read(self, size: int) -> bytes:
        data = os.read(self.fd, min(size, READ_SIZE))
        self.reader.last_data = time.monotonic()
        return data


class _FollowedFile:
    """A file that is still being written: at its current end, ``read`` waits for more bytes
    (looking every FOLLOW_POLL seconds) until ``stop`` is set."""

    def __init__(self, path: str, reader: SourceReader):
        self.handle = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by SourceReader)
        self.reader = reader

    def read(self, size: int) -> bytes:
        while True:
            data = self.handle.read(min(size, READ_SIZE))
            if data:
                self.reader.last_data = time.monotonic()
                return data
            if self.reader.stop.is_set():
                return b""
            self.reader.stop.wait(FOLLOW_POLL)

    def close(self) -> None:
        self.handle.close()


def first_grid_point(start: float, step: float) -> int:
    """The first grid point j whose time (j + 0.5) * step is at or after ``start``."""
    return max(0, math.ceil(start / step - 0.5))


def grid_range(start: float, stop: float, step: float) -> range:
    """The grid points j whose times (j + 0.5) * step lie in [start, stop)."""
    first = first_grid_point(start, step)
    return range(first, max(first, first_grid_point(stop, step)))


class SourceReader(threading.Thread):
    """Opens ``source`` and puts its items on ``items`` (see the module doc) until the stream
    ends, fails, or ``stop`` is set. ``step``: the frame grid's spacing in seconds; ``video`` /
    ``audio``: the tracks to decode; ``timeout``: seconds a network source may send nothing before
    FFmpeg gives up. ``info`` is set once the stream is open."""

    def __init__(self, source: Source, step: float, video: bool, audio: bool, timeout: float):
        super().__init__(name="msa-live-source", daemon=True)  # a blocked read must not hold the exit
        self.source = source
        self.step = step
        self.video, self.audio = video, audio
        self.timeout = timeout
        self.items: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.info: SourceInfo | None = None
        self.last_data = time.monotonic()  # when bytes (or a packet) last came from the source

    def run(self) -> None:
        try:
            self._read()
            self.items.put(StreamEnd(time.monotonic()))
        except MediaError as error:
            self.items.put(SourceFailure(str(error), time.monotonic()))
        except Exception as error:  # noqa: BLE001 (one line naming SOURCE, whatever FFmpeg raised)
            self.items.put(SourceFailure(f"{self.source.text}: {error_line(error)}", time.monotonic()))

    def _open(self):
        import av

        source, handle = self.source, None
        try:
            if source.kind == "stdin":
                return av.open(_Pipe(0, self), buffer_size=READ_SIZE), None
            if source.kind == "file":
                handle = _FollowedFile(source.target, self)
                return av.open(handle, buffer_size=READ_SIZE), handle
            if source.kind == "device":
                return av.open(source.target, format=source.format, timeout=self.timeout), None
            return av.open(source.target, timeout=(self.timeout, self.timeout)), None
        except (av.FFmpegError, OSError, ValueError) as error:
            if handle is not None:
                handle.close()
            raise MediaError(f"{source.text}: cannot be opened ({error_line(error)})") from None

    def _read(self) -> None:
        import av

        container, handle = self._open()
        try:
            video = container.streams.video[0] if self.video and container.streams.video else None
            audio = container.streams.audio[0] if self.audio and container.streams.audio else None
            if video is None and audio is None:
                wanted = " or ".join(
                    name for name, on in (("video", self.video), ("audio", self.audio)) if on
                )
                raise MediaError(f"{self.source.text}: no {wanted} track")
            self.info = SourceInfo(
                video is not None,
                audio is not None,
                audio.codec_context.sample_rate if audio is not None else None,
                audio.codec_context.layout.name if audio is not None else None,
                audio.codec_context.channels if audio is not None else 0,
                video.codec_context.width if video is not None else 0,
                video.codec_context.height if video is not None else 0,
            )
            starts = [
                float(s.start_time * s.time_base) for s in (video, audio) if s is not None and s.start_time
            ]
            origin = min(starts) if starts else None
            held, held_from, held_time, frame_step = (
                None,
                0.0,
                0.0,
                0.0,
            )  # the frame on screen, not yet placed
            for packet in container.demux(*(s for s in (video, audio) if s is not None)):
                if self.stop.is_set():
                    return
                arrival = self.last_data = time.monotonic()
                for frame in packet.decode():
                    if frame.pts is None:
                        continue
                    if origin is None:
                        origin = float(frame.pts * frame.time_base)
                    at = float(frame.pts * frame.time_base) - origin
                    if isinstance(frame, av.AudioFrame):
                        offset = round(at * frame.sample_rate)
                        self.items.put(LiveAudio(offset, planar_samples(frame), arrival))
                        continue
                    if held is None:  # the first frame stands for the grid points before it
                        held, held_from, held_time = frame, 0.0, at
                        continue
                    frame_step = at - held_time if at > held_time else frame_step
                    self._place(held, held_from, at, arrival)
                    held, held_from, held_time = frame, max(at, held_from), at
            if held is not None:  # the last frame stays on screen for one frame's time
                end = max(held_from, held_time + (frame_step or self.step))
                self._place(held, held_from, end, time.monotonic())
        except av.FFmpegError as error:
            raise MediaError(f"{self.source.text}: decoding failed ({error_line(error)})") from None
        finally:
            container.close()
            if handle is not None:
                handle.close()

    def _place(self, frame, shown_from: float, shown_until: float, arrival: float) -> None:
        """Put ``frame`` on the grid points it was on screen for: [shown_from, shown_until)."""
        indices = tuple(grid_range(shown_from, shown_until, self.step))
        if indices:
            self.items.put(GridFrame(indices, frame.to_ndarray(format="rgb24"), shown_until, arrival))

"""A recording, read once from start to end: what it holds (``probe``) and its decoded frames and
audio in time order (``stream``), never all of it in memory.

``probe`` reads the packets without decoding them (a few seconds for an hour) for every video
frame's presentation time, so spans can pick their frames before any is decoded. ``stream``
then decodes both tracks in one pass; only the frames asked for are converted to RGB (what
training's decord gives, bit for bit), and audio arrives as planar float32 at the source's rate
(msa.data.media), placed on the recording's clock by each frame's timestamp.

Times are seconds from the recording's start (the earliest stream start).
"""

from __future__ import annotations

import os
from collections.abc import Container, Iterator
from dataclasses import dataclass

import numpy as np

from msa.data.media import MediaError, error_line, planar_samples

__all__ = ["AudioChunk", "MediaError", "MediaInfo", "VideoFrame", "probe", "stream"]


@dataclass(frozen=True)
class MediaInfo:
    """What a recording holds: ``frame_times`` (F,) seconds in presentation order (None without
    a video track), the frame size, the audio track's rate and layout (None without one)."""

    path: str
    duration: float  # seconds: the later of the last frame's end and the audio's end
    frame_times: np.ndarray | None
    width: int = 0
    height: int = 0
    audio_rate: int | None = None
    audio_layout: str | None = None
    audio_channels: int = 0

    @property
    def has_video(self) -> bool:
        return self.frame_times is not None and len(self.frame_times) > 0

    @property
    def has_audio(self) -> bool:
        return self.audio_rate is not None

    def describe(self) -> str:
        parts = [f"{self.duration:.1f} s"]
        if self.has_video:
            fps = (len(self.frame_times) - 1) / max(self.frame_times[-1] - self.frame_times[0], 1e-9)
            parts.append(f"{len(self.frame_times)} frames of {self.width}x{self.height} (~{fps:.2f} fps)")
        else:
            parts.append("no video")
        parts.append(f"audio {self.audio_rate} Hz {self.audio_layout}" if self.has_audio else "no audio")
        return ", ".join(parts)


@dataclass(frozen=True)
class VideoFrame:
    """A decoded frame: its index in ``MediaInfo.frame_times``, its time, and its RGB pixels
    uint8 (H, W, 3) when they were asked for (else None)."""

    index: int
    time: float
    rgb: np.ndarray | None


@dataclass(frozen=True)
class AudioChunk:
    """Decoded audio: ``samples`` planar float32 (C, n) starting at sample ``offset`` of the
    recording's clock at the track's rate."""

    offset: int
    samples: np.ndarray


def _open(path: str):
    import av

    try:
        return av.open(path)
    except (av.FFmpegError, OSError, ValueError) as error:
        raise MediaError(f"{path}: not a readable media file ({error_line(error)})") from None


def _start(container) -> float:
    """The recording's origin: the earliest start of its video and audio streams, in seconds."""
    starts = [
        float(s.start_time * s.time_base)
        for s in (*container.streams.video[:1], *container.streams.audio[:1])
        if s.start_time is not None
    ]
    return min(starts, default=0.0)


def probe(path: str | os.PathLike) -> MediaInfo:
    """The recording's tracks and frame times (MediaError, one line naming the file, when it
    cannot be read or holds neither video nor audio)."""
    import av

    path = str(path)
    with _open(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise MediaError(f"{path}: no video or audio track")
        origin = _start(container)
        times, audio_end, frame_step = [], 0.0, 0.0
        try:
            for packet in container.demux(*(s for s in (video, audio) if s is not None)):
                if packet.pts is None or packet.size == 0:
                    continue
                start = float(packet.pts * packet.time_base) - origin
                length = float((packet.duration or 0) * packet.time_base)
                if packet.stream is video:
                    times.append(start)
                    frame_step = length or frame_step
                else:
                    audio_end = max(audio_end, start + length)
        except (av.FFmpegError, OSError) as error:
            raise MediaError(f"{path}: not a readable media file ({error_line(error)})") from None
        if video is not None and not times:
            raise MediaError(f"{path}: its video track has no timed frames")
        frame_times = np.sort(np.asarray(times)) if video is not None else None
        if frame_times is not None and not frame_step and len(frame_times) > 1:
            frame_step = float(np.median(np.diff(frame_times)))
        video_end = frame_times[-1] + frame_step if frame_times is not None else 0.0
        return MediaInfo(
            path,
            max(video_end, audio_end),
            frame_times,
            video.codec_context.width if video is not None else 0,
            video.codec_context.height if video is not None else 0,
            audio.codec_context.sample_rate if audio is not None else None,
            audio.codec_context.layout.name if audio is not None else None,
            audio.codec_context.channels if audio is not None else 0,
        )


def stream(
    info: MediaInfo, wanted: Container[int], video: bool = True, audio: bool = True
) -> Iterator[VideoFrame | AudioChunk]:
    """Decode the recording once: every video frame (``rgb`` only for indices in ``wanted``)
    and every audio chunk, in decoding order (each track in time order). MediaError on a
    decoding failure."""
    import av

    with _open(info.path) as container:
        streams = []
        if video and info.has_video:
            streams.append(container.streams.video[0])
            streams[-1].thread_type = "AUTO"  # frame threads: decoding is the sequential part
        if audio and info.has_audio:
            streams.append(container.streams.audio[0])
        origin = _start(container)
        next_index = 0
        try:
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if frame.pts is None:
                        continue
                    time = float(frame.pts * frame.time_base) - origin
                    if isinstance(frame, av.AudioFrame):
                        offset = round(time * frame.sample_rate)
                        yield AudioChunk(offset, planar_samples(frame))
                        continue
                    # The frame's index: its time in the probed list (a decoder may drop frames).
                    index = int(np.searchsorted(info.frame_times, time - 1e-6))
                    index = min(max(index, next_index), len(info.frame_times) - 1)
                    next_index = index + 1
                    rgb = frame.to_ndarray(format="rgb24") if index in wanted else None
                    yield VideoFrame(index, time, rgb)
        except av.FFmpegError as error:
            raise MediaError(f"{info.path}: decoding failed ({error_line(error)})") from None

"""Tiny synthetic media files for tests, written with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FPS = Fraction(30000, 1001)
AUDIO_RATE = 48_000  # Hz


def frame_value(index: int) -> int:
    """Grey level of frame ``index`` in clips from write_clip: frames are told apart by it."""
    return (16 + 12 * index) % 240


def write_clip(
    path: Path,
    num_frames: int = 12,
    width: int = 64,
    height: int = 48,
    audio_seconds: float | None = None,
    with_video: bool = True,
    lossless: bool = True,
) -> Path:
    """An mp4 whose frame i is uniformly grey at frame_value(i), with a 440 Hz stereo AAC tone
    lasting the clip (or ``audio_seconds``); ``audio_seconds=0`` writes no audio track."""
    path.parent.mkdir(parents=True, exist_ok=True)
    seconds = num_frames / FPS if audio_seconds is None else audio_seconds
    with av.open(str(path), "w") as container:
        video = None
        if with_video:
            video = container.add_stream("libx264", rate=FPS)
            video.width, video.height, video.pix_fmt = width, height, "yuv444p" if lossless else "yuv420p"
            video.options = {"qp": "0", "preset": "ultrafast"} if lossless else {"preset": "ultrafast"}
        audio = None
        if seconds:
            audio = container.add_stream("aac", rate=AUDIO_RATE)
            audio.layout = "stereo"
        if video is not None:
            for i in range(num_frames):
                pixels = np.full((height, width, 3), frame_value(i), dtype=np.uint8)
                for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    container.mux(packet)
            for packet in video.encode():
                container.mux(packet)
        if audio is not None:
            t = np.arange(round(float(seconds) * AUDIO_RATE)) / AUDIO_RATE
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            samples = np.stack([tone, tone])
            chunk = 1024
            for start in range(0, samples.shape[1], chunk):
                frame = av.AudioFrame.from_ndarray(
                    samples[:, start : start + chunk].copy(), format="fltp", layout="stereo"
                )
                frame.sample_rate = AUDIO_RATE
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


def ravdess_name(
    emotion: int,
    actor: int,
    modality: int = 1,
    channel: int = 1,
    intensity: int = 1,
    statement: int = 1,
    repetition: int = 1,
) -> str:
    return f"{modality:02d}-{channel:02d}-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.mp4"


OFF_CENTRE = (620, 340, 0.5)  # left, top (px) and scale of the frames pasted by write_off_centre_clip


def write_off_centre_clip(path, frames: np.ndarray) -> None:
    """An mp4 (H.264, no audio) of ``frames`` (1280x720) at half size, off-centre (OFF_CENTRE)
    on a grey 1280x720 canvas."""
    import cv2

    canvas = np.full((len(frames), 720, 1280, 3), 128, dtype=np.uint8)
    small = [cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA) for frame in frames]
    canvas[:, 340:700, 620:1260] = np.stack(small)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for pixels in canvas:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

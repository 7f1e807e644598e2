"""Audio files in the containers and sample formats users bring, written with PyAV for tests.

``write_audio(path)`` writes a sine tone (one frequency per channel) into the container the
extension names, with the codec such files usually carry (CODECS); ``codec`` and
``sample_format`` pick others (pcm_u8, pcm_s24le, pcm_f32le, flac at s32 ...). The tone is fed
to the encoder as planar float32 and PyAV converts it to the codec's sample format and frame
size, so every codec gets the same signal.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

AMPLITUDE = 0.3  # of full scale: rms about 0.21 per channel
BASE_FREQUENCY = 440.0  # Hz; channel c plays BASE_FREQUENCY * (1 + c / 4)

# extension -> (container format, default codec)
CODECS = {
    ".wav": ("wav", "pcm_s16le"),
    ".flac": ("flac", "flac"),
    ".mp3": ("mp3", "libmp3lame"),
    ".m4a": ("ipod", "aac"),
    ".aac": ("adts", "aac"),
    ".mp4": ("mp4", "aac"),
    ".ogg": ("ogg", "vorbis"),  # FFmpeg's own Vorbis encoder (stereo only): FLAC in Ogg otherwise
    ".oga": ("ogg", "flac"),
    ".opus": ("ogg", "libopus"),
    ".mkv": ("matroska", "libopus"),
    ".webm": ("webm", "libopus"),
    ".avi": ("avi", "pcm_s16le"),
    ".mov": ("mov", "pcm_s16le"),
}
LOSSY = ("libmp3lame", "aac", "vorbis", "libopus", "opus")
OPUS_RATES = (48_000, 24_000, 16_000, 12_000, 8_000)


def tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    """Planar float32 (channels, round(seconds * rate)): channel c a sine at BASE_FREQUENCY * (1 + c / 4)."""
    t = np.arange(round(seconds * rate)) / rate
    freqs = BASE_FREQUENCY * (1 + np.arange(channels)[:, None] / 4)
    return (AMPLITUDE * np.sin(2 * np.pi * freqs * t)).astype(np.float32)


def default_layout(channels: int) -> str:
    return {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(channels) or f"{channels}c"


def write_audio(
    path: str | Path,
    seconds: float = 0.5,
    rate: int = 48_000,
    channels: int = 1,
    codec: str | None = None,
    sample_format: str | None = None,
    layout: str | None = None,
) -> Path:
    """A ``seconds`` long tone at ``rate`` Hz with ``channels`` channels (``layout``: the FFmpeg
    layout name; default mono, stereo, 5.1, 7.1) in the container of ``path``'s extension, coded
    with ``codec`` (default: CODECS) at ``sample_format`` (an FFmpeg sample format such as
    "s16", "s32", "flt"; default: the codec's first). Returns the path."""
    path = Path(path)
    container_format, default_codec = CODECS[path.suffix.lower()]
    if codec is None:
        # No libvorbis in PyAV's FFmpeg, and its own (experimental) encoder codes stereo only.
        codec = "flac" if default_codec == "vorbis" and channels != 2 else default_codec
    layout = layout or default_layout(channels)
    if codec in ("libopus", "opus") and rate not in OPUS_RATES:
        raise ValueError(f"Opus codes {OPUS_RATES} Hz only, not {rate}")
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = tone(seconds, rate, channels)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        if sample_format is not None:
            stream.format = sample_format
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        chunk = 1024
        for start in range(0, samples.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, start : start + chunk]), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path

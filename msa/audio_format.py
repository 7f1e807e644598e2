"""The audio the speech encoders take, and how any decoded audio becomes it: one definition for
the data layer (preparing clips), the models (receptive fields in milliseconds) and prediction
(windows of a recording).

``to_model_audio`` is the one conversion: a span of decoded samples at the source's rate and
channels -> mono float32 at SAMPLE_RATE, mixed down and resampled in one libswresample pass
(PyAV) over the whole span, flushed at its end. A clip at preparation and the same samples cut
from a longer recording at prediction time so give the same waveform, sample for sample.
(decord's AudioReader, used before cache format 2, flushes its resampler after every decoded
frame: its output is shifted by about 1 ms and distorted at every AAC frame edge, and depends on
how the file was cut into frames.)
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000  # Hz, mono: what wav2vec 2.0, HuBERT and WavLM were trained on
# The shortest audio a clip may have: one frame of wav2vec 2.0's feature encoder (its first
# convolutions see 400 samples, 25 ms); shorter clips are left out when prepared.
MIN_AUDIO_SAMPLES = 400  # samples at SAMPLE_RATE
CHANNEL_LAYOUTS = {1: "mono", 2: "stereo"}  # more channels: the layout the decoder gives


def to_model_audio(
    samples: np.ndarray, rate: int, layout: str | None = None, target_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Planar float32 samples (C, N) at ``rate`` Hz -> mono float32 (S,) at ``target_rate``,
    S = round(N * target_rate / rate) give or take one: the channels mixed down as libswresample
    does by default ((L + R) / sqrt 2 for stereo), then resampled with its default filter.
    ``layout``: the channels' FFmpeg layout name ("5.1"), needed beyond two channels."""
    import av

    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise ValueError(f"audio must be (channels, samples) with samples > 0, got {samples.shape}")
    channels = samples.shape[0]
    # One or two channels are mono or stereo whatever the container says ("2 channels" from a
    # Matroska PCM track has no order, and libswresample would not mix it down as stereo).
    layout = CHANNEL_LAYOUTS.get(channels) or layout
    if layout is None:
        raise ValueError(f"audio with {channels} channels needs its channel layout")
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=target_rate)
    pieces = [out.to_ndarray() for out in resampler.resample(frame)]
    pieces += [out.to_ndarray() for out in resampler.resample(None)]  # flush the filter's tail
    return np.concatenate(pieces, axis=1).reshape(-1).astype(np.float32, copy=False)

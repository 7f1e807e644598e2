"""Hand-made features of a prepared clip: what the classical baseline classifies.

audio  MFCC statistics (AUDIO_DIMS = 60): per coefficient its mean, its standard deviation and
       the mean absolute frame-to-frame change over time, of N_MFCC coefficients.
video  grid statistics (VIDEO_DIMS = 195): each frame to luma, area-averaged to GRID x GRID
       cells; per cell the mean over time, the standard deviation over time and the mean
       absolute frame-to-frame change; then the mean of each colour channel over the clip.

Both are float64 and finite for any clip, silent or shorter than one analysis window.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

from msa.audio_format import SAMPLE_RATE
from msa.data.prepare import PreparedClip
from msa.experiment_dir import BASELINE_FEATURE_SETS

FEATURE_SETS = BASELINE_FEATURE_SETS  # the blocks summary.json and crossval.json hold

N_MFCC = 20  # coefficients
N_FFT = 400  # samples: a 25 ms window at SAMPLE_RATE (16 kHz)
HOP = 160  # samples: 10 ms between frames
N_MELS = 40  # mel bands the cepstrum is taken of
AUDIO_DIMS = 3 * N_MFCC  # mean, std, mean |delta| per coefficient

GRID = 8  # cells per side of the downsampled frame
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B
COLOUR_CHANNELS = 3
VIDEO_DIMS = 3 * GRID * GRID + COLOUR_CHANNELS  # mean, std, mean |delta| per cell; channel means


@cache
def _mfcc() -> torchaudio.transforms.MFCC:
    """One transform per process: its mel filterbank and DCT matrix are built once."""
    return torchaudio.transforms.MFCC(
        sample_rate=SAMPLE_RATE,
        n_mfcc=N_MFCC,
        melkwargs={"n_fft": N_FFT, "hop_length": HOP, "n_mels": N_MELS},
    )


def _time_statistics(series: np.ndarray) -> np.ndarray:
    """(L, F) float64 over L time steps -> (3 F,): mean, std, mean |step-to-step change| per
    column. One time step has no change: 0."""
    change = np.abs(np.diff(series, axis=0)).mean(axis=0) if len(series) > 1 else np.zeros(series.shape[1])
    return np.concatenate([series.mean(axis=0), series.std(axis=0), change])


def audio_features(audio: np.ndarray) -> np.ndarray:
    """float32 (S,) at SAMPLE_RATE -> float64 (AUDIO_DIMS,)."""
    waveform = torch.from_numpy(np.array(audio, dtype=np.float32))
    if len(waveform) < N_FFT:
        # The STFT's centre padding reflects half a window: shorter audio cannot be reflected,
        # so it is padded with silence (which MFCC's dB floor keeps finite) to one window.
        waveform = F.pad(waveform, (0, N_FFT - len(waveform)))
    with torch.no_grad():
        mfcc = _mfcc()(waveform)  # (N_MFCC, frames)
    return _time_statistics(mfcc.T.double().numpy())


def video_features(video: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, C) -> float64 (VIDEO_DIMS,). Pixel values are scaled to [0, 1]."""
    frames = torch.from_numpy(np.array(video, dtype=np.float64) / 255.0)  # (T, H, W, C)
    if frames.shape[0] == 0:
        return np.zeros(VIDEO_DIMS)
    luma = frames[..., :COLOUR_CHANNELS] @ torch.tensor(LUMA, dtype=torch.float64)  # (T, H, W)
    # Adaptive average pooling is area averaging: each cell is the mean of the pixels it covers.
    cells = F.adaptive_avg_pool2d(luma[:, None], GRID).reshape(len(luma), GRID * GRID)  # (T, G*G)
    channel_means = frames[..., :COLOUR_CHANNELS].mean(dim=(0, 1, 2))  # (C,)
    return np.concatenate([_time_statistics(cells.numpy()), channel_means.numpy()])


def clip_features(clips: Sequence[PreparedClip]) -> dict[str, np.ndarray]:
    """{"audio": float64 (N, AUDIO_DIMS), "video": float64 (N, VIDEO_DIMS)}, row i = clips[i];
    "audio" only when a clip is an audio file (it has no frames)."""
    with_video = all(clip.record.has_video for clip in clips)
    audio, video = np.zeros((len(clips), AUDIO_DIMS)), np.zeros((len(clips), VIDEO_DIMS))
    for row, clip in enumerate(clips):
        frames, waveform = clip.load(mmap=True)
        audio[row] = audio_features(waveform)
        if with_video:
            video[row] = video_features(frames)
    return {"audio": audio, "video": video} if with_video else {"audio": audio}


def available_sets(features: dict[str, np.ndarray]) -> tuple[str, ...]:
    """The FEATURE_SETS these features make: all of them, or "audio" alone without video."""
    return tuple(name for name in FEATURE_SETS if name == "audio" or "video" in features)


def feature_set(features: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The (N, D) matrix of one of FEATURE_SETS."""
    if name == "audiovisual":
        return np.concatenate([features["audio"], features["video"]], axis=1)
    if name not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {name!r}; choose from {', '.join(FEATURE_SETS)}")
    return features[name]

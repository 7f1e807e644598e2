"""The spectrogram family's front end: waveform -> log-mel frames, with no trainable weights.

Shapes: audio (B, S) float mono at SAMPLE_RATE, audio_mask (B, S) True = real sample (real
samples first); log-mel (B, T, M) with T frames every HOP_MS and M mel bands; frame mask (B, T).

The short-time Fourier transform is a strided convolution with a fixed windowed DFT basis, and
the mel filterbank a matrix product: the same numbers as ``torch.stft`` (no centring), in ops
every exporter carries with dynamic batch and length. A frame is real when its whole window
lies inside the clip's real samples (a clip shorter than one window still gets one frame, zero
padded), and padded samples are zeroed first, so padding never changes a real frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from msa.audio_format import SAMPLE_RATE

HOP_MS = 10  # ms between frames
HOP_SAMPLES = SAMPLE_RATE * HOP_MS // 1000
LOG_FLOOR = 1e-6  # added to mel power before the log: silence of float waveforms in [-1, 1]
FRAMES_PER_SECOND = 1000 // HOP_MS


def window_samples(window_ms: int) -> int:
    return SAMPLE_RATE * window_ms // 1000


class LogMel(nn.Module):
    """audio (B, S), audio_mask (B, S) -> log-mel (B, T, n_mels), frame mask (B, T)."""

    def __init__(self, n_mels: int, window_ms: int):
        super().__init__()
        self.n_mels = n_mels
        self.window = window_samples(window_ms)
        self.n_fft = 2 ** math.ceil(math.log2(self.window))  # the window, zero padded
        frequencies = self.n_fft // 2 + 1
        with torch.device("cpu"):  # real numbers even where the model is built on the meta device
            basis, mel = self._basis(frequencies), self._filterbank(frequencies, n_mels)
        # Rebuilt from the config (never stored in checkpoints): the branch's config is their source.
        self.register_buffer("basis", basis, persistent=False)  # (2 x frequencies, 1, window)
        self.register_buffer("mel", mel, persistent=False)  # (frequencies, n_mels)

    def _basis(self, frequencies: int) -> torch.Tensor:
        """The Hann-windowed DFT (cosines, then negated sines) as convolution kernels."""
        n = torch.arange(self.window, dtype=torch.float64)
        k = torch.arange(frequencies, dtype=torch.float64).unsqueeze(1)
        angle = 2 * math.pi * k * n / self.n_fft
        hann = torch.hann_window(self.window, periodic=True, dtype=torch.float64)
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * hann  # (2 x frequencies, window)
        return basis.float().unsqueeze(1)

    @staticmethod
    def _filterbank(frequencies: int, n_mels: int) -> torch.Tensor:
        return torchaudio.functional.melscale_fbanks(
            frequencies, f_min=0.0, f_max=SAMPLE_RATE / 2, n_mels=n_mels, sample_rate=SAMPLE_RATE
        )

    def signature(self) -> dict:
        """Everything that decides the output for given samples (the feature cache's key)."""
        return {
            "n_mels": self.n_mels,
            "window": self.window,
            "n_fft": self.n_fft,
            "hop": HOP_SAMPLES,
            "log_floor": LOG_FLOOR,
            "window_function": "hann",
            "mel_scale": "htk",
            "sample_rate": SAMPLE_RATE,
        }

    def frame_mask(self, lengths: torch.Tensor, frames: int) -> torch.Tensor:
        """Real-sample counts (B,) -> (B, frames): the frames whose window is all real samples."""
        real = torch.clamp(torch.div(lengths - self.window, HOP_SAMPLES, rounding_mode="floor") + 1, min=1)
        return torch.arange(frames, device=lengths.device) < real.unsqueeze(1)

    def forward(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # float32 under autocast too: a bfloat16 power spectrum would lose the quiet bands' log.
        with torch.autocast(audio.device.type, enabled=False):
            return self._log_mel(audio, audio_mask)

    def _log_mel(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = audio.float() * audio_mask.to(torch.float32)  # padding, whatever it held, becomes silence
        x = F.pad(x, (0, self.window))  # a clip shorter than a window still fills one frame
        spectrum = F.conv1d(x.unsqueeze(1), self.basis, stride=HOP_SAMPLES)  # (B, 2 x frequencies, T)
        real, imaginary = spectrum.chunk(2, dim=1)
        power = (real * real + imaginary * imaginary).transpose(1, 2)  # (B, T, frequencies)
        log_mel = torch.log(power @ self.mel + LOG_FLOOR)
        return log_mel, self.frame_mask(audio_mask.sum(dim=1), log_mel.shape[1])

"""Spectrogram audio branch: log-mel -> crop, gain -> normalisation -> SpecAugment -> encoder -> pooling.

A model trained from scratch, needing no downloaded weights. Shapes as msa.models.audio's branch:
audio (B, S) float mono 16 kHz, audio_mask (B, S) True = real sample (real samples first);
log-mel (B, T, M) at msa.models.front_end.HOP_MS; embedding (B, embed_dim).

The front end (msa.models.front_end.LogMel) is the branch's frozen prefix: msa.features caches
each clip's log-mel once, keyed by the front end's parameters, and trials train from it.
Everything that follows is computed in every step, so these augmentations work on cached
log-mels: the random crop, the gain (a constant added to the log-mel: a gain of g dB scales mel
power by 10^(g/10)), and SpecAugment's frequency and time masks (after normalisation, masked
values are the mean, 0). All are drawn from torch's generator (seeded per trial and epoch by
the training loop) and applied in training mode only, never in evaluation or prediction.
Speed perturbation and additive noise need the waveform (msa.data.transforms.WaveAugment).

Normalisation (``spec_norm``): ``utterance`` standardises each mel band over the clip's real
frames (a live caption can do the same on its window; loudness and channel are removed), and
``global`` standardises with batch statistics in training and running ones in evaluation
(loudness is kept, and the gain augmentation then matters).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from msa.models.config import SpectrogramConfig
from msa.models.front_end import FRAMES_PER_SECOND, LogMel
from msa.models.layers import FreezableBranch, MaskedBatchNorm, masked_moments
from msa.models.spectrogram_bodies import BODIES, make_pooling

VARIANCE_FLOOR = 1e-3  # utterance normalisation of a band that is (nearly) constant, e.g. digital silence
DB_TO_LOG_POWER = math.log(10.0) / 10.0  # a gain of g dB adds g x this to a natural-log power


def masked_standardise(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (B, T, M) standardised per row and column over the real frames of mask (B, T)."""
    real = mask.unsqueeze(-1).to(x.dtype)
    mean, variance, _ = masked_moments(x, real, dims=(1,))
    return (x - mean) * real / torch.sqrt(variance + VARIANCE_FLOOR)


class SpectrogramAugment(nn.Module):
    """The training-time augmentations of a cached log-mel; the identity in evaluation mode."""

    def __init__(self, config: SpectrogramConfig):
        super().__init__()
        self.config = config
        self.crop_frames = round(config.crop_seconds * FRAMES_PER_SECOND)

    def crop(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A random window of crop_frames from each clip longer than that; (B, T, M) -> (B, T', M)."""
        lengths = mask.sum(dim=1)
        if not self.crop_frames or lengths.max() <= self.crop_frames:
            return x, mask
        spare = (lengths - self.crop_frames).clamp(min=0)
        start = (torch.rand(len(x), device=x.device) * (spare + 1)).floor().long()
        steps = torch.arange(self.crop_frames, device=x.device)
        index = (start.unsqueeze(1) + steps).clamp(max=x.shape[1] - 1)
        cropped = x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        return cropped, steps < lengths.clamp(max=self.crop_frames).unsqueeze(1)

    def gain(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.gain_db:
            return x
        decibels = (torch.rand(len(x), 1, 1, device=x.device) * 2 - 1) * self.config.gain_db
        return x + decibels * DB_TO_LOG_POWER

    @staticmethod
    def _bands(count: int, width: int, size: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """``count`` random bands per row, each up to ``width`` wide within the row's ``size``
        (B,) -> (B, len(steps)) True inside a band."""
        masked = torch.zeros(len(size), len(steps), dtype=torch.bool, device=steps.device)
        for _ in range(count):
            widths = (torch.rand(len(size), device=steps.device) * (width + 1)).floor().long()
            widths = torch.minimum(widths, size)
            starts = (torch.rand(len(size), device=steps.device) * (size - widths + 1)).floor().long()
            masked |= (steps >= starts.unsqueeze(1)) & (steps < (starts + widths).unsqueeze(1))
        return masked

    def spec_augment(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Frequency and time masks on normalised x (B, T, M): masked values become 0, the mean."""
        config = self.config
        batch, frames, bands = x.shape
        if config.freq_masks:
            size = torch.full((batch,), bands, device=x.device)
            hidden = self._bands(
                config.freq_masks, config.freq_mask_bands, size, torch.arange(bands, device=x.device)
            )
            x = x.masked_fill(hidden.unsqueeze(1), 0.0)
        if config.time_masks:
            steps = torch.arange(frames, device=x.device)
            hidden = self._bands(config.time_masks, config.time_mask_frames, mask.sum(dim=1), steps)
            x = x.masked_fill(hidden.unsqueeze(-1), 0.0)
        return x


class SpectrogramBranch(FreezableBranch):
    """Waveform (B, S) + mask (B, S) -> embedding (B, embed_dim)."""

    input_keys = ("audio", "audio_mask")
    pretrained_modules = ()  # trained from scratch
    has_frozen_prefix = True  # the front end, which has no weights
    min_samples = 1  # a clip shorter than one window is zero padded to one frame

    def __init__(self, config: SpectrogramConfig):
        super().__init__()
        self.config = config
        self.front_end = LogMel(config.n_mels, config.window_ms)
        self.augment = SpectrogramAugment(config)
        # "global": batch statistics of each mel band in training, running ones in evaluation.
        self.band_norm = (
            MaskedBatchNorm(config.n_mels, affine=False) if config.spec_norm == "global" else None
        )
        self.body = BODIES[config.body](config)
        self.pool = make_pooling(config.pooling, self.body.out_dim)
        self.embed_dim = self.pool.out_dim
        self.freeze(["front_end"])

    def prefix_signature(self) -> dict:
        return {"branch": "logmel", "front_end": self.front_end.signature()}

    def frozen_prefix(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"log_mel": (B, T, M), "frame_mask": (B, T)}."""
        with torch.no_grad():
            log_mel, frame_mask = self.front_end(audio, audio_mask)
        return {"log_mel": log_mel, "frame_mask": frame_mask}

    def prefix_entries(self, prefix: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """One clip's log-mel, real frames only: (T_i, M)."""
        return [log_mel[mask] for log_mel, mask in zip(prefix["log_mel"], prefix["frame_mask"], strict=True)]

    def prefix_from_entries(self, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"log_mel": features, "frame_mask": mask}

    def normalise(self, log_mel: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, M) -> standardised, padded frames 0."""
        if self.band_norm is None:
            return masked_standardise(log_mel, frame_mask)
        normed = self.band_norm(log_mel.transpose(1, 2), frame_mask).transpose(1, 2)
        return normed.masked_fill(~frame_mask.unsqueeze(-1), 0.0)

    def forward_from_prefix(self, log_mel: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        if self.training:
            log_mel, frame_mask = self.augment.crop(log_mel, frame_mask)
            log_mel = self.augment.gain(log_mel)
        x = self.normalise(log_mel, frame_mask)
        if self.training:
            x = self.augment.spec_augment(x, frame_mask)
        states, state_mask = self.body(x.transpose(1, 2), frame_mask)
        return self.pool(states, state_mask)

    def forward(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        return self.forward_from_prefix(**self.frozen_prefix(audio, audio_mask))

"""Training-time sample transforms: random, so a clip looks different from epoch to epoch:
frames (crop and flip) and waveforms (speed and noise).

A frozen layer fed augmented frames gives a different output every epoch, so a branch whose
input is augmented is never served from the frozen-prefix feature cache (see msa.features).
Randomness comes from torch's generator, which the training loop seeds per epoch (and the
loader per worker), so augmented runs stay reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NOISE_SNR_SPAN = 15.0  # dB: each noisy clip's SNR is drawn from [noise_snr_db, noise_snr_db + this]
NOISE_PROBABILITY = 0.5  # the share of training clips that get noise
CROP_SCALE = (0.8, 1.0)  # side of the random square crop, as a fraction of the frame side
FLIP_PROBABILITY = 0.5


class FrameAugment:
    """One random crop (resized back to the frame size) and horizontal flip, the same for every
    frame of a sample's video (T, C, H, W) uint8; everything else passes through."""

    def __call__(self, sample: dict) -> dict:
        video = sample["video"]
        height, width = video.shape[-2:]
        scale = CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * torch.rand(()).item()
        crop_h, crop_w = max(1, round(height * scale)), max(1, round(width * scale))
        top = int(torch.randint(0, height - crop_h + 1, ()))
        left = int(torch.randint(0, width - crop_w + 1, ()))
        video = video[..., top : top + crop_h, left : left + crop_w]
        if (crop_h, crop_w) != (height, width):
            resized = F.interpolate(
                video.float(), size=(height, width), mode="bilinear", antialias=True, align_corners=False
            )
            video = resized.round().clamp(0, 255).to(torch.uint8)
        if torch.rand(()).item() < FLIP_PROBABILITY:
            video = video.flip(-1)
        return {**sample, "video": video.contiguous()}


class WaveAugment:
    """Speed perturbation and additive noise of a sample's waveform (S,) float32, for training
    clips of an audio model (everything else passes through).

    speed: each clip is resampled by a factor drawn from [1 - speed, 1 + speed] (tempo and pitch
    change together, as Kaldi's speed perturbation); noise_snr_db: NOISE_PROBABILITY of the
    clips get white noise at an SNR drawn from [noise_snr_db, noise_snr_db + NOISE_SNR_SPAN]
    (relative to the clip's mean power). 0 turns either off."""

    def __init__(self, speed: float = 0.0, noise_snr_db: float = 0.0):
        if not 0.0 <= speed < 1.0:
            raise ValueError(f"speed perturbation must be in [0, 1); got {speed}")
        self.speed = speed
        self.noise_snr_db = noise_snr_db

    def __call__(self, sample: dict) -> dict:
        audio = sample["audio"]
        if self.speed:
            factor = 1.0 + self.speed * (2 * torch.rand(()).item() - 1)
            length = max(1, round(len(audio) / factor))
            audio = F.interpolate(audio.view(1, 1, -1), size=length, mode="linear", align_corners=False).view(
                -1
            )
        if self.noise_snr_db and torch.rand(()).item() < NOISE_PROBABILITY:
            snr = self.noise_snr_db + NOISE_SNR_SPAN * torch.rand(()).item()
            power = audio.pow(2).mean().clamp(min=1e-10)
            audio = audio + torch.randn_like(audio) * torch.sqrt(power / 10 ** (snr / 10))
        return {**sample, "audio": audio.contiguous()}

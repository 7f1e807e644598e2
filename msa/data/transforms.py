"""Training-time sample transforms: random, so a clip looks different from epoch to epoch.

A frozen layer fed augmented frames gives a different output every epoch, so a branch whose
input is augmented is never served from the frozen-prefix feature cache (see msa.features).
Randomness comes from torch's generator, which the training loop seeds per epoch (and the
loader per worker), so augmented runs stay reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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

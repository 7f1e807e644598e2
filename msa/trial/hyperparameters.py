"""From a trial's flat config (what a search space produced) to the typed pieces that build
a model, an optimiser and the loaders. Strict: a key nobody consumes is an error, so a typo in
a space cannot be silently ignored."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from msa.models import model_config, override_keys, tiny_overrides
from msa.train import OptimConfig
from search_spaces import CHOICE_LABELS

OPTIM_KEYS = tuple(f.name for f in fields(OptimConfig) if f.name != "warmup_steps")


@dataclass(frozen=True)
class TrialHyperparameters:
    model: str
    model_overrides: dict[str, Any]
    optim: dict[str, Any]
    batch_size: int
    warmup_epochs: float
    video_augment: bool = False  # random crop + flip of training frames (turns the video feature cache off)
    # Waveform augmentation of training clips (msa.data.transforms.WaveAugment; either turns the
    # audio feature cache off): the speed perturbation's range and the noise's lowest SNR, 0 = off.
    speed_perturb: float = 0.0
    noise_snr_db: float = 0.0

    @property
    def audio_augment(self) -> bool:
        return bool(self.speed_perturb or self.noise_snr_db)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TrialHyperparameters:
        config = dict(config)
        model = config.pop("model")
        for key in CHOICE_LABELS:
            config.pop(key, None)
        batch_size = int(config.pop("batch_size", 8))
        warmup_epochs = float(config.pop("warmup_epochs", 0.0))
        video_augment = bool(config.pop("video_augment", False))
        speed_perturb = float(config.pop("speed_perturb", 0.0))
        noise_snr_db = float(config.pop("noise_snr_db", 0.0))
        optim = {key: config.pop(key) for key in OPTIM_KEYS if key in config}
        architecture = model_config(model)
        valid = set(override_keys(architecture))
        unknown = sorted(set(config) - valid)
        if unknown:
            raise ValueError(
                f"trial config keys {unknown} are neither model settings of {model} nor optimiser settings"
            )
        if video_augment and architecture.video is None:
            raise ValueError(f"video_augment is set but {model} has no video branch")
        if (speed_perturb or noise_snr_db) and architecture.audio is None:
            raise ValueError(f"speed_perturb / noise_snr_db are set but {model} has no audio branch")
        if optim.get("mixup_alpha") and architecture.video is not None:
            raise ValueError(
                f"mixup_alpha is set but {model} has a video branch (uint8 frames are not mixed)"
            )
        return cls(
            model, config, optim, batch_size, warmup_epochs, video_augment, speed_perturb, noise_snr_db
        )

    def overrides(self, smoke_test: bool) -> dict[str, Any]:
        """Model overrides; a smoke test shrinks the transformers and wav2vec 2.0 (tiny_overrides)
        but keeps what the space chose for everything else."""
        tiny = tiny_overrides(self.model) if smoke_test else {}
        return {**self.model_overrides, **tiny}

    def optim_config(self, steps_per_epoch: int) -> OptimConfig:
        warmup_steps = math.ceil(self.warmup_epochs * steps_per_epoch)
        if self.optim.get("schedule") == "inverse_sqrt":
            warmup_steps = max(1, warmup_steps)
        return OptimConfig.from_dict({**self.optim, "warmup_steps": warmup_steps})

"""The classifier: one or two branches, their pooled embeddings concatenated, then a head.

forward takes the batch's tensors by name (the keys in `input_keys`) and returns logits (B, K).
"""

import torch
from torch import nn

from msa.models.audio import AudioBranch
from msa.models.config import AudioConfig, ModelConfig, SpectrogramConfig, VideoConfig
from msa.models.spectrogram import SpectrogramBranch
from msa.models.video import VideoBranch

BRANCH_TYPES = {VideoConfig: VideoBranch, AudioConfig: AudioBranch, SpectrogramConfig: SpectrogramBranch}


def make_head(in_features: int, config: ModelConfig) -> nn.Module:
    if config.head == "linear":
        return nn.Linear(in_features, config.num_classes)
    return nn.Sequential(
        nn.Linear(in_features, config.head_hidden),
        nn.GELU(),
        nn.Dropout(config.head_dropout),
        nn.Linear(config.head_hidden, config.num_classes),
    )


class EmotionModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.branches = nn.ModuleDict(
            {
                name: BRANCH_TYPES[type(branch_config)](branch_config)
                for name, branch_config in config.branches.items()
            }
        )
        self.pool_dropout = nn.Dropout(config.pool_dropout)
        self.head = make_head(sum(branch.embed_dim for branch in self.branches.values()), config)

    @property
    def input_keys(self) -> tuple[str, ...]:
        """The batch keys forward consumes, e.g. ("video", "video_mask")."""
        return tuple(key for branch in self.branches.values() for key in branch.input_keys)

    @property
    def backbone_modules(self) -> tuple[str, ...]:
        """Names of the submodules that hold pretrainable backbone weights (for their own
        learning rate); everything else is a new layer."""
        return tuple(
            f"branches.{name}.{module}"
            for name, branch in self.branches.items()
            for module in branch.pretrained_modules
        )

    @property
    def frozen_modules(self) -> tuple[str, ...]:
        """Names of the submodules whose weights never change (their state comes from the
        pretrained weights or the seeded initialisation, and stays so)."""
        return tuple(
            f"branches.{name}.{module}"
            for name, branch in self.branches.items()
            for module in branch.frozen_modules
        )

    def frozen_prefix(self, **inputs: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """Each branch's frozen-prefix output, by branch name; feed it to `forward_from_prefix`."""
        return {
            name: branch.frozen_prefix(**{key: inputs[key] for key in branch.input_keys})
            for name, branch in self.branches.items()
        }

    def forward_from_prefix(self, prefix: dict[str, dict[str, torch.Tensor]]) -> torch.Tensor:
        embeddings = [branch.forward_from_prefix(**prefix[name]) for name, branch in self.branches.items()]
        return self.head(self.pool_dropout(torch.cat(embeddings, dim=-1)))

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """inputs: exactly `input_keys`, e.g. video (B, T, C, H, W), video_mask (B, T) -> logits (B, K)."""
        if set(inputs) != set(self.input_keys):
            raise ValueError(
                f"model expects inputs {', '.join(self.input_keys)}; got {', '.join(sorted(inputs))}"
            )
        return self.forward_from_prefix(self.frozen_prefix(**inputs))

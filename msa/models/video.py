"""Video branch: per-frame trunk -> (projection + positions + transformer) -> masked mean.

One family covers the seed's five iterations: the trunk is torchvision's ResNet-18 cut after
`trunk_children` children (or a small CNN trained from scratch), its first children frozen,
and the temporal model either a transformer encoder or nothing.

Shapes: video (B, T, C, H, W) uint8 RGB, video_mask (B, T) True = real frame; the embedding
is (B, E). The trunk only ever sees real frames, so padding can change neither the output nor
the statistics of a trainable BatchNorm.
"""

import math
from collections import OrderedDict

import torch
from torch import nn

from msa.models.config import VideoConfig
from msa.models.layers import FreezableBranch, masked_mean

PIXEL_MAX = 255.0  # uint8 frames
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, of pixels in [0, 1]; what torchvision's weights expect
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET18_CHILDREN = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")
RESNET18_WIDTHS = (64, 64, 64, 64, 64, 128, 256, 512, 512)  # output channels after each child
POSITION_BASE = 10_000.0  # wavelength scale of the sinusoidal encoding


class FrameNormalize(nn.Module):
    """uint8 frames (N, C, H, W) in 0..255 -> float scaled to [0, 1], then ImageNet mean/std."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return (frames.float() / PIXEL_MAX - self.mean) / self.std


def resnet18_trunk(num_children: int) -> nn.Sequential:
    """The first `num_children` children of ResNet-18 under their torchvision names, so a
    torchvision state dict loads into it key for key."""
    import torchvision  # here: a second to import, which processes without a video branch skip

    resnet = torchvision.models.resnet18(weights=None)
    return nn.Sequential(
        OrderedDict((name, getattr(resnet, name)) for name in RESNET18_CHILDREN[:num_children])
    )


def small_cnn(channels: tuple[int, ...]) -> nn.Sequential:
    """The seed's iteration-1 frame encoder: blocks of Conv3x3 -> BatchNorm -> ReLU -> MaxPool2."""
    blocks, in_channels = OrderedDict(), 3
    for i, out_channels in enumerate(channels, start=1):
        blocks[f"block{i}"] = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        in_channels = out_channels
    return nn.Sequential(blocks)


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """The fixed encoding of "Attention Is All You Need" -> (length, dim): sin on even
    dimensions, cos on odd ones, wavelengths geometric from 2*pi to POSITION_BASE*2*pi."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, device=device) * (-math.log(POSITION_BASE) / dim))
    encoding = torch.zeros(length, dim, device=device)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return encoding


class TemporalTransformer(nn.Module):
    """Frame features (B, T, F) -> projected to d_model, plus positions, encoded -> (B, T, d_model).
    Padded frames are excluded from attention by `src_key_padding_mask`."""

    def __init__(self, in_features: int, config: VideoConfig):
        super().__init__()
        self.proj = nn.Linear(in_features, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.num_heads, config.dim_feedforward, config.dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.proj(features)
        x = self.dropout(x + sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype))
        return self.encoder(x, src_key_padding_mask=~mask)


def _conv_layout(x: torch.Tensor) -> torch.Tensor:
    # On CUDA, convolutions are fastest in channels-last layout (the weights are converted by
    # msa.train.place_model); on CPU the default layout is kept.
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x


class VideoBranch(FreezableBranch):
    """Clip (B, T, C, H, W) uint8 + mask (B, T) -> embedding (B, embed_dim)."""

    input_keys = ("video", "video_mask")

    def __init__(self, config: VideoConfig):
        super().__init__()
        self.config = config
        self.normalize = FrameNormalize()
        if config.trunk == "resnet18":
            self.trunk = resnet18_trunk(config.trunk_children)
            trunk_features = RESNET18_WIDTHS[config.trunk_children - 1]
            self.num_frozen = max(0, len(self.trunk) - config.trainable_children)
            self.pretrained_modules = ("trunk",)
        else:
            self.trunk = small_cnn(config.cnn_channels)
            trunk_features = config.cnn_channels[-1]
            self.num_frozen = 0  # random weights: freezing them would make no sense
            self.pretrained_modules = ()
        # Trunk features are standardised per channel over the batch's real frames before anything
        # learns from them: frozen ResNet features of faces on one background differ little from
        # clip to clip next to their common offset, and a head on the raw features barely learns
        # in the few hundred steps a trial gets (on the sample: val 0.13 -> 0.44 after 6 epochs).
        self.feature_norm = nn.BatchNorm1d(trunk_features)
        if config.temporal == "transformer":
            self.temporal = TemporalTransformer(trunk_features, config)
            self.embed_dim = config.d_model
        else:
            self.temporal = None
            self.embed_dim = trunk_features
        self.freeze(f"trunk.{name}" for name in list(self.trunk._modules)[: self.num_frozen])

    @property
    def has_frozen_prefix(self) -> bool:
        return self.num_frozen > 0

    def prefix_signature(self) -> dict:
        """What, besides the frozen children's weights, decides `frozen_prefix`'s output."""
        return {
            "branch": "video",
            "trunk": self.config.trunk,
            "frozen": list(self.frozen_modules),
            "normalize": [PIXEL_MAX, IMAGENET_MEAN, IMAGENET_STD],
        }

    def frozen_prefix(self, video: torch.Tensor, video_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalisation and the frozen trunk children, without gradients, on real frames only.

        Returns {"frame_features": (B, T, *F) with zeros at padded frames, "video_mask": (B, T)},
        F being the per-frame output shape of the last frozen child ((C, H, W) when none is).
        """
        with torch.no_grad():
            x = _conv_layout(self.normalize(video[video_mask]))
            x = self.trunk[: self.num_frozen](x)
        frame_features = x.new_zeros((*video_mask.shape, *x.shape[1:])).index_put((video_mask,), x)
        return {"frame_features": frame_features, "video_mask": video_mask}

    def prefix_entries(self, prefix: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """One clip's share of a batch's prefix, real frames only: (T_i, *F) per clip."""
        return [
            features[mask]
            for features, mask in zip(prefix["frame_features"], prefix["video_mask"], strict=True)
        ]

    def prefix_from_entries(self, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Padded entries (B, T, *F) with their mask (B, T) -> `forward_from_prefix`'s arguments."""
        return {"frame_features": features, "video_mask": mask}

    def forward_from_prefix(self, frame_features: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """The trainable rest: frame_features (B, T, *F), video_mask (B, T) -> (B, embed_dim)."""
        x = self.trunk[self.num_frozen :](_conv_layout(frame_features[video_mask]))
        x = self.feature_norm(x.flatten(2).mean(-1))  # global average pool: a no-op after ResNet's avgpool
        return self.pool_frames(
            x.new_zeros((*video_mask.shape, x.shape[-1])).index_put((video_mask,), x), video_mask
        )

    # Evaluation in two steps. In eval mode every layer before the temporal model works on one
    # frame at a time (the BatchNorms use their running statistics), so frames can be embedded
    # alone, in any batch, and pooled later: prediction embeds each frame once however many
    # overlapping windows show it, and the export gets shapes that do not depend on the mask.

    def frame_vectors(self, frames: torch.Tensor) -> torch.Tensor:
        """Evaluation only: frames (N, C, H, W) uint8 -> standardised trunk features (N, F)."""
        if self.training:
            raise RuntimeError("frame_vectors embeds frames one by one: call it in eval mode")
        x = self.trunk(_conv_layout(self.normalize(frames)))
        return self.feature_norm(x.flatten(2).mean(-1))

    def pool_frames(self, features: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """Frame features (B, T, F) (``frame_vectors``), video_mask (B, T) -> (B, embed_dim): the
        temporal model over the real frames, then their mean.

        A clip without a real frame (never in training; a span without a face at prediction
        time) stands for T average frames: zero standardised features, the BatchNorm's running
        mean, so that a multimodal model's other branch decides."""
        features = features.masked_fill(~video_mask.unsqueeze(-1), 0.0)
        video_mask = video_mask | ~video_mask.any(dim=1, keepdim=True)
        if self.temporal is not None:
            features = self.temporal(features, video_mask)
        return masked_mean(features, video_mask)

    def forward(self, video: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        return self.forward_from_prefix(**self.frozen_prefix(video, video_mask))

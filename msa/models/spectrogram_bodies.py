"""The spectrogram family's encoders and pooling, all masked: padding never changes a clip's output.

Shapes: x (B, M, T) normalised log-mel (M mel bands, T frames), mask (B, T) True = real frame;
a body returns frame states (B, T', D) with their mask (B, T'); a pooling returns (B, E).

- ``ConvStack``: blocks of (Conv3x3 -> masked BatchNorm -> ReLU) x convs_per_block, then a 2x2
  max-pool (ceil mode), so every block halves time and frequency. Padded frames are zeroed after
  every activation: a real frame's convolution sees zeros beyond the clip's end whether the
  batch is padded or not, and a pooled window that straddles the end takes the max of
  non-negative activations and zeros, which is the real frame's.
- ``cnn``: the stack, then the mean over the remaining frequency bins.
- ``crnn``: the stack (frequency flattened into channels and projected), then a bidirectional
  GRU. The backward direction runs a forward GRU on each clip reversed within its own length,
  so it starts at the clip's last real frame, never at padding.
- ``transformer``: the stack as a subsampling stem, sinusoidal positions, then pre-LN
  transformer layers attending to real frames only.
- Pooling: ``meanmax`` (masked mean and max, concatenated), ``attention`` (a learned softmax
  weighting of frames) and ``stats`` (attentive statistics: the weighted mean and standard
  deviation, as ECAPA-TDNN).
"""

from __future__ import annotations

import torch
from torch import nn

from msa.models.config import SpectrogramConfig
from msa.models.layers import MaskedBatchNorm, masked_max, masked_mean
from msa.models.video import sinusoidal_positions

ATTENTION_HIDDEN = 64  # units of the frame-scoring layer of attention pooling
STD_FLOOR = 1e-5  # variance floor of attentive statistics pooling


def halve(mask: torch.Tensor) -> torch.Tensor:
    """The frame mask after a 2x max-pool in ceil mode: ceil(L / 2) real frames of ceil(T / 2)."""
    lengths = torch.div(mask.sum(dim=1) + 1, 2, rounding_mode="floor")
    frames = (mask.shape[1] + 1) // 2
    return torch.arange(frames, device=mask.device) < lengths.unsqueeze(1)


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, convs: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=False)
            for i in range(convs)
        )
        self.norms = nn.ModuleList(MaskedBatchNorm(out_channels) for _ in range(convs))
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, M, T), (B, T) -> (B, C', ceil(M/2), ceil(T/2)) and its mask."""
        keep = mask[:, None, None, :].to(x.dtype)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = torch.relu(norm(conv(x), mask)) * keep
        return self.pool(x), halve(mask)


class ConvStack(nn.Module):
    """(B, M, T), (B, T) -> (B, C, M', T'), (B, T') with M' = ceil(M / 2^blocks)."""

    def __init__(self, config: SpectrogramConfig):
        super().__init__()
        channels = (1, *config.conv_channels)
        self.blocks = nn.ModuleList(
            ConvBlock(c_in, c_out, config.convs_per_block) for c_in, c_out in zip(channels, channels[1:])
        )
        self.out_channels = channels[-1]
        self.out_bands = config.n_mels
        for _ in self.blocks:
            self.out_bands = (self.out_bands + 1) // 2

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.unsqueeze(1)
        for block in self.blocks:
            x, mask = block(x, mask)
        return x, mask


class CNNBody(nn.Module):
    def __init__(self, config: SpectrogramConfig):
        super().__init__()
        self.stack = ConvStack(config)
        self.out_dim = self.stack.out_channels

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = self.stack(x, mask)
        return x.mean(dim=2).transpose(1, 2), mask  # (B, T', C)


class SequenceStem(nn.Module):
    """The conv stack with frequency flattened into channels and projected: (B, T', width)."""

    def __init__(self, config: SpectrogramConfig, width: int):
        super().__init__()
        self.stack = ConvStack(config)
        self.proj = nn.Linear(self.stack.out_channels * self.stack.out_bands, width)
        self.dropout = nn.Dropout(config.body_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = self.stack(x, mask)
        frames = x.flatten(1, 2).transpose(1, 2)  # (B, T', C x M')
        return self.dropout(self.proj(frames)), mask


def reverse_within(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (B, T, D) with each row's real frames reversed in place; padding stays where it is.
    Its own inverse."""
    lengths = mask.sum(dim=1, keepdim=True)
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class CRNNBody(nn.Module):
    def __init__(self, config: SpectrogramConfig):
        super().__init__()
        self.stem = SequenceStem(config, config.rnn_hidden)
        self.forward_rnn = nn.GRU(config.rnn_hidden, config.rnn_hidden, batch_first=True)
        self.backward_rnn = nn.GRU(config.rnn_hidden, config.rnn_hidden, batch_first=True)
        self.dropout = nn.Dropout(config.body_dropout)
        self.out_dim = 2 * config.rnn_hidden

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames, mask = self.stem(x, mask)
        # float32 under autocast too: a recurrence accumulates bfloat16's rounding step after step.
        with torch.autocast(frames.device.type, enabled=False):
            frames = frames.float()
            forward_states, _ = self.forward_rnn(frames)  # causal: padding after a frame never reaches it
            backward_states, _ = self.backward_rnn(reverse_within(frames, mask))
        states = torch.cat([forward_states, reverse_within(backward_states, mask)], dim=-1)
        return self.dropout(states), mask


class TransformerBody(nn.Module):
    def __init__(self, config: SpectrogramConfig):
        super().__init__()
        self.stem = SequenceStem(config, config.encoder_dim)
        layer = nn.TransformerEncoderLayer(
            config.encoder_dim,
            config.encoder_heads,
            2 * config.encoder_dim,
            config.body_dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.encoder_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.encoder_dim)
        self.out_dim = config.encoder_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames, mask = self.stem(x, mask)
        positions = sinusoidal_positions(frames.shape[1], frames.shape[2], frames.device).to(frames.dtype)
        states = self.encoder(frames + positions, src_key_padding_mask=~mask)
        return self.norm(states), mask


BODIES = {"cnn": CNNBody, "crnn": CRNNBody, "transformer": TransformerBody}


class MeanMaxPooling(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = 2 * dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat([masked_mean(x, mask), masked_max(x, mask)], dim=-1)


class AttentionPooling(nn.Module):
    """A softmax over real frames of a learned score; with ``statistics`` the weighted standard
    deviation joins the weighted mean."""

    def __init__(self, dim: int, statistics: bool):
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(dim, ATTENTION_HIDDEN), nn.Tanh(), nn.Linear(ATTENTION_HIDDEN, 1)
        )
        self.statistics = statistics
        self.out_dim = 2 * dim if statistics else dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        scores = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)  # (B, T, 1), zero on padding
        mean = (weights * x).sum(dim=1)
        if not self.statistics:
            return mean
        variance = (weights * (x - mean.unsqueeze(1)) ** 2).sum(dim=1)
        return torch.cat([mean, torch.sqrt(variance.clamp(min=STD_FLOOR))], dim=-1)


def make_pooling(name: str, dim: int) -> nn.Module:
    if name == "meanmax":
        return MeanMaxPooling(dim)
    return AttentionPooling(dim, statistics=name == "stats")

"""Small pieces shared by the branches: masked pooling and normalisation, and freezing by submodule name."""

from collections.abc import Iterable

import torch
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` (B, L, D) over the positions where `mask` (B, L) is True -> (B, D).

    Padded positions are filled, not multiplied, so whatever they hold (even NaN) never leaks.
    """
    x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(x.dtype)
    return x.sum(dim=1) / count


def freeze(root: nn.Module, names: Iterable[str]) -> None:
    """Stop gradients for the named submodules of `root` (names as in `root.named_modules()`)."""
    for name in names:
        root.get_submodule(name).requires_grad_(False)


class FreezableBranch(nn.Module):
    """A branch whose frozen submodules stay in eval mode whatever mode the caller sets, so their
    BatchNorm statistics never change and their dropout is off (which also makes the frozen
    prefix's output deterministic and therefore cacheable)."""

    frozen_modules: tuple[str, ...] = ()

    def freeze(self, names: Iterable[str]) -> None:
        self.frozen_modules = tuple(names)
        freeze(self, self.frozen_modules)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen_modules:
            self.get_submodule(name).eval()
        return self


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of `x` (B, L, D) over the positions where `mask` (B, L) is True -> (B, D); every row
    needs one real position."""
    return x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)


def masked_moments(
    x: torch.Tensor, real: torch.Tensor, dims: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and (biased) variance of ``x`` over ``dims``, counting only the positions where
    ``real`` (broadcastable to x: 1 real, 0 padding) is 1 -> (mean, variance, count), each with
    ``dims`` kept as size 1. Padding, whatever it holds, never enters either."""
    count = real.expand_as(x).sum(dim=dims, keepdim=True).clamp(min=1)
    x = torch.where(real > 0, x, 0.0)  # filled, not multiplied: even NaN padding stays out
    mean = x.sum(dim=dims, keepdim=True) / count
    centred = (x - mean) * real
    return mean, (centred * centred).sum(dim=dims, keepdim=True) / count, count


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm over channels (dim 1) of x (B, C, ..., T) whose training statistics come from
    real time steps only (mask (B, T)), so padding shifts neither the batch's normalisation nor
    the running statistics. In evaluation it is the plain layer (running statistics, per
    position). Float32 output in training, as BatchNorm's under autocast. State dict keys are
    BatchNorm's."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (B, C, ...); got {input.dim()}-D")

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        x = x.float()  # statistics in float32 under autocast too, as BatchNorm's own
        real = mask.reshape((x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)).to(x.dtype)
        mean, variance, count = masked_moments(x, real, tuple(d for d in range(x.dim()) if d != 1))
        with torch.no_grad():
            self.running_mean.lerp_(mean.flatten(), self.momentum)
            unbiased = variance * count / torch.clamp(count - 1, min=1)
            self.running_var.lerp_(unbiased.flatten(), self.momentum)
            self.num_batches_tracked += 1
        out = (x - mean) / torch.sqrt(variance + self.eps)
        if self.affine:
            channel = (1, -1) + (1,) * (x.dim() - 2)
            out = out * self.weight.view(channel) + self.bias.view(channel)
        return out

"""Small pieces shared by the branches: masked pooling and freezing by submodule name."""

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

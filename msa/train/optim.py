"""Optimiser and learning-rate schedule, built from a frozen OptimConfig.

Parameters fall into up to four groups: pretrained backbone vs new layers (each with its own
learning rate), each split into decayed (weights of dimension >= 2) and not decayed (biases,
norm weights, other vectors). Only trainable parameters are handed to the optimiser.

Schedules are multipliers of each group's base learning rate, applied per optimiser step by
LambdaLR. With n = step + 1 the 1-based index of the step about to be taken, W = warmup_steps
and N = total_steps:
    constant      m(n) = min(1, n / W)                               (m = 1 when W = 0)
    inverse_sqrt  m(n) = min(n / W, sqrt(W / n))                     (needs W >= 1; peak 1 at n = W)
    cosine        m(n) = n / W for n <= W, then
                  r + (1 - r) * (1 + cos(pi * p)) / 2,  p = min(1, (n - W) / (N - W)),  r = min_lr_ratio
Counting from n = 1 means the first step already moves (a warm-up never starts at zero).
"""

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from msa.models.config import check_field_types

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("constant", "inverse_sqrt", "cosine")
ADAM_BETAS = (0.9, 0.999)


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adamw"  # "adamw" or "sgd" (with momentum)
    lr: float = 1e-3  # new layers
    backbone_lr: float = 1e-5  # pretrained backbone parameters
    weight_decay: float = 0.01  # decoupled for AdamW, L2 for SGD; never on biases or norms
    momentum: float = 0.9  # sgd only
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0  # mixup of each training batch with a shuffled copy, weight ~ Beta(a, a); 0: off
    class_weighting: bool = (
        False  # weight each class's loss by the inverse of its share of the training clips
    )
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    schedule: str = "constant"
    warmup_steps: int = 0  # optimiser steps
    min_lr_ratio: float = 0.0  # cosine only: the floor, as a fraction of the base learning rate

    def __post_init__(self):
        check_field_types(self)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        if self.schedule == "inverse_sqrt" and self.warmup_steps < 1:
            raise ValueError(
                "the inverse_sqrt schedule needs warmup_steps >= 1 (it peaks at the end of warm-up)"
            )
        if min(self.lr, self.backbone_lr) <= 0:
            raise ValueError("lr and backbone_lr must be > 0")
        if min(self.weight_decay, self.momentum, self.grad_clip, self.warmup_steps, self.mixup_alpha) < 0:
            raise ValueError("weight_decay, momentum, grad_clip, warmup_steps and mixup_alpha must be >= 0")
        if not 0.0 <= self.label_smoothing < 1.0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("label_smoothing must be in [0, 1) and min_lr_ratio in [0, 1]")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OptimConfig":
        """Strict: unknown keys raise ValueError listing the valid ones."""
        valid = cls.keys()
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown optimiser setting(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}"
            )
        return cls(**data)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Field names: what to pick from a flat hyperparameter dict (disjoint from the model's)."""
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parameter_groups(model: nn.Module, config: OptimConfig) -> list[dict[str, Any]]:
    """Trainable parameters split by (backbone or new) x (decayed or not); empty groups dropped.
    The backbone is whatever `model.backbone_modules` names (none for a model without it)."""
    backbone = tuple(f"{name}." for name in getattr(model, "backbone_modules", ()))
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((name.startswith(backbone), param.ndim >= 2), []).append(param)
    return [
        {
            "name": ("backbone" if is_backbone else "new") + ("" if decayed else "_no_decay"),
            "params": params,
            "lr": config.backbone_lr if is_backbone else config.lr,
            "weight_decay": config.weight_decay if decayed else 0.0,
        }
        for (is_backbone, decayed), params in sorted(groups.items())
    ]


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=ADAM_BETAS)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


def lr_multiplier(step: int, config: OptimConfig, total_steps: int) -> float:
    """The schedule's multiplier before optimiser step `step` (0-based); see the module doc."""
    n, warmup = step + 1, config.warmup_steps
    if config.schedule == "inverse_sqrt":
        return min(n / warmup, math.sqrt(warmup / n))
    if n <= warmup:
        return n / warmup
    if config.schedule == "constant":
        return 1.0
    progress = min(1.0, (n - warmup) / max(1, total_steps - warmup))
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule; call scheduler.step() after every optimizer.step()."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1; got {total_steps}")

    def multiplier(step: int) -> float:
        return lr_multiplier(step, config, total_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def apply_optim_config(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR, config: OptimConfig
) -> None:
    """Make ``config``'s learning rates and weight decay current after loading an optimiser and
    schedule state (which carry the values they were saved with): the moments and the step
    count stay, each group's base learning rate becomes its config value and its current one
    base x the schedule's multiplier at the step reached. On a plain resume this changes
    nothing; after a population-based exploit it applies the explored hyperparameters to the
    donor's state."""
    base_lrs = []
    for group in optimizer.param_groups:
        base = config.backbone_lr if group["name"].startswith("backbone") else config.lr
        group["weight_decay"] = 0.0 if group["name"].endswith("_no_decay") else config.weight_decay
        group["initial_lr"] = base
        base_lrs.append(base)
    scheduler.base_lrs = base_lrs
    for group, base, multiplier in zip(optimizer.param_groups, base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * multiplier(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]

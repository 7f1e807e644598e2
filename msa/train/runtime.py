"""Device, precision and seeding: what the loop needs from the machine it runs on."""

import contextlib
import os
import random

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (every device). `deterministic` also asks cuDNN and torch for
    deterministic kernels, which is slower and raises where an op has none."""
    os.environ["PYTHONHASHSEED"] = str(seed)  # for child processes; this one's hash seed is fixed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def place_model(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move the model to `device`; on CUDA also convert conv weights to channels-last layout."""
    device = torch.device(device)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


class Precision:
    """Mixed precision for a device: none on CPU (bf16 autocast there is slow and not wanted);
    on CUDA bf16 where supported, else fp16 with a GradScaler against gradient underflow.
    `dtype` overrides that choice (None: full precision; torch.bfloat16 or torch.float16:
    autocast to it, with a GradScaler for float16): tests/test_autocast.py runs the CUDA
    mixed-precision path on a CPU with Precision("cpu", torch.bfloat16).
    Keep one instance for a whole run: the scaler's state carries across epochs."""

    def __init__(self, device: torch.device | str, dtype: torch.dtype | None | str = "auto"):
        self.device = torch.device(device)
        if dtype != "auto":
            if dtype not in (None, torch.bfloat16, torch.float16):
                raise ValueError(
                    f"precision dtype must be None, torch.bfloat16 or torch.float16; got {dtype!r}"
                )
            self.dtype = dtype
        elif self.device.type != "cuda":
            self.dtype = None
        elif torch.cuda.is_bf16_supported():
            self.dtype = torch.bfloat16
        else:
            self.dtype = torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def batch_inputs(batch: dict, keys: tuple[str, ...], device: torch.device) -> dict[str, torch.Tensor]:
    """The model's inputs from a collated batch, moved to `device` (asynchronously from pinned memory)."""
    missing = [key for key in keys if key not in batch]
    if missing:
        raise KeyError(f"batch lacks model input(s) {', '.join(missing)}; it has {', '.join(batch)}")
    return {key: batch[key].to(device, non_blocking=True) for key in keys}

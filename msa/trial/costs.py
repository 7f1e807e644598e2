"""What running a trial's model costs: its latency on one window, its parameters and its size.

    costs = model_costs(run.model, params, device, latency=True)
    # {"params": 11_700_000, "size_mb": 46.9, "latency_ms": 38.2}

``latency_ms`` is how long the model takes on one window as ``msa predict`` runs it: a batch of
one, the default window (PREDICT_WINDOW of audio at the model's rate, and/or the
clip's ``num_frames`` frames at ``image_size`` pixels), evaluation mode, no gradients, on the
trial's own device, in float32. The first LATENCY_WARMUP_CALLS calls are not timed (lazy
initialisation, allocator and kernel caches make them slow); the value is the median of
LATENCY_REPEATS timed calls. It is the whole window embedded, as for the first window of a
recording or a subtitle cue (later sliding windows reuse the frames they share).

``params`` counts every parameter, trainable and frozen; ``size_mb`` is the size, in MB of
10^6 bytes, of the model's state_dict (parameters and buffers, float32) as ``torch.save``
writes it: the weights an export carries (an ONNX file holds the same tensors plus the graph).

Measured once per trial, after the model is built and before it trains: none of them depends on
the weights' values, and timing every epoch would cost as much again for the same number. No
Ray here: a test or a benchmark calls ``measure_latency_ms`` directly.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from msa.audio_format import SAMPLE_RATE
from msa.data.decode import PREDICT_WINDOW, PrepareParams

LATENCY_WARMUP_CALLS = 1  # untimed calls first
LATENCY_REPEATS = 5  # timed calls; their median is latency_ms
MS_PER_S = 1000.0
BYTES_PER_MB = 1_000_000
WINDOW_SEED = 0  # the example window's pixels and samples


def window_inputs(model: nn.Module, params: PrepareParams, device: torch.device) -> dict[str, torch.Tensor]:
    """One default window as ``model`` takes it (its ``input_keys``), a batch of one on ``device``."""
    generator = torch.Generator().manual_seed(WINDOW_SEED)
    inputs = {}
    if "video" in model.input_keys:
        size = params.image_size
        frames = torch.randint(0, 256, (1, params.num_frames, 3, size, size), generator=generator)
        inputs["video"] = frames.to(torch.uint8)
        inputs["video_mask"] = torch.ones(1, params.num_frames, dtype=torch.bool)
    if "audio" in model.input_keys:
        samples = round(PREDICT_WINDOW * SAMPLE_RATE)
        inputs["audio"] = 0.1 * torch.randn(1, samples, generator=generator)
        inputs["audio_mask"] = torch.ones(1, samples, dtype=torch.bool)
    return {key: value.to(device) for key, value in inputs.items()}


def measure_latency_ms(
    call: Callable[[], object],
    device: torch.device | str = "cpu",
    repeats: int = LATENCY_REPEATS,
    warmup: int = LATENCY_WARMUP_CALLS,
) -> float:
    """The median wall time of ``repeats`` calls of ``call``, in ms, after ``warmup`` untimed
    ones; on a GPU each call is waited for (its kernels run asynchronously)."""
    synchronize = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(warmup):
        call()
    synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        synchronize()
        times.append((time.perf_counter() - started) * MS_PER_S)
    return statistics.median(times)


def model_latency_ms(model: nn.Module, params: PrepareParams, device: torch.device) -> float:
    """latency_ms of ``model`` (see the module doc); its train/eval mode is left as it was."""
    inputs = window_inputs(model, params, device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return measure_latency_ms(lambda: model(**inputs), device)
    finally:
        model.train(was_training)


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


class _ByteCounter(io.RawIOBase):
    """A file that keeps nothing but the number of bytes written to it."""

    def __init__(self):
        super().__init__()
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.written += len(data)
        return len(data)


def state_dict_mb(model: nn.Module) -> float:
    """torch.save(model.state_dict())'s bytes, in MB: counted as written, not kept (a wav2vec
    2.0 model would hold 380 MB in memory for it)."""
    counter = _ByteCounter()
    torch.save(model.state_dict(), counter)
    return counter.written / BYTES_PER_MB


def model_costs(model: nn.Module, params: PrepareParams, device: torch.device, latency: bool) -> dict:
    """params and size_mb, and latency_ms when ``latency`` (it runs the model: seconds for a
    video model on a CPU, which a search not trading latency need not spend)."""
    costs = {"params": parameter_count(model), "size_mb": state_dict_mb(model)}
    if latency:
        costs["latency_ms"] = model_latency_ms(model, params, device)
    return costs

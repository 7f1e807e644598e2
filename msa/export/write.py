"""One export: the model's static form written in a format, checked against PyTorch, renamed
into place only when it passed."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import msa
from msa.atomic import atomic_path
from msa.audio_format import SAMPLE_RATE
from msa.data.decode import PrepareParams
from msa.export.formats import FORMATS, RUNNERS, WRITERS, require_onnx
from msa.export.metadata import METADATA_VERSION, OUTPUT
from msa.export.source import ModelSource
from msa.export.static import static_model
from msa.models import EmotionModel, SpectrogramConfig, config_to_dict

ATOL = 1e-4  # max |exported logits - PyTorch's logits|
CHECK_SECONDS = 2.0  # audio of the example clip; the checks use other lengths around it


class ParityError(RuntimeError):
    """The exported file's outputs differ from PyTorch's (one line with the max difference)."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    exporter: str
    max_abs_diff: float
    checks: list[str]  # the input shapes checked, e.g. "B=3 T=6 S=40000"
    seconds: float  # the export and its check


def model_summary(model: EmotionModel) -> str:
    """One line: the branches, the head, the classes."""
    parts = []
    config = model.config
    if config.video is not None:
        video = config.video
        trained = min(video.trainable_children, video.trunk_children)
        training = "frozen" if not trained else f"last {trained} trained"
        if trained == video.trunk_children:
            training = "all trained"
        trunk = (
            f"ResNet-18 ({video.trunk_children} children, {training})"
            if video.trunk == "resnet18"
            else f"CNN {list(video.cnn_channels)}"
        )
        temporal = (
            f"transformer (d_model {video.d_model}, {video.num_layers} layer{'s' * (video.num_layers > 1)})"
            if video.temporal == "transformer"
            else "mean"
        )
        parts.append(f"video: {trunk} + {temporal}")
    if isinstance(config.audio, SpectrogramConfig):
        audio = config.audio
        parts.append(
            f"audio: log-mel ({audio.n_mels} bands, {audio.window_ms} ms) + {audio.body} "
            f"{list(audio.conv_channels)} + {audio.pooling} pooling, from scratch"
        )
    elif config.audio is not None:
        branch = model.branches["audio"]
        hf = branch.backbone.config
        parts.append(
            f"audio: {hf.model_type} ({hf.num_hidden_layers} layers of {hf.hidden_size}, "
            f"{hf.num_hidden_layers - branch.num_frozen_layers} trained)"
        )
    return f"{'; '.join(parts)}; {config.head} head, {config.num_classes} classes"


def build_metadata(source: ModelSource, params: PrepareParams, params_from: str) -> dict:
    """What prediction needs besides the graph (docs/reference/files.md, Export metadata)."""
    model = source.model
    inputs = {}
    if "video" in model.input_keys:
        inputs["video"] = ["batch", "frames", 3, params.image_size, params.image_size, "uint8 RGB 0..255"]
        inputs["video_mask"] = ["batch", "frames", "bool, True = real frame"]
    if "audio" in model.input_keys:
        inputs["audio"] = ["batch", "samples", f"float32 mono {SAMPLE_RATE} Hz"]
        inputs["audio_mask"] = ["batch", "samples", "bool, True = real sample, real samples first"]
    labels = source.extra.get("labels")
    metadata = {
        "msa_export_version": METADATA_VERSION,
        "msa_version": msa.__version__,
        "torch_version": torch.__version__,
        "inputs": inputs,
        "input_names": list(model.input_keys),
        "output": OUTPUT,
        "output_shape": ["batch", model.config.num_classes],
        "labels": list(labels) if labels is not None else None,
        "model": source.name,
        "model_summary": model_summary(model),
        "model_config": config_to_dict(model.config),
        # num_frames, image_size, the crop's parameters, sample_rate (msa.data.decode.PrepareParams)
        **dataclasses.asdict(params),
        "preprocessing_from": params_from,
        "parity_atol": ATOL,
        **source.description(),
    }
    if "audio" in model.branches:
        metadata["min_audio_samples"] = model.branches["audio"].min_samples
    return metadata


def clip_batch(
    model: EmotionModel, frames: list[int], samples: list[int], image_size: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """The model's inputs for clips of these lengths, padded at the end with noise (so that
    only the masks can hide it)."""
    batch = {}
    if "video" in model.input_keys:
        mask = torch.arange(max(frames)) < torch.tensor(frames).unsqueeze(1)
        shape = (len(frames), max(frames), 3, image_size, image_size)
        batch["video"] = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        batch["video_mask"] = mask
    if "audio" in model.input_keys:
        mask = torch.arange(max(samples)) < torch.tensor(samples).unsqueeze(1)
        batch["audio"] = torch.rand(len(samples), max(samples), generator=generator) * 2 - 1
        batch["audio_mask"] = mask
    return {key: batch[key] for key in model.input_keys}


def sample_batches(
    model: EmotionModel, params: PrepareParams, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    """The exporter's example (2 clips, the second one padded), then two other batches (3
    clips, longer and shorter, padded; 1 clip): three batch sizes, frame counts and audio
    lengths. The example has at least 2 frames: torch.export would fix an axis of size 1."""
    generator = torch.Generator().manual_seed(seed)
    frames, seconds = params.num_frames, int(CHECK_SECONDS * SAMPLE_RATE)
    floor = model.branches["audio"].min_samples if "audio" in model.branches else 1
    lengths = [
        ([max(2, frames), max(1, frames // 2)], [seconds, seconds // 2]),
        ([frames + 2, 1, frames], [seconds * 5 // 4, seconds // 3, seconds]),
        ([max(1, frames - 1)], [seconds * 3 // 4]),
    ]
    return [
        clip_batch(model, video, [max(floor, n) for n in audio], params.image_size, generator)
        for video, audio in lengths
    ]


def describe(batch: dict[str, torch.Tensor]) -> str:
    mask = batch.get("video_mask", batch.get("audio_mask"))
    parts = [f"B={mask.shape[0]}"]
    if "video" in batch:
        parts.append(f"T={batch['video'].shape[1]}")
    if "audio" in batch:
        parts.append(f"S={batch['audio'].shape[1]}")
    return " ".join(parts)


def max_difference(model: EmotionModel, runner, batches: list[dict[str, torch.Tensor]]) -> float:
    """max |runner(batch) - model(**batch)| over the batches (inf when a shape differs)."""
    worst = 0.0
    for batch in batches:
        with torch.no_grad():
            expected = model(**batch)
        got = runner(batch)
        if got.shape != expected.shape:
            return float("inf")
        worst = max(worst, (got.float() - expected).abs().max().item())
    return worst


def export_model(
    source: ModelSource,
    format: str,
    out: str | os.PathLike,
    frames: int | None = None,
    image_size: int | None = None,
) -> ExportResult:
    """Write ``source``'s model to ``out`` in ``format`` and check it; see the package doc.

    Raises MissingExtra (onnx without its packages), NotExportable, ParityError (nothing is
    left at ``out`` or beside it), or the exporter's own error."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    if format == "onnx":
        require_onnx()
    started = time.perf_counter()
    model = source.model.eval()
    params, params_from = source.prepare_params(frames, image_size)
    static = static_model(model)
    batches = sample_batches(model, params)
    out = Path(out)
    with atomic_path(out) as tmp:  # checked before it is put in place
        exporter = WRITERS[format](static, batches[0], tmp, build_metadata(source, params, params_from))
        difference = max_difference(model, RUNNERS[format](tmp), batches)
        if not difference <= ATOL:  # NaN fails too
            raise ParityError(
                f"the exported {format} model differs from PyTorch's by up to {difference:.3g} "
                f"(allowed {ATOL:g}) on inputs {', '.join(describe(b) for b in batches)}; nothing written"
            )
    return ExportResult(
        out, format, exporter, difference, [describe(b) for b in batches], time.perf_counter() - started
    )

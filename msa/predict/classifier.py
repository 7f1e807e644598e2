"""The tuned model, behind one interface for ``msa predict``: class probabilities for
one span's inputs.

MODEL is an experiment directory (its best trial's best checkpoint; ``--trial`` for another), a
checkpoint file, or an ONNX file written by ``msa export``:

- ``TorchClassifier`` runs the checkpoint's EmotionModel in evaluation mode, in pieces: each
  frame's trunk features once (``VideoBranch.frame_vectors``, kept per frame and crop, so
  overlapping windows share them), then per span the temporal model, the audio branch and the
  head.
- ``OnnxClassifier`` runs the exported graph with ONNX Runtime on whole spans. It imports
  neither msa.models nor msa.train nor transformers, and of msa.export only its torch-free
  ``metadata``.

Without a face on screen a model with audio still predicts: its video branch gets no real frame
and so sees ``num_frames`` average frames (``VideoBranch.pool_frames``), and the prediction rests
on the audio. Files exported before that rule (metadata version 1) mark such spans "no face".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from msa.data.decode import PrepareParams
from msa.export.metadata import OUTPUT, read_onnx_metadata

ONNX_SUFFIX = ".onnx"
FRAME_CACHE_SIZE = 2048  # frame vectors kept (512 floats each for ResNet-18: 4 MB)
WARM_UP_KEY, WARM_UP_SEED = "warm-up", 0  # the made-up span's frame keys and pixels (Classifier.warm_up)


@dataclass(frozen=True)
class SpanInputs:
    """One span, as the model takes it: ``video`` uint8 (T, S, S, 3) cropped frames (None: no
    face, or no video) with one cache key per frame (``frame_keys``: frame index and crop box),
    ``audio`` float32 (N,) mono at the model's rate (None: no audio)."""

    video: np.ndarray | None = None
    frame_keys: tuple[Hashable, ...] = ()
    audio: np.ndarray | None = None


class Classifier(ABC):
    """``labels`` in the model's class order; ``params`` the preprocessing it was trained with;
    ``uses_video`` / ``uses_audio`` its inputs; ``min_audio_samples`` the shortest audio it takes;
    ``predicts_without_video``: whether a span without a face can be classified from its audio."""

    labels: tuple[str, ...]
    params: PrepareParams
    uses_video: bool
    uses_audio: bool
    min_audio_samples: int = 1
    predicts_without_video: bool = False
    description: str = ""

    @abstractmethod
    def probabilities(self, inputs: SpanInputs) -> tuple[np.ndarray, int]:
        """One span -> ((K,) class probabilities, how many of its frames the model embedded)."""

    def warm_up(self, seconds: float) -> None:
        """Classify one made-up span of ``seconds`` and forget it: a model's first calls pay for
        lazy initialisation and allocation, which live annotation would otherwise count in its
        first windows' latency."""
        generator = np.random.default_rng(WARM_UP_SEED)
        inputs = {}
        if self.uses_video:
            size, frames = self.params.image_size, self.params.num_frames
            inputs["video"] = generator.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
            inputs["frame_keys"] = tuple((WARM_UP_KEY, index) for index in range(frames))
        if self.uses_audio:
            samples = max(self.min_audio_samples, round(seconds * self.params.sample_rate))
            inputs["audio"] = (0.1 * generator.standard_normal(samples)).astype(np.float32)
        self.probabilities(SpanInputs(**inputs))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def _labels(labels, num_classes: int, where: str) -> tuple[str, ...]:
    if not labels or len(labels) != num_classes:
        raise ValueError(f"{where} does not record its {num_classes} class labels")
    return tuple(labels)


class TorchClassifier(Classifier):
    def __init__(self, model, labels, params: PrepareParams, description: str):
        import torch

        self.torch = torch
        self.model = model.eval()
        self.labels = _labels(labels, model.config.num_classes, description)
        self.params = params
        self.description = description
        self.uses_video = "video" in model.branches
        self.uses_audio = "audio" in model.branches
        self.predicts_without_video = self.uses_audio
        if self.uses_audio:
            self.min_audio_samples = model.branches["audio"].min_samples
        self.frame_cache: OrderedDict[Hashable, object] = OrderedDict()

    def _frame_features(self, branch, inputs: SpanInputs):
        """-> (1, T, F) and how many frames were embedded: each frame's vector from the cache,
        the missing ones embedded together."""
        torch = self.torch
        missing = [i for i, key in enumerate(inputs.frame_keys) if key not in self.frame_cache]
        if missing:
            frames = torch.from_numpy(np.ascontiguousarray(inputs.video[missing])).permute(0, 3, 1, 2)
            for i, vector in zip(missing, branch.frame_vectors(frames), strict=True):
                self.frame_cache[inputs.frame_keys[i]] = vector
        for key in inputs.frame_keys:
            self.frame_cache.move_to_end(key)
        while len(self.frame_cache) > FRAME_CACHE_SIZE:
            self.frame_cache.popitem(last=False)
        return torch.stack([self.frame_cache[key] for key in inputs.frame_keys]).unsqueeze(0), len(missing)

    def warm_up(self, seconds: float) -> None:
        super().warm_up(seconds)
        for key in [key for key in self.frame_cache if key[0] == WARM_UP_KEY]:
            del self.frame_cache[key]

    def probabilities(self, inputs: SpanInputs) -> tuple[np.ndarray, int]:
        torch = self.torch
        embeddings, embedded = [], 0
        with torch.no_grad():
            for name, branch in self.model.branches.items():
                if name == "video":
                    if inputs.video is not None:
                        features, embedded = self._frame_features(branch, inputs)
                        mask = torch.ones(features.shape[:2], dtype=torch.bool)
                    else:  # no face: no real frame
                        features = torch.zeros(1, self.params.num_frames, branch.feature_norm.num_features)
                        mask = torch.zeros(features.shape[:2], dtype=torch.bool)
                    embeddings.append(branch.pool_frames(features, mask))
                else:
                    audio = torch.from_numpy(inputs.audio).unsqueeze(0)
                    embeddings.append(branch(audio, torch.ones(audio.shape, dtype=torch.bool)))
            logits = self.model.head(self.model.pool_dropout(torch.cat(embeddings, dim=-1)))
        return _softmax(logits[0].double().numpy()), embedded


class OnnxClassifier(Classifier):
    def __init__(self, path: str | Path):
        import onnxruntime

        path = Path(path)
        metadata = read_onnx_metadata(path)
        if "input_names" not in metadata:
            raise ValueError(f"{path} holds no msa export metadata (write it with msa export)")
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = tuple(metadata["input_names"])
        self.input_names = names
        self.labels = _labels(metadata.get("labels"), metadata["output_shape"][-1], str(path))
        known = {f.name for f in fields(PrepareParams)}
        self.params = PrepareParams(**{key: value for key, value in metadata.items() if key in known})
        self.uses_video, self.uses_audio = "video" in names, "audio" in names
        # Version 2 on: a clip without a real frame is classified from its audio (msa.export.metadata).
        self.predicts_without_video = self.uses_audio and metadata.get("msa_export_version", 1) >= 2
        self.min_audio_samples = int(metadata.get("min_audio_samples", 1))
        self.description = f"{path} ({metadata.get('model') or 'exported model'}, ONNX Runtime)"

    def probabilities(self, inputs: SpanInputs) -> tuple[np.ndarray, int]:
        feed = {}
        if self.uses_video and inputs.video is not None:
            video = np.ascontiguousarray(inputs.video.transpose(0, 3, 1, 2))[None]
            feed["video"], feed["video_mask"] = video, np.ones(video.shape[:2], dtype=bool)
        elif self.uses_video:  # no face: frames that are no real frame (VideoBranch.pool_frames)
            size = self.params.image_size
            feed["video"] = np.zeros((1, self.params.num_frames, 3, size, size), dtype=np.uint8)
            feed["video_mask"] = np.zeros((1, self.params.num_frames), dtype=bool)
        if self.uses_audio:
            audio = inputs.audio[None].astype(np.float32)
            feed["audio"], feed["audio_mask"] = audio, np.ones(audio.shape, dtype=bool)
        (logits,) = self.session.run([OUTPUT], {name: feed[name] for name in self.input_names})
        return _softmax(logits[0].astype(np.float64)), len(inputs.frame_keys)


def load_classifier(location: str, trial: str | None = None) -> Classifier:
    """MODEL -> a Classifier. Raises ValueError, FileNotFoundError or the loaders' own errors
    (msa.export.source.SourceError, msa.train.CheckpointError), one line each."""
    if "://" not in location and not Path(location).exists():
        raise FileNotFoundError(
            f"{location} does not exist (MODEL is an experiment directory, a checkpoint file or an ONNX file)"
        )
    if location.endswith(ONNX_SUFFIX):
        if trial:
            raise ValueError(f"--trial needs an experiment directory; {location} is an ONNX file")
        return OnnxClassifier(location)
    from msa.export.source import load_source  # torch and the models: only for a checkpoint

    source = load_source(location, trial)
    params, _ = source.prepare_params()
    where = f"{source.location}" + (f" (trial {source.trial}, {source.checkpoint})" if source.trial else "")
    return TorchClassifier(source.model, source.extra.get("labels"), params, where)

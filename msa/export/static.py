"""The model's evaluation forward without data-dependent shapes, for the exporters.

EmotionModel.forward runs the video trunk on real frames only (``video[video_mask]``), the
speech encoder's conv feature encoder one clip at a time on its real samples (a Python loop over
``lengths.tolist()``) and standardises states by boolean indexing: right for training (padding
never reaches a BatchNorm's batch statistics), but shapes that depend on the masks' values, which
neither torch.export (the ONNX dynamo exporter) nor tracing can carry to other batch sizes and
lengths. In evaluation mode every BatchNorm uses its running statistics, so the same result comes
from running every frame and every sample and masking afterwards:

- video: the whole trunk on all B x T frames, the standardised features of padded frames set to
  zero (what ``index_put`` into zeros gives), then the branch's own temporal model and masked mean;
- spectrogram audio: the branch's own forward, which masks instead of indexing;
- speech-encoder audio: each clip's waveform normalisation as masked mean and variance, the conv feature encoder
  on the padded batch, with the one layer that normalises over time (the base models' GroupNorm,
  one group per channel, in the first conv layer) taking its statistics over each clip's real
  output positions only. A conv frame whose receptive field lies inside a clip's real samples is
  then exactly what the per-clip run gives, and the frames after a clip's last one are padding,
  masked as the branch masks them (zeroed before the positional convolution, never attended to,
  left out of the pooled mean). The layers are the branch's own (``_embed``, ``_run_layers``,
  ``frames_from_prefix``).

The weights are the model's own modules, not copies. This form is checked against
EmotionModel.forward on every export (msa.export.check), so a change to the model that it does not
follow fails the export instead of writing a wrong file. What it drops are the forward's input
checks: the audio mask must mark a prefix of real samples, and each clip needs at least
``min_audio_samples`` of them (the exported file's metadata says so). A clip without a real frame
is classified as the model classifies it (average frames, VideoBranch.pool_frames).
"""

from __future__ import annotations

import torch
from torch import nn

from msa.models import EmotionModel
from msa.models.audio import NORM_EPS, AudioBranch
from msa.models.layers import masked_mean, masked_moments
from msa.models.spectrogram import SpectrogramBranch
from msa.models.video import VideoBranch


class NotExportable(ValueError):
    """A model this form cannot reproduce (an encoder layout it does not know)."""


def video_embedding(branch: VideoBranch, video: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
    """video (B, T, C, H, W) uint8, video_mask (B, T) -> (B, embed_dim), as VideoBranch.forward in eval mode."""
    batch, frames = video_mask.shape
    features = branch.frame_vectors(video.flatten(0, 1))  # every frame, padded ones too
    return branch.pool_frames(features.unflatten(0, (batch, frames)), video_mask)


def normalized_waveforms(audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
    """msa.models.audio.normalize_waveform per clip over its real samples; padding becomes 0."""
    real = audio_mask.to(torch.float32)
    mean, variance, _ = masked_moments(audio.float(), real, dims=(1,))
    return (audio.float() - mean) * real / torch.sqrt(variance + NORM_EPS)


def _masked_group_norm(norm: nn.GroupNorm, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """GroupNorm with one group per channel over the positions where ``mask`` (B, L) is True, as
    the layer gives on each clip's real positions alone; x (B, C, L)."""
    mean, variance, _ = masked_moments(x, mask.unsqueeze(1).to(x.dtype), dims=(2,))
    normed = (x - mean) / torch.sqrt(variance + norm.eps)
    return normed * norm.weight.view(1, -1, 1) + norm.bias.view(1, -1, 1)


def check_audio_branch(branch: AudioBranch) -> None:
    """Raise NotExportable unless every conv layer is one this form reproduces."""
    for index, layer in enumerate(branch.backbone.feature_extractor.conv_layers):
        norm = getattr(layer, "layer_norm", None)
        if not all(hasattr(layer, name) for name in ("conv", "activation")):
            raise NotExportable(f"conv layer {index} of the speech encoder has no conv / activation")
        if isinstance(norm, nn.GroupNorm) and not (
            norm.num_groups == norm.num_channels and norm.affine and index == 0
        ):
            raise NotExportable(
                f"conv layer {index} of the speech encoder has a GroupNorm this export cannot mask"
            )


def conv_features(
    branch: AudioBranch, audio: torch.Tensor, audio_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S), (B, S) -> conv features (B, F, C) and frame mask (B, F) with F the padded
    length's frames: AudioBranch._conv_features on the whole batch at once."""
    lengths = audio_mask.sum(dim=1)
    x = normalized_waveforms(audio, audio_mask).unsqueeze(1)  # (B, 1, S)
    for layer in branch.backbone.feature_extractor.conv_layers:
        x = layer.conv(x)
        lengths = (
            torch.div(lengths - layer.conv.kernel_size[0], layer.conv.stride[0], rounding_mode="floor") + 1
        )
        if isinstance(getattr(layer, "layer_norm", None), nn.GroupNorm):
            positions = torch.arange(x.shape[-1], device=x.device)
            x = _masked_group_norm(layer.layer_norm, x, positions < lengths.unsqueeze(1))
        elif getattr(layer, "layer_norm", None) is not None:  # LayerNorm over channels, per position
            x = layer.layer_norm(x.transpose(-2, -1)).transpose(-2, -1)
        x = layer.activation(x)
    frame_mask = torch.arange(x.shape[-1], device=x.device) < lengths.unsqueeze(1)
    return x.transpose(1, 2), frame_mask


def audio_embedding(branch: AudioBranch, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
    """audio (B, S) float, audio_mask (B, S) -> (B, embed_dim), as AudioBranch.forward in eval mode."""
    features, frame_mask = conv_features(branch, audio, audio_mask)
    if not branch.num_frozen_layers:
        states = branch.frames_from_prefix(frame_mask, conv_features=features)
    else:  # AudioBranch.frozen_prefix's tail, then the trainable rest
        hidden = [branch._embed(features, frame_mask)]
        hidden += branch._run_layers(hidden[0], frame_mask, branch.layers[: branch.num_frozen_layers])
        kept = hidden if branch.layer_weights is not None else hidden[-1:]
        states = branch.frames_from_prefix(frame_mask, hidden_states=torch.stack(kept, dim=1))
    normed = branch.frame_norm(states.flatten(0, 1)).unflatten(0, states.shape[:2])
    return masked_mean(normed, frame_mask)


def spectrogram_embedding(
    branch: SpectrogramBranch, audio: torch.Tensor, audio_mask: torch.Tensor
) -> torch.Tensor:
    """The branch's own forward: written with masks throughout, it has no data-dependent shape."""
    return branch(audio, audio_mask)


EMBEDDINGS = {
    VideoBranch: video_embedding,
    AudioBranch: audio_embedding,
    SpectrogramBranch: spectrogram_embedding,
}


class StaticModel(nn.Module):
    """EmotionModel's evaluation forward -> logits (B, K); the branches' modules are the
    model's own. Build it with ``static_model``, whose forward takes the model's inputs by name
    in ``input_keys``' order (the names torch.export and tracing give the graph's inputs)."""

    def __init__(self, model: EmotionModel):
        super().__init__()
        for branch in model.branches.values():
            if type(branch) not in EMBEDDINGS:
                raise NotExportable(f"no export form for the {type(branch).__name__}")
            if isinstance(branch, AudioBranch):
                check_audio_branch(branch)
        self.model = model.eval()
        self.input_keys = model.input_keys

    def logits(self, **named: torch.Tensor) -> torch.Tensor:
        embeddings = [
            EMBEDDINGS[type(branch)](branch, *(named[key] for key in branch.input_keys))
            for branch in self.model.branches.values()
        ]
        return self.model.head(self.model.pool_dropout(torch.cat(embeddings, dim=-1)))


class StaticVideoModel(StaticModel):
    def forward(self, video: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        return self.logits(video=video, video_mask=video_mask)


class StaticAudioModel(StaticModel):
    def forward(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        return self.logits(audio=audio, audio_mask=audio_mask)


class StaticMultimodalModel(StaticModel):
    def forward(
        self, video: torch.Tensor, video_mask: torch.Tensor, audio: torch.Tensor, audio_mask: torch.Tensor
    ) -> torch.Tensor:
        return self.logits(video=video, video_mask=video_mask, audio=audio, audio_mask=audio_mask)


STATIC_MODELS = {
    cls.forward.__code__.co_varnames[1 : cls.forward.__code__.co_argcount]: cls
    for cls in (StaticVideoModel, StaticAudioModel, StaticMultimodalModel)
}


def static_model(model: EmotionModel) -> StaticModel:
    """The static-shape form of ``model`` (see the module doc); NotExportable if it has none."""
    if model.input_keys not in STATIC_MODELS:
        raise NotExportable(f"no export form for a model with inputs {', '.join(model.input_keys)}")
    return STATIC_MODELS[model.input_keys](model).eval()

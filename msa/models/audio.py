"""Audio branch: a speech encoder (wav2vec 2.0, HuBERT or WavLM) -> frame norm -> masked mean over frames.

Shapes: audio (B, S) float mono 16 kHz waveform, audio_mask (B, S) True = real sample (real
samples first, as the collate pads at the end); frames (B, F) at 50 Hz; embedding (B, D).

The encoder is any transformers model msa.models.speech_encoders supports, post-LN (base
models) or pre-LN with one final LayerNorm (do_stable_layer_norm: wav2vec2-large-lv60, XLS-R,
HuBERT-large, WavLM-large), built from `AudioConfig.audio_arch`.

Padding never changes the output. A "group"-norm conv feature encoder (the base models')
GroupNorm-normalises each channel over the whole time axis, so padded samples would shift
every frame's features (HF's docs say not to pass an attention mask to such models for that
reason, which leaves the transformer attending to padding instead). Here the frozen conv
feature encoder runs per clip on its real samples only, padded frames are zeroed before the
positional convolution (as HF's encoders do), and the transformer layers attend to real frames
only; WavLM's relative position bias depends on frame distances alone.

The branch drives the encoder's layers itself rather than calling the model's forward, so its
frozen prefix can be computed (and later cached) on its own; HF's SpecAugment and LayerDrop
are therefore not applied (they are turned off in the HF config to say so). Frozen modules
stay in eval mode and get no gradients (msa.models.layers.FreezableBranch).
"""

from typing import TYPE_CHECKING

import torch
from torch import nn

from msa.audio_format import SAMPLE_RATE
from msa.models.config import ALL_LAYERS, AudioConfig
from msa.models.layers import FreezableBranch, masked_mean
from msa.models.speech_encoders import (
    arch_from_config,
    build_encoder,
    encoder_config,
    layer_inputs,
    project_features,
    run_layer,
)

if TYPE_CHECKING:
    from transformers import PretrainedConfig  # imported on use: see msa.models.speech_encoders

__all__ = ["AudioBranch", "arch_from_config", "encoder_config", "normalize_waveform"]

NORM_EPS = 1e-7  # variance floor of Wav2Vec2FeatureExtractor's do_normalize


def normalize_waveform(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over one clip's real samples (S,), as Wav2Vec2FeatureExtractor."""
    x = x.float()
    return (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + NORM_EPS)


class AudioBranch(FreezableBranch):
    """Waveform (B, S) + mask (B, S) -> embedding (B, embed_dim)."""

    input_keys = ("audio", "audio_mask")
    pretrained_modules = ("backbone",)
    has_frozen_prefix = True  # the conv feature encoder always is

    def __init__(self, config: AudioConfig):
        super().__init__()
        self.config = config
        self.backbone = build_encoder(config.audio_arch)
        hf = self.backbone.config
        depth = hf.num_hidden_layers
        self.embed_dim = hf.hidden_size
        # Pre-LN layers; the encoder's layer_norm follows the last layer instead of the embedding.
        self.stable_layer_norm = hf.do_stable_layer_norm
        trainable = depth if config.trainable_layers == ALL_LAYERS else config.trainable_layers
        self.num_frozen_layers = max(0, depth - trainable)
        self.min_samples = self._receptive_field(hf)
        # One logit per hidden state: the embedding output and each layer's output.
        self.layer_weights = nn.Parameter(torch.zeros(depth + 1)) if config.layer_weighting else None
        # Frame states are standardised per channel over the batch's real frames before they are
        # pooled, as the video branch does with its trunk's features (and as linear probes of
        # frozen encoders do, e.g. MAE's BatchNorm before its probe): a frozen encoder's states
        # differ little from clip to clip next to their common offset, and a linear head on
        # their mean barely learns in a trial's few hundred steps (docs/explanation/evaluation.md).
        self.frame_norm = nn.BatchNorm1d(self.embed_dim)
        self.freeze(self._frozen_names(depth))

    def _frozen_names(self, depth: int) -> list[str]:
        """The frozen submodules in the order the data flows through them (the last one is the
        boundary msa.prepare reports)."""
        frozen = ["backbone.feature_extractor"]
        if not self.num_frozen_layers:
            return frozen
        encoder = "backbone.encoder"
        frozen += ["backbone.feature_projection", f"{encoder}.pos_conv_embed"]
        if not self.stable_layer_norm:
            frozen.append(f"{encoder}.layer_norm")  # normalises the embedding output
        frozen.append(f"{encoder}.dropout")
        frozen += [f"{encoder}.layers.{i}" for i in range(self.num_frozen_layers)]
        if self.stable_layer_norm and self.num_frozen_layers == depth:
            frozen.append(f"{encoder}.layer_norm")  # the final norm trains while any layer does
        return frozen

    @staticmethod
    def _receptive_field(hf: "PretrainedConfig") -> int:
        """Samples the conv feature encoder needs to produce one frame."""
        samples = 1
        for kernel, stride in reversed(list(zip(hf.conv_kernel, hf.conv_stride, strict=True))):
            samples = (samples - 1) * stride + kernel
        return samples

    @property
    def layers(self) -> nn.ModuleList:
        return self.backbone.encoder.layers

    def _conv_features(
        self, audio: torch.Tensor, audio_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S), (B, S) -> conv features (B, F, C), frame mask (B, F); one clip at a time."""
        lengths = audio_mask.sum(dim=1)
        positions = torch.arange(audio_mask.shape[1], device=audio_mask.device)
        if not torch.equal(audio_mask, positions < lengths.unsqueeze(1)):
            raise ValueError(
                "audio_mask must mark a prefix of real samples in every row (padding at the end)"
            )
        if lengths.min() < self.min_samples:
            raise ValueError(
                f"every clip needs at least {self.min_samples} real audio samples "
                f"({self.min_samples / SAMPLE_RATE * 1000:.0f} ms); got {lengths.min().item()}"
            )
        clips = [normalize_waveform(audio[i, :n]) for i, n in enumerate(lengths.tolist())]
        features = [self.backbone.feature_extractor(clip[None])[0].transpose(0, 1) for clip in clips]
        features = nn.utils.rnn.pad_sequence(features, batch_first=True)
        frame_lengths = self.backbone._get_feat_extract_output_lengths(lengths)
        frame_mask = torch.arange(features.shape[1], device=features.device) < frame_lengths.unsqueeze(1)
        return features, frame_mask

    def _embed(self, conv_features: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """Conv features (B, F, C) -> the first transformer layer's input (B, F, D)."""
        encoder = self.backbone.encoder
        hidden = project_features(self.backbone, conv_features)
        # The positional convolution would otherwise carry padded frames into real ones.
        hidden = hidden.masked_fill(~frame_mask.unsqueeze(-1), 0.0)
        hidden = hidden + encoder.pos_conv_embed(hidden)
        if not self.stable_layer_norm:
            hidden = encoder.layer_norm(hidden)
        return encoder.dropout(hidden)

    def _run_layers(self, hidden: torch.Tensor, frame_mask: torch.Tensor, layers) -> list[torch.Tensor]:
        """Each layer's output (B, F, D), attending only to real frames."""
        inputs = layer_inputs(self.backbone, hidden, frame_mask)
        states = []
        for layer in layers:
            hidden = run_layer(layer, hidden, inputs)
            states.append(hidden)
        return states

    def prefix_signature(self) -> dict:
        """What, besides the frozen modules' weights, decides `frozen_prefix`'s output."""
        architecture = {k: v for k, v in self.backbone.config.to_dict().items() if not k.startswith("_")}
        if not self.num_frozen_layers:
            states = "conv"
        else:
            states = "all" if self.layer_weights is not None else "last"
        return {
            "branch": "audio",
            "encoder": architecture,
            "frozen": list(self.frozen_modules),
            "states": states,
            "norm_eps": NORM_EPS,
        }

    def frozen_prefix(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalisation, the conv feature encoder and any frozen layers, without gradients.

        With no frozen transformer layer: {"conv_features": (B, F, C), "frame_mask": (B, F)}.
        Otherwise {"hidden_states": (B, N, F, D), "frame_mask": (B, F)}: the last frozen layer's
        output (N = 1), or with layer weighting every frozen one from the embedding output on.
        A stable-layer-norm encoder's final norm is left to `forward_from_prefix` (it is cheap).
        """
        with torch.no_grad():
            conv_features, frame_mask = self._conv_features(audio, audio_mask)
            if not self.num_frozen_layers:
                return {"conv_features": conv_features, "frame_mask": frame_mask}
            states = [self._embed(conv_features, frame_mask)]
            states += self._run_layers(states[0], frame_mask, self.layers[: self.num_frozen_layers])
        kept = states if self.layer_weights is not None else states[-1:]
        return {"hidden_states": torch.stack(kept, dim=1), "frame_mask": frame_mask}

    def prefix_entries(self, prefix: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """One clip's share of a batch's prefix, real frames only, frames first:
        conv features (F_i, C), or hidden states (F_i, N, D)."""
        masks = prefix["frame_mask"]
        if "conv_features" in prefix:
            return [features[mask] for features, mask in zip(prefix["conv_features"], masks, strict=True)]
        return [
            states[:, mask].transpose(0, 1)
            for states, mask in zip(prefix["hidden_states"], masks, strict=True)
        ]

    def prefix_from_entries(self, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Padded entries (B, F, ...) with their frame mask (B, F) -> `forward_from_prefix`'s arguments."""
        if not self.num_frozen_layers:
            return {"conv_features": features, "frame_mask": mask}
        return {"hidden_states": features.transpose(1, 2), "frame_mask": mask}

    def frames_from_prefix(
        self,
        frame_mask: torch.Tensor,
        conv_features: torch.Tensor | None = None,
        hidden_states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The trainable rest, from `frozen_prefix`'s output -> per-frame states (B, F, D): the
        encoder's last hidden state, or the softmax-weighted sum of all its hidden states."""
        if conv_features is not None:
            states = [self._embed(conv_features, frame_mask)]
        else:
            states = list(hidden_states.unbind(dim=1))
        states += self._run_layers(states[-1], frame_mask, self.layers[self.num_frozen_layers :])
        if self.stable_layer_norm:
            # Earlier states stay as the next layer saw them; the last becomes the encoder's output.
            states[-1] = self.backbone.encoder.layer_norm(states[-1])
        if self.layer_weights is None:
            return states[-1]
        weights = torch.softmax(self.layer_weights, dim=0).to(states[-1].dtype)
        return torch.einsum("n,nbfd->bfd", weights, torch.stack(states))

    def forward_from_prefix(self, frame_mask: torch.Tensor, **prefix: torch.Tensor) -> torch.Tensor:
        """`frames_from_prefix`, standardised, pooled over real frames -> (B, embed_dim)."""
        states = self.frames_from_prefix(frame_mask, **prefix)
        normed = self.frame_norm(states[frame_mask])  # real frames only: padding never shifts the statistics
        return masked_mean(states.new_zeros(states.shape).index_put((frame_mask,), normed), frame_mask)

    def forward(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        return self.forward_from_prefix(**self.frozen_prefix(audio, audio_mask))

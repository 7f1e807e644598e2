"""Audio branch: wav2vec 2.0 -> masked mean over frames.

Shapes: audio (B, S) float mono 16 kHz waveform, audio_mask (B, S) True = real sample (real
samples first, as the collate pads at the end); frames (B, F) at 50 Hz; embedding (B, D).

Padding never changes the output. wav2vec2-base's first conv layer GroupNorm-normalises each
channel over the whole time axis, so padded samples would shift every frame's features (HF's
docs say not to pass an attention mask to such models for that reason, which leaves the
transformer attending to padding instead). Here the frozen conv feature encoder runs per clip
on its real samples only, padded frames are zeroed before the positional convolution (as HF's
encoder does), and the transformer layers get the frame-level attention mask.

The branch drives the encoder layers itself rather than calling `Wav2Vec2Model.forward`, so
its frozen prefix can be computed (and later cached) on its own; HF's SpecAugment and
LayerDrop are therefore not applied (they are turned off in the HF config to say so).
"""

import torch
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2Model
from transformers.masking_utils import create_bidirectional_mask

from msa.models.config import AudioConfig
from msa.models.layers import FreezableBranch, masked_mean

SAMPLE_RATE = 16_000  # Hz, what wav2vec 2.0 was trained on
NORM_EPS = 1e-7  # variance floor of Wav2Vec2FeatureExtractor's do_normalize

WAV2VEC2_ARCHS: dict[str, dict] = {
    "wav2vec2-base": {},  # Wav2Vec2Config()'s defaults are facebook/wav2vec2-base's architecture
    "tiny": dict(  # for tests and smoke runs; the same 320-sample hop (50 frames/s) as base
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32, 32, 32),
        conv_kernel=(10, 8, 4, 4),
        conv_stride=(5, 4, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    ),
}
_BRANCH_SETTINGS = dict(mask_time_prob=0.0, mask_feature_prob=0.0, layerdrop=0.0)


def wav2vec2_config(arch: str) -> Wav2Vec2Config:
    return Wav2Vec2Config(**WAV2VEC2_ARCHS[arch], **_BRANCH_SETTINGS)


def normalize_waveform(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over one clip's real samples (S,), as Wav2Vec2FeatureExtractor."""
    x = x.float()
    return (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + NORM_EPS)


class AudioBranch(FreezableBranch):
    """Waveform (B, S) + mask (B, S) -> embedding (B, embed_dim)."""

    input_keys = ("audio", "audio_mask")
    pretrained_modules = ("wav2vec2",)

    def __init__(self, config: AudioConfig):
        super().__init__()
        self.config = config
        self.wav2vec2 = Wav2Vec2Model(wav2vec2_config(config.audio_arch))
        hf = self.wav2vec2.config
        if hf.do_stable_layer_norm:
            raise ValueError("pre-LayerNorm wav2vec 2.0 variants (do_stable_layer_norm) are not supported")
        depth = hf.num_hidden_layers
        self.embed_dim = hf.hidden_size
        self.num_frozen_layers = max(0, depth - config.trainable_layers)
        self.min_samples = self._receptive_field(hf)
        # One logit per hidden state: the embedding output and each layer's output.
        self.layer_weights = nn.Parameter(torch.zeros(depth + 1)) if config.layer_weighting else None

        frozen = ["wav2vec2.feature_extractor"]
        if self.num_frozen_layers:
            frozen += ["wav2vec2.feature_projection"] + [
                f"wav2vec2.encoder.{name}" for name in ("pos_conv_embed", "layer_norm", "dropout")
            ]
            frozen += [f"wav2vec2.encoder.layers.{i}" for i in range(self.num_frozen_layers)]
        self.freeze(frozen)

    @staticmethod
    def _receptive_field(hf: Wav2Vec2Config) -> int:
        """Samples the conv feature encoder needs to produce one frame."""
        samples = 1
        for kernel, stride in reversed(list(zip(hf.conv_kernel, hf.conv_stride, strict=True))):
            samples = (samples - 1) * stride + kernel
        return samples

    @property
    def layers(self) -> nn.ModuleList:
        return self.wav2vec2.encoder.layers

    def _conv_features(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S), (B, S) -> conv features (B, F, C), frame mask (B, F); one clip at a time."""
        lengths = audio_mask.sum(dim=1)
        positions = torch.arange(audio_mask.shape[1], device=audio_mask.device)
        if not torch.equal(audio_mask, positions < lengths.unsqueeze(1)):
            raise ValueError("audio_mask must mark a prefix of real samples in every row (padding at the end)")
        if lengths.min() < self.min_samples:
            raise ValueError(
                f"every clip needs at least {self.min_samples} real audio samples "
                f"({self.min_samples / SAMPLE_RATE * 1000:.0f} ms); got {lengths.min().item()}"
            )
        clips = [normalize_waveform(audio[i, :n]) for i, n in enumerate(lengths.tolist())]
        features = [self.wav2vec2.feature_extractor(clip[None])[0].transpose(0, 1) for clip in clips]
        features = nn.utils.rnn.pad_sequence(features, batch_first=True)
        frame_lengths = self.wav2vec2._get_feat_extract_output_lengths(lengths)
        frame_mask = torch.arange(features.shape[1], device=features.device) < frame_lengths.unsqueeze(1)
        return features, frame_mask

    def _embed(self, conv_features: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """Conv features (B, F, C) -> the first transformer layer's input (B, F, D)."""
        encoder = self.wav2vec2.encoder
        hidden, _ = self.wav2vec2.feature_projection(conv_features)
        # The positional convolution would otherwise carry padded frames into real ones.
        hidden = hidden.masked_fill(~frame_mask.unsqueeze(-1), 0.0)
        hidden = hidden + encoder.pos_conv_embed(hidden)
        return encoder.dropout(encoder.layer_norm(hidden))

    def _run_layers(self, hidden: torch.Tensor, frame_mask: torch.Tensor, layers) -> list[torch.Tensor]:
        """Each layer's output (B, F, D), attending only to real frames."""
        attention_mask = create_bidirectional_mask(
            config=self.wav2vec2.config, inputs_embeds=hidden, attention_mask=frame_mask
        )
        states = []
        for layer in layers:
            hidden = layer(hidden, attention_mask=attention_mask)
            states.append(hidden)
        return states

    has_frozen_prefix = True  # the conv feature encoder always is

    def prefix_signature(self) -> dict:
        """What, besides the frozen modules' weights, decides `frozen_prefix`'s output."""
        architecture = {k: v for k, v in self.wav2vec2.config.to_dict().items() if not k.startswith("_")}
        if not self.num_frozen_layers:
            states = "conv"
        else:
            states = "all" if self.layer_weights is not None else "last"
        return {
            "branch": "audio",
            "wav2vec2": architecture,
            "frozen": list(self.frozen_modules),
            "states": states,
            "norm_eps": NORM_EPS,
        }

    def frozen_prefix(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalisation, the conv feature encoder and any frozen layers, without gradients.

        With no frozen transformer layer: {"conv_features": (B, F, C), "frame_mask": (B, F)}.
        Otherwise {"hidden_states": (B, N, F, D), "frame_mask": (B, F)}: the last frozen hidden
        state (N = 1), or with layer weighting every frozen one from the embedding output on.
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
        return [states[:, mask].transpose(0, 1) for states, mask in zip(prefix["hidden_states"], masks, strict=True)]

    def prefix_from_entries(self, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Padded entries (B, F, ...) with their frame mask (B, F) -> `forward_from_prefix`'s arguments."""
        if not self.num_frozen_layers:
            return {"conv_features": features, "frame_mask": mask}
        return {"hidden_states": features.transpose(1, 2), "frame_mask": mask}

    def forward_from_prefix(
        self,
        frame_mask: torch.Tensor,
        conv_features: torch.Tensor | None = None,
        hidden_states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The trainable rest, from `frozen_prefix`'s output -> (B, embed_dim)."""
        if conv_features is not None:
            states = [self._embed(conv_features, frame_mask)]
        else:
            states = list(hidden_states.unbind(dim=1))
        states += self._run_layers(states[-1], frame_mask, self.layers[self.num_frozen_layers :])
        if self.layer_weights is None:
            hidden = states[-1]
        else:
            weights = torch.softmax(self.layer_weights, dim=0).to(states[-1].dtype)
            hidden = torch.einsum("n,nbfd->bfd", weights, torch.stack(states))
        return masked_mean(hidden, frame_mask)

    def forward(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        return self.forward_from_prefix(**self.frozen_prefix(audio, audio_mask))

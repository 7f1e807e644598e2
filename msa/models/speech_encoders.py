"""The Hugging Face speech encoders the audio branch drives: wav2vec 2.0, HuBERT and WavLM.

An encoder is named by `AudioConfig.audio_arch`: a built-in name (`BUILTIN_ARCHS`) or a
transformers config as JSON (a checkpoint's config.json, canonicalised by `arch_from_config`).
All three share one layout, which msa.models.audio runs step by step:

    feature_extractor (conv) -> feature_projection -> encoder.pos_conv_embed
      -> encoder.layer_norm (post-LN encoders only) -> encoder.dropout -> encoder.layers
      -> encoder.layer_norm (do_stable_layer_norm encoders only: pre-LN layers, one final norm)

and differ in two places, bridged here: HuBERT's feature_projection returns a tensor where the
others return (hidden, normalised conv features); WavLM's layers add a relative position bias
owned by layer 0's attention and take the frame mask as a key padding mask instead of an
additive 4-D attention mask.

transformers is imported where an encoder is built or run, not with this module: it takes
seconds to import, and every process that imports the model registry (each trial, each
command) would pay them, most without an audio encoder to build.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from msa.models.config import parse_audio_arch

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

BUILTIN_ARCHS: dict[str, dict[str, Any]] = {
    # Wav2Vec2Config()'s defaults are facebook/wav2vec2-base's architecture.
    "wav2vec2-base": {"model_type": "wav2vec2"},
    "tiny": dict(  # for tests and smoke runs; the same 320-sample hop (50 frames/s) as base
        model_type="wav2vec2",
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
# The branch runs the layers itself, so HF's SpecAugment and LayerDrop never apply; the config
# says so rather than carrying settings that look active.
BRANCH_SETTINGS = dict(mask_time_prob=0.0, mask_feature_prob=0.0, layerdrop=0.0)
# config.json keys that name, date or label a checkpoint rather than describe its encoder.
METADATA_KEYS = frozenset(
    {"architectures", "transformers_version", "torch_dtype", "dtype", "id2label", "label2id"}
)


def encoder_config(audio_arch: str) -> PretrainedConfig:
    """A built-in name or a JSON config (see `AudioConfig.audio_arch`) -> the encoder's config,
    with the branch's settings applied."""
    settings = dict(
        BUILTIN_ARCHS[audio_arch] if audio_arch in BUILTIN_ARCHS else parse_audio_arch(audio_arch)
    )
    model_type = settings.pop("model_type")
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **{**settings, **BRANCH_SETTINGS})


def arch_from_config(config_dict: dict[str, Any]) -> str:
    """A transformers config dict (config.json, or `PretrainedConfig.to_dict()`) -> the canonical
    `audio_arch` JSON: sorted keys, compact, without metadata. ValueError if unsupported."""
    kept = {k: v for k, v in config_dict.items() if not k.startswith("_") and k not in METADATA_KEYS}
    arch = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    parse_audio_arch(arch)
    return arch


def build_encoder(audio_arch: str) -> PreTrainedModel:
    """The encoder (WavLMModel, HubertModel or Wav2Vec2Model) with random weights."""
    from transformers import AutoModel

    return AutoModel.from_config(encoder_config(audio_arch))


def project_features(encoder: PreTrainedModel, conv_features: torch.Tensor) -> torch.Tensor:
    """Conv features (B, F, C) -> hidden states (B, F, D)."""
    projected = encoder.feature_projection(conv_features)
    # wav2vec 2.0 and WavLM also return the normalised conv features, for their quantiser.
    return projected[0] if isinstance(projected, tuple) else projected


def layer_inputs(
    encoder: PreTrainedModel, hidden: torch.Tensor, frame_mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """What every transformer layer takes besides hidden states (B, F, D), attending only to
    the real frames of `frame_mask` (B, F)."""
    if encoder.config.model_type != "wavlm":
        from transformers.masking_utils import create_bidirectional_mask

        return {
            "attention_mask": create_bidirectional_mask(
                config=encoder.config, inputs_embeds=hidden, attention_mask=frame_mask
            )
        }
    # Each WavLM layer gates the same ungated bias, which depends only on F and layer 0's
    # weights: computing it here (not taking it from layer 0) lets the layers after a cached
    # prefix run without layer 0, and lets layer 0 train it when layer 0 trains.
    batch, frames = frame_mask.shape
    bias = encoder.encoder.layers[0].attention.compute_bias(frames, frames)  # (H, F, F)
    bias = bias.unsqueeze(0).expand(batch, -1, -1, -1).reshape(-1, frames, frames)  # (B * H, F, F)
    # WavLMAttention turns the frame mask into torch's key padding mask itself (mask != 1).
    return {"attention_mask": frame_mask, "position_bias": bias}


def run_layer(layer: nn.Module, hidden: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """One transformer layer: (B, F, D) -> (B, F, D); `inputs` from `layer_inputs`."""
    output = layer(hidden, **inputs)
    # WavLM's layers also hand back the ungated position bias they were given.
    return output[0] if isinstance(output, tuple) else output

"""Named configurations (the seed's iterations) and the factory that builds models from them.

config = model_config("video_iter3", d_model=128, num_layers=2)   # frozen ModelConfig
model, loaded = create_model(config, num_classes=8, pretrained="auto")  # loaded: {"video": {"loaded": ...}}
"""

from collections.abc import Callable, Mapping
from typing import Any

from msa.models.config import (
    ALL_LAYERS,
    AudioConfig,
    ModelConfig,
    SpectrogramConfig,
    VideoConfig,
    override_keys,
    with_overrides,
)
from msa.models.model import EmotionModel
from msa.models.pretrained import find_local_weights, for_weights, load_weights
from msa.weights import WeightsFiles

_REGISTRY: dict[str, Callable[[], ModelConfig]] = {}


def register_model(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    """Register a named configuration under its function's name; its docstring describes it."""
    _REGISTRY[fn.__name__] = fn
    return fn


@register_model
def video_iter1() -> ModelConfig:
    """Small CNN from scratch + positions + transformer + masked mean + linear."""
    return ModelConfig(video=VideoConfig(trunk="cnn"))


@register_model
def video_iter2() -> ModelConfig:
    """Frozen ResNet-18 + masked mean + linear."""
    return ModelConfig(video=VideoConfig(temporal="mean"))


@register_model
def video_iter3() -> ModelConfig:
    """Frozen ResNet-18 + positions + transformer + masked mean + linear."""
    return ModelConfig(video=VideoConfig())


@register_model
def video_iter4() -> ModelConfig:
    """video_iter3 with the trunk's last two children (layer4, avgpool) trainable."""
    return ModelConfig(video=VideoConfig(trainable_children=2))


@register_model
def video_iter5() -> ModelConfig:
    """video_iter3 with the whole ResNet-18 trunk trainable."""
    return ModelConfig(video=VideoConfig(trainable_children=9))


@register_model
def audio_frozen() -> ModelConfig:
    """Frozen speech encoder (wav2vec2-base unless the weights are another) + masked mean + linear."""
    return ModelConfig(audio=AudioConfig(trainable_layers=0))


@register_model
def audio_last2() -> ModelConfig:
    """Speech encoder with its last two transformer layers trainable + masked mean + linear."""
    return ModelConfig(audio=AudioConfig(trainable_layers=2))


@register_model
def audio_all() -> ModelConfig:
    """Speech encoder trainable above its (frozen) conv feature encoder + masked mean + linear."""
    return ModelConfig(audio=AudioConfig(trainable_layers=ALL_LAYERS))


@register_model
def audio_cnn() -> ModelConfig:
    """Log-mel + 2-D CNN trained from scratch + attentive statistics pooling + linear."""
    return ModelConfig(audio=SpectrogramConfig(body="cnn"))


@register_model
def audio_crnn() -> ModelConfig:
    """Log-mel + CNN + bidirectional GRU from scratch + attentive statistics pooling + linear."""
    return ModelConfig(audio=SpectrogramConfig(body="crnn", conv_blocks=2))


@register_model
def audio_transformer() -> ModelConfig:
    """Log-mel + CNN stem + transformer from scratch + attentive statistics pooling + linear."""
    return ModelConfig(audio=SpectrogramConfig(body="transformer", conv_blocks=2))


@register_model
def multimodal_iter1() -> ModelConfig:
    """video_iter3 + audio_last2 embeddings, concatenated, linear head."""
    return ModelConfig(video=VideoConfig(), audio=AudioConfig(trainable_layers=2))


@register_model
def multimodal_iter2() -> ModelConfig:
    """video_iter2 + audio_last2 embeddings, concatenated, linear head."""
    return ModelConfig(video=VideoConfig(temporal="mean"), audio=AudioConfig(trainable_layers=2))


@register_model
def multimodal_spectrogram() -> ModelConfig:
    """video_iter2 + audio_cnn embeddings (no speech encoder to download), concatenated, linear head."""
    return ModelConfig(video=VideoConfig(temporal="mean"), audio=SpectrogramConfig(body="cnn"))


def list_models() -> list[str]:
    return list(_REGISTRY)


def describe_model(name: str) -> str:
    return _REGISTRY[name].__doc__ or ""


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The named configuration with flat field overrides (unknown keys raise ValueError)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(_REGISTRY)}")
    return with_overrides(_REGISTRY[name](), **overrides)


TINY_VIDEO = dict(cnn_channels=(8, 16), d_model=16, num_layers=1, num_heads=2, dim_feedforward=32)
TINY_AUDIO = dict(audio_arch="tiny")
TINY_SPECTROGRAM = dict(
    n_mels=16, base_width=4, conv_blocks=2, rnn_hidden=8, encoder_dim=16, encoder_layers=1, encoder_heads=2
)


def tiny_overrides(name_or_config: str | ModelConfig) -> dict[str, Any]:
    """Overrides that shrink a configuration for tests and smoke runs. ResNet-18 keeps its size
    (it is quick on small frames); the transformers, wav2vec 2.0 and the spectrogram encoders
    become tiny."""
    config = model_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    valid = set(override_keys(config))
    return {k: v for k, v in {**TINY_VIDEO, **TINY_AUDIO, **TINY_SPECTROGRAM}.items() if k in valid}


def create_model(
    name_or_config: str | ModelConfig,
    num_classes: int,
    pretrained: str = "off",
    weights: Mapping[str, WeightsFiles] | None = None,
    **overrides: Any,
) -> tuple[EmotionModel, dict[str, dict]]:
    """Build a model -> (model, what pretrained weights it loaded, per branch).

    weights: branch -> files already resolved by the caller (e.g. shipped by a search's driver),
    loaded as given; a speech encoder is built with its weights' own architecture.
    pretrained: how branches without given weights find theirs on this machine: "off" (random
    weights), "auto" (local caches, else random after one warning), "on" (raise if missing).
    See msa.models.pretrained.
    """
    if isinstance(name_or_config, str):
        config = model_config(name_or_config, num_classes=num_classes, **overrides)
    else:
        config = with_overrides(name_or_config, num_classes=num_classes, **overrides)
    weights = dict(weights or {})
    weights.update(find_local_weights(config, pretrained, skip=tuple(weights)))
    model = EmotionModel(for_weights(config, weights))
    return model, load_weights(model, weights)

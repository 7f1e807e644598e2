"""Models: the video, audio and multimodal emotion classifiers as configurations of one family.

Models consume batch tensors by name (`model.input_keys`) and return logits (B, K); they never
read files except pretrained weights (msa.models.pretrained).
"""

from msa.models.config import (
    AudioConfig,
    ModelConfig,
    VideoConfig,
    config_from_dict,
    config_to_dict,
    override_keys,
    with_overrides,
)
from msa.models.model import EmotionModel
from msa.models.pretrained import (
    PRETRAINED_MODES,
    PretrainedWeightsUnavailable,
    PretrainedWeightsWarning,
    load_pretrained,
)
from msa.models.registry import (
    create_model,
    describe_model,
    list_models,
    model_config,
    register_model,
    tiny_overrides,
)

__all__ = [
    "AudioConfig",
    "EmotionModel",
    "ModelConfig",
    "PRETRAINED_MODES",
    "PretrainedWeightsUnavailable",
    "PretrainedWeightsWarning",
    "VideoConfig",
    "config_from_dict",
    "config_to_dict",
    "create_model",
    "describe_model",
    "list_models",
    "load_pretrained",
    "model_config",
    "override_keys",
    "register_model",
    "tiny_overrides",
    "with_overrides",
]

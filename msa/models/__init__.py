"""Models: the video, audio and multimodal emotion classifiers as configurations of one family.

Models consume batch tensors by name (`model.input_keys`) and return logits (B, K); they never
read files except pretrained weights (msa.models.pretrained).
"""

from msa.models.config import (
    AudioConfig,
    ModelConfig,
    SpectrogramConfig,
    VideoConfig,
    config_from_dict,
    config_to_dict,
    override_keys,
    with_overrides,
)
from msa.models.model import EmotionModel
from msa.models.pretrained import (
    BACKBONE_BRANCHES,
    PRETRAINED_MODES,
    PretrainedWeightsUnavailable,
    PretrainedWeightsWarning,
    backbone_branches,
    find_local_weights,
    load_weights,
    loaded_record,
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
    "BACKBONE_BRANCHES",
    "AudioConfig",
    "EmotionModel",
    "ModelConfig",
    "PRETRAINED_MODES",
    "PretrainedWeightsUnavailable",
    "PretrainedWeightsWarning",
    "SpectrogramConfig",
    "VideoConfig",
    "backbone_branches",
    "config_from_dict",
    "config_to_dict",
    "create_model",
    "describe_model",
    "list_models",
    "find_local_weights",
    "load_weights",
    "loaded_record",
    "model_config",
    "override_keys",
    "register_model",
    "tiny_overrides",
    "with_overrides",
]

"""What the spaces need to know about a named model, read from its configuration in msa.models'
registry instead of restated here: whether it has a temporal transformer to size, whether a
pretrained backbone of it trains (and so gets its own learning rate), whether every frame layer
trains (so frame augmentation costs no feature cache), which backbones it can load.

msa.models is imported when a space first asks, not at ``import search_spaces``: it loads torch
and transformers (seconds), which the command lines' --help, the analysis and the report, all
of which import search_spaces, never need.
"""

from __future__ import annotations

import functools


@functools.cache
def _config(model: str):
    from msa.models import model_config  # here, not at import: see the module doc

    return model_config(model)


def has_video_transformer(model: str) -> bool:
    """A temporal transformer over the frames (not a plain mean of the trunk's features)."""
    video = _config(model).video
    return video is not None and video.temporal == "transformer"


def trains_a_backbone(model: str) -> bool:
    """Some of a pretrained backbone trains: ResNet-18 children or speech-encoder layers."""
    from msa.models import AudioConfig  # (loaded by _config already)

    config = _config(model)
    video_trains = (
        config.video is not None and config.video.trunk == "resnet18" and config.video.trainable_children > 0
    )
    audio_trains = isinstance(config.audio, AudioConfig) and config.audio.trainable_layers != 0
    return video_trains or audio_trains


def trains_every_frame_layer(model: str) -> bool:
    """The video branch has no frozen prefix: a CNN from scratch, or a ResNet-18 trunk trained
    whole. Only then is augmenting the frames free of the frozen-prefix feature cache."""
    video = _config(model).video
    return video is not None and (video.trunk == "cnn" or video.trainable_children >= video.trunk_children)


def backbones(models: tuple[str, ...]) -> tuple[str, ...]:
    """The pretrained backbones (branches, in msa.models' order) any of ``models`` can load."""
    from msa.models import BACKBONE_BRANCHES, backbone_branches  # (loaded by _config already)

    branches = {branch for model in models for branch in backbone_branches(_config(model))}
    return tuple(branch for branch in BACKBONE_BRANCHES if branch in branches)

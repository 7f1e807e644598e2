"""Video spaces: the seed's five iterations, alone or head to head."""

from __future__ import annotations

import optuna

from search_spaces.common import suggest_optimisation, suggest_transformer
from search_spaces.model_facts import has_video_transformer, trains_a_backbone, trains_every_frame_layer
from search_spaces.scale import SearchScale

# The seed's five video iterations: named model configurations in msa.models, whose
# configurations say what each one is (search_spaces.model_facts reads them).
VIDEO_ITERATIONS = ("video_iter1", "video_iter2", "video_iter3", "video_iter4", "video_iter5")
TRUNK_CHOICES = {"frozen": "video_iter3", "last2": "video_iter4", "all": "video_iter5"}


def suggest_video_model(trial: optuna.Trial, scale: SearchScale, model: str) -> None:
    """Parameters of one video iteration, given which one it is."""
    if has_video_transformer(model):
        suggest_transformer(trial)
    else:  # the trunk's features pooled straight into the classifier
        trial.suggest_float("pool_dropout", 0.0, 0.5)
    # Frame augmentation is searched only where every frame layer trains anyway: on a frozen
    # prefix it would switch off the feature cache (msa.features) and make the trial ~20x slower.
    if trains_every_frame_layer(model):
        trial.suggest_categorical("video_augment", (False, True))
    suggest_optimisation(trial, scale, backbone_trainable=trains_a_backbone(model))


def video_scratch(trial: optuna.Trial, scale: SearchScale) -> dict:
    suggest_video_model(trial, scale, "video_iter1")
    return {"model": "video_iter1"}


def video_resnet_avg(trial: optuna.Trial, scale: SearchScale) -> dict:
    suggest_video_model(trial, scale, "video_iter2")
    return {"model": "video_iter2"}


def video_transformer(trial: optuna.Trial, scale: SearchScale) -> dict:
    trunk = trial.suggest_categorical("trunk", tuple(TRUNK_CHOICES))
    model = TRUNK_CHOICES[trunk]
    suggest_video_model(trial, scale, model)
    return {"model": model}


def video_iterations(trial: optuna.Trial, scale: SearchScale) -> None:
    model = trial.suggest_categorical("model", VIDEO_ITERATIONS)
    suggest_video_model(trial, scale, model)

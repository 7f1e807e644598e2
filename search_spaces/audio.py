"""Audio space: wav2vec 2.0 with its transformer frozen, last two layers or all trainable."""

from __future__ import annotations

import optuna

from search_spaces.common import suggest_optimisation
from search_spaces.model_facts import trains_a_backbone
from search_spaces.scale import SearchScale

AUDIO_CHOICES = {"frozen": "audio_frozen", "last2": "audio_last2", "all": "audio_all"}


def suggest_audio_model(trial: optuna.Trial, scale: SearchScale, model: str) -> None:
    trial.suggest_categorical("layer_weighting", (False, True))
    trial.suggest_float("pool_dropout", 0.0, 0.5)
    suggest_optimisation(trial, scale, backbone_trainable=trains_a_backbone(model))


def audio_wav2vec(trial: optuna.Trial, scale: SearchScale) -> dict:
    layers = trial.suggest_categorical("audio_layers", tuple(AUDIO_CHOICES))
    model = AUDIO_CHOICES[layers]
    suggest_audio_model(trial, scale, model)
    return {"model": model}

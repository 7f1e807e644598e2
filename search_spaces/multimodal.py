"""Multimodal space: the seed's two final configurations, the second with the spectrogram
family's CNN for its audio (no speech encoder to download), and the fusion head."""

from __future__ import annotations

import optuna

from search_spaces.common import suggest_optimisation, suggest_transformer
from search_spaces.model_facts import has_video_transformer, trains_a_backbone
from search_spaces.scale import SearchScale

# multimodal_iter1 = video iteration 3 + audio last 2 layers; multimodal_iter2 = video iteration 2 + audio last 2;
# multimodal_spectrogram = video iteration 2 + the log-mel CNN trained from scratch.
MULTIMODAL_MODELS = ("multimodal_iter1", "multimodal_iter2", "multimodal_spectrogram")
FUSION_HEADS = ("linear", "mlp")
FUSION_HIDDEN = (128, 256, 512)


def multimodal(trial: optuna.Trial, scale: SearchScale) -> None:
    model = trial.suggest_categorical("model", MULTIMODAL_MODELS)
    if has_video_transformer(model):
        suggest_transformer(trial)
    else:
        trial.suggest_float("pool_dropout", 0.0, 0.5)
    head = trial.suggest_categorical("head", FUSION_HEADS)
    if head == "mlp":
        trial.suggest_categorical("head_hidden", FUSION_HIDDEN)
        trial.suggest_float("head_dropout", 0.0, 0.5)
    suggest_optimisation(trial, scale, backbone_trainable=trains_a_backbone(model))

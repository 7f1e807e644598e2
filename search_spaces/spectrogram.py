"""Spectrogram space: log-mel models trained from scratch, with their augmentation searched.

The body is the first choice (``audio_body`` -> the named configuration); its size follows:
conv blocks (every block halves time and frequency; the channels double from a base width,
capped by the model at 256), the GRU's or transformer's width and depth. From about 29 k to
about 2.9 M parameters. Then the front end (mel bands, window, normalisation), the pooling, the
augmentations (SpecAugment, gain, crop on the cached log-mel; speed and noise on the waveform,
which turns the feature cache off for that trial) and the objective (label smoothing, class
weighting, mixup).
"""

from __future__ import annotations

import optuna

from search_spaces.common import suggest_optimisation
from search_spaces.scale import SearchScale

BODY_MODELS = {"cnn": "audio_cnn", "crnn": "audio_crnn", "transformer": "audio_transformer"}
# The choices searched (the model configuration, msa.models.config.SpectrogramConfig, checks them).
MEL_BANDS = (40, 64, 80)
WINDOWS_MS = (25, 50)
NORMALISATIONS = ("utterance", "global")
POOLINGS = ("meanmax", "stats", "attention")
BASE_WIDTHS = (16, 24, 32, 48)
CONV_BLOCKS = {"cnn": (3, 5), "crnn": (2, 3), "transformer": (2, 3)}  # (fewest, most)
RNN_WIDTHS = (32, 64, 128)
ENCODER_WIDTHS = (64, 96, 128)
ENCODER_HEADS = (2, 4)
CROP_SECONDS = (0.0, 2.0, 3.0)
SPEED_RANGES = (0.0, 0.1)
NOISE_SNRS_DB = (0.0, 10.0, 20.0)  # the lowest SNR of added noise; 0: none
MIXUP_ALPHAS = (0.0, 0.2, 0.4)


def suggest_body(trial: optuna.Trial, body: str) -> None:
    fewest, most = CONV_BLOCKS[body]
    trial.suggest_categorical("base_width", BASE_WIDTHS)
    trial.suggest_int("conv_blocks", fewest, most)
    trial.suggest_categorical("convs_per_block", (1, 2))
    if body == "crnn":
        trial.suggest_categorical("rnn_hidden", RNN_WIDTHS)
    if body == "transformer":
        trial.suggest_categorical("encoder_dim", ENCODER_WIDTHS)
        trial.suggest_int("encoder_layers", 1, 4)
        trial.suggest_categorical("encoder_heads", ENCODER_HEADS)
    if body != "cnn":
        trial.suggest_float("body_dropout", 0.0, 0.3)


def suggest_augmentation(trial: optuna.Trial, spec_norm: str) -> None:
    if trial.suggest_int("freq_masks", 0, 2):
        trial.suggest_int("freq_mask_bands", 4, 16)
    if trial.suggest_int("time_masks", 0, 2):
        trial.suggest_int("time_mask_frames", 10, 40)
    if spec_norm == "global":  # per-utterance normalisation removes any gain
        trial.suggest_categorical("gain_db", (0.0, 6.0))
    trial.suggest_categorical("crop_seconds", CROP_SECONDS)
    trial.suggest_categorical("speed_perturb", SPEED_RANGES)
    trial.suggest_categorical("noise_snr_db", NOISE_SNRS_DB)


def audio_spectrogram(trial: optuna.Trial, scale: SearchScale) -> dict:
    body = trial.suggest_categorical("audio_body", tuple(BODY_MODELS))
    suggest_body(trial, body)
    trial.suggest_categorical("n_mels", MEL_BANDS)
    trial.suggest_categorical("window_ms", WINDOWS_MS)
    spec_norm = trial.suggest_categorical("spec_norm", NORMALISATIONS)
    trial.suggest_categorical("pooling", POOLINGS)
    trial.suggest_float("pool_dropout", 0.0, 0.5)
    suggest_augmentation(trial, spec_norm)
    trial.suggest_float("label_smoothing", 0.0, 0.2)
    trial.suggest_categorical("class_weighting", (False, True))
    trial.suggest_categorical("mixup_alpha", MIXUP_ALPHAS)
    suggest_optimisation(trial, scale, backbone_trainable=False)
    return {"model": BODY_MODELS[body]}

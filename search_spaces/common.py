"""Building blocks shared by the spaces: optimisation, schedule and transformer choices.

Each function suggests parameters on an Optuna trial (define-by-run), so a parameter exists in
a trial only where it applies: no backbone learning rate for a frozen backbone, no warm-up
length for a constant schedule, no transformer width for a model without a transformer.
"""

from __future__ import annotations

import optuna

from search_spaces.scale import SearchScale

TRANSFORMER_WIDTHS = (64, 128, 256)
TRANSFORMER_HEADS = (1, 2, 4)


def suggest_optimisation(trial: optuna.Trial, scale: SearchScale, backbone_trainable: bool) -> None:
    """Learning rates (new layers; pretrained backbone only when it trains), weight decay,
    batch size (sized for the search's data and device) and the per-step schedule with its
    warm-up length."""
    from msa.train.optim import SCHEDULES  # here, not at import: msa.train loads torch

    trial.suggest_float("lr", 1e-4, 3e-3, log=True)
    if backbone_trainable:
        trial.suggest_float("backbone_lr", 1e-6, 3e-4, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True)
    trial.suggest_categorical("batch_size", scale.batch_sizes())
    schedule = trial.suggest_categorical("schedule", SCHEDULES)
    if schedule != "constant":  # the others rise over a searched linear warm-up
        trial.suggest_float("warmup_epochs", 0.25, 2.0)


def suggest_transformer(trial: optuna.Trial) -> None:
    """Temporal transformer over frames: width, depth, heads (dividing the width), dropout."""
    trial.suggest_categorical("d_model", TRANSFORMER_WIDTHS)
    trial.suggest_int("num_layers", 1, 4)
    trial.suggest_categorical("num_heads", TRANSFORMER_HEADS)
    trial.suggest_float("dropout", 0.0, 0.4)

"""One trial, without Ray: its hyperparameters from a search space's config, its model,
cached features, loaders and optimiser, and its epochs. msa.tune runs it under Ray Tune."""

from msa.trial.hyperparameters import TrialHyperparameters
from msa.trial.trial import (
    FEATURE_BATCH,
    TrialRun,
    TrialSettings,
    build_model,
    fail_if_asked,
    feature_table,
    modalities_of,
    non_finite,
    pretrained_metrics,
    restore_run,
    run_epoch,
    setup_trial,
)

__all__ = [
    "FEATURE_BATCH",
    "TrialHyperparameters",
    "TrialRun",
    "TrialSettings",
    "build_model",
    "fail_if_asked",
    "feature_table",
    "modalities_of",
    "non_finite",
    "pretrained_metrics",
    "restore_run",
    "run_epoch",
    "setup_trial",
]

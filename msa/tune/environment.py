"""What Ray Tune reads from the environment when it is imported: set before the first ``import ray``."""

from __future__ import annotations

import os


def set_tune_defaults() -> None:
    """Save the search state every few seconds besides after every trial checkpoint (see
    msa/tune/tuner.py), and do not warn that the latter is frequent: it is meant to be."""
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

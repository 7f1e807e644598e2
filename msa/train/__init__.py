"""Training: optimiser and schedules, the train/eval loop, metrics and checkpoints. No Ray."""

from msa.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    restore_state,
    save_checkpoint,
)
from msa.train.loop import class_weights, evaluate, mix_inputs, train_one_epoch
from msa.train.metrics import classification_metrics, confusion_matrix
from msa.train.optim import (
    OptimConfig,
    apply_optim_config,
    build_optimizer,
    build_scheduler,
    lr_multiplier,
    parameter_groups,
)
from msa.train.runtime import Precision, batch_inputs, default_device, place_model, seed_everything

__all__ = [
    "apply_optim_config",
    "CheckpointError",
    "OptimConfig",
    "Precision",
    "batch_inputs",
    "build_optimizer",
    "build_scheduler",
    "class_weights",
    "classification_metrics",
    "confusion_matrix",
    "default_device",
    "evaluate",
    "load_checkpoint",
    "lr_multiplier",
    "mix_inputs",
    "model_from_checkpoint",
    "restore_state",
    "parameter_groups",
    "place_model",
    "save_checkpoint",
    "seed_everything",
    "train_one_epoch",
]

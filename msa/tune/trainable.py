"""The function trainable: one trial = build loaders and model from the config, train, report.

The only module that talks to Ray's report and checkpoint API. Everything it trains with
(datasets, models, optimisation, the loop) lives in layers below and knows nothing of Ray.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from ray import tune

from msa.data.dataset import ClipDataset, make_loader
from msa.data.labels import LabelSet
from msa.models import create_model, model_config, override_keys
from msa.train import (
    Precision,
    build_optimizer,
    build_scheduler,
    default_device,
    evaluate,
    load_checkpoint,
    prepare_model,
    save_checkpoint,
    seed_everything,
    train_one_epoch,
)
from msa.tune.experiment import TrialData
from msa.tune.hyperparameters import TrialHyperparameters

CHECKPOINT_FILE = "checkpoint.pt"
TENSORBOARD_DIR = "tensorboard"  # inside the trial folder; synced with each checkpoint


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a search shares, passed once through tune.with_parameters."""

    data: TrialData
    max_epochs: int
    seed: int = 0
    pretrained: str = "auto"
    smoke_test: bool = False
    threads: int = 1
    weights: tuple[tuple[str, str], ...] = ()  # ("video_weights", path) etc. from the command line


def loader_workers(device: torch.device) -> int:
    return min(4, os.cpu_count() or 1) if device.type == "cuda" else 0


def build_loaders(settings: TrialSettings, hp: TrialHyperparameters, modalities, device) -> dict:
    label_set = LabelSet("trial", settings.data.labels)
    workers = loader_workers(device)
    loaders = {}
    for part in ("train", "val"):
        dataset = ClipDataset(settings.data.clips(part), label_set, modalities)
        loaders[part] = make_loader(
            dataset,
            batch_size=hp.batch_size,
            shuffle=part == "train",
            seed=settings.seed,
            num_workers=workers,
            pin_memory=device.type == "cuda",
        )
    return loaders


def train_trial(config: dict, settings: TrialSettings) -> None:
    """Train one configuration for up to ``settings.max_epochs`` epochs, reporting each epoch."""
    from torch.utils.tensorboard import SummaryWriter

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not a line per checkpoint
    torch.set_num_threads(settings.threads)
    seed_everything(settings.seed)
    device = default_device()  # the GPU Ray assigned (it sets CUDA_VISIBLE_DEVICES), else the CPU
    hp = TrialHyperparameters.from_config(config)
    num_classes = len(settings.data.labels)
    overrides = {**hp.overrides(settings.smoke_test), **weight_overrides(hp.model, settings.weights)}
    model, pretrained = create_model(hp.model, num_classes, settings.pretrained, **overrides)
    model = prepare_model(model, device)
    loaders = build_loaders(settings, hp, modalities_of(model), device)
    optim = hp.optim_config(steps_per_epoch=len(loaders["train"]))
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, total_steps=len(loaders["train"]) * settings.max_epochs)
    precision = Precision(device)

    first_epoch = 1
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(Path(folder) / CHECKPOINT_FILE, map_location=device)
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["extra"]["optimizer"])
        scheduler.load_state_dict(state["extra"]["scheduler"])
        first_epoch = state["extra"]["epoch"] + 1
        pretrained = state["extra"]["pretrained"]

    writer = SummaryWriter(TENSORBOARD_DIR)
    try:
        for epoch in range(first_epoch, settings.max_epochs + 1):
            # Each epoch's shuffle and dropout depend on (seed, epoch) alone, so a trial resumed
            # from a checkpoint repeats exactly what the uninterrupted trial would have done.
            seed_everything(settings.seed + epoch)
            loaders["train"].generator.manual_seed(settings.seed + epoch)
            train = train_one_epoch(
                model, loaders["train"], optimizer, scheduler,
                label_smoothing=optim.label_smoothing, grad_clip=optim.grad_clip, precision=precision,
            )
            val = evaluate(model, loaders["val"], num_classes, precision=precision)
            metrics = {
                "epoch": epoch,
                **train,
                "val_loss": val["loss"],
                "val_acc": val["accuracy"],
                "val_f1": val["f1_macro"],
                "val_uar": val["uar"],
                "pretrained_video": pretrained.get("video", False),
                "pretrained_audio": pretrained.get("audio", False),
            }
            log_tensorboard(writer, metrics, val["confusion_matrix"], settings.data.labels, epoch)
            with tempfile.TemporaryDirectory() as folder:
                save_checkpoint(
                    Path(folder) / CHECKPOINT_FILE,
                    model,
                    epoch=epoch,
                    labels=list(settings.data.labels),
                    pretrained=pretrained,
                    metrics=metrics,
                    optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(),
                )
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
    finally:
        writer.close()


def weight_overrides(model: str, weights: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The weight sources that apply to this model's branches (a video model has no audio weights)."""
    valid = set(override_keys(model_config(model)))
    return {key: value for key, value in weights if key in valid}


def modalities_of(model) -> tuple[str, ...]:
    return tuple(key for key in ("video", "audio") if key in model.input_keys)


def log_tensorboard(writer, metrics: dict, confusion, labels, epoch: int) -> None:
    for key in ("train_loss", "val_loss"):
        writer.add_scalar(f"loss/{key}", metrics[key], epoch)
    for key in ("train_acc", "val_acc", "val_f1", "val_uar"):
        writer.add_scalar(f"metrics/{key}", metrics[key], epoch)
    writer.add_scalar("lr", metrics["lr"], epoch)
    writer.add_figure("val/confusion_matrix", confusion_figure(confusion, labels), epoch)  # closes the figure
    writer.flush()


def confusion_figure(confusion, labels):
    """The confusion matrix (rows true, columns predicted) normalised per true class, with the
    clip counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(confusion)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(1.0 + 0.6 * len(labels), 0.8 + 0.6 * len(labels)))
    axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(counts):
        axes.text(column, row, str(count), ha="center", va="center", color="white" if rates[row, column] > 0.6 else "black")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    figure.tight_layout()
    return figure

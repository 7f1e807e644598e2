"""The function trainable: one trial = build loaders and model from the config, train, report.

The only module that talks to Ray's report and checkpoint API. Everything it trains with
(datasets, models, optimisation, the loop) lives in layers below and knows nothing of Ray.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray
import torch
from ray import tune
from torch import nn

from msa.data.dataset import ClipDataset, make_loader
from msa.data.labels import LabelSet
from msa.data.transforms import FrameAugment
from msa.features import FeatureTable, PrefixCachedModel, cache_plan, feature_key
from msa.models import backbone_branches, create_model, model_config
from msa.train import (
    OptimConfig,
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
from msa.weights import WeightsBundle

CHECKPOINT_FILE = "checkpoint.pt"
TENSORBOARD_DIR = "tensorboard"  # inside the trial folder; synced with each checkpoint
MAX_LOADER_WORKERS = 4
FEATURE_BATCH = {"cuda": 32, "cpu": 8}  # clips per batch when computing cached features
RUNG_SCORE = "rung_score"  # what ASHA ranks trials by at its rungs
# Test hook: with MSA_FAIL_AT_EPOCH=K, the first attempt of every trial raises at epoch K (the
# marker in the trial's working folder tells a retry from a first attempt).
FAIL_AT_EPOCH_ENV = "MSA_FAIL_AT_EPOCH"
FAILED_ONCE_MARKER = ".msa_failed_once"
TIE_BREAK = 1e-4  # weight of val_loss in the rung score: below 1/N accuracy for val sets of N < ~2000 clips


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a search shares, passed once through tune.with_parameters."""

    data: TrialData
    max_epochs: int
    seed: int = 0
    smoke_test: bool = False
    threads: int = 1  # the CPUs Ray gives each trial
    weights: dict[str, WeightsBundle] = field(default_factory=dict)  # branch -> backbone resolved by the driver; others random
    feature_cache: bool = True  # serve frozen prefixes from msa.features' cache
    progress: bool = True  # progress bars while computing features
    metric: str = "val_acc"  # the search metric and its mode, for the rung score
    mode: str = "max"


def rung_score(metrics: dict, metric: str, mode: str) -> float:
    """The search metric with ties broken by validation loss, for ASHA's rungs.

    Accuracy on a few dozen validation clips moves in steps of 1/N, so trials tie often, and
    ASHA promotes every trial that ties its rung's cut-off instead of only the best third.
    The loss term is too small to reorder two different accuracies."""
    value = metrics[metric]
    if metric.endswith("_loss"):
        return value  # continuous: no ties to break
    return value - TIE_BREAK * metrics["val_loss"] if mode == "max" else value + TIE_BREAK * metrics["val_loss"]


@dataclass
class TrialRun:
    """Everything one trial trains with, built from its config; no Ray in here."""

    model: nn.Module  # the EmotionModel: what checkpoints hold
    net: nn.Module  # what the loop trains: the model, fed from cached features where it can be
    loaders: dict
    optim: OptimConfig
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: Precision
    pretrained: dict[str, dict]  # branch -> {loaded, source, sha256}
    cache_plan: dict[str, str]  # branch -> "cached" or why not
    feature_seconds: float  # spent computing cached features (0 when every entry existed)
    clips_prepared: int  # clips this trial decoded because its node's cache lacked them
    features_computed: int  # feature entries this trial computed (not found in its node's cache)
    num_classes: int


def loader_workers(device: torch.device, cpus: int) -> int:
    """On a GPU, loader processes keep it fed (reading and augmenting while it computes), using
    the trial's CPUs but one. On the CPU they would compete with the model for the same cores
    and add a process's memory per trial, so the main process loads (memory-mapped: cheap)."""
    if device.type != "cuda":
        return 0
    return min(MAX_LOADER_WORKERS, max(0, cpus - 1))


def build_loaders(
    settings: TrialSettings, hp: TrialHyperparameters, model: nn.Module, device, tables: dict[str, FeatureTable]
) -> dict:
    label_set = LabelSet("trial", settings.data.labels)
    raw = tuple(modality for modality in modalities_of(model) if modality not in tables)
    arrays = {feature_key(name): table.load for name, table in tables.items()}
    workers = loader_workers(device, settings.threads)
    loaders = {}
    for part in ("train", "val"):
        augment = hp.video_augment and part == "train" and "video" in raw
        dataset = ClipDataset(
            settings.data.clips(part), label_set, raw, arrays=arrays, transform=FrameAugment() if augment else None
        )
        loaders[part] = make_loader(
            dataset,
            batch_size=hp.batch_size,
            shuffle=part == "train",
            seed=settings.seed,
            num_workers=workers,
            pin_memory=device.type == "cuda",
        )
    return loaders


def compute_features(
    model: nn.Module, plan: dict[str, str], settings: TrialSettings, device
) -> tuple[dict[str, FeatureTable], int]:
    """The feature table of every cached branch, with the entries of the train and val clips
    computed if another trial (or msa.tune.cluster) has not already -> (tables, entries computed)."""
    clips = settings.data.clips("train", "val")
    tables, computed = {}, 0
    for name, how in plan.items():
        if how == "cached":
            branch = model.branches[name]
            tables[name] = FeatureTable.for_branch(branch, settings.data.node_cache())
            computed += tables[name].compute(branch, clips, batch_size=FEATURE_BATCH[device.type], progress=settings.progress)
    return tables, computed


def build_model(name: str, overrides: dict, settings: TrialSettings, device: torch.device) -> tuple[nn.Module, dict]:
    """A named model with the search's weights -> (model on ``device``, what was loaded per branch).

    The weights are the driver's, written into this node's cache on first use, so every trial
    on every node loads the same bytes. Seeded, so frozen layers without pretrained weights are
    the same in every trial of a search (the trunk is built before the layers the space sizes)
    and one feature table serves them all."""
    seed_everything(settings.seed)
    config = model_config(name, num_classes=len(settings.data.labels), **overrides)
    bundles = {branch: settings.weights[branch] for branch in backbone_branches(config) if branch in settings.weights}
    files = {branch: bundle.materialize(settings.data.node_cache()) for branch, bundle in bundles.items()}
    sources = {f"{branch}_weights": bundle.source for branch, bundle in bundles.items()}  # recorded in checkpoints
    model, pretrained = create_model(config, config.num_classes, weights=files, **sources)
    return prepare_model(model, device), pretrained


def setup_trial(config: dict, settings: TrialSettings, device: torch.device) -> TrialRun:
    """Model, cached features, loaders, optimiser and schedule for one trial's config."""
    clips_prepared = settings.data.ensure_here(("train", "val"), workers=settings.threads, progress=settings.progress)
    hp = TrialHyperparameters.from_config(config)
    num_classes = len(settings.data.labels)
    model, pretrained = build_model(hp.model, hp.overrides(settings.smoke_test), settings, device)
    plan = cache_plan(model, augmented=("video",) if hp.video_augment else (), enabled=settings.feature_cache)
    started = time.perf_counter()
    tables, features_computed = compute_features(model, plan, settings, device)
    feature_seconds = time.perf_counter() - started
    loaders = build_loaders(settings, hp, model, device, tables)
    net = PrefixCachedModel(model, tables) if tables else model
    optim = hp.optim_config(steps_per_epoch=len(loaders["train"]))
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, total_steps=len(loaders["train"]) * settings.max_epochs)
    return TrialRun(
        model, net, loaders, optim, optimizer, scheduler, Precision(device), pretrained, plan, feature_seconds,
        clips_prepared, features_computed, num_classes,
    )


def run_epoch(run: TrialRun, epoch: int, seed: int) -> tuple[dict, list]:
    """Train one epoch and validate -> (metrics, val confusion matrix or None).

    Each epoch's shuffle, dropout and augmentation depend on (seed, epoch) alone, so a trial
    resumed from a checkpoint repeats exactly what the uninterrupted trial would have done."""
    seed_everything(seed + epoch)
    run.loaders["train"].generator.manual_seed(seed + epoch)
    train = train_one_epoch(
        run.net, run.loaders["train"], run.optimizer, run.scheduler,
        label_smoothing=run.optim.label_smoothing, grad_clip=run.optim.grad_clip, precision=run.precision,
    )
    if math.isfinite(train["train_loss"]):
        val = evaluate(run.net, run.loaders["val"], run.num_classes, precision=run.precision)
    else:  # the weights are garbage: nothing to validate
        val = {key: math.nan for key in ("loss", "accuracy", "f1_macro", "uar")} | {"confusion_matrix": None}
    metrics = {
        "epoch": epoch,
        **train,
        "val_loss": val["loss"],
        "val_acc": val["accuracy"],
        "val_f1": val["f1_macro"],
        "val_uar": val["uar"],
    }
    return metrics, val["confusion_matrix"]


def train_trial(config: dict, settings: TrialSettings) -> None:
    """Train one configuration for up to ``settings.max_epochs`` epochs, reporting each epoch."""
    from torch.utils.tensorboard import SummaryWriter

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not a line per checkpoint
    torch.set_num_threads(settings.threads)
    device = default_device()  # the GPU Ray assigned (it sets CUDA_VISIBLE_DEVICES), else the CPU
    run = setup_trial(config, settings, device)
    for name, how in run.cache_plan.items():
        print(f"{name} branch: frozen-prefix features {how}")
    pretrained = run.pretrained

    first_epoch = 1
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(Path(folder) / CHECKPOINT_FILE, map_location=device)
        run.model.load_state_dict(state["model_state"])
        run.optimizer.load_state_dict(state["extra"]["optimizer"])
        run.scheduler.load_state_dict(state["extra"]["scheduler"])
        first_epoch = state["extra"]["epoch"] + 1
        pretrained = state["extra"]["pretrained"]

    writer = SummaryWriter(TENSORBOARD_DIR)
    try:
        for epoch in range(first_epoch, settings.max_epochs + 1):
            fail_if_asked(epoch)
            started = time.perf_counter()
            metrics, confusion = run_epoch(run, epoch, settings.seed)
            metrics.update(
                epoch_seconds=time.perf_counter() - started,
                feature_seconds=run.feature_seconds if epoch == first_epoch else 0.0,
                clips_prepared=run.clips_prepared if epoch == first_epoch else 0,
                features_computed=run.features_computed if epoch == first_epoch else 0,
                **pretrained_metrics(pretrained),
                cached_video=run.cache_plan.get("video") == "cached",
                cached_audio=run.cache_plan.get("audio") == "cached",
                **placement(device),
            )
            metrics[RUNG_SCORE] = rung_score(metrics, settings.metric, settings.mode)
            problem = non_finite(metrics, epoch)
            if problem:
                # Stop here, reported, without a checkpoint of diverged weights: raising instead
                # would make Ray retry the trial into the same divergence.
                print(f"stopping the trial: {problem}")
                tune.report({**metrics, "stop_reason": problem})
                return
            log_tensorboard(writer, metrics, confusion, settings.data.labels, epoch)
            with tempfile.TemporaryDirectory() as folder:
                save_checkpoint(
                    Path(folder) / CHECKPOINT_FILE,
                    run.model,
                    epoch=epoch,
                    labels=list(settings.data.labels),
                    pretrained=pretrained,
                    metrics=metrics,
                    optimizer=run.optimizer.state_dict(),
                    scheduler=run.scheduler.state_dict(),
                )
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
    finally:
        writer.close()


def placement(device: torch.device) -> dict:
    """Where the trial runs: Ray node, the GPUs Ray gave it, and the device torch uses (the CPU
    when the node's GPUs are not visible to torch)."""
    return {
        "node_id": ray.get_runtime_context().get_node_id() if ray.is_initialized() else "",
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "device": device.type,
    }


def non_finite(metrics: dict, epoch: int) -> str | None:
    """Why the epoch's losses make the trial stop, or None."""
    for key, name in (("train_loss", "training"), ("val_loss", "validation")):
        if not math.isfinite(metrics[key]):
            return f"non-finite {name} loss ({metrics[key]}) in epoch {epoch}"
    return None


def fail_if_asked(epoch: int) -> None:
    """The MSA_FAIL_AT_EPOCH test hook (see FAIL_AT_EPOCH_ENV)."""
    fail_at = os.environ.get(FAIL_AT_EPOCH_ENV)
    if fail_at and epoch == int(fail_at) and not Path(FAILED_ONCE_MARKER).exists():
        Path(FAILED_ONCE_MARKER).write_text(f"failed at epoch {epoch}\n")
        raise RuntimeError(f"{FAIL_AT_EPOCH_ENV}={fail_at}: injected failure at epoch {epoch} (first attempt)")


def pretrained_metrics(pretrained: dict[str, dict]) -> dict:
    """pretrained_video / pretrained_audio (loaded or not) and the sha256 of what was loaded
    ("" where nothing was), so two searches' trials can be compared honestly."""
    metrics = {}
    for branch, record in pretrained.items():
        metrics[f"pretrained_{branch}"] = bool(record["loaded"])
        metrics[f"pretrained_{branch}_sha256"] = record["sha256"] or ""
    return metrics


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

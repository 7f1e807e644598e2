"""One trial without Ray: build the model, cached features, loaders and optimiser from a
trial's config, and train and validate one epoch at a time.

msa.tune.trainable is the thin Ray adapter around this (restore, loop, report, checkpoint), in
the shape of Ray's own ``train_cifar(config)`` example; a benchmark or a test calls these
functions directly:

    run = setup_trial(config, settings, device)
    for epoch in range(1, settings.max_epochs + 1):
        metrics, confusion = run_epoch(run, epoch, settings.seed)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from msa.data.dataset import ClipDataset, make_loader
from msa.data.experiment import TrialData
from msa.data.labels import LabelSet
from msa.data.transforms import FrameAugment, WaveAugment
from msa.experiment_dir import DEFAULT_METRIC, DEFAULT_MODE
from msa.features import DEFAULT_ENTRY_DTYPE, FeatureTable, PrefixCachedModel, cache_plan, feature_key
from msa.models import backbone_branches, create_model, model_config
from msa.train import (
    OptimConfig,
    Precision,
    apply_optim_config,
    build_optimizer,
    build_scheduler,
    class_weights,
    evaluate,
    place_model,
    restore_state,
    seed_everything,
    train_one_epoch,
)
from msa.trial.hyperparameters import TrialHyperparameters
from msa.weights import WeightsBundle

MAX_LOADER_WORKERS = 4
FEATURE_BATCH = {"cuda": 32, "cpu": 8}  # clips per batch when computing cached features
FAILED_ONCE_MARKER = ".msa_failed_once"  # in the trial's working folder, after fail_at_epoch fired


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a search shares (msa.tune passes it to every trial once, through Ray's object store)."""

    data: TrialData
    max_epochs: int
    seed: int = 0
    smoke_test: bool = False
    threads: int = 1  # the CPUs Ray gives each trial
    # branch -> the backbone the driver resolved; other branches start from random weights
    weights: dict[str, WeightsBundle] = field(default_factory=dict)
    feature_cache: bool = True  # serve frozen prefixes from msa.features' cache
    audio_features: str = DEFAULT_ENTRY_DTYPE  # entry dtype of the audio branch's feature tables
    progress: bool = True  # progress bars while computing features
    metric: str = DEFAULT_METRIC  # the search metric and its mode, for the rung score
    mode: str = DEFAULT_MODE
    # Time the model on one window (latency_ms, msa.trial.costs): a search that trades latency
    # (--objectives ...,latency_ms); it runs the model a few times, seconds for video on a CPU.
    measure_latency: bool = False
    # Test hook: the first attempt of every trial raises at this epoch (a marker file in the
    # trial's working folder tells a retry from a first attempt). None in every real search.
    fail_at_epoch: int | None = None


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
    loss_weights: torch.Tensor | None = None  # per class, with class weighting

    def close(self) -> None:
        """End the loaders' worker processes and pin-memory threads now: left to interpreter
        exit, a thread that still holds tensors can abort the worker process (SIGABRT)."""
        for loader in self.loaders.values():
            iterator = getattr(loader, "_iterator", None)  # persistent workers keep theirs
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()
            loader._iterator = None
        self.loaders.clear()


def loader_workers(device: torch.device, cpus: int) -> int:
    """On a GPU, loader processes keep it fed (reading and augmenting while it computes), using
    the trial's CPUs but one. On the CPU they would compete with the model for the same cores
    and add a process's memory per trial, so the main process loads (memory-mapped: cheap)."""
    if device.type != "cuda":
        return 0
    return min(MAX_LOADER_WORKERS, max(0, cpus - 1))


def build_loaders(
    settings: TrialSettings,
    hp: TrialHyperparameters,
    model: nn.Module,
    device,
    tables: dict[str, FeatureTable],
) -> dict:
    label_set = LabelSet("trial", settings.data.labels)
    raw = tuple(modality for modality in modalities_of(model) if modality not in tables)
    arrays = {feature_key(name): table.load for name, table in tables.items()}
    workers = loader_workers(device, settings.threads)
    loaders = {}
    for part in ("train", "val"):
        transforms = []
        if part == "train" and hp.video_augment and "video" in raw:
            transforms.append(FrameAugment())
        if part == "train" and hp.audio_augment and "audio" in raw:
            transforms.append(WaveAugment(hp.speed_perturb, hp.noise_snr_db))
        dataset = ClipDataset(
            settings.data.clips(part), label_set, raw, arrays=arrays, transform=compose(transforms)
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


def compose(transforms: list):
    """One transform applying ``transforms`` in order (None when there are none)."""
    if not transforms:
        return None
    if len(transforms) == 1:
        return transforms[0]

    def apply(sample: dict) -> dict:
        for transform in transforms:
            sample = transform(sample)
        return sample

    return apply


def feature_table(settings: TrialSettings, name: str, branch: nn.Module) -> FeatureTable:
    """The table on this node that serves branch ``name``'s frozen prefix: the one trials read
    and msa.tune.cluster precomputes. --audio-features sets the audio branch's entry dtype;
    video tables stay float32."""
    dtype = settings.audio_features if name == "audio" else DEFAULT_ENTRY_DTYPE
    return FeatureTable.for_branch(branch, settings.data.node_cache(), dtype)


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
            tables[name] = feature_table(settings, name, branch)
            computed += tables[name].compute(
                branch, clips, batch_size=FEATURE_BATCH[device.type], progress=settings.progress
            )
    return tables, computed


def build_model(
    name: str, overrides: dict, settings: TrialSettings, device: torch.device
) -> tuple[nn.Module, dict]:
    """A named model with the search's weights -> (model on ``device``, what was loaded per branch).

    The weights are the driver's, written into this node's cache on first use, so every trial
    on every node loads the same bytes. Seeded, so frozen layers without pretrained weights are
    the same in every trial of a search (the trunk is built before the layers the space sizes)
    and one feature table serves them all."""
    seed_everything(settings.seed)
    config = model_config(name, num_classes=len(settings.data.labels), **overrides)
    bundles = {
        branch: settings.weights[branch] for branch in backbone_branches(config) if branch in settings.weights
    }
    files = {branch: bundle.materialize(settings.data.node_cache()) for branch, bundle in bundles.items()}
    sources = {f"{branch}_weights": bundle.source for branch, bundle in bundles.items()}  # for checkpoints
    model, pretrained = create_model(config, config.num_classes, weights=files, **sources)
    return place_model(model, device), pretrained


def setup_trial(config: dict, settings: TrialSettings, device: torch.device) -> TrialRun:
    """Model, cached features, loaders, optimiser and schedule for one trial's config."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # the previous trial in this process had its own
    clips_prepared = settings.data.ensure_here(
        ("train", "val"), workers=settings.threads, progress=settings.progress
    )
    hp = TrialHyperparameters.from_config(config)
    num_classes = len(settings.data.labels)
    model, pretrained = build_model(hp.model, hp.overrides(settings.smoke_test), settings, device)
    augmented = ("video",) * hp.video_augment + ("audio",) * hp.audio_augment
    plan = cache_plan(model, augmented=augmented, enabled=settings.feature_cache)
    started = time.perf_counter()
    tables, features_computed = compute_features(model, plan, settings, device)
    feature_seconds = time.perf_counter() - started
    loaders = build_loaders(settings, hp, model, device, tables)
    net = PrefixCachedModel(model, tables) if tables else model
    optim = hp.optim_config(steps_per_epoch=len(loaders["train"]))
    loss_weights = None
    if optim.class_weighting:
        train_set = loaders["train"].dataset
        loss_weights = class_weights([train_set.label(i) for i in range(len(train_set))], num_classes)
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, total_steps=len(loaders["train"]) * settings.max_epochs)
    return TrialRun(
        model,
        net,
        loaders,
        optim,
        optimizer,
        scheduler,
        Precision(device),
        pretrained,
        plan,
        feature_seconds,
        clips_prepared,
        features_computed,
        num_classes,
        loss_weights,
    )


def restore_run(run: TrialRun, state: dict) -> int:
    """Continue ``run`` from a checkpoint's state (msa.train.load_checkpoint) -> the next epoch.

    Weights, optimiser moments and the schedule's step come from the checkpoint; learning
    rates and weight decay are the run's own config (apply_optim_config), and dropout is the
    run's model's. So resuming a trial repeats what it would have done, and a population
    member that takes over another's checkpoint (PBT's exploit) continues from the donor's
    state with its own explored hyperparameters."""
    restore_state(run.model, state)
    run.optimizer.load_state_dict(state["extra"]["optimizer"])
    run.scheduler.load_state_dict(state["extra"]["scheduler"])
    apply_optim_config(run.optimizer, run.scheduler, run.optim)
    return state["extra"]["epoch"] + 1


def run_epoch(run: TrialRun, epoch: int, seed: int) -> tuple[dict, list]:
    """Train one epoch and validate -> (metrics, val confusion matrix or None).

    Each epoch's shuffle, dropout and augmentation depend on (seed, epoch) alone, so a trial
    resumed from a checkpoint repeats exactly what the uninterrupted trial would have done."""
    seed_everything(seed + epoch)
    run.loaders["train"].generator.manual_seed(seed + epoch)
    train = train_one_epoch(
        run.net,
        run.loaders["train"],
        run.optimizer,
        run.scheduler,
        label_smoothing=run.optim.label_smoothing,
        mixup_alpha=run.optim.mixup_alpha,
        loss_weights=run.loss_weights,
        grad_clip=run.optim.grad_clip,
        precision=run.precision,
    )
    if math.isfinite(train["train_loss"]):
        val = evaluate(run.net, run.loaders["val"], run.num_classes, precision=run.precision)
    else:  # the weights are garbage: nothing to validate
        val = {key: math.nan for key in ("loss", "accuracy", "f1_macro", "uar")} | {"confusion_matrix": None}
    metrics = {
        "epoch": epoch,
        **train,
        "peak_gpu_memory_mb": peak_gpu_memory_mb(run.model),
        "val_loss": val["loss"],
        "val_acc": val["accuracy"],
        "val_f1": val["f1_macro"],
        "val_uar": val["uar"],
    }
    return metrics, val["confusion_matrix"]


def peak_gpu_memory_mb(model: nn.Module) -> float:
    """The most GPU memory this trial's tensors have held so far, in MiB (0 on a CPU); setup_trial
    resets the count, as trials reuse processes."""
    device = next(model.parameters()).device
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def non_finite(metrics: dict, epoch: int) -> str | None:
    """Why the epoch's losses make the trial stop, or None."""
    for key, name in (("train_loss", "training"), ("val_loss", "validation")):
        if not math.isfinite(metrics[key]):
            return f"non-finite {name} loss ({metrics[key]}) in epoch {epoch}"
    return None


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


def fail_if_asked(settings: TrialSettings, epoch: int) -> None:
    """The fail_at_epoch test hook (see TrialSettings)."""
    if settings.fail_at_epoch == epoch and not Path(FAILED_ONCE_MARKER).exists():
        Path(FAILED_ONCE_MARKER).write_text(f"failed at epoch {epoch}\n")
        raise RuntimeError(f"fail_at_epoch={epoch}: injected failure at epoch {epoch} (first attempt)")

"""The function trainable: Ray's side of one trial (restore, loop, report, checkpoint).

The only module that talks to Ray's report and checkpoint API. The trial itself (model,
features, loaders, optimiser, one epoch) is msa.trial, which knows nothing of Ray; this is the
shape of Ray's own ``train_cifar(config)`` example.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import tempfile
import threading
import time
import traceback
from pathlib import Path

import ray
import torch
from ray import tune
from torch.utils.tensorboard import SummaryWriter

from msa.experiment_dir import (
    CHECKPOINT_FILE,
    COPIED_FROM,
    RUNG_SCORE,
    TENSORBOARD_DIR,
    TIE_METRIC,
    can_be_best,
    rung_score,
)
from msa.models import loaded_record
from msa.train import default_device, load_checkpoint, save_checkpoint
from msa.trial import (
    TrialSettings,
    fail_if_asked,
    non_finite,
    pretrained_metrics,
    restore_run,
    run_epoch,
    setup_trial,
)
from msa.trial.costs import model_costs
from msa.trial.tensorboard import log_epoch

# Ray runs the trial in a daemon thread and, once it stops the trial (ASHA, the last epoch, an
# error), exits the worker process without waiting for that thread: Ray wakes the thread from
# tune.report with SystemExit and the thread then frees the trial's tensors while the
# interpreter shuts down. A thread cut off by the shutdown inside a tensor's destructor aborts
# the process (SIGABRT, a C++ stack trace). So the process waits at exit (atexit runs before
# daemon threads are cut off) until the trial has let go of its tensors.
TEARDOWN_TIMEOUT = 30.0  # s: never hang a worker's exit longer than this
_tensors_released = threading.Event()
_tensors_released.set()  # no trial yet
atexit.register(_tensors_released.wait, TEARDOWN_TIMEOUT)


def train_trial(config: dict, settings: TrialSettings) -> None:
    """Train one configuration for up to ``settings.max_epochs`` epochs, reporting each epoch.

    Whatever ends the trial (its own error, or Ray's SystemExit from tune.report) leaves with
    the frames' locals cleared, the traceback's text kept for Ray's report; see
    TEARDOWN_TIMEOUT for why."""
    _tensors_released.clear()
    try:
        # None: a key this member's space does not have (population searches share one key set).
        _train({key: value for key, value in config.items() if value is not None}, settings)
    except BaseException as error:
        traceback.clear_frames(error.__traceback__)  # _train's frame has ended: its tensors go now
        raise
    finally:
        _tensors_released.set()


def _train(config: dict, settings: TrialSettings) -> None:
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not a line per checkpoint
    torch.set_num_threads(settings.threads)
    device = default_device()  # the GPU Ray assigned (it sets CUDA_VISIBLE_DEVICES), else the CPU
    run = setup_trial(config, settings, device)
    # Once per trial: none depends on the weights (msa.trial.costs says why not per epoch).
    costs = model_costs(run.model, settings.data.location.params, device, settings.measure_latency)
    for name, how in run.cache_plan.items():
        print(f"{name} branch: frozen-prefix features {how}")
    pretrained = run.pretrained

    first_epoch, copied_from = 1, ""
    # The scores of the epochs that made the weights: whether a checkpoint can be the best one.
    earlier: list[dict] = []
    trial_id = tune.get_context().get_trial_id() or ""
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(Path(folder) / CHECKPOINT_FILE, map_location=device)
        first_epoch = restore_run(run, state)
        earlier = state["extra"].get("earlier_scores", [])
        pretrained = {
            branch: loaded_record(stored) for branch, stored in state["extra"]["pretrained"].items()
        }
        # Another trial's checkpoint: a population-based scheduler's exploit (msa.tune.population).
        saved_by = state["extra"].get("trial_id", trial_id)
        copied_from = saved_by if saved_by != trial_id else ""

    writer = SummaryWriter(TENSORBOARD_DIR)
    try:
        for epoch in range(first_epoch, settings.max_epochs + 1):
            fail_if_asked(settings, epoch)
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
                **costs,
                # Whose checkpoint this epoch continued (PBT / PB2 exploits), "" for its own.
                **{COPIED_FROM: copied_from if epoch == first_epoch else ""},
            )
            metrics[RUNG_SCORE] = rung_score(metrics, settings.metric, settings.mode)
            problem = non_finite(metrics, epoch)
            if problem:
                # Stop here, reported, without a checkpoint of diverged weights: raising instead
                # would make Ray retry the trial into the same divergence.
                print(f"stopping the trial: {problem}")
                tune.report({**metrics, "stop_reason": problem})
                return
            log_epoch(writer, metrics, confusion, settings.data.labels, epoch)
            # Without the frozen weights (45 MB of ResNet-18 beside a 20 KB head) unless it may be
            # the trial's best: only a best checkpoint is ever evaluated or rebuilt alone.
            trainable_only = not can_be_best(metrics, earlier, settings.metric, settings.mode)
            earlier.append({key: metrics[key] for key in (RUNG_SCORE, settings.metric, TIE_METRIC)})
            with tempfile.TemporaryDirectory() as folder:
                save_checkpoint(
                    Path(folder) / CHECKPOINT_FILE,
                    run.model,
                    epoch=epoch,
                    labels=list(settings.data.labels),
                    # How its clips were decoded (frames, size, crop): what prediction must repeat.
                    preprocessing=dataclasses.asdict(settings.data.location.params),
                    pretrained=pretrained,
                    metrics=metrics,
                    optimizer=run.optimizer.state_dict(),
                    scheduler=run.scheduler.state_dict(),
                    trial_id=trial_id,
                    earlier_scores=earlier,
                    durable=False,  # Ray copies the folder to the trial's storage, then deletes it
                    trainable_only=trainable_only,
                )
                # s since 1970, to the microsecond (Ray's timestamp has whole seconds)
                metrics["reported_at"] = time.time()
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
    finally:
        writer.close()  # joins its event-writer thread
        run.close()  # loader workers and their threads end here, not at interpreter exit


def placement(device: torch.device) -> dict:
    """Where the trial runs: Ray node, the GPUs Ray gave it, and the device torch uses (the CPU
    when the node's GPUs are not visible to torch)."""
    return {
        "node_id": ray.get_runtime_context().get_node_id() if ray.is_initialized() else "",
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "device": device.type,
    }

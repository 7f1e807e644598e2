"""One training epoch and one evaluation pass. No Ray here: the tune layer calls these.

Batches are dicts as msa.data's collate makes them; the model's `input_keys` are taken from
each batch and the target from "label" (B,).
"""

import time

import torch
import torch.nn.functional as F
from torch import nn

from msa.train.metrics import classification_metrics, confusion_matrix
from msa.train.runtime import Precision, batch_inputs


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _new_layer_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the first group not named as backbone (see msa.train.optim)."""
    groups = [g for g in optimizer.param_groups if not g.get("name", "").startswith("backbone")]
    return (groups or optimizer.param_groups)[0]["lr"]


def train_one_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    label_smoothing: float = 0.0,
    grad_clip: float = 0.0,
    precision: Precision | None = None,
) -> dict[str, float]:
    """Train on every batch of `loader` once; the scheduler steps after every optimiser step.

    Returns {"train_loss": mean cross-entropy (with label smoothing) per clip,
             "train_acc": fraction of clips whose argmax is the label,
             "lr": the new layers' learning rate after the last step,
             "input_wait_seconds": time spent waiting for the loader's next batch: on a GPU, a
             large share of the epoch means the input pipeline starves it}.
    grad_clip: max global gradient norm, 0 for none.
    """
    device = _device_of(model)
    precision = precision or Precision(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    # Summed on the device and read once at the end: a .item() per step would stall a GPU.
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen, input_wait = 0, 0.0
    batches = iter(loader)
    while True:
        waited = time.perf_counter()
        batch = next(batches, None)
        input_wait += time.perf_counter() - waited
        if batch is None:
            break
        inputs = batch_inputs(batch, model.input_keys, device)
        labels = batch["label"].to(device, non_blocking=True)
        with precision.autocast():
            logits = model(**inputs)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)

        optimizer.zero_grad(set_to_none=True)
        precision.scaler.scale(loss).backward()
        if grad_clip > 0:
            precision.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(trainable, grad_clip)
        precision.scaler.step(optimizer)
        precision.scaler.update()
        if scheduler is not None:
            scheduler.step()

        loss_sum += loss.detach() * len(labels)
        correct += (logits.argmax(dim=-1) == labels).sum()
        seen += len(labels)
    if not seen:
        raise ValueError("train_one_epoch got an empty loader")
    return {
        "train_loss": loss_sum.item() / seen,
        "train_acc": correct.item() / seen,
        "lr": _new_layer_lr(optimizer),
        "input_wait_seconds": input_wait,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module, loader, num_classes: int, *, precision: Precision | None = None
) -> dict[str, object]:
    """Evaluate on every batch of `loader`.

    Returns {"loss": mean plain cross-entropy per clip, "accuracy", "f1_macro", "uar" (defined in
    msa.train.metrics), "confusion_matrix": list of K lists of int, rows = true, cols = predicted}.
    """
    device = _device_of(model)
    precision = precision or Precision(device)
    model.eval()
    loss_sum, labels_all, predictions_all = torch.zeros((), device=device), [], []
    for batch in loader:
        inputs = batch_inputs(batch, model.input_keys, device)
        labels = batch["label"].to(device, non_blocking=True)
        with precision.autocast():
            logits = model(**inputs)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        labels_all.append(labels)
        predictions_all.append(logits.argmax(dim=-1))
    if not labels_all:
        raise ValueError("evaluate got an empty loader")
    labels = torch.cat(labels_all).cpu().numpy()
    matrix = confusion_matrix(labels, torch.cat(predictions_all).cpu().numpy(), num_classes)
    return {
        "loss": loss_sum.item() / len(labels),
        **classification_metrics(matrix),
        "confusion_matrix": matrix.tolist(),
    }

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


def class_weights(labels, num_classes: int) -> torch.Tensor:
    """Per-class loss weights (K,): the inverse of each class's share of ``labels``, scaled so
    that the weights of the clips average 1 (a class without clips gets 0)."""
    counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long), minlength=num_classes).float()
    weights = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))
    return weights * counts.sum() / (weights * counts).sum()


def mix_inputs(
    inputs: dict[str, torch.Tensor], order: torch.Tensor, weight: float
) -> dict[str, torch.Tensor]:
    """Mixup of a batch's inputs with the batch reordered by ``order``: every floating tensor
    becomes weight x itself + (1 - weight) x its reordering, every mask the union of both (real
    data first, so the longer clip's length). Integer inputs (video frames) cannot be mixed."""
    mixed = {}
    for key, value in inputs.items():
        if value.dtype == torch.bool:
            mixed[key] = value | value[order]
        elif value.is_floating_point():
            mixed[key] = weight * value + (1.0 - weight) * value[order]
        else:
            raise ValueError(f"mixup needs floating-point inputs; {key} is {value.dtype}")
    return mixed


def train_one_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    label_smoothing: float = 0.0,
    mixup_alpha: float = 0.0,
    loss_weights: torch.Tensor | None = None,
    grad_clip: float = 0.0,
    precision: Precision | None = None,
) -> dict[str, float]:
    """Train on every batch of `loader` once; the scheduler steps after every optimiser step.

    mixup_alpha > 0 mixes each batch with a shuffled copy of itself (``mix_inputs``), the weight
    drawn from Beta(alpha, alpha) with torch's generator, and the loss is the same mix of the
    two labels' losses. loss_weights (K,): per-class weights of the cross-entropy.

    Returns {"train_loss": mean cross-entropy (with label smoothing, mixup and weights) per clip,
             "train_acc": fraction of clips whose argmax is the label (the first label under mixup),
             "lr": the new layers' learning rate after the last step,
             "input_wait_seconds": time spent waiting for the loader's next batch: on a GPU, a
             large share of the epoch means the input pipeline starves it}.
    grad_clip: max global gradient norm, 0 for none.
    """
    device = _device_of(model)
    precision = precision or Precision(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if loss_weights is not None:
        loss_weights = loss_weights.to(device)
    beta = torch.distributions.Beta(mixup_alpha, mixup_alpha) if mixup_alpha > 0 else None
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
        weight, order = 1.0, None
        if beta is not None:
            weight, order = float(beta.sample()), torch.randperm(len(labels)).to(device)
            inputs = mix_inputs(inputs, order, weight)
        with precision.autocast():
            logits = model(**inputs)
        loss = F.cross_entropy(logits.float(), labels, weight=loss_weights, label_smoothing=label_smoothing)
        if order is not None:
            other = F.cross_entropy(
                logits.float(), labels[order], weight=loss_weights, label_smoothing=label_smoothing
            )
            loss = weight * loss + (1.0 - weight) * other

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

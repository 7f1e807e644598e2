"""The final test evaluation of a search, without Ray: a checkpoint file evaluated once on the
test actors' clips (completing this node's cache with them first)."""

from __future__ import annotations

from pathlib import Path

import torch

from msa.data.dataset import ClipDataset, make_loader
from msa.data.experiment import TrialData
from msa.data.labels import LabelSet
from msa.train import Precision, default_device, evaluate, model_from_checkpoint, place_model
from msa.trial.trial import modalities_of

TEST_BATCH_SIZE = 8


def evaluate_test_actors(checkpoint_file: Path, data: TrialData, seed: int, threads: int) -> dict:
    """summary.json's ``test`` block: accuracy, macro-F1 and UAR of the checkpoint's model on
    the test part, the labels, the confusion matrix (rows true) and the device used."""
    torch.set_num_threads(threads)
    data.ensure_here(("test",), workers=threads)
    device = default_device()
    model, _ = model_from_checkpoint(checkpoint_file)
    model = place_model(model, device)
    dataset = ClipDataset(data.clips("test"), LabelSet("test", data.labels), modalities_of(model))
    loader = make_loader(
        dataset, batch_size=TEST_BATCH_SIZE, shuffle=False, seed=seed, pin_memory=device.type == "cuda"
    )
    metrics = evaluate(model, loader, len(data.labels), precision=Precision(device))
    return {
        "accuracy": metrics["accuracy"],
        "f1_macro": metrics["f1_macro"],
        "uar": metrics["uar"],
        "labels": list(data.labels),
        "confusion_matrix": [[int(x) for x in row] for row in metrics["confusion_matrix"]],
        "device": device.type,
    }

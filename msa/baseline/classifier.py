"""Multinomial logistic regression with an L2 penalty, in torch, and its selection on val.

The loss of weights W (D, K) and biases b (K,) on N standardised training rows is

    mean cross-entropy + ||W||^2 / (2 C N)

which is scikit-learn's ``LogisticRegression(C=C)`` objective divided by C N: C is the inverse
regularisation strength, and the bias is not penalised. It is minimised in float64, full
batch, by L-BFGS from zero weights, so a fit is deterministic.

``fit_and_score`` picks C from C_GRID by validation accuracy and scores that model on test:
nothing about the test rows (features or labels) reaches any choice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from msa.baseline.features import available_sets, feature_set
from msa.data.splits import PARTS
from msa.train.metrics import classification_metrics, confusion_matrix

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)  # inverse L2 strengths tried, strongest first
MAX_ITERATIONS = 500  # L-BFGS iterations per fit; a few hundred clips converge in far fewer
GRADIENT_TOLERANCE = 1e-8  # stop once every gradient entry is below this
LOSS_TOLERANCE = 1e-12  # or once the loss changes by less than this between iterations
SCALE_FLOOR = 1e-12  # feature units: a training column spread less than this counts as constant
# Torch threads for features and fits. A few hundred rows by a few hundred columns gain nothing
# from more, and on a busy machine threads waiting for each other made a fit 100x slower.
TORCH_THREADS = 1


class EmptyPartError(ValueError):
    """A part (train, val or test) without a clip of the label set: nothing to fit or score."""


@contextlib.contextmanager
def few_torch_threads() -> Iterator[None]:
    """Run torch on TORCH_THREADS threads, then restore the process's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class LogisticModel:
    """A fitted classifier: standardisation with the training rows' statistics, then a linear map."""

    mean: np.ndarray  # (D,) training rows' column means
    scale: np.ndarray  # (D,) training rows' column standard deviations, 1 for a constant column
    weight: np.ndarray  # (D, K)
    bias: np.ndarray  # (K,)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, K)."""
        return ((x - self.mean) / self.scale) @ self.weight + self.bias

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, D) -> int64 (N,) class indices."""
        return self.logits(x).argmax(axis=1)


def fit_logistic(x: np.ndarray, y: np.ndarray, num_classes: int, c: float) -> LogisticModel:
    """Fit on x float (N, D) with labels y int (N,) in 0..num_classes-1."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    # A column constant over train carries nothing to learn; dividing by 1 keeps it finite.
    scale = np.where(scale > SCALE_FLOOR, scale, 1.0)
    inputs = torch.from_numpy((x - mean) / scale)
    targets = torch.from_numpy(np.asarray(y, dtype=np.int64))
    weight = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    penalty = 1.0 / (2.0 * c * len(inputs))
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        max_iter=MAX_ITERATIONS,
        tolerance_grad=GRADIENT_TOLERANCE,
        tolerance_change=LOSS_TOLERANCE,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(inputs @ weight + bias, targets) + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    with few_torch_threads():
        optimizer.step(closure)  # one step runs L-BFGS to convergence (or MAX_ITERATIONS)
    return LogisticModel(mean, scale, weight.detach().numpy(), bias.detach().numpy())


def accuracy(model: LogisticModel, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(x) == y).mean())


def select_c(
    x: np.ndarray, y: np.ndarray, parts: dict[str, np.ndarray], num_classes: int
) -> tuple[LogisticModel, float, float]:
    """Fit on train with each C of C_GRID -> (the model with the best val accuracy, its C, that
    accuracy). Ties go to the smaller C: with a handful of val actors, the simpler model."""
    best = None
    for c in sorted(C_GRID):
        model = fit_logistic(x[parts["train"]], y[parts["train"]], num_classes, c)
        val_accuracy = accuracy(model, x[parts["val"]], y[parts["val"]])
        if best is None or val_accuracy > best[2]:
            best = (model, c, val_accuracy)
    return best


def fit_and_score(
    features: dict[str, np.ndarray], labels: np.ndarray, parts: dict[str, np.ndarray], num_classes: int
) -> dict[str, dict]:
    """Per feature set the features make (available_sets): choose C on val, score on test ->
    {"accuracy", "uar", "f1_macro", "confusion_matrix" (K x K, rows true), "val_accuracy", "c", "dims"}.

    ``features``: {"audio": (N, Da), "video": (N, Dv)}; ``labels``: int (N,); ``parts``:
    "train"/"val"/"test" -> integer indices into the N rows."""
    labels = np.asarray(labels, dtype=np.int64)
    parts = {part: np.asarray(parts[part], dtype=np.int64) for part in PARTS}
    for part in PARTS:
        if len(parts[part]) == 0:
            raise EmptyPartError(f"the baseline needs clips in train, val and test; the {part} part has none")
    results = {}
    for name in available_sets(features):
        x = feature_set(features, name)
        model, c, val_accuracy = select_c(x, labels, parts, num_classes)
        test = parts["test"]
        matrix = confusion_matrix(labels[test], model.predict(x[test]), num_classes)
        results[name] = {
            **classification_metrics(matrix),
            "confusion_matrix": matrix.tolist(),
            "val_accuracy": val_accuracy,
            "c": c,
            "dims": int(x.shape[1]),
        }
    return results

"""Classification metrics from a confusion matrix (rows = true class, columns = predicted).

accuracy  correct / all.
uar       unweighted average recall: the mean of TP_c / (TP_c + FN_c) over the classes present
          in the true labels. A class absent from the truth has no recall and is left out, so
          an evaluation split lacking a class is not penalised for it.
f1_macro  the mean of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c) over the classes present in the
          true labels or the predictions (sklearn's f1_score(average="macro") set). A class
          present but never predicted scores 0; so does a class predicted but absent from
          the truth, since every such prediction is a false positive.
"""

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts; y_true and y_pred are sequences of class indices in 0..K-1."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D and equally long; got {y_true.shape}, {y_pred.shape}"
        )
    for values in (y_true, y_pred):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"class indices must be in 0..{num_classes - 1}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def classification_metrics(matrix: np.ndarray) -> dict[str, float]:
    """accuracy, f1_macro and uar of a confusion matrix (see the module doc)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    total = matrix.sum()
    if total == 0:
        raise ValueError("metrics of an empty confusion matrix are undefined")
    tp = np.diag(matrix)
    true_count, pred_count = matrix.sum(axis=1), matrix.sum(axis=0)
    present = true_count > 0
    seen = present | (pred_count > 0)
    f1 = 2 * tp[seen] / (true_count[seen] + pred_count[seen])  # 2TP + FP + FN = true + predicted
    return {
        "accuracy": float(tp.sum() / total),
        "f1_macro": float(f1.mean()),
        "uar": float((tp[present] / true_count[present]).mean()),
    }

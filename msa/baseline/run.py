"""The baseline on an experiment's data: summary.json's "baseline" block, per split or per fold.

A block is ``{"audio": {...}, "video": {...}, "audiovisual": {...}, "seconds": float}``, each
feature set's entry as ``fit_and_score`` gives it. Clips whose emotion is not in the label set
are dropped, as ``ClipDataset`` drops them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from msa.baseline.classifier import EmptyPartError, few_torch_threads, fit_and_score
from msa.baseline.features import clip_features
from msa.data.experiment import TrialData
from msa.data.labels import LabelSet
from msa.data.prepare import PreparedClip
from msa.data.splits import PARTS


@dataclass
class FeatureRows:
    """Distinct clips (by cache key) in the order their features are computed."""

    clips: list[PreparedClip]
    rows: dict[str, int]  # cache key -> index into clips

    def row(self, key: str, clip: PreparedClip) -> int:
        if key not in self.rows:
            self.rows[key] = len(self.clips)
            self.clips.append(clip)
        return self.rows[key]


@dataclass(frozen=True)
class Fold:
    """One fold's labelled clips, as rows of the shared features."""

    rows: np.ndarray  # int (N,): its clips' feature rows, train then val then test
    labels: np.ndarray  # int (N,): class indices in the fold's label order
    parts: dict[str, np.ndarray]  # part -> indices into its N clips
    num_classes: int


def labelled_fold(data: TrialData, features: FeatureRows) -> Fold:
    """The fold's clips of its label set (registering each with ``features``). Raises
    EmptyPartError for a part without any."""
    label_set = LabelSet("baseline", data.labels)
    rows, labels, parts = [], [], {}
    for part in PARTS:
        start = len(rows)
        # data.clips(part) lists the part's items in order: the pairs belong together.
        for item, clip in zip(data.parts[part], data.clips(part)):
            label = label_set.index(clip.record.label)
            if label is not None:
                rows.append(features.row(item.key, clip))
                labels.append(label)
        if len(rows) == start:
            raise EmptyPartError(
                f"the baseline needs clips in train, val and test; {part} (actors "
                f"{data.actors.get(part)}) has none of the classes {', '.join(data.labels)}"
            )
        parts[part] = np.arange(start, len(rows))
    return Fold(np.array(rows, dtype=np.int64), np.array(labels, dtype=np.int64), parts, len(data.labels))


def baseline_for(data: TrialData, threads: int = 1) -> dict:
    """The baseline block of one split: prepares what this node's cache lacks (on ``threads``
    processes), computes the features, fits and scores."""
    return baseline_for_folds([data], threads)[0]


def baseline_for_folds(folds: Sequence[TrialData], threads: int = 1) -> list[dict]:
    """One baseline block per fold. The features of each distinct clip are computed once for
    all folds; "seconds" of a block counts that shared work in full, plus the fold's own fits."""
    start = time.perf_counter()
    shared = FeatureRows([], {})
    labelled = []
    for data in folds:
        data.ensure_here(PARTS, workers=threads)
        labelled.append(labelled_fold(data, shared))
    with few_torch_threads():
        features = clip_features(shared.clips)
    features_seconds = time.perf_counter() - start

    blocks = []
    for fold in labelled:
        fold_start = time.perf_counter()
        # The fold's own rows in its own order: the very matrices a lone baseline_for builds.
        fold_features = {name: matrix[fold.rows] for name, matrix in features.items()}
        block = fit_and_score(fold_features, fold.labels, fold.parts, fold.num_classes)
        block["seconds"] = features_seconds + time.perf_counter() - fold_start
        blocks.append(block)
    return blocks

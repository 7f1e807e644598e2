"""A classical baseline beside every deep result: MFCC and frame-grid statistics, classified by
L2 logistic regression chosen on val and scored on test, on the same actors as the search.

A searched deep model that loses to this ten-second baseline is a finding, not a success.
Ray-free: it reads prepared clips (msa.data) and scores with msa.train.metrics, nothing more.

    clip_features(clips)                          -> {"audio": (N, 60), "video": (N, 195)}
    fit_and_score(features, labels, parts, K)     -> per feature set: test metrics, val accuracy, C
    baseline_for(trial_data) / baseline_for_folds  -> summary.json's "baseline" block(s)

``python -m msa.baseline`` runs it on the data a search would use.
"""

from msa.baseline.classifier import C_GRID, EmptyPartError, LogisticModel, fit_and_score, fit_logistic
from msa.baseline.features import FEATURE_SETS, clip_features
from msa.baseline.run import baseline_for, baseline_for_folds

__all__ = [
    "C_GRID",
    "EmptyPartError",
    "FEATURE_SETS",
    "LogisticModel",
    "baseline_for",
    "baseline_for_folds",
    "clip_features",
    "fit_and_score",
    "fit_logistic",
]

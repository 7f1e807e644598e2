"""Optuna search that tells early-stopped trials apart from finished ones.

Ray's OptunaSearch reports each epoch's metric to Optuna as an intermediate value, then tells
Optuna that every trial without an error COMPLETED with its last value. Under ASHA most trials
are stopped after one or two epochs, so TPE would compare one-epoch values with full-budget
ones and drift towards configurations that merely start fast. Here a trial that ended before
``max_epochs`` without an error is told as PRUNED at the epoch it reached; Optuna's samplers
rank pruned trials by the step they reached and their value there, which compares trials at
equal budgets.
"""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

EPOCH_KEY = "training_iteration"


class BudgetAwareOptunaSearch(OptunaSearch):
    """OptunaSearch whose trials end COMPLETE only when they ran ``max_epochs`` epochs."""

    def __init__(self, *args, max_epochs: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_epochs = max_epochs

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if value is None or not math.isfinite(value):
            return  # Optuna refuses non-finite intermediate values; the trial is failed on completion
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        value = (result or {}).get(self.metric)
        epochs = (result or {}).get(EPOCH_KEY, 0)
        ot_trial = self._ot_trials[trial_id]
        if error or value is None or not math.isfinite(value):
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        elif epochs < self.max_epochs:
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
        else:
            self._ot_study.tell(ot_trial, value, state=TrialState.COMPLETE)
        self._completed_trials.add(trial_id)

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

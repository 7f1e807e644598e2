"""Optuna search that tells early-stopped trials apart from finished ones.

Ray's OptunaSearch reports each epoch's metric to Optuna as an intermediate value, then tells
Optuna that every trial without an error COMPLETED with its last value. Under ASHA most trials
are stopped after one or two epochs, so TPE would compare one-epoch values with full-budget
ones and drift towards configurations that merely start fast. Here a trial that ended before
``max_epochs`` without an error is told as PRUNED at the epoch it reached; Optuna's samplers
rank pruned trials by the step they reached and their value there, which compares trials at
equal budgets.

A multi-objective search (``metric`` and ``mode`` lists, msa.pareto) tells Optuna a vector:
Optuna takes no intermediate values for several objectives, so each epoch's vector is kept
here, and a trial that ran ``max_epochs`` ends COMPLETE with the vector of its best epoch by
the first objective (the epoch whose checkpoint the trial keeps and summary.json's front
lists); one that ended early (a non-finite loss, --time-budget) ends PRUNED, one without a
finite vector FAIL.
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
        self._reported_epochs: dict[str, int] = {}  # trial -> the last epoch Optuna was told
        self._best_vectors: dict[
            str, list[float]
        ] = {}  # multi-objective: trial -> its best epoch's objectives

    @property
    def multi_objective(self) -> bool:
        return isinstance(self.metric, list)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.multi_objective:
            self._keep_best_vector(trial_id, result)
            return
        value = result.get(self.metric)
        if value is None or not math.isfinite(value):
            return  # Optuna refuses non-finite intermediate values; the trial is failed on completion
        super().on_trial_result(trial_id, result)
        self._reported_epochs[trial_id] = result[EPOCH_KEY]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        if self.multi_objective:
            return self._complete_vector(trial_id, result, error)
        value = (result or {}).get(self.metric)
        epochs = (result or {}).get(EPOCH_KEY, 0)
        ot_trial = self._ot_trials[trial_id]
        if error or value is None or not math.isfinite(value):
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            self._completed_trials.add(trial_id)
            return
        # Ray hands a trial's last result to on_trial_complete only: report it too, so that a
        # pruned trial is compared at the epoch it reached with the value it had there (and the
        # study's learning curves end where the trial did).
        if self._reported_epochs.get(trial_id) != epochs:
            ot_trial.report(value, epochs)
        if epochs < self.max_epochs:
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
        else:
            self._ot_study.tell(ot_trial, value, state=TrialState.COMPLETE)
        self._completed_trials.add(trial_id)

    def _keep_best_vector(self, trial_id: str, result: dict) -> None:
        """Remember the epoch's objectives when its first objective is the trial's best so far
        (ties: the later epoch, as the checkpoint Ray keeps)."""
        values = [result.get(name) for name in self.metric]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            return
        best = self._best_vectors.get(trial_id)
        sign = 1 if self.mode[0] == "max" else -1
        if best is None or sign * values[0] >= sign * best[0]:
            self._best_vectors[trial_id] = values
        self._reported_epochs[trial_id] = result[EPOCH_KEY]

    def _complete_vector(self, trial_id: str, result: dict | None, error: bool) -> None:
        if result and not error:
            self._keep_best_vector(trial_id, result)  # Ray hands the last result here only
        ot_trial, best = self._ot_trials[trial_id], self._best_vectors.get(trial_id)
        if error or best is None:
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        elif self._reported_epochs.get(trial_id, 0) < self.max_epochs:
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
        else:
            self._ot_study.tell(ot_trial, best, state=TrialState.COMPLETE)
        self._completed_trials.add(trial_id)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        # A study in an RDB (--optuna-storage) can hold trials asked after the searcher was last
        # saved (the driver was killed in between): Ray will never run or report them, so they
        # end FAIL rather than stay RUNNING in optuna-dashboard forever.
        known = {ot_trial.number for ot_trial in self._ot_trials.values()}
        for stale in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if stale.number not in known:
                self._ot_study.tell(stale.number, state=TrialState.FAIL)

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

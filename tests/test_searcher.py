"""Trials that ASHA stops early reach Optuna as PRUNED at the epoch they reached."""

import math

from optuna.trial import TrialState

from msa.tune.searcher import BudgetAwareOptunaSearch


def space(trial):
    trial.suggest_float("x", 0.0, 1.0)


def run(searcher, trial_id, values, error=False):
    searcher.suggest(trial_id)
    last = None
    for epoch, value in enumerate(values, start=1):
        last = {"val_acc": value, "training_iteration": epoch}
        searcher.on_trial_result(trial_id, last)
    searcher.on_trial_complete(trial_id, last, error=error)


def test_early_stopped_trials_are_pruned_not_complete():
    searcher = BudgetAwareOptunaSearch(space=space, metric="val_acc", mode="max", max_epochs=3, seed=0)
    run(searcher, "full", [0.2, 0.3, 0.4])
    run(searcher, "stopped", [0.9])  # a high one-epoch value must not count as a final value
    run(searcher, "crashed", [0.5], error=True)
    run(searcher, "diverged", [0.3, math.nan])
    trials = {t.number: t for t in searcher.study.trials}
    assert [trials[i].state for i in range(4)] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAIL,
        TrialState.FAIL,
    ]
    assert trials[0].value == 0.4
    assert trials[1].intermediate_values == {1: 0.9} and trials[1].last_step == 1
    assert searcher.study.best_trial.number == 0, "the best trial is the one that ran the full budget"


def test_plain_optuna_search_would_mark_them_complete():
    """The behaviour this class exists to change (Ray's default)."""
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space=space, metric="val_acc", mode="max", seed=0)
    run(searcher, "stopped", [0.9])
    assert searcher._ot_study.trials[0].state == TrialState.COMPLETE

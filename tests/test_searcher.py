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


def test_a_pruned_trial_keeps_the_value_of_the_epoch_it_reached():
    """Ray hands the result that ends a trial (ASHA's stop) to on_trial_complete only."""
    searcher = BudgetAwareOptunaSearch(space=space, metric="val_acc", mode="max", max_epochs=3, seed=0)
    searcher.suggest("stopped")
    searcher.on_trial_result("stopped", {"val_acc": 0.5, "training_iteration": 1})
    searcher.on_trial_complete("stopped", {"val_acc": 0.7, "training_iteration": 2})
    (trial,) = searcher.study.trials
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {1: 0.5, 2: 0.7} and trial.last_step == 2


def test_a_study_in_a_database_survives_the_searcher(tmp_path):
    """--optuna-storage: the study (PRUNED and COMPLETE trials) loads from the sqlite file, and
    a restored searcher fails the trials it never knew (asked after its last save)."""
    import optuna

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = BudgetAwareOptunaSearch(
        space=space,
        metric="val_acc",
        mode="max",
        max_epochs=2,
        seed=0,
        storage=optuna.storages.RDBStorage(url),
        study_name="exp",
    )
    run(searcher, "full", [0.2, 0.4])
    searcher.suggest("stopped")
    searcher.on_trial_complete("stopped", {"val_acc": 0.3, "training_iteration": 1})
    searcher.save(str(tmp_path / "searcher.pkl"))
    searcher.suggest("asked after the save")  # then the driver is killed
    study = optuna.load_study(study_name="exp", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING]

    restored = BudgetAwareOptunaSearch(space=space, metric="val_acc", mode="max", max_epochs=2, seed=0)
    restored.restore(str(tmp_path / "searcher.pkl"))
    study = optuna.load_study(study_name="exp", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    run(restored, "after the resume", [0.5, 0.6])
    assert len(optuna.load_study(study_name="exp", storage=url).trials) == 4, "the same study goes on"


def test_plain_optuna_search_would_mark_them_complete():
    """The behaviour this class exists to change (Ray's default)."""
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space=space, metric="val_acc", mode="max", seed=0)
    run(searcher, "stopped", [0.9])
    assert searcher._ot_study.trials[0].state == TrialState.COMPLETE

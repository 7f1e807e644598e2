"""Multi-objective search without Ray: the Pareto rule, the --pick constraints, the latency
measurement, the options' refusals and the searcher telling Optuna vectors."""

import io
import math
import time

import pytest
import torch
from optuna.trial import TrialState

from msa.pareto import ObjectiveError, pareto_front, parse_objectives, pick
from msa.trial.costs import LATENCY_REPEATS, measure_latency_ms, model_costs
from msa.tune.searcher import BudgetAwareOptunaSearch

OBJECTIVES = ("val_f1", "latency_ms")
MODES = ("max", "min")


def test_the_front_keeps_the_non_dominated_points_each_objective_in_its_direction():
    points = [
        {"val_f1": 0.60, "latency_ms": 10.0},  # fastest
        {"val_f1": 0.70, "latency_ms": 30.0},
        {"val_f1": 0.65, "latency_ms": 40.0},  # dominated by the one above
        {"val_f1": 0.80, "latency_ms": 90.0},  # most accurate
        {"val_f1": 0.55, "latency_ms": 10.0},  # as fast as the first, less accurate
    ]
    assert pareto_front(points, OBJECTIVES, MODES) == [0, 1, 3]
    # the directions matter: minimising both keeps the cheapest, least accurate point only
    assert pareto_front(points, OBJECTIVES, ("min", "min")) == [4]


def test_ties_stay_on_the_front_and_nan_is_on_none():
    points = [
        {"val_f1": 0.7, "latency_ms": 20.0},
        {"val_f1": 0.7, "latency_ms": 20.0},  # equal: neither dominates the other
        {"val_f1": math.nan, "latency_ms": 1.0},  # would dominate everything if NaN counted
        {"val_f1": 0.9},  # latency missing
        {"val_f1": 0.5, "latency_ms": 50.0},
    ]
    assert pareto_front(points, OBJECTIVES, MODES) == [0, 1]
    assert pareto_front([], OBJECTIVES, MODES) == []


def test_three_objectives():
    objectives, modes = ("val_acc", "latency_ms", "size_mb"), ("max", "min", "min")
    points = [
        {"val_acc": 0.8, "latency_ms": 50, "size_mb": 40},
        {"val_acc": 0.8, "latency_ms": 50, "size_mb": 4},  # dominates the first by size alone
        {"val_acc": 0.6, "latency_ms": 5, "size_mb": 90},
    ]
    assert pareto_front(points, objectives, modes) == [1, 2]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("val_f1", "give 2 or 3"),
        ("val_f1,latency_ms,params,size_mb", "give 2 or 3"),
        ("latency_ms,val_f1", "first objective"),
        ("val_f1,val_acc", "costs minimised"),
        ("val_f1,params,params", "named twice"),
    ],
)
def test_bad_objectives_are_one_line(text, problem):
    with pytest.raises(ObjectiveError, match=problem) as caught:
        parse_objectives(text)
    assert "\n" not in str(caught.value)


FRONT = [
    {"trial": "trial_a", "objectives": {"val_f1": 0.80, "latency_ms": 90.0}},
    {"trial": "trial_b", "objectives": {"val_f1": 0.70, "latency_ms": 30.0}},
    {"trial": "trial_c", "objectives": {"val_f1": 0.70, "latency_ms": 20.0}},
    {"trial": "trial_d", "objectives": {"val_f1": 0.60, "latency_ms": 10.0}},
]


def test_pick_takes_the_best_first_objective_meeting_every_constraint():
    assert pick(FRONT, "latency_ms<100", OBJECTIVES)["trial"] == "trial_a"
    assert pick(FRONT, "latency_ms<50", OBJECTIVES)["trial"] == "trial_c"  # a tie on val_f1: the faster
    assert pick(FRONT, "latency_ms <= 10", OBJECTIVES)["trial"] == "trial_d"
    assert pick(FRONT, "latency_ms<95,val_f1>=0.75", OBJECTIVES)["trial"] == "trial_a"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("latency_ms<5", "no trial of the Pareto front meets it .latency_ms on the front: 10 to 90"),
        ("latency_ms=50", "is not NAME<NUMBER"),
        ("latency_ms<fast", "is not NAME<NUMBER"),
        ("size_mb<10", "not an objective of this search"),
        ("", "is not NAME<NUMBER"),
    ],
)
def test_pick_refuses_in_one_line(text, problem):
    with pytest.raises(ObjectiveError, match=problem) as caught:
        pick(FRONT, text, OBJECTIVES)
    assert "\n" not in str(caught.value)


def test_latency_is_the_median_of_warm_calls_the_first_excluded():
    calls = []

    def slow_first_call():
        calls.append(None)
        time.sleep(0.3 if len(calls) == 1 else 0.001)  # s: a first call that builds caches

    latency = measure_latency_ms(slow_first_call)
    assert len(calls) == 1 + LATENCY_REPEATS
    assert latency < 100, f"{latency:.1f} ms: the slow first call was timed"


def test_model_costs_count_parameters_and_saved_bytes():
    from msa.data.decode import PrepareParams
    from msa.models import create_model, model_config

    config = model_config("audio_cnn", num_classes=4)
    model, _ = create_model(config, config.num_classes)
    costs = model_costs(model, PrepareParams(), torch.device("cpu"), latency=True)
    assert costs["params"] == sum(p.numel() for p in model.parameters())
    saved = io.BytesIO()
    torch.save(model.state_dict(), saved)
    assert costs["size_mb"] == saved.tell() / 1e6
    # float32 weights, plus torch.save's small per-tensor overhead
    assert 4 * costs["params"] / 1e6 <= costs["size_mb"] < 4 * costs["params"] / 1e6 + 0.5
    assert costs["latency_ms"] > 0 and model.training, "the model is left in its training mode"


def space(trial):
    trial.suggest_float("x", 0.0, 1.0)


def test_a_multi_objective_searcher_tells_the_best_epochs_vector():
    searcher = BudgetAwareOptunaSearch(
        space=space, metric=list(OBJECTIVES), mode=list(MODES), max_epochs=2, seed=0
    )

    def run(trial_id, epochs, error=False):
        searcher.suggest(trial_id)
        last = None
        for epoch, value in enumerate(epochs, start=1):
            last = {"val_f1": value, "latency_ms": 12.0, "training_iteration": epoch}
            searcher.on_trial_result(trial_id, last)
        searcher.on_trial_complete(trial_id, last, error=error)

    run("full", [0.7, 0.5])  # its best epoch is the first
    run("short", [0.9])  # ended early (e.g. --time-budget): not comparable
    run("diverged", [math.nan, math.nan])
    run("crashed", [0.4], error=True)
    trials = searcher.study.trials
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAIL,
        TrialState.FAIL,
    ]
    assert trials[0].values == [0.7, 12.0]


def test_multi_objective_options_choose_fifo_and_refuse_what_makes_no_sense():
    from msa.tune.command_line import build_parser
    from msa.tune.options import SearchOptions, UsageError
    from search_spaces import SPACES

    def options(*argv):
        args = build_parser().parse_args(["--space", "audio_spectrogram", *argv])
        result = SearchOptions.from_namespace(args, SPACES)
        result.check()
        return result

    budget = options("--objectives", "val_f1,latency_ms", "--search", "nsga2").budget
    assert (budget.objectives, budget.metric, budget.mode, budget.scheduler) == (
        OBJECTIVES,
        "val_f1",
        "max",
        "fifo",
    )
    for argv, problem in [
        (("--objectives", "val_f1,latency_ms", "--scheduler", "asha"), "runs every trial to --max-epochs"),
        (("--objectives", "val_f1,latency_ms", "--scheduler", "pbt"), "runs every trial to --max-epochs"),
        (("--objectives", "val_f1,latency_ms", "--metric", "val_acc"), "the first objective"),
        (
            (
                "--search",
                "nsga2",
            ),
            "give --objectives",
        ),
        (("--objectives", "val_f1,fps"), "costs minimised"),
    ]:
        with pytest.raises(UsageError, match=problem):
            options(*argv)
    saved = options("--objectives", "val_f1,latency_ms")
    assert SearchOptions.from_json(__import__("json").dumps(saved.to_json())) == saved


def test_crossval_and_export_pick_from_the_summarys_front(tmp_path):
    """msa crossval --pick takes the picked entry's configuration, msa predict / export its
    trial; a search without a front, or both --trial and --pick, is one line."""
    import argparse
    import json

    from msa.crossval import read_config
    from msa.export.source import SourceError, chosen_trial
    from msa.tune.options import UsageError

    experiment = tmp_path / "front"
    experiment.mkdir()
    front = [{**entry, "config": {"model": entry["trial"]}} for entry in FRONT]
    (experiment / "summary.json").write_text(
        json.dumps({"objectives": list(OBJECTIVES), "pareto_front": front})
    )

    def config(**flags):
        args = argparse.Namespace(**{"config": None, "trial": None, "pick": None, **flags})
        return read_config(args, str(tmp_path), "front")

    assert config(pick="latency_ms<25") == {"model": "trial_c"}
    assert chosen_trial(str(experiment), None, "latency_ms<25") == "trial_c"
    assert chosen_trial(str(experiment), "trial_a", None) == "trial_a"
    with pytest.raises(UsageError, match="no trial of the Pareto front meets it"):
        config(pick="latency_ms<1")
    with pytest.raises(UsageError, match="give one of"):
        config(pick="latency_ms<25", trial="trial_a")
    with pytest.raises(SourceError, match="not both"):
        chosen_trial(str(experiment), "trial_a", "latency_ms<25")
    (experiment / "summary.json").write_text(json.dumps({"objectives": None, "pareto_front": None}))
    with pytest.raises(SourceError, match="has no Pareto front"):
        chosen_trial(str(experiment), None, "latency_ms<25")

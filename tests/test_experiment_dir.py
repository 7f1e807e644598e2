"""msa.experiment_dir: the best-trial rule, the rung score, and that the search and the analysis
agree on both (and on the directory's names) instead of each keeping its own copy."""

import importlib
import math
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from msa import experiment_dir as contract
from msa.analysis import Experiment, trials_frame
from msa.analysis.trials import TrialRecord, epochs_frame
from msa.experiment_dir import best_index, best_result, default_mode, ranking_key, rung_score

NAN, INF = math.nan, math.inf


def epoch(val_acc, val_loss, epoch=1, trial_id="a", **more):
    return {"epoch": epoch, "val_acc": val_acc, "val_loss": val_loss, "trial_id": trial_id, **more}


# ----------------------------------------------------------------------------- the rule


def test_a_tie_on_the_metric_goes_to_the_lower_val_loss():
    rows = [epoch(0.5, 1.2), epoch(0.5, 0.9), epoch(0.25, 0.1)]
    assert best_index(rows, "val_acc", "max") == 1
    assert (
        ranking_key(rows[1], "val_acc", "max")
        < ranking_key(rows[0], "val_acc", "max")
        < ranking_key(rows[2], "val_acc", "max")
    )
    # in mode min too: the lower metric first, then the lower loss
    rows = [
        {"val_f1": 0.2, "val_loss": 2.0},
        {"val_f1": 0.2, "val_loss": 1.0},
        {"val_f1": 0.3, "val_loss": 0.1},
    ]
    assert best_index(rows, "val_f1", "min") == 1


def test_then_the_lower_trial_id_and_then_the_first():
    rows = [
        epoch(0.5, 1.0, trial_id="b"),
        epoch(0.5, 1.0, trial_id="a"),
        epoch(0.5, 1.0, trial_id="a", epoch=2),
    ]
    assert best_index(rows, "val_acc", "max") == 1


@pytest.mark.parametrize("bad", [NAN, INF, -INF, None, pd.NA, "0.9", True])
def test_a_non_finite_metric_never_wins(bad):
    rows = [epoch(bad, 0.01), epoch(0.1, 5.0), epoch(bad, 0.0)]
    assert best_index(rows, "val_acc", "max") == 1
    assert best_index(rows, "val_acc", "min") == 1
    assert best_index([epoch(bad, 0.1), {"val_loss": 0.1}], "val_acc", "max") is None
    assert best_result([epoch(bad, 0.1)], "val_acc", "max") == {}


def test_a_non_finite_val_loss_loses_the_tie():
    rows = [epoch(0.5, NAN), epoch(0.5, None), epoch(0.5, 3.0)]
    assert best_index(rows, "val_acc", "max") == 2


def test_mode_min_and_max():
    rows = [{"val_loss": 0.7}, {"val_loss": 0.3}, {"val_loss": NAN}, {"val_loss": 0.5}]
    assert best_index(rows, "val_loss", "min") == 1
    assert best_index(rows, "val_loss", "max") == 0
    assert (
        default_mode("val_loss"),
        default_mode("train_loss"),
        default_mode("val_acc"),
        default_mode("val_uar"),
    ) == ("min", "min", "max", "max")
    with pytest.raises(ValueError, match="mode"):
        ranking_key({"val_acc": 1.0}, "val_acc", "maximum")


def test_best_result_accepts_numpy_and_pandas_values():
    rows = [
        epoch(np.float32(0.5), np.float64(1.0), epoch=1),
        epoch(np.float64(0.5), 0.5, epoch=2),
        epoch(np.int64(0), 0.1, epoch=3),
    ]
    assert best_result(rows, "val_acc", "max")["epoch"] == 2


# ----------------------------------------------------------------------------- the rung score


def test_rung_score_breaks_accuracy_ties_by_val_loss_without_reordering_accuracies():
    n = 40  # validation clips: accuracy moves in steps of 1/40
    low_loss, high_loss = {"val_acc": 10 / n, "val_loss": 0.5}, {"val_acc": 10 / n, "val_loss": 9.5}
    better = {"val_acc": 11 / n, "val_loss": 9.9}
    assert rung_score(low_loss, "val_acc", "max") > rung_score(high_loss, "val_acc", "max")
    assert rung_score(better, "val_acc", "max") > rung_score(low_loss, "val_acc", "max")
    # mode min: ASHA keeps the lowest score, so the tie still goes to the lower loss
    assert rung_score(low_loss, "val_acc", "min") < rung_score(high_loss, "val_acc", "min")
    assert rung_score({"val_loss": 0.7}, "val_loss", "min") == 0.7


@pytest.mark.parametrize("mode", ["max", "min"])
def test_the_rung_score_ranks_as_the_best_trial_rule_does(mode):
    """ASHA's ranking at a rung (by rung_score) and the best-trial rule order distinct rows alike."""
    rng = random.Random(0)
    rows = [
        {"val_acc": rng.randrange(0, 33) / 32, "val_loss": rng.uniform(0.2, 3.0), "trial_id": f"{i:03d}"}
        for i in range(60)
    ]
    by_score = sorted(
        range(len(rows)), key=lambda i: rung_score(rows[i], "val_acc", mode), reverse=mode == "max"
    )
    by_rule = sorted(range(len(rows)), key=lambda i: ranking_key(rows[i], "val_acc", mode))
    assert by_score == by_rule


# ----------------------------------------------------------------------------- the search and the analysis agree


def random_trials(seed: int, metric: str) -> dict[str, list[dict]]:
    """Trial folder -> epochs, with many ties on the metric (accuracy in steps of 1/8), some
    non-finite values, and one trial with no finite value at all."""
    rng = random.Random(seed)
    trials = {}
    for _ in range(6):
        trial_id = f"{rng.getrandbits(32):08x}"
        rows = []
        for e in range(1, rng.randint(1, 5) + 1):
            row = {
                "epoch": e,
                "training_iteration": e,
                "trial_id": trial_id,
                "val_acc": rng.randrange(0, 5) / 8,
                "val_f1": rng.randrange(0, 5) / 8,
                "val_uar": rng.randrange(0, 5) / 8,
                "val_loss": round(rng.uniform(0.5, 2.5), 6),
                "train_acc": 0.5,
                "train_loss": 1.0,
            }
            if rng.random() < 0.15:
                row[metric] = NAN
            rows.append(row)
        trials[f"trial_{trial_id}"] = rows
    trials["trial_ffffffff"] = [
        {"epoch": 1, "trial_id": "ffffffff", **dict.fromkeys(contract.TRIAL_METRICS, NAN)}
    ]
    return trials


@pytest.mark.parametrize(
    "metric, mode", [("val_acc", "max"), ("val_f1", "max"), ("val_uar", "min"), ("val_loss", "min")]
)
@pytest.mark.parametrize("seed", range(8))
def test_analysis_and_summary_pick_the_same_trial_and_epoch(metric, mode, seed):
    from msa.tune.summary import best_trial

    trials = random_trials(seed, metric)
    # msa.tune.summary: Ray's results, every epoch's checkpoint kept
    results = [
        SimpleNamespace(
            path=f"/x/{folder}",
            error=None,
            metrics=rows[-1],
            best_checkpoints=[(f"{folder}/{r['epoch']}", r) for r in rows],
        )
        for folder, rows in trials.items()
    ]
    result, _, metrics = best_trial(results, metric, mode)
    # msa.analysis: the same epochs read from the trial folders, before summary.json exists
    records = [
        TrialRecord(folder, rows[0]["trial_id"], {}, rows, (), None, 0, "TERMINATED")
        for folder, rows in trials.items()
    ]
    frame = trials_frame(records, metric, mode, max_epochs=5)
    experiment = Experiment(None, {}, None, frame, epochs_frame(records), metric, mode, 5)
    assert experiment.best_trial == Path(result.path).name
    assert experiment.trial(experiment.best_trial)["best_epoch"] == metrics["epoch"]
    # and per trial, the analysis' best epoch is the one summary.best_trial would take from that trial alone
    for folder_result in results:
        alone = best_trial([folder_result], metric, mode)
        best_epoch = experiment.trial(Path(folder_result.path).name)["best_epoch"]
        assert pd.isna(best_epoch) if alone is None else best_epoch == alone[2]["epoch"]


# ----------------------------------------------------------------------------- one copy of each name


def test_the_search_uses_the_contracts_names():
    """Wherever msa.tune still keeps its own copy of a name, it must match the contract (the
    search imports them from msa.experiment_dir; a module that moved away is skipped)."""
    copies = {
        ("msa.tune.trainable", "RUNG_SCORE"): contract.RUNG_SCORE,
        ("msa.tune.trainable", "TIE_BREAK"): contract.TIE_BREAK,
        ("msa.tune.trainable", "CHECKPOINT_FILE"): contract.CHECKPOINT_FILE,
        ("msa.tune.trainable", "TENSORBOARD_DIR"): contract.TENSORBOARD_DIR,
        ("msa.tune.options", "ARGS_FILE"): contract.ARGS_FILE,
        ("msa.tune.options", "METRICS"): contract.TRIAL_METRICS,
        ("msa.tune.summary", "VAL_KEYS"): contract.VAL_KEYS,
    }
    for (name, attribute), value in copies.items():
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        assert getattr(module, attribute, value) == value, f"{name}.{attribute}"
    tuner = importlib.import_module("msa.tune.tuner")
    if hasattr(tuner, "trial_name"):
        assert tuner.trial_name(SimpleNamespace(trial_id="abc123")) == contract.trial_folder("abc123")


def test_a_checkpoint_can_be_the_best_if_no_earlier_epoch_beats_it_by_either_ordering():
    from msa.experiment_dir import RUNG_SCORE, can_be_best

    def epoch(acc, loss, mode="max"):
        metrics = {"val_acc": acc, "val_loss": loss}
        return {**metrics, RUNG_SCORE: rung_score(metrics, "val_acc", mode)}

    assert can_be_best(epoch(0.1, 2.0), [], "val_acc", "max"), "the first epoch"
    earlier = [epoch(0.5, 1.0), epoch(0.4, 0.5)]
    assert can_be_best(epoch(0.5, 1.0), earlier, "val_acc", "max"), "a tie may be kept"
    assert can_be_best(epoch(0.6, 3.0), earlier, "val_acc", "max")
    assert not can_be_best(epoch(0.5, 1.2), earlier, "val_acc", "max"), "same accuracy, higher loss"
    assert not can_be_best(epoch(0.45, 0.1), earlier, "val_acc", "max")
    losses = [{"val_loss": 1.0, RUNG_SCORE: 1.0}]
    assert can_be_best({"val_loss": 0.9, RUNG_SCORE: 0.9}, losses, "val_loss", "min")
    assert not can_be_best({"val_loss": 1.1, RUNG_SCORE: 1.1}, losses, "val_loss", "min")

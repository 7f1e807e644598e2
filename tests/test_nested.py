"""Nested cross-validation: nested.json's arithmetic and round trip, the refusals before Ray, and
(Ray tier) a nested CV killed after its first outer fold and resumed to completion."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, smoke_search_flags
from processes import ray_processes, wait_for_no_new_ray_processes

from msa.analysis.files import ExperimentFiles
from msa.analysis.nested import load_nested, nested_comparison, nested_notes, nested_table, optimism
from msa.data.folds import Fold
from msa.experiment_dir import NESTED_FILE
from msa.tune.command_line import build_parser
from msa.tune.nested_file import (
    COMPLETED,
    OuterOutcome,
    agreement,
    completed_folds,
    format_nested,
    nested_payload,
    outer_json,
    pending_json,
)
from msa.tune.options import SearchOptions, UsageError
from search_spaces import SPACES

LABELS = ["happy", "sad"]


def outcome(number, test_actors, matrix, config, accuracy):
    correct = matrix[0][0] + matrix[1][1]
    test = {
        "accuracy": correct / sum(map(sum, matrix)),
        "uar": (matrix[0][0] / sum(matrix[0]) + matrix[1][1] / sum(matrix[1])) / 2,
        "f1_macro": 0.5,
        "labels": LABELS,
        "confusion_matrix": matrix,
        "device": "cpu",
    }
    inner = {"epoch": 2, "val_acc": accuracy, "val_uar": accuracy, "val_f1": accuracy, "val_loss": 1.0}
    return OuterOutcome(
        Fold(number, (9,), (8,), test_actors),
        COMPLETED,
        2,
        f"trial_{number}",
        config,
        inner,
        test,
        None,
        60.0,
        4,
        0.5,
    )


def payload_of(rows):
    return nested_payload(
        rows,
        experiment="exp",
        space="audio_spectrogram",
        folds="3",
        protocol="three folds",
        seed=0,
        metric="val_acc",
        mode="max",
        labels=LABELS,
        budget={
            "num_samples": 2,
            "max_epochs": 2,
            "grace_period": 1,
            "scheduler": "asha",
            "search": "optuna",
            "time_budget": None,
        },
    )


def test_nested_json_round_trips_and_keeps_only_completed_folds(tmp_path):
    rows = [
        outer_json(outcome(1, (1,), [[2, 0], [1, 1]], {"model": "audio_cnn", "lr": 0.01}, 0.75)),
        outer_json(outcome(2, (2,), [[1, 1], [0, 2]], {"model": "audio_cnn", "lr": 0.001}, 0.5)),
        pending_json(Fold(3, (1,), (2,), (3,))),
    ]
    payload = payload_of(rows)
    assert (payload["folds_completed"], payload["folds_total"]) == (2, 3)
    assert payload["mean"]["accuracy"] == pytest.approx((0.75 + 0.75) / 2)
    assert payload["pooled_confusion_matrix"] == [[3, 1], [1, 3]]
    assert payload["agreement"]["model"] == {
        "most_common": "audio_cnn",
        "share": 1.0,
        "min": None,
        "max": None,
    }
    assert payload["agreement"]["lr"]["share"] == 0.5 and payload["agreement"]["lr"]["min"] == 0.001
    assert payload["feature_cache"] == {"entries_computed": 8, "per_fold": [4, 4]}

    (tmp_path / NESTED_FILE).write_text(json.dumps(payload))
    text = (tmp_path / NESTED_FILE).read_text()
    assert completed_folds(text) == {1: rows[0], 2: rows[1]}  # what --resume keeps
    assert completed_folds(None) == {} and completed_folds("{not json") == {}
    read = load_nested(ExperimentFiles(tmp_path))
    assert read == payload
    assert "PENDING" in format_nested(read)


def test_the_optimism_is_non_nested_minus_nested(tmp_path):
    nested = payload_of([outer_json(outcome(n, (n,), [[1, 1], [0, 2]], {"model": "m"}, 0.5)) for n in (1, 2)])
    crossval = {
        "folds_preset": "3",
        "config": {"model": "m"},
        "mean": {"accuracy": 0.9, "uar": 0.8, "f1_macro": 0.7},
        "std": None,
        "folds": [{"fold": n, "test_actors": [n], "accuracy": 0.9, "uar": 0.8} for n in (1, 2)],
    }
    gap = optimism(nested, crossval)
    assert gap == pytest.approx({"accuracy": 0.9 - 0.75, "uar": 0.8 - 0.75})
    assert "optimism (non-nested - nested): WAR +0.150, UAR +0.050" in format_nested(nested, crossval)
    assert any("WAR +0.150, UAR +0.050" in note for note in nested_notes(nested, crossval))
    table = nested_table(nested, crossval)
    assert list(table["non-nested WAR"]) == [0.9, 0.9] and list(table["nested WAR"]) == [0.75, 0.75]
    assert list(nested_comparison(nested, crossval)["evaluation"]) == [  # no baseline ran in these folds
        "nested CV (a search per outer fold)",
        "non-nested CV of m (3)",
    ]
    assert optimism(nested, None) is None


def test_agreement_counts_a_missing_hyperparameter_as_none():
    chosen = agreement([{"model": "a", "d_model": 64}, {"model": "b"}, {"model": "a", "d_model": 128}])
    assert chosen["model"]["share"] == pytest.approx(2 / 3)
    assert chosen["d_model"] == {"most_common": 64, "share": pytest.approx(1 / 3), "min": 64.0, "max": 128.0}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--nested", "2"], "--nested 2: use one of"),
        (["--nested", "3", "--inner-folds", "2"], "--inner-folds 2: only 1"),
        (["--nested", "3", "--crossval", "3"], "drop --crossval"),
        (["--nested", "3", "--val-actors", "1", "--test-actors", "2"], "drop --val-actors"),
    ],
)
def test_nested_flags_that_cannot_work_are_refused_before_ray(flags, message, tmp_path):
    args = build_parser().parse_args(["--space", "audio_spectrogram", "--storage", str(tmp_path), *flags])
    with pytest.raises(UsageError, match=message):
        SearchOptions.from_namespace(args, SPACES).check()


# ----------------------------------------------------------------------------- Ray tier


def nested_rows(path) -> list[dict]:
    """nested.json's outer folds; [] before it is written."""
    try:
        return json.loads(path.read_text())["outer_folds"]
    except (FileNotFoundError, json.JSONDecodeError):
        return []


@pytest.mark.ray
def test_nested_cv_killed_after_its_first_outer_fold_resumes_keeping_it(tiny_sample, tmp_path):
    """msa search --nested 3 on the tiny sample (1 trial of 1 epoch per outer search), its
    process group SIGKILLed once nested.json records outer fold 1; msa crossval --nested 3
    --resume keeps that fold as it was and completes the other two."""
    experiment = tmp_path / "results" / "nested"
    nested = experiment / NESTED_FILE
    before = ray_processes()
    flags = [*smoke_search_flags(tiny_sample, tmp_path, "nested"), "--num-samples", "1", "--max-epochs", "1"]
    driver = subprocess.Popen(
        [sys.executable, "tune_main.py", *flags, "--grace-period", "1", "--nested", "3"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill takes Ray's processes with it
    )
    try:
        deadline = time.time() + 300
        while time.time() < deadline and driver.poll() is None:
            if any(row["status"] == COMPLETED for row in nested_rows(nested)):
                break
            time.sleep(0.2)
        first = [row for row in nested_rows(nested) if row["status"] == COMPLETED]
        assert first, f"outer fold 1 did not finish: {driver.poll()=}"
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate()
    assert not wait_for_no_new_ray_processes(before), "Ray processes outlived the killed run"
    assert first[0]["fold"] == 1

    resumed = subprocess.run(
        [sys.executable, "-m", "msa.crossval", str(experiment), "--nested", "3", "--resume"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "outer fold 1: finished before (nested.json), kept" in resumed.stdout
    payload = json.loads(nested.read_text())
    assert (payload["folds_completed"], payload["folds_total"]) == (3, 3)
    assert payload["outer_folds"][0] == first[0]  # kept exactly as it was
    for row in payload["outer_folds"]:  # each search saw none of its fold's test speakers
        assert not set(row["test_actors"]) & set(row["train_actors"] + row["val_actors"])
        assert (experiment / f"nested_3/outer_{row['fold']}" / row["best_trial"]).is_dir()
    assert sorted(a for row in payload["outer_folds"] for a in row["test_actors"]) == [1, 2, 3, 4]
    assert not wait_for_no_new_ray_processes(before), "the resumed run left Ray processes behind"


def test_msa_crossval_nested_refuses_a_configuration(tmp_path, capsys):
    from msa.crossval import main

    experiment = tmp_path / "exp"
    experiment.mkdir()
    options = SearchOptions.from_namespace(
        build_parser().parse_args(["--space", "audio_spectrogram", "--storage", str(tmp_path)]), SPACES
    )
    (experiment / "msa_args.json").write_text(json.dumps(options.to_json()))
    assert main([str(experiment), "--nested", "3", "--epochs", "2"]) == 2
    assert (
        "--nested searches each outer fold with the experiment's budget; drop --epochs"
        in capsys.readouterr().err
    )
    assert main([str(experiment), "--nested", "3", "--resume"]) == 2
    assert "--resume: no nested cross-validation" in capsys.readouterr().err

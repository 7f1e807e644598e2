"""Population-based searches through the command line (tiny models): exploits happen, are
recorded and continue exactly where the donor stopped; summary and report handle them."""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, smoke_search_flags
from processes import assert_no_crash_output

from msa.experiment_dir import MUTABLE_HYPERPARAMETERS

pytestmark = pytest.mark.ray


def results(trial) -> list[dict]:
    return [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]


def population_search(tiny_sample, tmp_path, name, scheduler, *flags):
    command = [sys.executable, "tune_main.py", *smoke_search_flags(tiny_sample, tmp_path, name)]
    command += ["--scheduler", scheduler, "--perturbation-interval", "1", *flags]
    return command


def check_population(experiment, max_epochs: int) -> None:
    """Every exploit is recorded, continues at the donor's next epoch, and keeps the donor's
    fixed hyperparameters; the summary's schedule is the best member's whole history."""
    histories = {trial.name.removeprefix("trial_"): results(trial) for trial in experiment.glob("trial_*")}
    exploits = [row for rows in histories.values() for row in rows if row.get("copied_from")]
    assert exploits, "no member took over another's checkpoint"
    for row in exploits:
        donor = {r["epoch"]: r for r in histories[row["copied_from"]]}
        assert row["epoch"] - 1 in donor, "it goes on at the donor's next epoch"
        before = donor[row["epoch"] - 1]["config"]
        fixed = {k: v for k, v in before.items() if k not in MUTABLE_HYPERPARAMETERS}
        assert {k: v for k, v in row["config"].items() if k in fixed} == fixed, (
            "only explorable values change"
        )
    for rows in histories.values():
        assert all(row["epoch"] <= max_epochs for row in rows)
        # No row lost when Ray paused the member or started it again from a checkpoint.
        assert rows[0]["epoch"] == 1
        for before, row in zip(rows, rows[1:]):
            assert row["epoch"] == before["epoch"] + 1 or row["copied_from"], [r["epoch"] for r in rows]
    summary = json.loads((experiment / "summary.json").read_text())
    schedule = summary["schedule"]
    assert [step["epoch"] for step in schedule] == list(range(1, len(schedule) + 1))
    assert schedule[-1]["trial"] == summary["best_trial"]
    assert all("lr" in step and "copied_from" in step for step in schedule)


def test_pbt_search_exploits_and_records_it(tiny_sample, tmp_path):
    # Two members taking turns in one slot, so that PBT pauses each while the other trains and
    # starts it again from its checkpoint; one exploit round (after epoch 1): the bottom half
    # copies the top half.
    command = population_search(
        tiny_sample,
        tmp_path,
        "pbt",
        "pbt",
        "--num-samples",
        "2",
        "--max-epochs",
        "2",
        "--max-concurrent",
        "1",
    )
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_no_crash_output(done)
    experiment = tmp_path / "results" / "pbt"
    check_population(experiment, max_epochs=2)
    report = subprocess.run(
        [sys.executable, "-m", "msa.report", str(experiment), "--no-val"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr[-2000:]
    assert (experiment / "report_lineage.png").exists()
    assert "Population-based training" in (experiment / "report.html").read_text()


@pytest.mark.slow
def test_pb2_search_exploits_and_records_it(tiny_sample, tmp_path):
    command = population_search(
        tiny_sample, tmp_path, "pb2", "pb2", "--num-samples", "3", "--max-epochs", "3"
    )
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_population(tmp_path / "results" / "pb2", max_epochs=3)


@pytest.mark.slow
def test_an_interrupted_pbt_search_resumes(tiny_sample, tmp_path):
    command = population_search(
        tiny_sample, tmp_path, "resumed", "pbt", "--num-samples", "3", "--max-epochs", "4"
    )
    experiment = tmp_path / "results" / "resumed"
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not any(
        row.get("epoch", 0) >= 2
        for trial in experiment.glob("trial_*")
        if (trial / "result.json").exists()
        for row in results(trial)
    ):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    resumed = subprocess.run(
        [sys.executable, "tune_main.py", "--space", "video_transformer", "--resume"]
        + ["--storage", str(tmp_path / "results"), "--name", "resumed"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["num_trials"] == 3 and summary["trials_by_status"] == {"TERMINATED": 3}
    check_population(experiment, max_epochs=4)

"""Reliability, end to end: a SIGKILLed driver resumed, injected trial crashes retried, NaN
losses stopped, nothing left running, no dashboard and no unauthenticated access to Ray."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, smoke_search_flags
from processes import (
    assert_no_crash_output,
    command_line,
    listening_ports,
    process_tree,
    ray_processes,
    wait_for_no_new_ray_processes,
)
from test_trainable import run_trial  # noqa: F401  (a fixture)

import msa.trial.trial as trial_code

DASHBOARD_PORT = 8265  # Ray's default


def assert_not_exposed(driver_pid: int) -> None:
    """No dashboard UI (Ray's minimal dashboard process, which serves nothing, stays on loopback),
    and Ray's network-facing GCS refuses a client without the run's token."""
    tree = process_tree(driver_pid)
    dashboards = [command_line(pid) for pid in tree if "dashboard/dashboard.py" in command_line(pid)]
    assert all("--host=127.0.0.1" in command for command in dashboards), (
        "Ray's dashboard process must stay on loopback"
    )
    assert DASHBOARD_PORT not in listening_ports(tree), "the dashboard UI is served"
    gcs = [pid for pid in tree if "gcs_server" in command_line(pid)]
    assert gcs, "no GCS in the driver's process tree"
    ports = listening_ports({gcs[0]})
    assert len(ports) == 1, ports
    port = ports.pop()
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_AUTH")}
    try:  # Ray's client keeps retrying after a refusal: read what it was told, then give up
        stranger = subprocess.run(
            [sys.executable, "-c", f"import ray; ray.init(address='{node_ip()}:{port}'); print('joined')"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        out, err = stranger.stdout, stranger.stderr
    except subprocess.TimeoutExpired as expired:
        out, err = (
            text.decode() if isinstance(text, bytes) else (text or "")
            for text in (expired.stdout, expired.stderr)
        )
    assert "joined" not in out and "InvalidAuthToken" in err, "a client without the token was not refused"


def node_ip() -> str:
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


def tune_main(tiny_sample, tmp_path, name, *flags, fail_at_epoch: int | None = None):
    """The command line of a smoke search; with fail_at_epoch, every trial's first attempt fails then."""
    entry = ["tune_main.py"] if fail_at_epoch is None else ["tests/failing_tune_main.py", str(fail_at_epoch)]
    return [sys.executable, *entry, *smoke_search_flags(tiny_sample, tmp_path, name), *flags]


def epochs_reported(trial: Path) -> list[int]:
    lines = (trial / "result.json").read_text().splitlines() if (trial / "result.json").exists() else []
    return [json.loads(line)["epoch"] for line in lines if line.strip()]


def last_checkpointed_epoch(trial: Path) -> int:
    """The epoch of the trial's newest checkpoint folder (Ray numbers them from 0), 0 if none."""
    indices = [int(folder.name.rsplit("_", 1)[1]) for folder in trial.glob("checkpoint_*")]
    return max(indices) + 1 if indices else 0


def wait_for(condition, timeout: float, poll: float = 0.2) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"{condition} did not hold within {timeout} s"
        time.sleep(poll)


def state_saved_after_checkpoints(experiment: Path) -> bool:
    """Ray saved the experiment state after the newest trial checkpoint (msa.tune.tuner keeps
    one checkpoint, so Ray saves the state after each)."""
    states = [path.stat().st_mtime for path in experiment.glob("experiment_state-*.json")]
    checkpoints = [path.stat().st_mtime for path in experiment.glob("trial_*/checkpoint_*")]
    return bool(states) and max(states) >= max(checkpoints, default=0)


@pytest.mark.ray
@pytest.mark.slow  # a search killed and resumed, 75 s: make test-all (make test stays under 10 minutes)
def test_killed_driver_resumes_where_it_stopped(tiny_sample, tmp_path):
    """SIGKILL mid-search: no Ray process outlives the driver; --resume keeps finished trials as
    they were, redoes at most one epoch per running trial, and summarises every trial. While it
    runs, there is no dashboard and Ray refuses clients without the run's token."""
    before = ray_processes()
    command = tune_main(
        tiny_sample,
        tmp_path,
        "killed",
        *("--num-samples", "3", "--max-epochs", "4", "--grace-period", "4", "--optuna-storage", "default"),
        "--mlflow",
    )
    driver = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    experiment = tmp_path / "results" / "killed"
    deadline = time.time() + 300

    def two_epochs_done():  # only the best and the latest checkpoint are kept, so look for any newer than the first
        return any(last_checkpointed_epoch(trial) >= 2 for trial in experiment.glob("trial_*"))

    while time.time() < deadline and not two_epochs_done():
        time.sleep(0.2)
    assert two_epochs_done(), "no trial finished two epochs in time"
    assert_not_exposed(driver.pid)
    wait_for(lambda: state_saved_after_checkpoints(experiment), timeout=60)  # what --resume will read
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    assert not wait_for_no_new_ray_processes(before), "Ray processes outlived the killed driver"
    reported = {trial.name: epochs_reported(trial) for trial in experiment.glob("trial_*")}
    checkpointed = {trial.name: last_checkpointed_epoch(trial) for trial in experiment.glob("trial_*")}

    resumed = subprocess.run(
        tune_main(tiny_sample, tmp_path, "killed", "--resume"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert_no_crash_output(resumed)
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["num_trials"] == 3 and summary["trials_by_status"] == {"TERMINATED": 3}
    assert set(reported) <= {trial.name for trial in experiment.glob("trial_*")}
    for trial in experiment.glob("trial_*"):
        epochs = epochs_reported(trial)
        kept = reported.get(trial.name, [])
        assert epochs[: len(kept)] == kept, "what was recorded before the kill is kept as it was"
        assert epochs == [1, 2, 3, 4], f"{trial.name}: {epochs}"
        new = epochs[len(kept) :]
        if new and checkpointed.get(trial.name):
            redone = checkpointed[trial.name] - (new[0] - 1)
            assert redone <= 1, (
                f"{trial.name} resumed at epoch {new[0]} after checkpointing epoch {checkpointed[trial.name]}"
            )
    assert not wait_for_no_new_ray_processes(before), "Ray processes outlived the resumed run"
    # The resumed search went on in the same Optuna study: every trial told, none left RUNNING.
    import optuna

    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{experiment / 'optuna.db'}")
    states = [trial.state for trial in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3, states
    assert optuna.trial.TrialState.RUNNING not in states, states
    # ... and in the same MLflow runs: one parent, one run per trial holding every epoch (an
    # epoch redone after the kill is logged again at its step), all closed.
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{experiment / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("msa-video_transformer").experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert [run.info.run_name for run in parents] == ["killed"]
    trial_runs = sorted(run.info.run_name for run in runs if run not in parents)
    assert trial_runs == sorted(trial.name for trial in experiment.glob("trial_*")), "one run per trial"
    for run in runs:
        assert run.info.status == "FINISHED", run.info.run_name
        if run not in parents:
            steps = [metric.step for metric in client.get_metric_history(run.info.run_id, "val_acc")]
            assert sorted(set(steps)) == [1, 2, 3, 4] and len(steps) <= 4 + 1, (run.info.run_name, steps)


@pytest.mark.ray
@pytest.mark.slow  # two searches, ~1 min: make test-all (make test stays under 10 minutes)
def test_crashing_trials_are_retried_then_reported(tiny_sample, tmp_path):
    retried = subprocess.run(
        tune_main(
            tiny_sample,
            tmp_path,
            "retried",
            "--num-samples",
            "2",
            "--max-epochs",
            "3",
            "--grace-period",
            "3",
            fail_at_epoch=2,
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert_no_crash_output(retried)
    summary = json.loads((tmp_path / "results" / "retried" / "summary.json").read_text())
    assert summary["trials_by_status"] == {"TERMINATED": 2} and summary["errors"] == {}
    for trial in (tmp_path / "results" / "retried").glob("trial_*"):
        assert sorted(set(epochs_reported(trial))) == [1, 2, 3]

    before = ray_processes()
    exhausted = subprocess.run(
        tune_main(
            tiny_sample,
            tmp_path,
            "exhausted",
            "--num-samples",
            "2",
            "--max-epochs",
            "3",
            "--grace-period",
            "3",
            "--max-failures",
            "0",
            fail_at_epoch=2,
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert exhausted.returncode == 0, exhausted.stderr[-3000:]  # the search went on and summarised
    assert_no_crash_output(exhausted)
    summary = json.loads((tmp_path / "results" / "exhausted" / "summary.json").read_text())
    assert summary["trials_by_status"] == {"ERROR": 2}
    assert len(summary["errors"]) == 2
    assert all("fail_at_epoch=2" in message for message in summary["errors"].values())
    assert summary["best_val"]["epoch"] == 1, "the epoch before the crash still counts"
    assert not wait_for_no_new_ray_processes(before), "Ray processes outlived a run whose trials failed"


@pytest.mark.ray
def test_a_search_whose_trials_all_fail_exits_1_and_leaves_nothing_running(tiny_sample, tmp_path):
    before = ray_processes()
    failed = subprocess.run(
        tune_main(
            tiny_sample, tmp_path, "failed", "--num-samples", "1", "--max-failures", "0", fail_at_epoch=1
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert_no_crash_output(failed)
    assert "no trial finished an epoch" in failed.stdout
    summary = json.loads((tmp_path / "results" / "failed" / "summary.json").read_text())
    assert summary["trials_by_status"] == {"ERROR": 1} and summary["test"] is None
    assert not wait_for_no_new_ray_processes(before), "a failed run left Ray processes behind"


def test_nan_loss_stops_the_trial_at_once(run_trial, monkeypatch):  # noqa: F811
    real = trial_code.train_one_epoch
    calls = []

    def blows_up_in_epoch_2(*args, **kwargs):
        calls.append(1)
        metrics = real(*args, **kwargs)
        return {**metrics, "train_loss": math.nan} if len(calls) == 2 else metrics

    monkeypatch.setattr(trial_code, "train_one_epoch", blows_up_in_epoch_2)
    reports = run_trial(max_epochs=4)
    assert [m["epoch"] for m, _ in reports] == [1, 2], "no epoch after the non-finite one"
    last, checkpoint = reports[-1]
    assert last["stop_reason"] == "non-finite training loss (nan) in epoch 2"
    assert math.isnan(last["val_acc"]) and math.isnan(last["rung_score"])
    assert checkpoint is None, "a diverged model is not checkpointed"
    assert "stop_reason" not in reports[0][0]


def test_unwritable_or_mismatched_arguments_still_exit_2(tmp_path, capsys):
    import tune_main as cli

    assert cli.main(["--space", "video_transformer", "--max-failures", "-1"]) == 2
    assert "--max-failures must be at least 0" in capsys.readouterr().err


def test_summary_lists_errors_and_non_finite_stops():
    from types import SimpleNamespace

    from msa.tune.options import SearchOptions
    from msa.tune.summary import summarise

    class TrialFailed(RuntimeError):
        pass

    wrapped = SimpleNamespace(
        cause=TrialFailed("fail_at_epoch=1: injected failure at epoch 1 (first attempt)")
    )
    results = [
        SimpleNamespace(
            path="/x/trial_a", error=None, metrics={"epoch": 2, "val_acc": 0.5}, best_checkpoints=[]
        ),
        SimpleNamespace(path="/x/trial_b", error=wrapped, metrics={}, best_checkpoints=[]),
        SimpleNamespace(
            path="/x/trial_c",
            error=None,
            best_checkpoints=[],
            metrics={
                "epoch": 3,
                "val_acc": math.nan,
                "stop_reason": "non-finite training loss (nan) in epoch 3",
            },
        ),
    ]
    data = SimpleNamespace(summary=lambda: {})
    summary = summarise(results, SearchOptions("video_transformer"), data, None, weights={})
    assert summary["trials_by_status"] == {"ERROR": 1, "TERMINATED": 2}
    assert summary["errors"] == {
        "trial_b": "TrialFailed: fail_at_epoch=1: injected failure at epoch 1 (first attempt)"
    }
    assert summary["stopped_non_finite"] == {"trial_c": "non-finite training loss (nan) in epoch 3"}

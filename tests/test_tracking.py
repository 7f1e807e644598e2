"""The trackers without a search: flags, W&B's mode, MLflow's runs and W&B's run files, read back
with the real packages, offline. (Whole searches logging to them: test_tune_main, test_reliability.)"""

import json
import pickle
import queue
import socket
from types import SimpleNamespace

import pytest
from wandb_files import offline_runs

import tune_main
from msa.tune.command_line import build_parser
from msa.tune.options import SearchOptions, UsageError
from msa.tune.tracking import options as tracking_options
from msa.tune.tracking.options import TrackingError, mlflow_tracking_uri, wandb_mode
from msa.tune.tracking.trackers import start_trackers
from search_spaces import SPACES

SUMMARY = {
    "best_trial": "trial_b",
    "best_config": {"model": "video_iter4", "lr": 0.001},
    "best_val": {"val_acc": 0.5, "val_loss": 1.2, "epoch": 3},
    "test": {"accuracy": 0.375, "uar": 0.4, "f1_macro": 0.3, "confusion_matrix": [[1, 0], [0, 1]]},
    "baseline": {"audio": {"accuracy": 0.6}, "video": {"accuracy": 0.5}, "audiovisual": {"accuracy": 0.7}},
    "num_trials": 2,
    "trials_by_status": {"TERMINATED": 2},
}


def parse(*argv: str) -> SearchOptions:
    return SearchOptions.from_namespace(
        build_parser().parse_args(["--space", "video_transformer", *argv]), SPACES
    )


class FakeTrial(SimpleNamespace):
    """What the logger callbacks read of Ray's Trial."""

    def __str__(self):
        return f"trial_{self.trial_id}"


def fake_trial(trial_id: str, config: dict) -> FakeTrial:
    return FakeTrial(trial_id=trial_id, config=config, last_result={})


def result(epoch: int, val_acc: float) -> dict:
    return {
        "epoch": epoch,
        "training_iteration": epoch,
        "val_acc": val_acc,
        "val_loss": 2.0 - val_acc,
        "pretrained_video": False,  # a bool: not a metric
        "pretrained_video_sha256": "",  # a string: not a metric
        "config": {"lr": 0.001},  # the params, not metrics
    }


# ----------------------------------------------------------------------------- flags


def test_mlflow_flag_alone_keeps_the_store_in_the_experiment(tmp_path):
    options = parse("--mlflow", "--storage", str(tmp_path), "--name", "exp")
    options.check()
    assert options.tracking.mlflow == "default"
    assert (
        mlflow_tracking_uri(options.tracking, str(tmp_path), "exp")
        == f"sqlite:///{tmp_path.resolve()}/exp/mlflow.db"
    )
    assert parse("--mlflow", "http://tracking:5000").tracking.mlflow == "http://tracking:5000"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--wandb-group", "g"], "--wandb-group needs --wandb PROJECT"),
        (["--mlflow-experiment", "e"], "--mlflow-experiment needs --mlflow"),
        (["--wandb", "my project"], "--wandb 'my project': a W&B project name"),
        (["--mlflow", "ftp://host/x"], "--mlflow ftp://host/x: give a tracking URI"),
        (
            ["--mlflow", "sqlite:////no/such/folder/mlflow.db"],
            "--mlflow sqlite:////no/such/folder/mlflow.db: no folder",
        ),
        (["--mlflow", "http://"], "--mlflow http://: no host"),
    ],
)
def test_bad_tracking_flags_are_refused(flags, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        parse(*flags, "--storage", str(tmp_path)).check()


def test_a_default_store_needs_a_local_storage():
    with pytest.raises(TrackingError, match="--mlflow default keeps its store beside a local --storage"):
        mlflow_tracking_uri(parse("--mlflow").tracking, "gs://bucket/runs", "exp")


@pytest.mark.parametrize("flag, extra", [("--wandb", "wandb"), ("--mlflow", "mlflow")])
def test_a_tracker_without_its_package_exits_2_naming_the_extra(flag, extra, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(tracking_options, "installed", lambda package: package != extra)
    flags = [flag, "proj"] if flag == "--wandb" else [flag]
    status = tune_main.main(["--space", "video_transformer", *flags, "--storage", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and f"pip install -e '.[{extra}]'" in err, err


def test_wandb_logs_offline_without_a_key_and_online_with_one(monkeypatch, tmp_path):
    for variable in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert wandb_mode() == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_mode() == "online", "wandb login's key counts"
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled", "the user's WANDB_MODE wins"


def test_an_unreachable_mlflow_server_fails_before_the_search(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = parse("--mlflow", f"http://127.0.0.1:{port}", "--storage", str(tmp_path), "--name", "exp")
    options.check()
    with pytest.raises(TrackingError, match=f"--mlflow http://127.0.0.1:{port}: ") as caught:
        start_trackers(options, "exp")
    assert "\n" not in str(caught.value)


# ----------------------------------------------------------------------------- MLflow


def test_mlflow_nests_one_run_per_trial_under_the_search_and_resumes_into_them(tmp_path, capsys):
    from mlflow import MlflowClient

    options = parse("--mlflow", "--storage", str(tmp_path), "--name", "exp", "--max-epochs", "3")
    trackers = start_trackers(options, "exp")
    assert "MLflow: run exp in experiment msa-video_transformer" in capsys.readouterr().out
    (callback,) = trackers.callbacks(max_epochs=3)
    resumed_callback = pickle.loads(pickle.dumps(callback))  # as tuner.pkl keeps it for --resume
    callback.setup()
    a, b = (
        fake_trial("a", {"model": "video_iter4", "lr": 0.001}),
        fake_trial("b", {"model": "video_iter3", "lr": 0.01}),
    )
    for trial in (a, b):
        callback.log_trial_start(trial)
        callback.log_trial_result(1, trial, result(1, 0.25))
    a.last_result = {"epoch": 1}
    callback.log_trial_end(a)  # stopped by ASHA after epoch 1
    callback.log_trial_result(2, b, result(2, 0.5))

    # The driver dies; --resume finds the same parent and trial runs, and b goes on.
    resumed = parse("--mlflow", "--storage", str(tmp_path), "--name", "exp", "--resume")
    again = start_trackers(resumed, "exp", render_report=lambda experiment: f"<html>{experiment}</html>")
    assert again.mlflow.run_id == trackers.mlflow.run_id
    resumed_callback.setup()
    resumed_callback.log_trial_result(2, b, result(2, 0.5))  # the epoch it had not checkpointed, redone
    resumed_callback.log_trial_result(3, b, result(3, 0.75))
    b.last_result = {"epoch": 3}
    resumed_callback.log_trial_end(b)
    again.finish(SUMMARY, str(tmp_path / "exp"))

    client = MlflowClient(f"sqlite:///{tmp_path}/exp/mlflow.db")
    experiment = client.get_experiment_by_name("msa-video_transformer")
    found = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_name for run in found) == ["exp", "trial_a", "trial_b"], "none duplicated"
    runs = {run.info.run_name: run for run in found}
    parent = runs["exp"]
    assert parent.info.run_id == trackers.mlflow.run_id and parent.info.status == "FINISHED"
    assert parent.data.params["max_epochs"] == "3" and parent.data.params["space"] == "video_transformer"
    assert parent.data.metrics["test_accuracy"] == 0.375 and parent.data.metrics["best_val_acc"] == 0.5
    assert parent.data.metrics["baseline_audiovisual_accuracy"] == 0.7
    assert parent.data.tags["best_trial"] == "trial_b" and parent.data.tags["best_model"] == "video_iter4"
    assert {artifact.path for artifact in client.list_artifacts(parent.info.run_id)} == {
        "summary.json",
        "report.html",
    }
    assert experiment.artifact_location == (tmp_path / "exp" / "mlartifacts").resolve().as_uri()
    report = client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path))
    assert open(report).read() == f"<html>{tmp_path / 'exp'}</html>"
    summary = client.download_artifacts(parent.info.run_id, "summary.json", str(tmp_path))
    assert json.loads(open(summary).read()) == SUMMARY
    for name, trial, steps, outcome in (
        ("trial_a", a, [1], "stopped early"),
        ("trial_b", b, [1, 2, 2, 3], "finished"),
    ):
        run = runs[name]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert (
            run.data.tags["msa.trial_id"] == trial.trial_id
            and run.data.tags["msa.model"] == trial.config["model"]
        )
        assert run.data.tags["outcome"] == outcome
        assert run.data.tags["stopped_early"] == str(outcome == "stopped early").lower()
        assert run.data.params == {key: str(value) for key, value in trial.config.items()}
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == steps
        assert "pretrained_video" not in run.data.metrics and "config_lr" not in run.data.metrics
    assert [m.value for m in client.get_metric_history(runs["trial_b"].info.run_id, "val_loss")][-1] == 1.25

    fresh = start_trackers(parse("--mlflow", "--storage", str(tmp_path), "--name", "exp"), "exp")
    assert fresh.mlflow.run_id != trackers.mlflow.run_id, (
        "a search started again without --resume is a new run"
    )


# ----------------------------------------------------------------------------- W&B


def run_logging_actor(folder, trial_id: str, items: list, monkeypatch):
    """Ray's per-trial logging process, in this process: the queue filled first, then run."""
    from ray.air.integrations.wandb import _QueueItem

    from msa.tune.tracking.wandb_runs import OUTCOME_KEY, TrialLoggingActor

    monkeypatch.chdir(folder)  # the actor moves into the trial folder; the test's cwd comes back
    logs = queue.Queue()
    for item in items:
        logs.put((_QueueItem.RESULT, item) if isinstance(item, dict) and OUTCOME_KEY not in item else item)
    logs.put((_QueueItem.END, None))
    actor = TrialLoggingActor(
        str(folder),
        logs,
        exclude=["done", "should_checkpoint", "config"],
        to_config=[],
        id=trial_id,
        name=f"trial_{trial_id}",
        project="msa-test",
        group="exp",
        config={"model": "video_iter4", "lr": 0.001},
        mode="offline",
        resume="allow",
        reinit="finish_previous",
    )
    actor.run()


def test_wandb_writes_a_run_per_trial_offline_that_a_resume_continues(tmp_path, monkeypatch):
    from ray.air.integrations.wandb import _QueueItem

    from msa.tune.tracking.wandb_runs import OUTCOME_KEY

    monkeypatch.setenv("WANDB_SILENT", "true")
    folder = tmp_path / "exp" / "trial_b"
    folder.mkdir(parents=True)
    run_logging_actor(folder, "b", [result(1, 0.25), result(2, 0.5)], monkeypatch)
    end = {OUTCOME_KEY: {"outcome": "finished", "stopped_early": False, "epochs": 3}}
    run_logging_actor(folder, "b", [result(3, 0.75), (_QueueItem.RESULT, end)], monkeypatch)  # --resume

    first, second = offline_runs(folder)
    assert first.run_id == second.run_id == "b", "the resumed trial logs into the same run"
    assert (first.project, first.group, first.name) == ("msa-test", "exp", "trial_b")
    assert first.config["model"] == "video_iter4" and first.config["lr"] == 0.001
    steps = [row["_step"] for run in (first, second) for row in run.history]
    assert steps == [1, 2, 3]
    assert [row["val_acc"] for run in (first, second) for row in run.history] == [0.25, 0.5, 0.75]
    assert "val_loss" in first.history[0] and not any(key.startswith("config") for key in first.history[0])
    assert second.summary["outcome"] == "finished" and second.summary["epochs"] == 3
    assert first.exited and second.exited


def test_the_wandb_summary_run_holds_the_search_result(tmp_path, monkeypatch):
    from msa.tune.tracking.wandb_runs import log_summary_run

    monkeypatch.chdir(tmp_path)
    log_summary_run("msa-test", "exp", "offline", tmp_path / "exp" / "wandb_summary", "exp", SUMMARY)
    (run,) = offline_runs(tmp_path / "exp" / "wandb_summary")
    assert (run.run_id, run.group, run.job_type) == ("exp-summary", "exp", "search-summary")
    assert run.config["model"] == "video_iter4"
    assert run.summary["test_accuracy"] == 0.375 and run.summary["best_trial"] == "trial_b"
    assert run.summary["baseline_audio_accuracy"] == 0.6 and run.summary["trials_TERMINATED"] == 2


@pytest.mark.slow
def test_mlflow_logs_to_a_tracking_server(tmp_path):
    """--mlflow http://...: the same runs and artifacts through a real `mlflow server` on loopback
    (its artifacts proxied to a folder), as on a team's tracking server."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from mlflow import MlflowClient

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        + [
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "art"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PATH": f"{mlflow.parent}:{os.environ['PATH']}"},
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        options = parse("--mlflow", uri, "--storage", str(tmp_path), "--name", "exp")
        options.check()
        trackers = start_trackers(options, "exp", render_report=lambda experiment: "<html></html>")
        (callback,) = trackers.callbacks(max_epochs=2)
        callback.setup()
        trial = fake_trial("a", {"model": "video_iter4"})
        for epoch in (1, 2):
            callback.log_trial_result(epoch, trial, result(epoch, epoch / 4))
        trial.last_result = {"epoch": 2}
        callback.log_trial_end(trial)
        trackers.finish(SUMMARY, str(tmp_path / "exp"))

        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("msa-video_transformer").experiment_id])
        parent = next(run for run in runs if run.info.run_name == "exp")
        child = next(run for run in runs if run.info.run_name == "trial_a")
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_acc")] == [1, 2]
        assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"summary.json", "report.html"}
        assert list((tmp_path / "art").rglob("summary.json")), "artifacts went through the server"
        assert trackers.where() == [f"mlflow:      {uri}   (run exp)"]
    finally:
        server.terminate()
        server.wait(timeout=30)

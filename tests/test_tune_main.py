"""tune_main.py end to end, as a user runs it: a real Ray Tune search (smoke budget)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO
from processes import assert_no_crash_output, ray_processes, wait_for_no_new_ray_processes
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.ray  # these tests start Ray (make test-quick leaves them out)

STATUSES = {"TERMINATED", "ERROR", "PENDING"}


@pytest.fixture(scope="module")
def smoke_env(torch_home):
    """ResNet-18 weights in torchvision's cache: --pretrained auto (the default) finds them.
    No W&B key: --wandb logs offline."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    return {**env, "TORCH_HOME": str(torch_home[0])}


@pytest.fixture(scope="module")
def smoke_run(tiny_sample, tmp_path_factory, smoke_env):
    storage = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("cache")
    command = [
        sys.executable,
        "tune_main.py",
        "--space",
        "video_transformer",
        "--smoke-test",
        "--num-samples",
        "2",
        # The data as a storage URI: the resume test below then resumes a URI-data search.
        "--data",
        tiny_sample.as_uri(),
        "--classes",
        "seed4",
        "--cache",
        str(cache),
        "--storage",
        str(storage),
        "--name",
        "smoke",
        "--optuna-storage",
        "default",
        "--wandb",
        "msa-smoke",
        "--mlflow",
    ]
    before = ray_processes()
    result = subprocess.run(command, cwd=REPO, env=smoke_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not wait_for_no_new_ray_processes(before), "a normal run left Ray processes behind"
    assert_no_crash_output(result)
    return storage / "smoke", result


def test_summary_matches_the_schema(smoke_run):
    experiment, result = smoke_run
    summary = json.loads((experiment / "summary.json").read_text())
    assert set(summary) == {
        "space",
        "metric",
        "mode",
        "num_trials",
        "trials_by_status",
        "best_trial",
        "best_config",
        "best_val",
        "schedule",
        "objectives",  # null: one objective (a multi-objective search: tests/test_multiobjective_ray.py)
        "pareto_front",
        "test",
        "baseline",
        "data",
        "pretrained",
        "errors",
        "stopped_non_finite",
    }
    assert (summary["space"], summary["metric"], summary["mode"], summary["num_trials"]) == (
        "video_transformer",
        "val_acc",
        "max",
        2,
    )
    assert set(summary["trials_by_status"]) <= STATUSES and sum(summary["trials_by_status"].values()) == 2
    assert (experiment / summary["best_trial"]).is_dir()
    assert summary["best_config"]["model"] in ("video_iter3", "video_iter4", "video_iter5")
    assert set(summary["best_val"]) >= {"val_acc", "val_f1", "val_uar"}
    assert summary["schedule"] is None, "an ASHA search has no population schedule"
    test = summary["test"]
    assert test["labels"] == ["sad", "happy", "disgust", "angry"]
    matrix = test["confusion_matrix"]
    assert len(matrix) == 4 and all(len(row) == 4 for row in matrix)
    assert sum(map(sum, matrix)) == 4, "one test actor x 4 emotions, each evaluated once"
    assert all(0 <= test[k] <= 1 for k in ("accuracy", "f1_macro", "uar"))
    data = summary["data"]
    assert data["clips"] == 16 and data["skipped"] == 0
    actors = data["actors"]
    assert sorted(actors["train"] + actors["val"] + actors["test"]) == [1, 2, 3, 4]
    assert len(actors["val"]) == len(actors["test"]) == 1
    assert summary["pretrained"] == {"mode": "auto", "video": PRETRAINED_VIDEO, "audio": RANDOM}
    assert summary["errors"] == {} and summary["stopped_non_finite"] == {}
    baseline = summary["baseline"]  # on the same actors as the test block
    assert set(baseline) == {"audio", "video", "audiovisual", "seconds"}
    for scores in (baseline[name] for name in ("audio", "video", "audiovisual")):
        assert sum(map(sum, scores["confusion_matrix"])) == 4
        assert 0 <= scores["accuracy"] <= 1 and 0 <= scores["val_accuracy"] <= 1
    assert "tensorboard --logdir" in result.stdout and "test  accuracy" in result.stdout
    assert "classical baselines on the same actors" in result.stdout and "  audio features" in result.stdout
    assert f"msa crossval {experiment} --folds 4" in result.stdout


def test_the_optuna_study_is_persisted_for_the_dashboard(smoke_run):
    """--optuna-storage default: the study, named after the experiment, in STORAGE/NAME/optuna.db,
    with a trial per Ray trial: COMPLETE when it ran every epoch, PRUNED (at its last epoch) when
    ASHA stopped it."""
    import optuna

    experiment, _ = smoke_run
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{experiment / 'optuna.db'}")
    epochs = sorted(
        len((trial / "result.json").read_text().strip().splitlines()) for trial in experiment.glob("trial_*")
    )
    assert sorted(t.last_step for t in study.trials) == epochs
    for trial in study.trials:
        expected = (
            optuna.trial.TrialState.COMPLETE if trial.last_step == 2 else optuna.trial.TrialState.PRUNED
        )
        assert trial.state == expected, (trial.number, trial.state, trial.last_step)


PRETRAINED_VIDEO = {"loaded": True, "source": "IMAGENET1K_V1", "sha256": None}  # sha256: the fixture's file
RANDOM = {"loaded": False, "source": None, "sha256": None}


@pytest.fixture(autouse=True)
def expected_sha256(torch_home):
    PRETRAINED_VIDEO["sha256"] = torch_home[1]


def mlflow_runs(experiment):
    """The MLflow store of --mlflow: (parent run, {trial folder: run}), and the client."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{experiment / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("msa-video_transformer").experiment_id])
    (parent,) = [run for run in found if "mlflow.parentRunId" not in run.data.tags]
    trials = {run.info.run_name: run for run in found if run is not parent}
    assert len(trials) == len(found) - 1, "one run per trial"
    return parent, trials, client


def epochs_of(trial) -> list[int]:
    return [json.loads(line)["epoch"] for line in (trial / "result.json").read_text().splitlines()]


def test_mlflow_holds_the_search_and_every_trial(smoke_run):
    """--mlflow: a parent run with the test result and the summary and report as artifacts; a
    nested run per trial with every reported epoch, and how it ended."""
    experiment, result = smoke_run
    summary = json.loads((experiment / "summary.json").read_text())
    parent, trials, client = mlflow_runs(experiment)
    assert parent.info.run_name == "smoke" and parent.info.status == "FINISHED"
    assert parent.data.metrics["test_accuracy"] == summary["test"]["accuracy"]
    assert parent.data.tags["best_trial"] == summary["best_trial"]
    artifacts = {artifact.path for artifact in client.list_artifacts(parent.info.run_id)}
    assert artifacts == {"summary.json", "report.html"}
    report = client.download_artifacts(parent.info.run_id, "report.html", str(experiment.parent))
    assert "<html" in open(report).read()
    assert set(trials) == {trial.name for trial in experiment.glob("trial_*")}
    for name, run in trials.items():
        epochs = epochs_of(experiment / name)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == epochs
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["outcome"] == ("finished" if epochs[-1] == 2 else "stopped early")
        assert (
            run.data.params["model"] == json.loads((experiment / name / "params.json").read_text())["model"]
        )
    assert f"mlflow ui --backend-store-uri sqlite:///{experiment}/mlflow.db" in result.stdout


def test_wandb_wrote_an_offline_run_per_trial_and_a_summary_run(smoke_run):
    from wandb_files import offline_runs

    experiment, result = smoke_run
    assert (
        "W&B: no API key" in result.stdout
        and f"wandb sync {experiment}/*/wandb/offline-run-*" in result.stdout
    )
    summary = json.loads((experiment / "summary.json").read_text())
    for trial in experiment.glob("trial_*"):
        (run,) = offline_runs(trial)
        assert (run.project, run.group, run.name) == ("msa-smoke", "smoke", trial.name)
        assert [row["_step"] for row in run.history] == epochs_of(trial)
        assert run.config["model"] == json.loads((trial / "params.json").read_text())["model"]
        assert run.summary["outcome"] in ("finished", "stopped early") and run.exited
    *earlier, summary_run = offline_runs(experiment / "wandb_summary")  # (a resume adds one)
    assert {run.run_id for run in earlier} <= {summary_run.run_id}
    assert summary_run.job_type == "search-summary" and summary_run.group == "smoke"
    assert summary_run.summary["test_accuracy"] == summary["test"]["accuracy"]


def test_every_trial_loaded_the_same_weights(smoke_run, torch_home):
    experiment, result = smoke_run
    for trial in experiment.glob("trial_*"):
        for line in (trial / "result.json").read_text().splitlines():
            epoch = json.loads(line)
            assert epoch["pretrained_video"] is True and epoch["pretrained_video_sha256"] == torch_home[1]
            assert epoch["pretrained_audio"] is False and epoch["pretrained_audio_sha256"] == ""
    assert f"video IMAGENET1K_V1 (sha256 {torch_home[1][:12]})" in result.stdout


def test_tensorboard_files_parse(smoke_run):
    experiment, _ = smoke_run
    trials = [p for p in experiment.iterdir() if p.is_dir() and p.name.startswith("trial_")]
    assert len(trials) == 2
    for trial in trials:
        ours = EventAccumulator(str(trial / "tensorboard"))
        ours.Reload()
        tags = ours.Tags()
        assert {
            "loss/train_loss",
            "loss/val_loss",
            "metrics/val_acc",
            "metrics/val_f1",
            "metrics/val_uar",
            "lr",
        } <= set(tags["scalars"])
        assert "val/confusion_matrix" in tags["images"]
        epochs = [event.step for event in ours.Scalars("metrics/val_acc")]
        progress = (trial / "progress.csv").read_text().strip().splitlines()
        assert epochs == list(range(1, len(progress))), "one point per reported epoch"
        assert (trial / "params.json").is_file() and list(trial.glob("checkpoint_*/checkpoint.pt"))


@pytest.mark.slow  # 29 s (make test-all): keeps make test under 10 minutes
def test_resume_of_a_finished_search_only_summarises_again(smoke_run, smoke_env, tmp_path):
    """Also the resume of a search whose --data is a storage URI (file:// here): it finds its data."""
    experiment, _ = smoke_run
    assert json.loads((experiment / "msa_args.json").read_text())["data"].startswith("file://")
    summary = json.loads((experiment / "summary.json").read_text())
    epochs = {trial.name: (trial / "result.json").read_text() for trial in experiment.glob("trial_*")}
    resumed = subprocess.run(
        [
            sys.executable,
            "tune_main.py",
            "--space",
            "video_transformer",
            "--storage",
            str(experiment.parent),
            "--name",
            experiment.name,
            "--resume",
        ],
        cwd=REPO,
        env=smoke_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = json.loads((experiment / "summary.json").read_text())
    again["baseline"].pop("seconds"), summary["baseline"].pop("seconds")  # wall time: the rest is equal
    assert again == summary
    assert {
        trial.name: (trial / "result.json").read_text() for trial in experiment.glob("trial_*")
    } == epochs, "nothing retrained"
    parent, trials, _ = mlflow_runs(experiment)
    assert set(trials) == set(epochs), "the resumed search logged into the same MLflow runs"


@pytest.mark.slow
def test_ctrl_c_then_resume_finishes_the_search(tiny_sample, tmp_path):
    """Ctrl-C mid-search exits 130 with the resume command; --resume finishes every trial."""
    import signal
    import time

    common = ["--storage", str(tmp_path / "results"), "--name", "interrupted"]
    command = [
        sys.executable,
        "tune_main.py",
        "--space",
        "video_transformer",
        "--smoke-test",
        "--num-samples",
        "3",
        "--max-epochs",
        "6",
        "--data",
        str(tiny_sample),
        "--classes",
        "seed4",
        "--pretrained",
        "off",
        "--cache",
        str(tmp_path / "cache"),
        *common,
    ]
    before = ray_processes()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    experiment = tmp_path / "results" / "interrupted"
    deadline = time.time() + 300
    while not list(experiment.glob("trial_*/checkpoint_*")) and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert not wait_for_no_new_ray_processes(before), "Ctrl-C left Ray processes behind"
    assert "--resume" in err and not (experiment / "summary.json").exists()

    resumed = subprocess.run(
        [sys.executable, "tune_main.py", "--space", "video_transformer", "--resume", *common],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["num_trials"] == 3 and summary["trials_by_status"] == {"TERMINATED": 3}


def test_a_hub_speech_encoder_is_downloaded_before_ray_and_reaches_every_trial(tiny_sample, tmp_path):
    """--audio-weights ID with nothing cached: the real download code fetches a HuBERT from a
    Hugging Face endpoint before Ray starts, the trials build the branch from its config.json
    and load its bytes, and the summary records its sha256."""
    import hashlib

    from weight_servers import HubServer, tiny_speech_repo

    repo = tiny_speech_repo("hubert")
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "HF_HUB_OFFLINE": "0",
    }
    command = [
        sys.executable,
        "tune_main.py",
        "--space",
        "audio_wav2vec",
        "--smoke-test",
        "--num-samples",
        "2",
        "--max-epochs",
        "1",
        "--grace-period",
        "1",
        "--data",
        str(tiny_sample),
        "--classes",
        "seed4",
        "--audio-weights",
        "msa-tests/tiny-hubert",
        "--cache",
        str(tmp_path / "cache"),
        "--storage",
        str(tmp_path / "results"),
        "--name",
        "hubert",
    ]
    with HubServer({"msa-tests/tiny-hubert": repo}) as hub:
        env["HF_ENDPOINT"] = hub.url
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        downloaded = hub.downloads()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_no_crash_output(result)
    assert sorted(downloaded) == ["config.json", "model.safetensors"], "only what the model needs, once"
    sha256 = hashlib.sha256(repo["model.safetensors"]).hexdigest()
    summary = json.loads((tmp_path / "results" / "hubert" / "summary.json").read_text())
    assert summary["pretrained"]["audio"] == {
        "loaded": True,
        "source": "msa-tests/tiny-hubert",
        "sha256": sha256,
    }
    for trial in (tmp_path / "results" / "hubert").glob("trial_*"):
        epoch = json.loads((trial / "result.json").read_text().splitlines()[0])
        assert epoch["pretrained_audio_sha256"] == sha256
        checkpoint = next(trial.glob("checkpoint_*/checkpoint.pt"))
        from msa.train import model_from_checkpoint

        model, _ = model_from_checkpoint(checkpoint)
        assert json.loads(model.config.audio.audio_arch)["model_type"] == "hubert", (
            "the checkpoint rebuilds the HuBERT alone"
        )


def test_the_best_model_annotates_a_clip(smoke_run, tiny_sample, tmp_path, capsys):
    """The search's last lines name msa.predict, which takes the experiment directory as it is
    (run in this process: tests/test_predict.py runs the command line)."""
    from msa.predict.__main__ import main as predict_main

    experiment, result = smoke_run
    assert f"predict:     msa predict {experiment} RECORDING.mp4" in result.stdout
    clip = sorted(tiny_sample.rglob("*.mp4"))[0]
    out = tmp_path / "clip.json"
    assert predict_main([str(experiment), str(clip), "--out", str(out), "--quiet"]) == 0
    stderr = capsys.readouterr().err
    summary = json.loads((experiment / "summary.json").read_text())
    assert f"(trial {summary['best_trial']}, " in stderr, "the best trial's checkpoint"
    assert "crop: fixed (a RAVDESS clip, and the model was trained on RAVDESS framing)" in stderr
    annotated = json.loads(out.read_text())
    assert annotated["labels"] == ["sad", "happy", "disgust", "angry"], "--classes seed4, in its order"
    (window,) = annotated["items"]  # a 1 s clip is one window
    assert window["source"] == "video" and window["top"] in annotated["labels"]

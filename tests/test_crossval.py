"""Cross-validation by actor, as users run it: tune_main.py --crossval, python -m msa.crossval
(an interrupted run resumed), crossval.json's schema and arithmetic, and the one-line
refusals before Ray starts."""

import json
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, smoke_search_flags
from processes import assert_no_crash_output, ray_processes, wait_for_no_new_ray_processes

from msa.data.folds import Fold
from msa.experiment_dir import best_result
from msa.tune.command_line import build_parser
from msa.tune.crossval_file import FoldOutcome, crossval_payload, format_crossval
from msa.tune.options import SearchOptions

TINY_ACTORS = [1, 2, 3, 4]
CLIPS_PER_ACTOR = 4  # the tiny sample: 4 emotions x 1 statement
FEATURE_SETS = ("audio", "video", "audiovisual")
CROSSVAL_KEYS = {
    "experiment",
    "space",
    "folds_preset",
    "protocol",
    "seed",
    "epochs",
    "metric",
    "mode",
    "labels",
    "config",
    "pretrained",
    "folds",
    "folds_completed",
    "folds_total",
    "mean",
    "std",
    "pooled_confusion_matrix",
    "baseline",
}
FOLD_KEYS = {
    "fold",
    "train_actors",
    "val_actors",
    "test_actors",
    "trial",
    "status",
    "error",
    "epoch",
    "val_acc",
    "val_uar",
    "val_f1",
    "val_loss",
    "accuracy",
    "uar",
    "f1_macro",
    "confusion_matrix",
    "baseline",
}


def search_flags(tiny_sample, tmp_path, name):
    """A smoke search of one trial."""
    return [*smoke_search_flags(tiny_sample, tmp_path, name), "--num-samples", "1"]


def run(command, timeout=600, **kwargs):
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs)


def epochs_of(trial_folder) -> list[dict]:
    """The epochs a trial reported so far ([] before its first)."""
    path = trial_folder / "result.json"
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class Crossvalidated:
    experiment: Path
    interrupted: subprocess.CompletedProcess  # tune_main.py --crossval 3, Ctrl-C after the first fold
    finished_before: dict[str, str]  # trial folder -> its result.json when Ctrl-C came
    refused: subprocess.CompletedProcess  # msa.crossval without --resume
    resumed: subprocess.CompletedProcess  # msa.crossval --resume


@pytest.fixture(scope="module")
def crossvalidated(tiny_sample, tmp_path_factory):
    """A smoke search of one trial, then --crossval 3 of its best config, one fold at a time,
    interrupted by Ctrl-C once the first fold finished; then python -m msa.crossval --resume."""
    tmp_path = tmp_path_factory.mktemp("crossval")
    experiment = tmp_path / "results" / "cv"
    folder = experiment / "crossval_3"
    before = ray_processes()
    command = [sys.executable, "tune_main.py", *search_flags(tiny_sample, tmp_path, "cv")]
    process = subprocess.Popen(
        [*command, "--crossval", "3", "--max-concurrent", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def first_fold_done():
        finished = [t for t in folder.glob("trial_*") if len(epochs_of(t)) == 2]
        return finished and len(list(folder.glob("trial_*"))) >= 2 and list(folder.glob("experiment_state-*"))

    try:
        deadline = time.time() + 400
        while not first_fold_done() and process.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert first_fold_done(), "the first fold did not finish in time"
        finished = {
            t.name: (t / "result.json").read_text() for t in folder.glob("trial_*") if len(epochs_of(t)) == 2
        }
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # never leave a run (and its Ray) behind for the next tests
            process.kill()
            process.communicate()
    interrupted = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    assert not wait_for_no_new_ray_processes(before), "Ctrl-C left Ray processes behind"
    crossval = [sys.executable, "-m", "msa.crossval", str(experiment), "--folds", "3"]
    refused = run(crossval)
    resumed = run([*crossval, "--resume"])
    assert not wait_for_no_new_ray_processes(before), "the resumed run left Ray processes behind"
    return Crossvalidated(experiment, interrupted, finished, refused, resumed)


@pytest.mark.ray
def test_interrupted_crossval_resumes_keeping_finished_folds(crossvalidated):
    """Ctrl-C after the first fold: exit 130 with the resume command; without --resume the
    folder is refused; --resume keeps the finished fold as it was and finishes the others."""
    cv = crossvalidated
    assert cv.interrupted.returncode == 130, cv.interrupted.stderr[-2000:]
    assert f"msa crossval {cv.experiment} --folds 3 --resume" in cv.interrupted.stderr
    assert (cv.experiment / "summary.json").exists() and "classical baselines" in cv.interrupted.stdout
    assert cv.refused.returncode == 2 and "add --resume" in cv.refused.stderr
    assert cv.resumed.returncode == 0, cv.resumed.stdout[-3000:] + cv.resumed.stderr[-3000:]
    assert_no_crash_output(cv.resumed)
    for name, text in cv.finished_before.items():
        assert (cv.experiment / "crossval_3" / name / "result.json").read_text() == text, (
            f"finished fold {name} was trained again"
        )
    assert "== cross-validation of video_transformer" in cv.resumed.stdout and "mean" in cv.resumed.stdout


@pytest.mark.ray
def test_crossval_json_schema_and_arithmetic(crossvalidated):
    experiment = crossvalidated.experiment
    summary = json.loads((experiment / "summary.json").read_text())
    cv = json.loads((experiment / "crossval.json").read_text())
    assert set(cv) == CROSSVAL_KEYS
    assert (cv["space"], cv["folds_preset"], cv["epochs"], cv["folds_total"], cv["folds_completed"]) == (
        "video_transformer",
        "3",
        2,
        3,
        3,
    )
    assert cv["config"] == summary["best_config"], "the search's best configuration is cross-validated"
    assert cv["labels"] == ["sad", "happy", "disgust", "angry"]
    tested = []
    for fold in cv["folds"]:
        assert set(fold) == FOLD_KEYS
        train, val, test = set(fold["train_actors"]), set(fold["val_actors"]), set(fold["test_actors"])
        assert train and val and test and not (train & val or train & test or val & test)
        assert train | val | test == set(TINY_ACTORS)
        tested += fold["test_actors"]
        assert sum(map(sum, fold["confusion_matrix"])) == CLIPS_PER_ACTOR * len(test)
        for name in FEATURE_SETS:
            assert sum(map(sum, fold["baseline"][name]["confusion_matrix"])) == CLIPS_PER_ACTOR * len(test)
        # The tested epoch is the best on the fold's validation actors, by the best-trial rule.
        trial = experiment / "crossval_3" / fold["trial"]
        params = json.loads((trial / "params.json").read_text())
        assert params == {**cv["config"], "fold": fold["fold"]}
        assert fold["epoch"] == best_result(epochs_of(trial), "val_acc", "max")["epoch"]
    assert sorted(tested) == TINY_ACTORS, "every actor tested exactly once"

    folds = cv["folds"]
    for key in ("accuracy", "uar", "f1_macro"):
        assert cv["mean"][key] == pytest.approx(statistics.fmean(f[key] for f in folds))
        assert cv["std"][key] == pytest.approx(statistics.stdev(f[key] for f in folds))
    pooled = [[sum(f["confusion_matrix"][i][j] for f in folds) for j in range(4)] for i in range(4)]
    assert cv["pooled_confusion_matrix"] == pooled
    for name in FEATURE_SETS:
        accuracies = [f["baseline"][name]["accuracy"] for f in folds]
        assert cv["baseline"][name]["mean"]["accuracy"] == pytest.approx(statistics.fmean(accuracies))


def test_a_named_preset_on_data_lacking_actors_exits_2_before_ray(tiny_sample, tmp_path):
    before = ray_processes()
    result = run(
        [sys.executable, "tune_main.py", *search_flags(tiny_sample, tmp_path, "x"), "--crossval", "ravdess6"]
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --crossval ravdess6 needs RAVDESS's actors 1-24, but the data lacks actors 5-24; "
        "use --crossval K for K gender-balanced folds of the actors present"
    ]
    assert not (tmp_path / "results" / "x").exists(), "nothing ran"
    assert not ray_processes() - before


@pytest.fixture
def saved_experiment(tiny_sample, tmp_path):
    """An experiment directory as a search leaves it before its summary: msa_args.json only."""
    args = build_parser().parse_args(search_flags(tiny_sample, tmp_path, "saved"))
    options = SearchOptions.from_namespace(args, ["video_transformer"])
    experiment = tmp_path / "results" / "saved"
    experiment.mkdir(parents=True)
    (experiment / "msa_args.json").write_text(json.dumps(options.to_json()))
    return experiment


CONFIG = (
    '{"model": "video_iter3", "trunk": "frozen", "d_model": 64, "num_layers": 1, "num_heads": 1, "lr": 0.001}'
)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--folds", "ravdess6", "--config", CONFIG], "--folds ravdess6 needs RAVDESS's actors 1-24"),
        (["--folds", "2"], "--folds 2: use one of ravdess6, chumachenko5, lunajimenez5"),
        (["--folds", "5", "--config", CONFIG], "--folds 5: the data has only 4 speakers (1-4)"),
        (["--folds", "3"], "no summary.json with a best trial"),
        (
            ["--folds", "3", "--config", '{"model": "video_iter3", "bogus": 1}'],
            "--config: trial config keys ['bogus']",
        ),
        (["--folds", "3", "--config", "{not json"], "--config {not json: not JSON"),
        (["--folds", "3", "--config", CONFIG, "--resume"], "--resume: no cross-validation at"),
        (["--folds", "3", "--config", CONFIG, "--epochs", "0"], "--epochs must be at least 1"),
    ],
)
def test_msa_crossval_refuses_bad_input_with_one_line(saved_experiment, flags, message, capsys):
    from msa.crossval import main  # in process: the command line itself is run below

    before = ray_processes()
    assert main([str(saved_experiment), *flags]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and message in lines[0], lines
    assert not ray_processes() - before


def test_msa_crossval_needs_an_experiment_directory(tmp_path):
    result = run([sys.executable, "-m", "msa.crossval", str(tmp_path / "nothing"), "--folds", "3"])
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: {tmp_path / 'nothing'}: not an experiment directory (no msa_args.json)"
    )


def outcome(number, test_actors, matrix, status="TERMINATED"):
    fold = Fold(number, (9,), (8,), tuple(test_actors))
    if matrix is None:
        return FoldOutcome(fold, f"trial_{number}", status, "RuntimeError: boom", {}, None, None)
    correct = sum(matrix[i][i] for i in range(len(matrix)))
    total = sum(map(sum, matrix))
    test = {"accuracy": correct / total, "uar": 0.5, "f1_macro": 0.25, "confusion_matrix": matrix}
    return FoldOutcome(fold, f"trial_{number}", status, None, {"epoch": 2, "val_acc": 0.5}, test, None)


def payload_of(outcomes, epochs=2):
    return crossval_payload(
        outcomes,
        experiment="e",
        space="s",
        folds="3",
        protocol="p",
        seed=0,
        epochs=epochs,
        metric="val_acc",
        mode="max",
        labels=["a", "b"],
        config={"model": "m"},
        pretrained={},
    )


def test_crossval_payload_leaves_failed_folds_out_of_the_statistics():
    outcomes = [
        outcome(1, [1], [[2, 0], [1, 1]]),
        outcome(2, [2], None, "ERROR"),
        outcome(3, [3], [[1, 1], [0, 2]]),
    ]
    payload = payload_of(outcomes)
    assert (payload["folds_completed"], payload["folds_total"]) == (2, 3)
    assert payload["mean"]["accuracy"] == pytest.approx(0.75)
    assert payload["std"]["accuracy"] == pytest.approx(0.0)
    assert payload["pooled_confusion_matrix"] == [[3, 1], [1, 3]]
    failed = payload["folds"][1]
    assert failed["status"] == "ERROR" and failed["accuracy"] is None and failed["epoch"] is None
    assert payload["baseline"] is None
    table = format_crossval(payload)
    assert "ERROR: RuntimeError: boom" in table and "2/3 folds" in table


def test_one_completed_fold_has_no_spread():
    payload = payload_of([outcome(1, [1], [[1, 0], [0, 1]])], epochs=1)
    assert payload["std"] is None and payload["mean"]["accuracy"] == 1.0

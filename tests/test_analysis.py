"""The analysis layer: msa.analysis' frames, tables and figures, python -m msa.report, analysis/trials.ipynb.

One real search (tune_main.py --smoke-test, video_iterations) is run once for the module; the
edge cases Ray produces less predictably (an errored trial, a trial stopped early, one still
running, one never reported, a search interrupted and resumed) are made by editing copies of it.
"""

import json
import os
import shutil
import subprocess
import sys

import nbformat
import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import REPO
from processes import assert_no_crash_output

from msa import analysis, report

pytestmark = pytest.mark.ray  # these tests start Ray (make test-quick leaves them out)

NOTEBOOK = REPO / "analysis" / "trials.ipynb"
NUM_TRIALS, MAX_EPOCHS = 4, 3


@pytest.fixture(scope="module")
def search(tiny_sample, tmp_path_factory):
    """A finished video_iterations search on the tiny sample: 4 trials of up to 3 epochs."""
    storage = tmp_path_factory.mktemp("results")
    command = [
        sys.executable,
        "tune_main.py",
        "--space",
        "video_iterations",
        "--smoke-test",
        "--num-samples",
        str(NUM_TRIALS),
        "--max-epochs",
        str(MAX_EPOCHS),
        "--pretrained",
        "off",
        "--data",
        str(tiny_sample),
        "--classes",
        "seed4",
        "--cache",
        str(tmp_path_factory.mktemp("cache")),
        "--storage",
        str(storage),
        "--name",
        "tiny",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_no_crash_output(result)
    return storage / "tiny"


@pytest.fixture
def copy(search, tmp_path):
    """A scratch copy of the search to edit into an edge case."""
    return shutil.copytree(search, tmp_path / "tiny")


def state_file(experiment):
    return sorted(experiment.glob("experiment_state-*.json"))[-1]


def set_ray_status(experiment, trial: str, status: str) -> None:
    """Edit Ray's experiment state as Ray writes it: each trial a JSON string inside the JSON."""
    path = state_file(experiment)
    state = json.loads(path.read_text())
    for pair in state["trial_data"]:
        trial_json = json.loads(pair[0])
        if trial_json["relative_logdir"] == trial:
            pair[0] = json.dumps({**trial_json, "status": status})
    path.write_text(json.dumps(state))


def result_lines(trial_dir):
    return (trial_dir / "result.json").read_text().splitlines()


def longest_trial(experiment) -> str:
    trials = analysis.load_experiment(experiment).trials
    return trials.sort_values("epochs", ascending=False)["trial"].iloc[0]


# ----------------------------------------------------------------------------- loaders


def test_frames_of_a_finished_search(search):
    experiment = analysis.load_experiment(search)
    trials, epochs = experiment.trials, experiment.epochs
    assert (
        experiment.finished and experiment.space == "video_iterations" and experiment.max_epochs == MAX_EPOCHS
    )
    assert len(trials) == NUM_TRIALS and trials["trial"].is_unique
    assert set(trials["status"]) == {"TERMINATED"} and set(trials["status_from"]) == {"ray"}
    assert {
        "config/model",
        "config/lr",
        "config/batch_size",
        "best_val_acc",
        "last_val_loss",
        "epochs",
        "time_total_s",
    } <= set(trials)
    assert set(trials["config/model"]) <= {f"video_iter{i}" for i in range(1, 6)}
    assert (trials["stopped_early"] == (trials["epochs"] < MAX_EPOCHS)).all()
    # one row per trial-epoch, and the trial frame agrees with it
    assert len(epochs) == trials["epochs"].sum() and not epochs.duplicated(["trial", "epoch"]).any()
    assert {"train_loss", "val_acc", "val_f1", "val_uar", "lr", "checkpoint_dir_name"} <= set(epochs)
    best = epochs.loc[epochs.groupby("trial")["val_acc"].idxmax()].set_index("trial")["val_acc"]
    assert np.allclose(trials.set_index("trial")["best_val_acc"].loc[best.index], best)
    assert experiment.best_trial == experiment.summary["best_trial"]


def test_the_best_checkpoint_rebuilds_the_model_and_its_val_metrics(search):
    experiment = analysis.load_experiment(search)
    model, extra = analysis.load_best_model(experiment)
    assert extra["epoch"] == experiment.summary["best_val"]["epoch"]
    val = analysis.rebuild_val_evaluation(experiment, model)
    assert val["accuracy"] == pytest.approx(experiment.summary["best_val"]["val_acc"])
    assert np.asarray(val["confusion_matrix"]).sum() == 4, "one val actor x 4 emotions"


def test_a_storage_uri_reads_like_the_path(search):
    by_path, by_uri = analysis.load_experiment(search), analysis.load_experiment(search.as_uri())
    pd.testing.assert_frame_equal(by_path.trials, by_uri.trials)
    assert analysis.load_best_model(by_uri)[1]["epoch"] == by_path.summary["best_val"]["epoch"]


def test_errored_trial(copy):
    trial = longest_trial(copy)
    (copy / trial / "error.txt").write_text(
        'Failure # 1 (occurred at 2026-01-01_12-00-00)\nray::ImplicitFunc.train()\n  File "x.py", line 1\nRuntimeError: out of memory\n'
    )
    set_ray_status(copy, trial, "ERROR")
    row = analysis.load_experiment(copy).trial(trial)
    assert (row["status"], row["status_from"], row["error"], row["failures"]) == (
        "ERROR",
        "ray",
        "RuntimeError: out of memory",
        1,
    )
    assert not row["stopped_early"]

    state_file(copy).unlink()  # without Ray's state the error file decides
    row = analysis.load_experiment(copy).trial(trial)
    assert (row["status"], row["status_from"]) == ("ERROR", "files")


def test_trial_stopped_early(copy):
    trial = longest_trial(copy)
    first = json.loads(result_lines(copy / trial)[0])
    (copy / trial / "result.json").write_text(json.dumps({**first, "done": True}) + "\n")  # as ASHA leaves it
    experiment = analysis.load_experiment(copy)
    row = experiment.trial(trial)
    assert (row["status"], row["epochs"], row["stopped_early"]) == ("TERMINATED", 1, True)
    assert len(experiment.epochs[experiment.epochs["trial"] == trial]) == 1


def test_running_and_never_reported_trials_of_a_search_in_progress(copy):
    (copy / "summary.json").unlink()
    state_file(copy).unlink()
    trial = longest_trial(copy)
    lines = result_lines(copy / trial)[:2]
    lines[-1] = json.dumps({**json.loads(lines[-1]), "done": False})
    # The last line is being written.
    (copy / trial / "result.json").write_text("\n".join(lines) + '\n{"epoch": 3, "val_a')
    (copy / "trial_0000new").mkdir()
    shutil.copy(copy / trial / "params.json", copy / "trial_0000new" / "params.json")

    experiment = analysis.load_experiment(copy)
    trials = experiment.trials.set_index("trial")
    assert not experiment.finished and experiment.best_trial in trials.index
    assert (trials.loc[trial, "status"], trials.loc[trial, "epochs"]) == ("RUNNING", 2)
    assert (trials.loc["trial_0000new", "status"], trials.loc["trial_0000new", "epochs"]) == ("PENDING", 0)
    assert pd.isna(trials.loc["trial_0000new", "best_val_acc"])
    assert set(trials["status_from"]) == {"files"}
    assert set(experiment.epochs["trial"]) == set(trials.index) - {"trial_0000new"}
    assert set(analysis.rung_outcomes(experiment)["outcome"]) <= {"continued", "stopped", "running"}


def test_resumed_search_reports_each_epoch_once(copy):
    trial = longest_trial(copy)
    lines = result_lines(copy / trial)
    # Resumed from the epoch-1 checkpoint after an interruption: Ray appends epoch 2 again.
    redone = {**json.loads(lines[1]), "val_acc": 0.99, "done": False}
    (copy / trial / "result.json").write_text("\n".join([*lines[:2], json.dumps(redone), *lines[2:]]) + "\n")
    stale = json.loads(state_file(copy).read_text())
    for pair in stale["trial_data"]:
        pair[0] = json.dumps({**json.loads(pair[0]), "status": "RUNNING"})
    # The interrupted run's state.
    (copy / "experiment_state-2000-01-01_00-00-00.json").write_text(json.dumps(stale))

    experiment = analysis.load_experiment(copy)
    epochs = experiment.epochs[experiment.epochs["trial"] == trial]
    assert list(epochs["epoch"]) == list(range(1, len(lines) + 1))
    assert epochs.set_index("epoch").loc[2, "val_acc"] == 0.99, "the later report of an epoch wins"
    assert set(experiment.trials["status"]) == {"TERMINATED"}, "the newest state file counts"


def test_a_folder_without_an_experiment_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an experiment"):
        analysis.load_experiment(tmp_path)


# ----------------------------------------------------------------------------- analyses


def synthetic_experiment(rows: list[dict], args: dict | None = None) -> analysis.Experiment:
    trials = pd.DataFrame(
        [{"trial": f"trial_{i}", "status": "TERMINATED", "epochs": 4, **row} for i, row in enumerate(rows)]
    )
    for column in [c for c in trials if c.startswith("config/")]:
        trials[column] = pd.array([None if pd.isna(v) else v for v in trials[column]])
    args = args or {}
    return analysis.Experiment(
        None, args, None, trials, pd.DataFrame(), "val_acc", "max", args.get("max_epochs", 4)
    )


def test_importance_finds_the_parameter_that_matters_among_conditional_ones():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        lr = float(10 ** rng.uniform(-4, -2))
        model = ["video_iter3", "video_iter4"][i % 2]
        rows.append(
            {
                "config/model": model,
                "config/lr": lr,
                "config/num_layers": int(rng.integers(1, 5)),
                "config/backbone_lr": float(10 ** rng.uniform(-6, -4)) if model == "video_iter4" else None,
                "best_val_acc": 0.2
                + 0.3 * (np.log10(lr) + 4)
                + 0.02 * rng.random(),  # the higher lr, the better
            }
        )
    importances = analysis.param_importances(synthetic_experiment(rows))
    assert importances.trials == 24 and set(importances.values) == {
        "model",
        "lr",
        "num_layers",
        "backbone_lr",
    }
    assert next(iter(importances.values)) == "lr"
    assert sum(importances.values.values()) == pytest.approx(1)


def test_importance_with_too_few_trials_says_why():
    importances = analysis.param_importances(
        synthetic_experiment([{"config/lr": 0.1 * i, "best_val_acc": 0.1 * i} for i in range(1, 4)])
    )
    assert importances.values == {} and "at least 4 finished trials" in importances.notes[0]
    assert analysis.plot_importances(importances) is None


def test_distributions_are_inferred_from_the_values():
    infer = analysis.infer_distribution
    assert isinstance(infer(pd.Series(pd.array([64, 256, None]))), optuna.distributions.IntDistribution)
    assert infer(pd.Series(pd.array([1e-5, 1e-4, 1e-3, 1e-2]))).log, "log-uniform draws"
    assert not infer(pd.Series(pd.array([0.01, 0.2, 0.3, 0.4]))).log, "uniform draws, even spanning 40x"
    assert infer(pd.Series(pd.array(["constant", "cosine", None]))).choices == ("constant", "cosine")
    assert infer(pd.Series(pd.array([True, False]))).choices == (False, True)


def test_asha_rungs_follow_rays_milestones():
    def rungs(grace: int, max_epochs: int) -> list[int]:
        return analysis.asha_rungs(
            synthetic_experiment([], {"scheduler": "asha", "grace_period": grace, "max_epochs": max_epochs})
        )

    assert (rungs(2, 8), rungs(1, 9), rungs(1, 3)) == ([2, 6], [1, 3], [1])
    four = {"scheduler": "asha", "grace_period": 1, "max_epochs": 20, "reduction_factor": 4}
    assert analysis.asha_rungs(synthetic_experiment([], four)) == [1, 4, 16], "--reduction-factor 4"
    assert analysis.asha_rungs(synthetic_experiment([], {"scheduler": "fifo", "grace_period": 1})) == []


# ----------------------------------------------------------------------------- report and notebook


def test_report_writes_a_self_contained_page_and_the_pngs(copy, capsys):
    (copy / "summary.json").unlink()  # also as a search still running: no test matrix yet
    set_ray_status(copy, longest_trial(copy), "ERROR")  # 3 finished trials: too few for importance
    (copy / "report_importance.png").write_bytes(b"an earlier report's")
    assert report.main([str(copy)]) == 0
    page = (copy / "report.html").read_text()
    assert (
        "data:image/png;base64," in page and "<img" in page and 'src="http' not in page and "<NA>" not in page
    )
    assert (
        "test matrix not available" in page and "Learning curves" in page and "five video iterations" in page
    )
    pngs = {path.name for path in copy.glob("report_*.png")}
    assert {
        "report_learning_curves.png",
        "report_rung_survival.png",
        "report_param_scatter.png",
        "report_iterations.png",
        "report_confusion_matrices.png",
    } <= pngs
    assert all((copy / name).read_bytes().startswith(b"\x89PNG") for name in pngs), (
        "and no stale figure is left"
    )
    assert "importance needs at least 4 finished trials" in page
    assert str(copy / "report.html") in capsys.readouterr().out


def test_report_of_a_missing_experiment_exits_2(tmp_path, capsys):
    assert report.main([str(tmp_path / "nothing")]) == 2
    assert "not an experiment" in capsys.readouterr().err


def test_the_notebook_is_committed_clean():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert notebook.metadata.kernelspec.name == "python3"
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert "MSA_EXPERIMENT" in code[0].source


def test_the_headless_notebook_command_writes_html(search, tmp_path):
    """The docs' headless command (what make notebook-html runs) on a finished search."""
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute", str(NOTEBOOK)]
        + ["--output-dir", str(tmp_path), "--output", "trials"],
        cwd=REPO,
        env={**os.environ, "MSA_EXPERIMENT": str(search)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "trials.html").read_text()
    assert "Traceback" not in page and "data:image/png;base64" in page
    assert search.name in page, "the notebook read the experiment it was given"


def test_make_notebook_names_what_it_needs():
    run = subprocess.run(["make", "notebook"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "error: name the search: make notebook EXPERIMENT=ray_results/NAME" in run.stderr
    dry = subprocess.run(
        ["make", "-n", "notebook-html", "EXPERIMENT=ray_results/some-search"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"MSA_EXPERIMENT={REPO}/ray_results/some-search" in dry.stdout
    assert f"--output-dir {REPO}/ray_results/some-search --output trials" in dry.stdout


@pytest.mark.slow  # 13 s; the headless command above executes the same notebook in make test
def test_the_notebook_runs_top_to_bottom(search, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("MSA_EXPERIMENT", str(search))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert not [output for output in outputs if output.get("name") == "stderr"], "warnings in the notebook"
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) >= 6, "curves, rungs, scatter, iterations, confusion matrices and more"
    printed = "".join(output.get("text", "") for output in outputs)
    assert "msa crossval" in printed, "no crossval.json: the notebook says how to make one"
    # the cross-validation and the classical baselines shown: tests/test_analysis_crossval.py

"""The classical baselines (summary.json's "baseline") and the cross-validation (crossval.json)
in the analysis layer: msa.analysis, python -m msa.report, analysis/trials.ipynb.

No Ray: the experiment directories are written by hand, as tune_main.py and python -m
msa.crossval lay them out (msa.experiment_dir).
"""

import json

import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from msa import analysis, report
from msa.analysis.crossval import CROSSVAL_FILE

NOTEBOOK = REPO / "analysis" / "trials.ipynb"
LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
MAX_EPOCHS = 3


def confusion(seed: int, clips_per_class: int = 4) -> list[list[int]]:
    """A confusion matrix with ``clips_per_class`` clips per true class, mostly right."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    for true in range(len(LABELS)):
        for _ in range(clips_per_class):
            counts[true, true if rng.random() < 0.5 else rng.integers(len(LABELS))] += 1
    return counts.tolist()


def baseline_record(accuracy: float, seed: int = 0) -> dict:
    return {
        "accuracy": accuracy,
        "uar": accuracy - 0.01,
        "f1_macro": accuracy - 0.03,
        "val_accuracy": accuracy + 0.02,
        "c": 1.0,
        "dims": 60,
        "confusion_matrix": confusion(seed),
    }


def summary_baseline() -> dict:
    return {
        "audio": baseline_record(0.41, 1),
        "video": baseline_record(0.55, 2),  # beats the best trial's 0.5
        "audiovisual": {"error": "ValueError: no audio stream"},
        "seconds": 3.2,
    }


def make_crossval() -> dict:
    """Three folds of four consecutive actors, the second ERROR."""
    folds = []
    for number, accuracy in ((1, 0.5), (2, None), (3, 0.6)):
        test = list(range(4 * number - 3, 4 * number + 1))
        val = [actor % 12 + 1 for actor in test]
        ok = accuracy is not None
        folds.append(
            {
                "fold": number,
                "train_actors": [a for a in range(1, 13) if a not in test + val],
                "val_actors": val,
                "test_actors": test,
                "trial": f"trial_fold{number}",
                "status": "TERMINATED" if ok else "ERROR",
                "error": None if ok else "RuntimeError: CUDA out of memory",
                "epoch": 5 if ok else None,
                "val_acc": 0.4 if ok else None,
                "val_uar": 0.39 if ok else None,
                "val_f1": 0.35 if ok else None,
                "val_loss": 1.9 if ok else None,
                "accuracy": accuracy,
                "uar": accuracy - 0.02 if ok else None,
                "f1_macro": accuracy - 0.05 if ok else None,
                "confusion_matrix": confusion(number) if ok else None,
                "baseline": {
                    "audio": baseline_record(0.3 + 0.01 * number, number),
                    "video": baseline_record(0.45 + 0.01 * number, number),
                    "audiovisual": baseline_record(0.4, number),
                },
            }
        )
    done = [fold for fold in folds if fold["status"] == "TERMINATED"]

    def stats(records, reduce):
        return {key: float(reduce([r[key] for r in records])) for key in ("accuracy", "uar", "f1_macro")}

    def baseline_summary(name):
        records = [fold["baseline"][name] for fold in folds]
        return {
            "mean": stats(records, np.mean),
            "std": stats(records, lambda v: np.std(v, ddof=1)),
            "pooled_confusion_matrix": np.sum([r["confusion_matrix"] for r in records], axis=0).tolist(),
        }

    return {
        "experiment": "ray_results/demo",
        "space": "video_transformer",
        "folds_preset": "ravdess6",
        "protocol": "6 folds of 4 consecutive actors (HiCMAE, Information Fusion 2024)",
        "seed": 0,
        "epochs": 8,
        "metric": "val_acc",
        "mode": "max",
        "labels": LABELS,
        "config": {"model": "video_transformer", "lr": 0.00123, "batch_size": 8},
        "pretrained": {
            "mode": "auto",
            "video": {"loaded": True, "source": "IMAGENET1K_V1", "sha256": "f37072fd" + "0" * 56},
            "audio": {"loaded": False, "source": None, "sha256": None},
        },
        "folds": folds,
        "folds_completed": len(done),
        "folds_total": len(folds),
        "mean": stats(done, np.mean),
        "std": stats(done, lambda v: np.std(v, ddof=1)),
        "pooled_confusion_matrix": np.sum([f["confusion_matrix"] for f in done], axis=0).tolist(),
        "baseline": {name: baseline_summary(name) for name in ("audio", "video", "audiovisual")},
    }


def write_json(path, payload) -> None:
    path.write_text(json.dumps(payload, indent=2))


@pytest.fixture
def experiment_dir(tmp_path):
    """A finished video_transformer search of 3 trials (no checkpoints kept) whose summary.json
    has a baseline block, and no crossval.json."""
    root = tmp_path / "demo"
    root.mkdir()
    args = {
        "space": "video_transformer",
        "metric": "val_acc",
        "mode": "max",
        "max_epochs": MAX_EPOCHS,
        "scheduler": "asha",
        "grace_period": 1,
        "classes": "all8",
        "pretrained": "off",
        "seed": 0,
    }
    write_json(root / "msa_args.json", args)
    rng = np.random.default_rng(0)
    for i, lr in enumerate((1e-4, 1e-3, 1e-2)):
        trial = root / f"trial_{i:04d}"
        trial.mkdir()
        write_json(trial / "params.json", {"model": "video_transformer", "lr": lr, "batch_size": 8})
        epochs = MAX_EPOCHS if i else 1  # the first one stopped by ASHA at its rung
        lines = [
            {
                "epoch": epoch,
                "training_iteration": epoch,
                "trial_id": f"{i:04d}",
                "train_loss": 2.0 - 0.2 * epoch,
                "train_acc": 0.2 + 0.1 * epoch,
                "val_loss": 2.0 - 0.1 * epoch - 0.1 * i,
                "val_acc": float(0.2 + 0.05 * epoch + 0.05 * i + 0.01 * rng.random()),
                "val_f1": 0.2,
                "val_uar": 0.2,
                "lr": lr,
                "time_total_s": 10.0 * epoch,
                "checkpoint_dir_name": f"checkpoint_{epoch - 1:06d}",  # Ray's; none is kept here
                "pretrained_video": False,
                "pretrained_audio": False,
                "done": epoch == epochs,
            }
            for epoch in range(1, epochs + 1)
        ]
        (trial / "result.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    write_json(
        root / "summary.json",
        {
            "space": "video_transformer",
            "metric": "val_acc",
            "mode": "max",
            "num_trials": 3,
            "trials_by_status": {"TERMINATED": 3},
            "best_trial": "trial_0002",
            "best_config": {"model": "video_transformer", "lr": 1e-2, "batch_size": 8},
            "best_val": {"val_acc": 0.45, "val_f1": 0.2, "val_uar": 0.2, "val_loss": 1.5, "epoch": 3},
            "test": {
                "accuracy": 0.5,
                "f1_macro": 0.45,
                "uar": 0.48,
                "labels": LABELS,
                "confusion_matrix": confusion(0),
                "device": "cpu",
            },
            "data": {
                "root": "nowhere",
                "actors": {"train": list(range(1, 21)), "val": [21, 22], "test": [23, 24]},
            },
            "pretrained": {"mode": "off", "video": {"loaded": False}, "audio": {"loaded": False}},
            "errors": {},
            "stopped_non_finite": {},
            "baseline": summary_baseline(),
        },
    )
    return root


@pytest.fixture
def with_crossval(experiment_dir):
    cv = make_crossval()
    write_json(experiment_dir / CROSSVAL_FILE, cv)
    return experiment_dir, cv


# ----------------------------------------------------------------------------- crossval.json


def test_load_crossval_and_its_table(with_crossval):
    root, written = with_crossval
    cv = analysis.load_crossval(root)
    assert cv == written
    assert analysis.load_experiment(root).crossval == written, "and lazily from the experiment"
    table = analysis.crossval_table(cv)
    assert list(table["fold"]) == ["1", "2", "3", "mean", "std"]
    stats = table.set_index("fold")
    for key, name in (("accuracy", "accuracy"), ("uar", "UAR"), ("f1_macro", "macro-F1")):
        assert stats.loc["mean", name] == pytest.approx(written["mean"][key])
        assert stats.loc["std", name] == pytest.approx(written["std"][key])
        for fold in written["folds"]:
            value = stats.loc[str(fold["fold"]), name]
            assert pd.isna(value) if fold[key] is None else value == pytest.approx(fold[key])
    assert list(table["test actors"][:3]) == ["1–4", "5–8", "9–12"]
    assert list(table["status"][:3]) == ["TERMINATED", "ERROR", "TERMINATED"]
    assert table["error"].iloc[1] == "RuntimeError: CUDA out of memory"
    assert list(table["epoch"][:3].astype(object).fillna(-1)) == [5, -1, 5]
    assert list(table["best baseline"]) == ["video"] * 5
    assert stats.loc["3", "best baseline accuracy"] == pytest.approx(0.48)
    assert stats.loc["mean", "best baseline accuracy"] == pytest.approx(
        written["baseline"]["video"]["mean"]["accuracy"]
    )

    comparison = analysis.crossval_comparison(cv).set_index("model")
    mean, std = written["mean"]["accuracy"], written["std"]["accuracy"]
    assert comparison.loc["video_transformer (cross-validated)", "accuracy"] == f"{mean:.3f} ± {std:.3f}"
    assert list(comparison.index[1:]) == ["baseline audio", "baseline video", "baseline audiovisual"]
    notes = " ".join(analysis.crossval_notes(cv))
    assert "fold 2 did not complete" in notes
    overview = dict(analysis.crossval_overview(cv).values)
    assert "HiCMAE" in overview["protocol"] and "2 of 3 completed" in overview["folds"]
    assert "lr=0.00123" in overview["config"] and "IMAGENET1K_V1" in overview["pretrained"]


def test_a_missing_or_invalid_crossval_json(experiment_dir):
    assert analysis.load_crossval(experiment_dir) is None
    assert analysis.load_experiment(experiment_dir).crossval is None
    (experiment_dir / CROSSVAL_FILE).write_text('{"folds": [')
    with pytest.raises(ValueError, match=r"crossval\.json: not valid JSON"):
        analysis.load_crossval(experiment_dir)
    write_json(experiment_dir / CROSSVAL_FILE, {"folds": []})
    with pytest.raises(ValueError, match=r"crossval\.json: missing .*pooled_confusion_matrix"):
        analysis.load_crossval(str(experiment_dir))
    cv = make_crossval()
    del cv["folds"][1]["accuracy"]
    write_json(experiment_dir / CROSSVAL_FILE, cv)
    with pytest.raises(ValueError, match=r"crossval\.json: fold 2 lacks accuracy"):
        analysis.load_crossval(analysis.ExperimentFiles(experiment_dir.as_uri()))


def test_a_single_completed_fold_has_no_std():
    cv = make_crossval()
    cv["folds"] = cv["folds"][:2]
    cv["folds_completed"], cv["folds_total"] = 1, 2
    cv["std"] = dict.fromkeys(cv["std"])
    table = analysis.crossval_table(cv).set_index("fold")
    assert pd.isna(table.loc["std", "accuracy"])
    assert "no standard deviation" in " ".join(analysis.crossval_notes(cv))
    assert analysis.crossval_comparison(cv)["accuracy"].iloc[0] == f"{cv['mean']['accuracy']:.3f}"
    assert analysis.crossval_folds_figure(cv) is not None


def test_crossval_figures():
    cv = make_crossval()
    fig = analysis.crossval_folds_figure(cv)
    (ax,) = fig.axes
    bars = [container for container in ax.containers if hasattr(container, "patches")]
    assert len(bars) == 2 and all(len(b) == cv["folds_completed"] for b in bars), "accuracy and UAR"
    assert [round(p.get_height(), 6) for p in bars[0]] == [0.5, 0.6]
    assert len(ax.collections) >= 3, "a marker series per baseline"
    assert len(ax.get_xticklabels()) == cv["folds_total"]

    fig = analysis.crossval_confusion_figure(cv)
    ax = fig.axes[0]
    rates = np.asarray(ax.images[0].get_array())
    counts = np.asarray(cv["pooled_confusion_matrix"])
    assert rates.shape == (len(LABELS), len(LABELS))
    assert np.allclose(rates[counts.sum(axis=1) > 0].sum(axis=1), 1)
    assert [t.get_text() for t in ax.get_yticklabels()] == LABELS
    assert any(f"({counts[0, 0]})" in t.get_text() for t in ax.texts), "the counts"

    cv["folds"] = [{**fold, "status": "ERROR", "accuracy": None} for fold in cv["folds"]]
    cv["pooled_confusion_matrix"] = np.zeros((8, 8), int).tolist()
    assert analysis.crossval_folds_figure(cv) is None and analysis.crossval_confusion_figure(cv) is None


# ----------------------------------------------------------------------------- the baselines of summary.json


def test_baseline_comparison(experiment_dir):
    experiment = analysis.load_experiment(experiment_dir)
    comparison = analysis.baseline_comparison(experiment)
    table = comparison.table.set_index("model")
    assert list(table.index) == ["best trial (trial_0002)", "baseline audio", "baseline video"]
    assert table.loc["best trial (trial_0002)", "accuracy"] == 0.5
    assert table.loc["baseline video", "UAR"] == pytest.approx(0.54)
    assert table.loc["baseline audio", "val accuracy"] == pytest.approx(0.43)
    notes = " ".join(comparison.notes)
    assert "the classical video baseline beats the best trial on the test actors" in notes
    assert "audio baseline beats" not in notes
    assert "the audiovisual baseline failed: ValueError: no audio stream" in notes

    summary = dict(experiment.summary)
    del summary["baseline"]
    assert analysis.baseline_comparison(summary).notes == [analysis.baselines.NO_BASELINE]
    assert analysis.baseline_comparison(summary).table.empty
    summary["baseline"] = {"error": "MemoryError: features"}
    assert analysis.baseline_comparison(summary).notes == [
        "the classical baselines failed: MemoryError: features"
    ]
    assert "no summary.json yet" in analysis.baseline_comparison(None).notes[0]


# ----------------------------------------------------------------------------- report and notebook


def test_report_shows_the_crossval_and_the_baselines(with_crossval):
    root, cv = with_crossval
    assert report.main([str(root), "--no-val"]) == 0
    page = (root / "report.html").read_text()
    assert "test actors: best trial vs classical baselines" in page
    assert "the classical video baseline beats the best trial on the test actors" in page
    assert "the audiovisual baseline failed" in page
    assert "Cross-validation" in page and "HiCMAE" in page and "ravdess6" in page
    assert f"{cv['mean']['accuracy']:.3f} ± {cv['std']['accuracy']:.3f}" in page
    assert "RuntimeError: CUDA out of memory" in page and "<NA>" not in page
    assert "IMAGENET1K_V1" in page
    for name in ("report_crossval_folds.png", "report_crossval_confusion.png"):
        assert (root / name).read_bytes().startswith(b"\x89PNG")


def test_report_without_crossval_or_baseline(experiment_dir):
    summary = json.loads((experiment_dir / "summary.json").read_text())
    del summary["baseline"]
    write_json(experiment_dir / "summary.json", summary)
    assert report.main([str(experiment_dir), "--no-val"]) == 0
    page = (experiment_dir / "report.html").read_text()
    assert "no baseline in this summary.json" in page
    assert "<h2>Cross-validation</h2>" not in page and "msa crossval" in page
    assert not (experiment_dir / "report_crossval_folds.png").exists()


def test_report_of_an_invalid_crossval_json_says_so(experiment_dir):
    (experiment_dir / CROSSVAL_FILE).write_text("{")
    assert report.main([str(experiment_dir), "--no-val"]) == 0
    page = (experiment_dir / "report.html").read_text()
    assert "<h2>Cross-validation</h2>" in page and "not valid JSON" in page


def run_notebook(experiment, monkeypatch) -> list:
    from nbclient import NotebookClient

    monkeypatch.setenv("MSA_EXPERIMENT", str(experiment))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert not [output for output in outputs if output.get("name") == "stderr"], "warnings in the notebook"
    return outputs


def output_text(outputs) -> str:
    return "\n".join(
        output.get("text", "")
        + output.get("data", {}).get("text/plain", "")
        + output.get("data", {}).get("text/html", "")
        for output in outputs
    )


def test_the_notebook_shows_the_crossval_and_the_baselines(with_crossval, monkeypatch):
    root, cv = with_crossval
    outputs = run_notebook(root, monkeypatch)
    text = output_text(outputs)
    assert "baseline video" in text and "beats the best trial" in text
    assert "HiCMAE" in text and "CUDA out of memory" in text
    assert f"{cv['mean']['accuracy']:.3f} ± {cv['std']['accuracy']:.3f}" in text
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) >= 4, "curves, scatter, and the two cross-validation figures at least"

"""The classical baseline (msa.baseline): features, the logistic regression and its selection on
val, the blocks of baseline_for / baseline_for_folds and the command line. No Ray."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

import msa.baseline.features as features_module
from msa.baseline import (
    C_GRID,
    FEATURE_SETS,
    EmptyPartError,
    baseline_for,
    baseline_for_folds,
    clip_features,
    fit_and_score,
    fit_logistic,
)
from msa.baseline.__main__ import main
from msa.baseline.features import AUDIO_DIMS, GRID, VIDEO_DIMS, audio_features, video_features
from msa.data.labels import LabelSet

METRIC_KEYS = {"accuracy", "uar", "f1_macro", "confusion_matrix", "val_accuracy", "c", "dims"}


def without_seconds(block: dict) -> dict:
    return {key: value for key, value in block.items() if key != "seconds"}


def blobs(num_classes=4, per_class=60, dims=(5, 7), spread=0.3, seed=0):
    """Gaussian blobs of standard deviation ``spread`` around class centres 4 apart along their
    own axes (class k at 4 on axis k of the audio and of the video columns) -> (features,
    labels, parts): 1/2 of the rows train, 1/4 val, 1/4 test, in a seeded random order."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((num_classes, sum(dims)))
    centres[np.arange(num_classes), np.arange(num_classes)] = 4.0
    centres[np.arange(num_classes), dims[0] + np.arange(num_classes)] = 4.0
    labels = rng.permutation(np.repeat(np.arange(num_classes), per_class))
    x = centres[labels] + rng.normal(0, spread, size=(len(labels), sum(dims)))
    n = len(labels)
    parts = {
        "train": np.arange(n // 2),
        "val": np.arange(n // 2, 3 * n // 4),
        "test": np.arange(3 * n // 4, n),
    }
    return {"audio": x[:, : dims[0]], "video": x[:, dims[0] :]}, labels, parts


# --- features


def test_clip_features_have_the_documented_shapes_and_are_finite(tiny_trial_data):
    clips = tiny_trial_data.clips("train", "val", "test")
    features = clip_features(clips)
    assert set(features) == {"audio", "video"}
    assert features["audio"].shape == (len(clips), AUDIO_DIMS) == (len(clips), 60)
    assert features["video"].shape == (len(clips), VIDEO_DIMS)
    for matrix in features.values():
        assert matrix.dtype == np.float64 and np.isfinite(matrix).all()
        assert len({row.tobytes() for row in matrix}) == len(clips)  # every clip differs


@pytest.mark.parametrize("samples", [0, 1, 399, 400, 16_000])
def test_audio_features_of_silent_and_short_audio_are_finite(samples):
    features = audio_features(np.zeros(samples, dtype=np.float32))
    assert features.shape == (AUDIO_DIMS,) and np.isfinite(features).all()


def test_video_features_follow_the_pixels():
    """A clip white in its top-left quarter and black elsewhere, flickering in the bottom-right."""
    video = np.zeros((6, 32, 32, 3), dtype=np.uint8)
    video[:, :16, :16] = 255
    video[::2, 16:, 16:] = 255  # on in frames 0, 2, 4
    features = video_features(video)
    assert features.shape == (VIDEO_DIMS,) and np.isfinite(features).all()
    cells = GRID * GRID
    mean, std, change = (features[i * cells : (i + 1) * cells].reshape(GRID, GRID) for i in range(3))
    half = GRID // 2
    np.testing.assert_allclose(mean[:half, :half], 1.0)
    np.testing.assert_allclose(mean[:half, half:], 0.0)
    np.testing.assert_allclose(mean[half:, half:], 0.5)
    np.testing.assert_allclose(std[:half, :half], 0.0, atol=1e-12)  # constant over time
    np.testing.assert_allclose(std[half:, half:], 0.5)
    np.testing.assert_allclose(change[half:, half:], 1.0)  # every step flips 0 <-> 1
    np.testing.assert_allclose(features[-3:], (1 / 4 + 1 / 8) * np.ones(3))  # colour means
    one_frame = video_features(video[:1])
    assert np.isfinite(one_frame).all() and not one_frame[2 * cells : 3 * cells].any()


# --- the classifier


def test_a_separable_problem_is_classified_perfectly():
    features, labels, parts = blobs()
    results = fit_and_score(features, labels, parts, num_classes=4)
    assert set(results) == set(FEATURE_SETS)
    for name, result in results.items():
        assert set(result) == METRIC_KEYS
        assert result["accuracy"] == result["uar"] == result["f1_macro"] == result["val_accuracy"] == 1.0, (
            name
        )
        assert np.array_equal(np.diag(result["confusion_matrix"]), np.bincount(labels[parts["test"]]))
    assert [results[name]["dims"] for name in FEATURE_SETS] == [5, 7, 12]
    # Every C separates these blobs on val: the tie goes to the strongest regularisation.
    assert all(result["c"] == min(C_GRID) for result in results.values())


def test_shuffled_labels_score_at_chance():
    features, labels, parts = blobs(per_class=400, seed=1)
    shuffled = np.random.default_rng(2).permutation(labels)
    for result in fit_and_score(features, shuffled, parts, num_classes=4).values():
        assert abs(result["accuracy"] - 0.25) < 0.08
        assert abs(result["val_accuracy"] - 0.25) < 0.08


def test_c_is_chosen_on_val_only():
    """Changing the test rows (labels and features) changes the test scores, never the choice."""
    features, labels, parts = blobs(spread=2.5, seed=3)  # overlapping: C matters
    before = fit_and_score(features, labels, parts, num_classes=4)
    test = parts["test"]
    labels_after = labels.copy()
    labels_after[test] = np.random.default_rng(4).integers(0, 4, len(test))
    features_after = {name: matrix.copy() for name, matrix in features.items()}
    for matrix in features_after.values():
        matrix[test] = matrix[test] * 50 + 1000
    after = fit_and_score(features_after, labels_after, parts, num_classes=4)
    for name in FEATURE_SETS:
        assert after[name]["c"] == before[name]["c"]
        assert after[name]["val_accuracy"] == before[name]["val_accuracy"]
        assert after[name]["confusion_matrix"] != before[name]["confusion_matrix"]


def test_standardisation_uses_the_training_rows_statistics():
    features, labels, parts = blobs()
    x = features["video"].copy()
    x[:, 3] = 7.0  # constant over every row: a zero-std column
    train = parts["train"]
    model = fit_logistic(x[train], labels[train], num_classes=4, c=1.0)
    np.testing.assert_allclose(model.mean, x[train].mean(axis=0))
    assert model.scale[3] == 1.0 and model.weight[3].tolist() == [0.0] * 4  # nothing learnt from it
    np.testing.assert_allclose(np.delete(model.scale, 3), np.delete(x[train].std(axis=0), 3))
    # Rescaling and shifting a column is undone by the standardisation: the same predictions.
    scaled = x * np.linspace(1, 1000, x.shape[1]) - 50
    rescaled = fit_logistic(scaled[train], labels[train], num_classes=4, c=1.0)
    assert np.array_equal(rescaled.predict(scaled), model.predict(x))
    assert np.isfinite(model.logits(x)).all()


def test_an_empty_part_is_refused():
    features, labels, parts = blobs()
    with pytest.raises(EmptyPartError, match="val"):
        fit_and_score(features, labels, {**parts, "val": np.array([], dtype=np.int64)}, num_classes=4)


# --- on an experiment's data


def test_baseline_for_returns_the_summary_block(tiny_trial_data):
    block = baseline_for(tiny_trial_data)
    assert set(block) == {*FEATURE_SETS, "seconds"} and block["seconds"] > 0
    label_set = LabelSet("x", tiny_trial_data.labels)
    test_labels = [label_set.index(clip.record.label) for clip in tiny_trial_data.clips("test")]
    k = len(tiny_trial_data.labels)
    for name in FEATURE_SETS:
        result = block[name]
        assert set(result) == METRIC_KEYS and result["c"] in C_GRID
        matrix = np.array(result["confusion_matrix"])
        assert matrix.shape == (k, k) and matrix.sum() == len(test_labels)
        assert matrix.sum(axis=1).tolist() == np.bincount(test_labels, minlength=k).tolist()
        assert result["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
        assert all(0 <= result[key] <= 1 for key in ("accuracy", "uar", "f1_macro", "val_accuracy"))
    assert [block[name]["dims"] for name in FEATURE_SETS] == [AUDIO_DIMS, VIDEO_DIMS, AUDIO_DIMS + VIDEO_DIMS]
    json.dumps(block)  # summary.json takes it as it is


def test_baseline_for_folds_computes_each_clip_once_and_matches_baseline_for(tiny_trial_data, monkeypatch):
    data = tiny_trial_data
    swapped = dataclasses.replace(
        data,
        parts={**data.parts, "val": data.parts["test"], "test": data.parts["val"]},
        actors={**data.actors, "val": data.actors["test"], "test": data.actors["val"]},
    )
    expected = [baseline_for(fold) for fold in (data, swapped)]
    calls = []
    real = features_module.audio_features

    def counted(audio):
        calls.append(len(audio))
        return real(audio)

    monkeypatch.setattr(features_module, "audio_features", counted)
    blocks = baseline_for_folds([data, swapped])
    assert len(calls) == len(data.clips("train", "val", "test"))  # once per clip, not per fold
    assert [without_seconds(block) for block in blocks] == [without_seconds(block) for block in expected]
    assert blocks[0]["audio"]["confusion_matrix"] != blocks[1]["audio"]["confusion_matrix"]


def test_a_part_without_clips_of_the_classes_is_refused(tiny_trial_data):
    empty = dataclasses.replace(tiny_trial_data, parts={**tiny_trial_data.parts, "test": []})
    with pytest.raises(EmptyPartError, match="test"):
        baseline_for(empty)


# --- the command line


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "msa.baseline", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_cli_prints_the_table_and_writes_the_block(tiny_sample, tiny_trial_data, tmp_path):
    out = tmp_path / "baseline.json"
    result = run_cli(
        "--data", str(tiny_sample), "--cache", str(tiny_trial_data.node_cache()), "--classes", "seed4",
        "--frames", "4", "--image-size", "32", "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in FEATURE_SETS:
        assert any(line.split()[0] == name for line in lines), result.stdout
    actors = tiny_trial_data.actors
    assert f"test {','.join(map(str, actors['test']))}" in result.stdout
    assert "chance: 0.250" in result.stdout
    # The same data, classes and split as tiny_trial_data (seed 0): the same block.
    assert without_seconds(json.loads(out.read_text())) == without_seconds(baseline_for(tiny_trial_data))


def test_cli_refuses_a_missing_data_folder_in_one_line(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nowhere")]) == 2  # in this process, as the usage errors below
    assert capsys.readouterr().err.strip() == f"error: --data {tmp_path / 'nowhere'}: no such file or folder"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--val-actors", ",", "--test-actors", "4"], "expected comma-separated speaker ids"),
        (["--folds", "4", "--val-actors", "1", "--test-actors", "2"], "--folds makes its own"),
        (["--frames", "0"], "--frames must be at least 1"),
    ],
)
def test_cli_usage_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_cli_bad_actor_split_is_one_line(tiny_sample, tiny_trial_data, capsys):
    argv = ["--data", str(tiny_sample), "--cache", str(tiny_trial_data.node_cache()), "--classes", "seed4"]
    argv += ["--frames", "4", "--image-size", "32", "--val-actors", "1", "--test-actors", "99"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: speakers [99] have no clips") and err.count("\n") == 1

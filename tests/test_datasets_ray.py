"""A search and a 3-fold cross-validation (tune_main.py --crossval 3: msa.crossval's own command
line is tested on the sample in test_crossval.py) end to end through the command line on data
that is not RAVDESS audio-video: RAVDESS's audio-only layout, a CREMA-D-named set and a manifest with
spans (the tiny sample written under each layout)."""

import json
import subprocess
import sys

import pytest
from conftest import REPO
from processes import assert_no_crash_output

from msa.data.sample.layouts import write_layout

pytestmark = pytest.mark.ray  # these tests start Ray (make test-quick leaves them out)


def run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_no_crash_output(result)
    return result


def search(data, space: str, tmp_path, *flags: str) -> subprocess.CompletedProcess:
    """A one-trial, one-epoch smoke search from random weights, its cache and results under
    tmp_path (a --crossval trains each fold for one epoch too)."""
    return run(
        [
            sys.executable,
            "tune_main.py",
            "--space",
            space,
            "--data",
            str(data),
            "--smoke-test",
            "--num-samples",
            "1",
            "--max-epochs",
            "1",
            "--grace-period",
            "1",
            "--pretrained",
            "off",
            "--cache",
            str(tmp_path / "cache"),
            "--storage",
            str(tmp_path / "results"),
            "--name",
            "search",
            *flags,
        ]
    )


def check_summary_and_folds(experiment, dataset: str, speakers: list, labels: tuple[str, ...]) -> None:
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["data"]["dataset"] == dataset
    assert sorted(sum(summary["data"]["actors"].values(), [])) == speakers
    assert tuple(summary["test"]["labels"]) == labels
    crossval = json.loads((experiment / "crossval.json").read_text())
    assert crossval["labels"] == list(labels) and len(crossval["folds"]) == 3
    tested = sorted(actor for fold in crossval["folds"] for actor in fold["test_actors"])
    assert tested == speakers, "each speaker is tested once"


@pytest.mark.slow  # 50 s (make test-all); the manifest's test below runs the same audio path in make test
def test_audio_only_ravdess_searches_and_cross_validates(tiny_sample, tmp_path):
    data = write_layout("ravdess-audio", tiny_sample, tmp_path / "speech")
    result = search(data, "audio_wav2vec", tmp_path, "--crossval", "3")
    assert "dataset: RAVDESS audio-only speech (ravdess-audio), 16 audio clips, 4 speakers" in result.stdout
    check_summary_and_folds(
        tmp_path / "results" / "search", "ravdess-audio", [1, 2, 3, 4], ("happy", "sad", "angry", "disgust")
    )
    summary = json.loads((tmp_path / "results" / "search" / "summary.json").read_text())
    assert set(summary["baseline"]) == {"audio", "seconds"}, "audio files: the audio baseline alone"


@pytest.mark.slow  # 50 s (make test-all): make test stays near 10 minutes; the flv videos are prepared in test_datasets
def test_crema_d_searches_a_multimodal_space_and_cross_validates(tiny_sample, tmp_path):
    data = write_layout("crema-d", tiny_sample, tmp_path / "crema")
    result = search(data, "multimodal", tmp_path, "--crossval", "3", "--classes", "angry,happy,sad,disgust")
    assert "dataset: CREMA-D (crema-d), 16 audio-video clips, 4 speakers" in result.stdout
    check_summary_and_folds(
        tmp_path / "results" / "search",
        "crema-d",
        [1001, 1002, 1003, 1004],
        ("angry", "happy", "sad", "disgust"),
    )


def test_a_manifest_with_spans_and_a_class_mapping_searches_and_cross_validates(tiny_sample, tmp_path):
    """The spectrogram space on the sample's audio (the slow test above runs audio_wav2vec's)."""
    data = write_layout("manifest", tiny_sample, tmp_path / "mine") / "labels.csv"
    mapping = '{"negative": ["sad", "angry", "disgust"], "positive": ["happy"]}'
    result = search(data, "audio_spectrogram", tmp_path, "--classes", mapping, "--crossval", "3")
    assert "dataset: manifest CSV (manifest), 16 audio clips, 4 speakers" in result.stdout
    assert "3/3 folds" in result.stdout
    speakers = ["spk01", "spk02", "spk03", "spk04"]
    check_summary_and_folds(tmp_path / "results" / "search", "manifest", speakers, ("negative", "positive"))

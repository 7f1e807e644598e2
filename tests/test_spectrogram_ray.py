"""The spectrogram space on real speech through the command lines a user runs: a smoke search of
``audio_spectrogram`` on the shared RAVDESS speech (skipped without it), then its best model
annotating a real recording and exported to ONNX with the parity check."""

import json
import subprocess
import sys

import pytest
from conftest import REAL_SPEECH, REPO
from processes import assert_no_crash_output

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(not REAL_SPEECH.is_dir(), reason="../shared/ravdess-speech is not present"),
]


def run(*command: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_no_crash_output(result)
    return result


def test_a_spectrogram_search_on_real_speech_predicts_and_exports(tmp_path):
    experiment = tmp_path / "results" / "speech"
    result = run(
        "tune_main.py",
        "--space",
        "audio_spectrogram",
        "--data",
        str(REAL_SPEECH),
        "--smoke-test",
        "--num-samples",
        "1",
        "--max-epochs",
        "1",
        "--cache",
        str(tmp_path / "cache"),
        "--storage",
        str(tmp_path / "results"),
        "--name",
        "speech",
    )
    assert "dataset: RAVDESS audio-only speech (ravdess-audio), 480 audio clips, 8 speakers" in result.stdout
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["best_config"]["model"] in {"audio_cnn", "audio_crnn", "audio_transformer"}
    loaded = [
        branch for branch, record in summary["pretrained"].items() if branch != "mode" and record["loaded"]
    ]
    assert loaded == [], "nothing downloaded, nothing loaded"
    assert 0.0 <= summary["test"]["uar"] <= 1.0 and len(summary["test"]["labels"]) == 8

    recording = sorted(REAL_SPEECH.glob("Actor_*/*.flac"))[0]
    out = tmp_path / "annotated.json"
    run("-m", "msa.predict", str(experiment), str(recording), "--out", str(out), "--quiet")
    annotated = json.loads(out.read_text())
    assert len(annotated["labels"]) == 8 and annotated["items"], "a window every second of a 3-5 s clip"
    for item in annotated["items"]:
        assert abs(sum(item["probabilities"].values()) - 1) < 1e-3

    exported = tmp_path / "speech.onnx"
    result = run("-m", "msa.export", str(experiment), "--format", "onnx", "--out", str(exported))
    assert result.stdout.startswith(f"wrote {exported} ") and "max |exported - PyTorch|" in result.stdout


@pytest.mark.slow  # a search, its cross-validation and a random wav2vec2-base's over 480 clips: about 6 minutes
def test_the_real_speech_benchmark_writes_its_rows_and_verdict(tmp_path):
    out = tmp_path / "real_speech.json"
    run(
        "benchmarks/bench_real_speech.py",
        "--data",
        str(REAL_SPEECH),
        "--num-samples",
        "1",
        "--max-epochs",
        "1",
        "--time-budget",
        "120",
        "--work",
        str(tmp_path / "work"),
        "--json",
        str(out),
    )
    result = json.loads(out.read_text())
    assert [row["name"].split(" ")[0] for row in result["rows"]] == [
        "baseline",
        "audio_wav2vec,",
        "audio_spectrogram,",
    ]
    for row in result["rows"]:
        assert len(row["folds"]) == 4 and all(0 <= fold["uar"] <= 1 for fold in row["folds"])
        assert set(row["mean"]) == set(row["std"]) == {"accuracy", "uar", "f1_macro"}
    gains = [m["uar"] - b["uar"] for m, b in zip(result["rows"][2]["folds"], result["rows"][0]["folds"])]
    assert result["target"]["fold_gains"] == [round(g, 4) for g in gains]
    assert result["target"]["gain_met"] == (result["target"]["uar_gain"] >= 0.15)

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
    assert summary["pretrained"] == {} or not any(
        record.get("loaded") for record in summary["pretrained"].values() if isinstance(record, dict)
    ), "nothing downloaded, nothing loaded"
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

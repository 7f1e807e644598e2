"""benchmarks/gpu.py, the one command for a GPU machine, runs on the CPU in --dry-run: its four
searches finish and every figure it prints comes from what the trials reported."""

import json
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.ray  # four smoke searches, each starting Ray


def test_gpu_script_dry_run_measures_four_searches(tiny_sample, tmp_path):
    out = tmp_path / "gpu.json"
    command = [sys.executable, "benchmarks/gpu.py", "--dry-run", "--data", str(tiny_sample),
               "--classes", "seed4", "--work", str(tmp_path / "work"), "--json", str(out)]  # fmt: skip
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    searches = results["searches"]
    assert set(searches) == {
        "video_transformer-cache", "video_transformer-nocache", "multimodal-cache", "multimodal-nocache"
    }  # fmt: skip
    for name, measured in searches.items():
        assert measured["trials"] == 2 and measured["trial_epochs"] == 2, name
        assert measured["trial_epochs_per_min"] > 0 and measured["gpu_busy"] is None, "no GPU sampled"
        assert measured["peak_gpu_mb"] == 0.0, "on the CPU"
        assert 0 <= measured["input_wait_share"] <= 1 and measured["starved"] in (True, False)
    assert not any(searches["multimodal-nocache"]["cached"].values()), "--no-feature-cache"
    assert searches["multimodal-cache"]["cached"]["audio"], "the frozen audio prefix came from the cache"
    assert "trial_epochs_per_min" in run.stdout, "the table is printed"

"""benchmarks/gpu.py, the one command for a GPU machine, runs on the CPU in --dry-run: its four
searches finish and every figure it prints comes from what the trials reported."""

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.ray
@pytest.mark.slow  # four smoke searches, each starting Ray: 1.5 min here (make test-all)
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


def load_gpu_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_script", REPO / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("wait, starved", [(0.05, False), (0.5, True)])
def test_gpu_figures_are_what_the_trials_reported(tmp_path, wait, starved):
    """Two trials of two 10 s epochs in one 30 s window: 4 epochs a half-minute, the GPU's
    samples inside that window only, the larger peak, the input-wait share of the epochs."""
    gpu = load_gpu_script()
    for trial, (start, peak) in {"a": (1000.0, 900.0), "b": (1010.0, 1500.0)}.items():
        folder = tmp_path / f"trial_{trial}"
        folder.mkdir()
        rows = [
            {"epoch": e, "reported_at": start + 10 * e, "time_total_s": 10.0 * e, "timestamp": int(start + 10 * e),
             "epoch_seconds": 10.0, "input_wait_seconds": 10.0 * wait, "peak_gpu_memory_mb": peak - 100 * (2 - e),
             "cached_video": True, "cached_audio": False}
            for e in (1, 2)
        ]  # fmt: skip
        (folder / "result.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
        (folder / "params.json").write_text("{}")  # what marks a folder as a trial's
    sampler = object.__new__(gpu.GpuSampler)  # its samples without starting nvidia-smi
    sampler.samples = [(990.0, 0.0), (1005.0, 60.0), (1025.0, 80.0), (1040.0, 0.0)]
    measured = gpu.measure(tmp_path, sampler)
    assert measured["window_s"] == 30.0 and measured["trial_epochs"] == 4
    assert measured["trial_epochs_per_min"] == 8.0
    assert measured["gpu_busy"] == 0.7, "the mean of the samples inside the window"
    assert measured["peak_gpu_mb"] == 1500.0 and measured["median_peak_gpu_mb"] == 1200.0
    assert measured["input_wait_share"] == wait and measured["starved"] is starved
    assert measured["cached"] == {"video": True, "audio": False}

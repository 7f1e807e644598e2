"""The Speed benchmark runs end to end in its tiny mode: its numbers are checked for
consistency (the table prints the JSON, ratios are the ratios of the times), not for targets."""

import json
import subprocess
import sys

import pytest
from conftest import REPO

# It starts Ray, and its four searches take about 2 minutes: make test-all runs it.
pytestmark = [pytest.mark.ray, pytest.mark.slow]

KEYS = (
    "decode_clips_per_s",
    "prepare_clips_per_s",
    "cache_speedup_video",
    "cache_speedup_audio",
    "asha_best",
    "fifo_best",
    "asha_epoch_fraction",
    "mem_ratio_4_vs_1",
)


def test_bench_tiny_writes_every_key(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [
            sys.executable,
            "benchmarks/bench.py",
            "--tiny",
            "--json",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(out.read_text())
    printed = {
        line.split()[0]: line.split()[1]
        for line in run.stdout.splitlines()
        if line.split()[:1] and line.split()[0] in KEYS
    }
    for key in KEYS:
        assert isinstance(results[key], (int, float)) and results[key] > 0, key
        assert float(printed[key]) == pytest.approx(results[key], rel=1e-3, abs=1e-3), (
            f"{key}: the table prints the JSON's value"
        )
    # What holds on any machine, however noisy: consistent numbers, not targets.
    assert 0 < results["asha_best"] <= 1 and 0 < results["fifo_best"] <= 1, "best validation accuracies"
    assert 0 < results["asha_epoch_fraction"] <= 1, "ASHA never trains more trial-epochs than FIFO"
    for label in ("video", "audio"):
        ratio = results[f"{label}_epoch_uncached_s"] / results[f"{label}_epoch_cached_s"]
        assert results[f"cache_speedup_{label}"] == pytest.approx(ratio), label
    assert results["mem_ratio_4_vs_1"] == pytest.approx(
        results["mem_peak_pss_4_mb"] / results["mem_peak_pss_1_mb"]
    )
    assert results["mem_peak_pss_4_mb"] > results["mem_peak_pss_1_mb"], (
        "four trials hold more memory than one"
    )
    assert results["machine"]["cores"] >= 1 and results["mode"] == "tiny"

"""The benchmarks run end to end in their tiny modes: their numbers are checked for consistency
(the table prints the JSON, ratios are the ratios of the times), not for targets."""

import json
import subprocess
import sys

import pytest
from conftest import REPO

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


# It starts Ray, and its four searches take about 2 minutes: make test-all runs it.
@pytest.mark.ray
@pytest.mark.slow
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


@pytest.mark.slow  # 15-35 s of real-time replays: make test-all (the live command itself is tests/test_predict_live.py)
def test_bench_live_tiny_measures_latency_and_memory(tmp_path):
    """A tiny audio_cnn through replay | predict --live, and again at 5x for memory."""
    out = tmp_path / "live.json"
    command = [sys.executable, "benchmarks/bench_live.py", "--tiny", "--models", "audio_cnn"]
    command += ["--runtimes", "pytorch", "--speed", "4", "--long", "5", "--long-speed", "5"]
    command += ["--json", str(out), "--work", str(tmp_path / "work")]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["settings"]["speed"] == 4 and results["machine"]["cpus"] >= 1
    [live] = results["runs"]
    assert (live["model"], live["runtime"], live["exit"]) == ("audio_cnn", "pytorch", 0), live
    assert live["summary_agrees"], live  # the JSON lines' count and percentiles are the summary line's
    assert live["written"] + live["skipped"] == 3, "a 5 s stream holds 3 windows of 3 s at a 1 s hop"
    latency = live["latency_s"]
    assert 0 <= latency["p50"] <= latency["p95"] <= latency["max"] < live["wall_s"]
    assert 0 < live["model_s_per_window"] and live["peak_rss_mb"] > 0
    [goal] = results["goals"]  # the only audio model is the fastest one
    assert goal["goal_p95_s"] == 0.25 and goal["meets_goal"] == (latency["p95"] < 0.25)
    row = next(line for line in run.stdout.splitlines() if line.startswith("audio_cnn"))
    assert f"{latency['p95']:.3f}" in row.split(), "the table prints the JSON's figures"
    long = results["long"]["run"]
    assert long["written"] + long["skipped"] == 3 and long["summary_agrees"], long
    assert 0 < long["rss_mb"]["first"] <= long["rss_mb"]["peak"] and long["rss_samples"]

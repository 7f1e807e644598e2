"""The Speed benchmark runs end to end in its tiny mode (its numbers are not asserted here)."""

import json
import subprocess
import sys

from conftest import REPO

KEYS = (
    "decode_clips_per_s", "prepare_clips_per_s", "cache_speedup_video", "cache_speedup_audio",
    "asha_best", "fifo_best", "asha_epoch_fraction", "mem_ratio_4_vs_1",
)


def test_bench_tiny_writes_every_key(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--tiny", "--json", str(out), "--work", str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(out.read_text())
    for key in KEYS:
        assert isinstance(results[key], (int, float)) and results[key] >= 0, key
        assert key in run.stdout  # the printed table
    assert results["machine"]["cores"] >= 1 and results["mode"] == "tiny"

"""A real two-node Ray cluster on this machine (head and worker as separate `ray start`
processes, each declaring one fake GPU, with token authentication): a smoke search through
`tune_main.py --address` spreads its trials over both nodes, runs two trials at 0.5 GPU per
GPU at once with CUDA_VISIBLE_DEVICES set, and falls back to the CPU where torch sees no CUDA."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import REPO
from processes import ray_processes, wait_for_no_new_ray_processes

RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def kill_new_ray_processes(before: set[int]) -> None:
    """SIGKILL the Ray processes started since `before` (this cluster's: tests run one at a time),
    rather than `ray stop`, which would stop every Ray on the machine."""
    for pid in ray_processes() - before:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


@pytest.fixture
def two_node_cluster():
    from ray._private.services import get_node_ip_address

    temp = tempfile.mkdtemp(prefix="msa-ray-", dir="/tmp")  # short: Ray's socket paths live here
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    before = ray_processes()
    with socket.socket() as probe:  # a free port for the head's GCS
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    address = f"{get_node_ip_address()}:{port}"
    head = ["start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=1", "--include-dashboard=false", f"--temp-dir={temp}"]
    worker = ["start", f"--address={address}", "--num-cpus=2", "--num-gpus=1"]
    try:
        for args in (head, worker):
            started = subprocess.run(RAY + args, env=env, capture_output=True, text=True, timeout=120)
            assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield address, env
    finally:
        kill_new_ray_processes(before)
        left = wait_for_no_new_ray_processes(before)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, "the test cluster left processes behind"


def test_search_spreads_over_nodes_and_shares_gpus(two_node_cluster, tiny_sample, tmp_path):
    address, env = two_node_cluster
    command = [
        sys.executable, "tune_main.py", "--space", "video_transformer", "--smoke-test", "--address", address,
        "--gpus-per-trial", "0.5", "--cpus-per-trial", "1", "--num-samples", "4", "--max-epochs", "2", "--grace-period", "2",
        "--data", str(tiny_sample), "--classes", "seed4", "--cache", str(tmp_path / "cache"),
        "--storage", str(tmp_path / "results"), "--name", "multinode",
    ]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    experiment = tmp_path / "results" / "multinode"
    assert json.loads((experiment / "summary.json").read_text())["trials_by_status"] == {"TERMINATED": 4}
    trials = []
    for trial in experiment.glob("trial_*"):
        results = [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line.strip()]
        start = results[0]["timestamp"] - results[0]["time_total_s"]
        trials.append({"node": results[0]["node_id"], "gpus": results[0]["cuda_visible_devices"],
                       "device": results[0]["device"], "span": (start, results[-1]["timestamp"])})
    assert len({t["node"] for t in trials}) == 2, "trials ran on both nodes"
    assert all(t["device"] == "cpu" for t in trials), "no CUDA here: torch falls back to the CPU"
    for node in {t["node"] for t in trials}:
        on_node = [t for t in trials if t["node"] == node]
        assert len(on_node) == 2 and all(t["gpus"] == "0" for t in on_node), "two trials share the node's GPU 0"
        (a_start, a_end), (b_start, b_end) = (t["span"] for t in on_node)
        assert a_start < b_end and b_start < a_end, "the two trials on one GPU overlapped in time"

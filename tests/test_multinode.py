"""A real two-node Ray cluster on this machine (head and worker as separate `ray start`
processes, each declaring one fake GPU and a cache of its own, with token authentication): a
smoke search through `tune_main.py --address` with data and results behind file:// URIs
prepares every clip into both nodes' caches as Ray tasks, spreads its trials over both nodes,
runs two trials at 0.5 GPU per GPU at once with CUDA_VISIBLE_DEVICES set, and falls back to
the CPU where torch sees no CUDA. The driver's pretrained weights reach the trials on the worker,
whose weight caches are empty and offline. The frozen-prefix features of the space's models are computed
by Ray tasks into both caches before the trials, so no trial decodes or computes. With one cache
shared by both nodes, the nodes split the clips and the feature tables."""

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
from processes import assert_no_crash_output, ray_processes, wait_for_no_new_ray_processes

pytestmark = pytest.mark.ray  # these tests start Ray (make test-quick leaves them out)

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
def two_node_cluster(torch_home):
    from ray._private.services import get_node_ip_address

    temp = tempfile.mkdtemp(prefix="msa-ray-", dir="/tmp")  # short: Ray's socket paths live here
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    before = ray_processes()
    with socket.socket() as probe:  # a free port for the head's GCS
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    address = f"{get_node_ip_address()}:{port}"
    head = [
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=2",
        "--num-gpus=1",
        "--include-dashboard=false",
        f"--temp-dir={temp}",
    ]
    worker = ["start", f"--address={address}", "--num-cpus=2", "--num-gpus=1"]
    caches = {
        "head": Path(temp) / "head-cache",
        "worker": Path(temp) / "worker-cache",
    }  # each node's $MSA_CACHE
    # The head has ResNet-18 weights in torchvision's cache; the worker has no weights and no hub.
    weights_env = {
        "head": {"TORCH_HOME": str(torch_home[0])},
        "worker": {
            "TORCH_HOME": str(Path(temp) / "worker-torch"),
            "HF_HOME": str(Path(temp) / "worker-hf"),
            "HF_HUB_OFFLINE": "1",
        },
    }
    try:
        for node, args in (("head", head), ("worker", worker)):
            node_env = {**env, "MSA_CACHE": str(caches[node]), **weights_env[node]}
            started = subprocess.run(RAY + args, env=node_env, capture_output=True, text=True, timeout=120)
            assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        # The driver runs on the head.
        driver_env = {**env, "MSA_CACHE": str(caches["head"]), **weights_env["head"]}
        yield address, driver_env, caches
    finally:
        kill_new_ray_processes(before)
        left = wait_for_no_new_ray_processes(before)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, "the test cluster left processes behind"


SHARED_CACHE_SCRIPT = """
import sys, ray
from msa.data.decode import PrepareParams
from msa.data.splits import SplitConfig
from msa.tune.cluster import precompute_features, prepare_on_cluster
from msa.tune.options import ResourceOptions
from msa.data.experiment import find_data, split_data
from msa.trial import TrialSettings
ray.init(address=sys.argv[1])
found = find_data(sys.argv[2], sys.argv[3], PrepareParams(num_frames=4, image_size=32))
decoded, failed, line = prepare_on_cluster(found, progress=False)
print(line)
data, _ = split_data(found, decoded, failed, "seed4", SplitConfig())
settings = TrialSettings(data=data, max_epochs=1, smoke_test=True, progress=False)
print(precompute_features(settings, ("video_iter3", "video_iter4"), ResourceOptions(cpus_per_trial=1, gpus_per_trial=0.5), progress=False))
"""


def per_node_counts(line: str) -> list[int]:
    return [int(part.split()[-1]) for part in line.split("per node: ")[1].split(", ")]


@pytest.mark.slow  # ~2 min: make test-all (make test stays under 10 minutes)
def test_search_spreads_over_nodes_and_shares_gpus(two_node_cluster, tiny_sample, torch_home, tmp_path):
    address, env, caches = two_node_cluster
    num_clips = len(list(tiny_sample.rglob("*.mp4")))
    command = [
        sys.executable,
        "tune_main.py",
        "--space",
        "video_transformer",
        "--smoke-test",
        "--address",
        address,
        "--gpus-per-trial",
        "0.5",
        "--cpus-per-trial",
        "1",
        "--num-samples",
        "4",
        "--max-epochs",
        "2",
        "--grace-period",
        "2",
        "--data",
        tiny_sample.as_uri(),
        "--classes",
        "seed4",
        "--pretrained",
        "on",
        "--storage",
        (tmp_path / "results").as_uri(),
        "--name",
        "multinode",
    ]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert_no_crash_output(run)
    assert f"cluster preparation: {2 * num_clips} clips decoded" in run.stdout
    assert "2 separate caches on 2 nodes" in run.stdout
    assert (
        "frozen-prefix features: 2 tables of video_iter3, video_iter4, video_iter5 in 2 caches" in run.stdout
    )
    for cache in caches.values():
        assert len(list(cache.glob("clips/*/meta.json"))) == num_clips, f"{cache} holds every clip"
        tables = list(cache.glob("features/video-*"))
        assert len(tables) == 2 and all(
            len(list(t.glob("*.npy"))) == len(list(tables[0].glob("*.npy"))) > 0 for t in tables
        )
    experiment = tmp_path / "results" / "multinode"
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["trials_by_status"] == {"TERMINATED": 4} and summary["test"]["accuracy"] is not None
    trials = []
    for trial in experiment.glob("trial_*"):
        results = [
            json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line.strip()
        ]
        start = results[0]["timestamp"] - results[0]["time_total_s"]
        trials.append(
            {
                "node": results[0]["node_id"],
                "gpus": results[0]["cuda_visible_devices"],
                "device": results[0]["device"],
                "span": (start, results[-1]["timestamp"]),
            }
        )
        assert results[0]["pretrained_video_sha256"] == torch_home[1], (
            "every trial loaded the driver's weights"
        )
        assert results[0]["clips_prepared"] == 0, "no trial decodes: its node's cache was complete"
        assert results[0]["features_computed"] == 0, "no trial computes features: the cluster did"
        assert list(trial.glob("checkpoint_*/checkpoint.pt")), "checkpoints went to the storage URI"
    assert len({t["node"] for t in trials}) == 2, "trials ran on both nodes"
    assert list(caches["worker"].glob("weights/video-*/*.pth")), (
        "the worker wrote the shipped weights into its cache"
    )
    assert not (Path(caches["worker"]).parent / "worker-torch").exists(), (
        "nothing went to the worker's own torch cache"
    )
    assert all(t["device"] == "cpu" for t in trials), "no CUDA here: torch falls back to the CPU"
    for node in {t["node"] for t in trials}:
        on_node = [t for t in trials if t["node"] == node]
        assert len(on_node) == 2 and all(t["gpus"] == "0" for t in on_node), (
            "two trials share the node's GPU 0"
        )
        (a_start, a_end), (b_start, b_end) = (t["span"] for t in on_node)
        # Ray's timestamps are whole seconds (truncated): a span really ends before its end + 1.
        assert a_start < b_end + 1 and b_start < a_end + 1, "the two trials on one GPU overlapped in time"

    shared = subprocess.run(
        [
            sys.executable,
            "-c",
            SHARED_CACHE_SCRIPT,
            address,
            str(tiny_sample),
            str(tmp_path / "shared-cache"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shared.returncode == 0, shared.stderr[-3000:]
    clips_line, features_line = shared.stdout.strip().splitlines()[-2:]
    assert f"{num_clips} clips decoded" in clips_line and "one cache shared by 2 nodes" in clips_line, (
        clips_line
    )
    assert len(per_node_counts(clips_line)) == 2 and min(per_node_counts(clips_line)) > 0, (
        f"both nodes took a share: {clips_line}"
    )
    assert "2 tables of video_iter3, video_iter4 in 1 cache" in features_line, features_line
    assert len(per_node_counts(features_line)) == 2, f"both nodes computed features: {features_line}"

    # The search's best config cross-validated on the same cluster, the experiment behind a URI.
    crossval = subprocess.run(
        [
            sys.executable,
            "-m",
            "msa.crossval",
            (tmp_path / "results" / "multinode").as_uri(),
            "--folds",
            "3",
            "--address",
            address,
            "--gpus-per-trial",
            "0.5",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert crossval.returncode == 0, crossval.stdout[-3000:] + crossval.stderr[-3000:]
    assert_no_crash_output(crossval)
    cv = json.loads((experiment / "crossval.json").read_text())
    assert (cv["folds_completed"], cv["folds_total"], cv["config"]) == (3, 3, summary["best_config"])
    assert sorted(a for fold in cv["folds"] for a in fold["test_actors"]) == [1, 2, 3, 4]
    assert all("audio" in fold["baseline"] for fold in cv["folds"])
    for fold in cv["folds"]:
        first = json.loads(
            (experiment / "crossval_3" / fold["trial"] / "result.json").read_text().splitlines()[0]
        )
        assert first["clips_prepared"] == 0 and first["cuda_visible_devices"] == "0", (
            "folds run as the trials did"
        )

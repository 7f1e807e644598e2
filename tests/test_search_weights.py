"""A search's weights: resolved once before Ray starts (with the --pretrained policy), shipped to
trials as bytes, written once into each node's cache and loaded by every trial."""

import dataclasses
import hashlib
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from conftest import REPO

from msa.tune.options import UsageError, WeightOptions
from msa.tune.weights import resolve_search_weights
from msa.weights import WeightsBundle, find_weights

UNREACHABLE = "http://127.0.0.1:9/resnet18-0123abcd.pth"  # the discard port: nothing listens


@pytest.fixture
def cached_video(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home[0]))
    return find_weights("video", "IMAGENET1K_V1"), torch_home[1]


def test_bundle_ships_the_files_and_materializes_them_once(cached_video, tmp_path):
    weights, sha256 = cached_video
    bundle = pickle.loads(pickle.dumps(WeightsBundle.pack(weights)))  # what Ray does to it
    assert bundle.sha256 == sha256 and bundle.size == weights.size
    files = bundle.materialize(tmp_path / "node-cache")
    assert files.folder.parent == tmp_path / "node-cache" / "weights"
    path = files.folder / files.files[0]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    mtime = path.stat().st_mtime_ns
    assert (
        bundle.materialize(tmp_path / "node-cache").folder == files.folder
        and path.stat().st_mtime_ns == mtime
    ), "written once"
    info = subprocess.run(
        [sys.executable, "-m", "msa.prepare", "--cache", str(tmp_path / "node-cache"), "--cache-info"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"video-{sha256}" in info.stdout and f"{weights.size / 2**20:9.1f} MB" in info.stdout, info.stdout


def test_concurrent_trials_materialize_one_copy(cached_video, tmp_path):
    bundle = WeightsBundle.pack(cached_video[0])
    results, errors = [], []

    def materialize():
        try:
            results.append(bundle.materialize(tmp_path))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=materialize) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len({r.folder for r in results}) == 1
    assert [p.name for p in (tmp_path / "weights").iterdir()] == [results[0].folder.name], (
        "no staging folder left"
    )


def test_corrupted_bytes_are_never_published(cached_video, tmp_path):
    bundle = WeightsBundle.pack(cached_video[0])
    ((name, data),) = bundle.files
    damaged = data.copy()
    damaged[-1] ^= 0xFF
    bad = dataclasses.replace(bundle, files=((name, damaged),))
    with pytest.raises(OSError, match="hash to"):
        bad.materialize(tmp_path)
    assert list((tmp_path / "weights").iterdir()) == []


def test_off_resolves_nothing():
    options = WeightOptions(pretrained="off", video_weights=UNREACHABLE, audio_weights="x/y")
    assert resolve_search_weights(("video", "audio"), options, real_data=True) == {}


def test_found_weights_are_bundled(cached_video, capsys):
    bundles = resolve_search_weights(
        ("video",), WeightOptions(pretrained="on"), real_data=True, progress=False
    )
    assert bundles["video"].sha256 == cached_video[1]
    assert isinstance(bundles["video"].files[0][1], np.ndarray)
    assert f"sha256 {cached_video[1][:12]}" in capsys.readouterr().out


def test_auto_on_the_sample_goes_on_with_random_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert (
        resolve_search_weights(
            ("video",), WeightOptions(video_weights=UNREACHABLE), real_data=False, progress=False
        )
        == {}
    )
    err = capsys.readouterr().err
    assert "warning:" in err and "RANDOM" in err and UNREACHABLE in err


@pytest.mark.parametrize("mode, real_data", [("auto", True), ("on", True), ("on", False)])
def test_unavailable_weights_stop_a_search_that_needs_them(mode, real_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UsageError) as error:
        resolve_search_weights(
            ("video",), WeightOptions(mode, video_weights=UNREACHABLE), real_data=real_data, progress=False
        )
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"--pretrained {mode}: ")
    assert f"msa weights fetch --video {UNREACHABLE}" in message and "--pretrained off" in message
    assert not list(tmp_path.rglob("*.pth*")), "nothing left in the cache"


def test_trial_loads_the_shipped_weights(cached_video, tiny_trial_data, tmp_path, monkeypatch):
    """A trial on a node without the weights: they come from the settings, not its caches."""
    from msa.trial import TrialSettings, build_model

    bundle = WeightsBundle.pack(cached_video[0])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = TrialSettings(
        data=tiny_trial_data, max_epochs=1, smoke_test=True, weights={"video": bundle}, progress=False
    )
    model, pretrained = build_model("video_iter3", {}, settings, torch.device("cpu"))
    assert pretrained["video"] == {"loaded": True, "source": "IMAGENET1K_V1", "sha256": cached_video[1]}
    assert pretrained["audio"]["loaded"] is False
    state = torch.load(cached_video[0].folder / cached_video[0].files[0], weights_only=True)
    torch.testing.assert_close(
        model.branches["video"].trunk.layer4[1].conv2.weight, state["layer4.1.conv2.weight"]
    )
    assert model.config.video.video_weights == "IMAGENET1K_V1", "the checkpoint records the source"
    scratch, flags = build_model("video_iter1", {}, settings, torch.device("cpu"))
    assert flags["video"]["loaded"] is False, "a from-scratch CNN takes no ResNet weights"

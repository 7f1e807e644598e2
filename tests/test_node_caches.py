"""Clips prepared by cache key on each node: a node whose cache lacks them (its own cache on a
cluster, or an autoscaled node) prepares them once at its first trial, the embedded sample
included; the driver's cache is never assumed to be the node's."""

import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_SAMPLE_EMOTIONS

from msa.data.decode import PrepareParams
from msa.data.experiment import find_data, prepare_locally, split_data
from msa.data.sample import SampleSpec, sample_dir
from msa.data.splits import SplitConfig

PARAMS = PrepareParams(num_frames=4, image_size=32)


def driver_data(data, monkeypatch, cache, **kwargs):
    monkeypatch.setenv("MSA_CACHE", str(cache))
    found = find_data(data, None, PARAMS, **kwargs)
    trial_data, _ = split_data(found, *prepare_locally(found, progress=False), "seed4", SplitConfig())
    return trial_data


def all_clips(data):
    return data.clips("train", "val", "test")


def test_a_node_with_its_own_cache_prepares_every_clip_once(tiny_sample, tmp_path, monkeypatch):
    data = driver_data(tiny_sample, monkeypatch, tmp_path / "driver")
    on_driver = {clip.record: clip.load(mmap=False) for clip in all_clips(data)}
    monkeypatch.setenv("MSA_CACHE", str(tmp_path / "node"))  # another node's default cache

    counts = []
    threads = [threading.Thread(target=lambda: counts.append(data.ensure_here(workers=1))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == [0, len(on_driver)], "two trials starting together decode each clip once"
    assert data.ensure_here() == 0
    for clip in all_clips(data):
        assert clip.entry.is_relative_to(tmp_path / "node")
        assert all(np.array_equal(a, b) for a, b in zip(clip.load(), on_driver[clip.record]))


def test_a_node_generates_the_embedded_sample_into_its_own_cache(tiny_sample, tmp_path, monkeypatch):
    spec = SampleSpec(actors=4, emotions=TINY_SAMPLE_EMOTIONS, statements=1, duration=1.0)
    # The driver already has it (the session's tiny sample is this spec): only the node generates.
    shutil.copytree(tiny_sample, sample_dir(tmp_path / "driver", spec))
    data = driver_data(None, monkeypatch, tmp_path / "driver", sample=spec)
    assert data.root.startswith(str(tmp_path / "driver"))
    monkeypatch.setenv("MSA_CACHE", str(tmp_path / "node"))
    assert data.ensure_here(("train",)) == len(data.parts["train"])
    assert all(clip.entry.is_dir() for clip in data.clips("train"))
    assert list((tmp_path / "node").glob("sample-*")), "the node generated its own copy of the sample"


def test_a_clip_that_fails_on_a_node_is_an_error_naming_it(tiny_sample, tmp_path, monkeypatch):
    root = shutil.copytree(tiny_sample, tmp_path / "data")
    data = driver_data(root, monkeypatch, tmp_path / "driver")
    monkeypatch.setenv("MSA_CACHE", str(tmp_path / "node"))
    broken = data.parts["val"][0]
    Path(broken.source.path).write_bytes(b"\0" * 100)  # this node's copy differs from the driver's
    with pytest.raises(RuntimeError, match=f"failed here, e.g. {re.escape(broken.display)}"):
        data.ensure_here(("val",))

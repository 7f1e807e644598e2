"""The frozen-prefix feature cache: same logits as the uncached model, hits, misses,
invalidation, one computation for concurrent processes, listing and clearing."""

import multiprocessing
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO
from media import ravdess_name, write_clip

from msa.data.dataset import ClipDataset, make_loader
from msa.data.decode import PrepareParams
from msa.data.labels import get_label_set
from msa.data.prepare import prepare
from msa.data.transforms import FrameAugment
from msa.features import (
    FeatureTable,
    PrefixCachedModel,
    cache_plan,
    clear_features,
    feature_key,
    features_dir,
    list_tables,
    prefix_fingerprint,
)
from msa.models import create_model, tiny_overrides

PARAMS = PrepareParams(num_frames=6, image_size=32)


@pytest.fixture(scope="module")
def clip_root(tmp_path_factory):
    """Six clips of different lengths (3 to 8 frames, ~0.1 to 0.27 s of audio), so batches pad."""
    root = tmp_path_factory.mktemp("feature-clips")
    for i, (emotion, actor) in enumerate([(1, 1), (3, 1), (5, 2), (7, 2), (2, 3), (4, 4)]):
        write_clip(root / f"Actor_{actor:02d}" / ravdess_name(emotion, actor), num_frames=3 + i)
    return root


@pytest.fixture
def clips(clip_root, tmp_path):
    return prepare(clip_root, tmp_path / "cache", PARAMS, workers=1, progress=False).clips


def tiny_model(name, seed=0, **overrides):
    torch.manual_seed(seed)
    model, _ = create_model(name, 8, "off", **{**tiny_overrides(name), **overrides})
    return model.eval()


MODELS = {
    "video frozen trunk": ("video_iter3", {}),
    "video frozen to layer3": ("video_iter4", {}),
    "video mean pooling": ("video_iter2", {}),
    "audio frozen layer": ("audio_last2", {"trainable_layers": 1}),
    "audio layer weighting": ("audio_last2", {"trainable_layers": 1, "layer_weighting": True}),
    "audio conv encoder only": ("audio_all", {}),
    "multimodal": ("multimodal_iter1", {"trainable_layers": 1}),
}


def tables_for(model, cache, clips):
    tables = {}
    for name, branch in model.branches.items():
        tables[name] = FeatureTable.for_branch(branch, cache)
        tables[name].compute(branch, clips, batch_size=4, progress=False)
    return tables


@pytest.mark.parametrize("name, overrides", list(MODELS.values()), ids=list(MODELS))
def test_cached_logits_equal_uncached(name, overrides, clips, tmp_path):
    model = tiny_model(name, **overrides)
    tables = tables_for(model, tmp_path / "cache", clips)
    labels = get_label_set("all8")
    raw = ClipDataset(clips, labels, [key for key in ("video", "audio") if key in model.input_keys])
    fed = ClipDataset(clips, labels, [], arrays={feature_key(n): t.load for n, t in tables.items()})
    cached = PrefixCachedModel(model, tables)
    raw_batch = next(iter(make_loader(raw, len(clips), shuffle=False)))
    fed_batch = next(iter(make_loader(fed, len(clips), shuffle=False)))
    assert raw_batch["path"] == fed_batch["path"]
    with torch.no_grad():
        expected = model(**{key: raw_batch[key] for key in model.input_keys})
        got = cached(**{key: fed_batch[key] for key in cached.input_keys})
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_gradients_flow_to_the_trainable_rest_only(clips, tmp_path):
    model = tiny_model("video_iter4")
    model.train()
    tables = tables_for(model, tmp_path / "cache", clips)
    cached = PrefixCachedModel(model, tables)
    fed = ClipDataset(clips, get_label_set("all8"), [], arrays={feature_key("video"): tables["video"].load})
    batch = next(iter(make_loader(fed, 4, shuffle=False)))
    cached(**{key: batch[key] for key in cached.input_keys}).sum().backward()
    trunk = model.branches["video"].trunk
    assert trunk.layer4[0].conv1.weight.grad is not None
    assert trunk.layer3[0].conv1.weight.grad is None


def test_hits_misses_and_new_clips(clips, tmp_path):
    model = tiny_model("video_iter3")
    branch = model.branches["video"]
    table = FeatureTable.for_branch(branch, tmp_path / "cache")
    assert table.compute(branch, clips[:4], progress=False) == 4
    assert table.compute(branch, clips[:4], progress=False) == 0
    assert table.compute(branch, clips, progress=False) == 2  # only the two new clips
    entry = table.load(clips[0])
    assert isinstance(entry, np.memmap) and entry.dtype == np.float32
    assert entry.shape[1:] == (512, 1, 1)  # ResNet-18 after avgpool, per real frame


def test_entries_follow_weights_and_boundary_not_trainable_layers():
    base = prefix_fingerprint(tiny_model("video_iter3").branches["video"])
    # Shared by trials that size the trainable layers differently.
    assert prefix_fingerprint(tiny_model("video_iter3", d_model=32).branches["video"]) == base
    assert prefix_fingerprint(tiny_model("video_iter4").branches["video"]) != base  # other boundary
    changed = tiny_model("video_iter3")
    with torch.no_grad():
        changed.branches["video"].trunk.layer1[0].conv1.weight[0, 0, 0, 0] += 1e-3
    assert prefix_fingerprint(changed.branches["video"]) != base  # other weights
    audio = prefix_fingerprint(tiny_model("audio_last2", trainable_layers=1).branches["audio"])
    weighted = tiny_model("audio_last2", trainable_layers=1, layer_weighting=True).branches["audio"]
    assert prefix_fingerprint(weighted) != audio  # keeps every frozen hidden state, not the last


def test_entries_follow_decoding_parameters(clip_root, clips, tmp_path):
    model = tiny_model("video_iter3")
    branch = model.branches["video"]
    table = FeatureTable.for_branch(branch, tmp_path / "cache")
    table.compute(branch, clips, progress=False)
    other = prepare(
        clip_root, tmp_path / "cache", PrepareParams(num_frames=4, image_size=32), workers=1, progress=False
    )
    assert len(table.missing(other.clips)) == len(clips)


def compute_in_process(cache, clips, barrier, results):
    branch = tiny_model("video_iter3").branches["video"]
    table = FeatureTable.for_branch(branch, cache)
    barrier.wait()  # both processes find every entry missing at the same moment
    results.put(table.compute(branch, clips, batch_size=2, progress=False))


def test_two_processes_compute_each_entry_once(clips, tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=compute_in_process, args=(tmp_path / "cache", clips, barrier, results))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    counts = sorted(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    assert counts == [0, len(clips)]
    tables = list_tables(tmp_path / "cache")
    assert len(tables) == 1 and tables[0]["entries"] == len(clips)
    assert not list(features_dir(tmp_path / "cache").rglob("*.tmp"))


def test_cache_plan_says_why_a_branch_is_not_cached():
    assert cache_plan(tiny_model("multimodal_iter1")) == {"video": "cached", "audio": "cached"}
    assert cache_plan(tiny_model("video_iter3"), augmented=["video"]) == {"video": "off: input augmented"}
    assert cache_plan(tiny_model("video_iter5")) == {"video": "off: nothing frozen"}
    assert cache_plan(tiny_model("video_iter1")) == {"video": "off: nothing frozen"}
    assert cache_plan(tiny_model("audio_all"), enabled=False) == {"audio": "off: feature cache disabled"}


def test_frame_augment_is_random_but_seeded():
    video = (
        torch.arange(4 * 3 * 16 * 20, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(4, 3, 16, 20)
    )
    sample = {"video": video, "label": 1}
    torch.manual_seed(0)
    first = [FrameAugment()(sample)["video"] for _ in range(4)]
    torch.manual_seed(0)
    again = [FrameAugment()(sample)["video"] for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(v.shape == video.shape and v.dtype == torch.uint8 for v in first)
    assert any(not torch.equal(v, video) for v in first)


def test_cache_info_and_clear_features_cli(clips, tmp_path):
    cache = tmp_path / "cache"
    model = tiny_model("multimodal_iter1")
    tables_for(model, cache, clips)

    def cli(*flags):
        return subprocess.run(
            [sys.executable, "-m", "msa.prepare", "--cache", str(cache), *flags],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    info = cli("--cache-info")
    assert info.returncode == 0, info.stderr
    assert f"{len(clips):5d} clips" in info.stdout
    assert (
        "frozen through trunk.avgpool" in info.stdout
        and "frozen through backbone.feature_extractor" in info.stdout
    )
    cleared = cli("--clear-features", "--cache-info")
    assert cleared.returncode == 0, cleared.stderr
    assert "MB freed" in cleared.stdout and "feature tables: none" in cleared.stdout
    assert list_tables(cache) == [] and clear_features(cache) == 0
    assert all(clip.entry.is_dir() for clip in clips)  # prepared clips are kept

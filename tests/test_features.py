"""The frozen-prefix feature cache: same logits as the uncached model, float16 entries within
their tolerance, hits, misses, invalidation, one computation for concurrent processes, listing
and clearing."""

import json
import multiprocessing
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from media import ravdess_name, write_clip

from msa.data.dataset import ClipDataset, make_loader
from msa.data.datasets.ravdess import CLASS_PRESETS
from msa.data.decode import PrepareParams
from msa.data.labels import LabelSet
from msa.data.prepare import prepare
from msa.data.transforms import FrameAugment
from msa.features import (
    ENTRY_DTYPES,
    META_FILE,
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
from msa.prepare import main as prepare_main
from msa.trial import TrialSettings, feature_table

PARAMS = PrepareParams(num_frames=6, image_size=32)
# float16 audio entries vs float32 ones, the tolerance docs/explanation/cache.md states:
# measured at most 1.5e-4 (logits) and 2.7e-5 (probabilities) over these models and clips.
FLOAT16_LOGITS = 1e-3
FLOAT16_PROBABILITIES = 1e-4


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


def tables_for(model, cache, clips, audio="float32"):
    """Every branch's table, computed; ``audio`` is the audio table's entry dtype."""
    tables = {}
    for name, branch in model.branches.items():
        tables[name] = FeatureTable.for_branch(branch, cache, audio if name == "audio" else "float32")
        tables[name].compute(branch, clips, batch_size=4, progress=False)
    return tables


def fed_batch(tables, clips):
    """One batch of every clip's cached features, as a trial's loader gives them."""
    fed = ClipDataset(
        clips,
        LabelSet("all8", CLASS_PRESETS["all8"]),
        [],
        arrays={feature_key(n): t.load for n, t in tables.items()},
    )
    return next(iter(make_loader(fed, len(clips), shuffle=False)))


@pytest.mark.parametrize("name, overrides", list(MODELS.values()), ids=list(MODELS))
def test_cached_logits_equal_uncached(name, overrides, clips, tmp_path):
    model = tiny_model(name, **overrides)
    tables = tables_for(model, tmp_path / "cache", clips)
    raw = ClipDataset(
        clips,
        LabelSet("all8", CLASS_PRESETS["all8"]),
        [key for key in ("video", "audio") if key in model.input_keys],
    )
    cached = PrefixCachedModel(model, tables)
    raw_batch = next(iter(make_loader(raw, len(clips), shuffle=False)))
    batch = fed_batch(tables, clips)
    assert raw_batch["path"] == batch["path"]
    with torch.no_grad():
        expected = model(**{key: raw_batch[key] for key in model.input_keys})
        got = cached(**{key: batch[key] for key in cached.input_keys})
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


FLOAT16_MODELS = {key: MODELS[key] for key in ("audio frozen layer", "audio conv encoder only", "multimodal")}


@pytest.mark.parametrize("name, overrides", list(FLOAT16_MODELS.values()), ids=list(FLOAT16_MODELS))
def test_float16_audio_entries_match_float32_within_tolerance(name, overrides, clips, tmp_path):
    model = tiny_model(name, **overrides)
    cache = tmp_path / "cache"
    tables = {dtype: tables_for(model, cache, clips, audio=dtype) for dtype in ENTRY_DTYPES}
    logits = {}
    for dtype, by_branch in tables.items():
        batch = fed_batch(by_branch, clips)
        assert batch[feature_key("audio")].dtype == getattr(torch, dtype)  # the model casts, not the loader
        cached = PrefixCachedModel(model, by_branch)
        with torch.no_grad():
            logits[dtype] = cached(**{key: batch[key] for key in cached.input_keys})
    full, half = logits["float32"], logits["float16"]
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, atol=FLOAT16_LOGITS, rtol=0)
    torch.testing.assert_close(half.softmax(-1), full.softmax(-1), atol=FLOAT16_PROBABILITIES, rtol=0)
    assert torch.equal(half.argmax(-1), full.argmax(-1))

    full_table, half_table = tables["float32"]["audio"], tables["float16"]["audio"]
    assert half_table.root.name == f"{full_table.root.name}-float16"  # never mixed with float32 entries
    sizes = {
        table.dtype: sum(table.load(clip).nbytes for clip in clips) for table in (full_table, half_table)
    }
    assert sizes["float32"] == 2 * sizes["float16"]
    for table in (full_table, half_table):
        assert json.loads((table.root / META_FILE).read_text())["dtype"] == table.dtype
    listed = {table["name"]: table["dtype"] for table in list_tables(cache)}
    assert listed[half_table.root.name] == "float16" and listed[full_table.root.name] == "float32"


def test_float16_entries_refuse_values_beyond_their_range(clips, tmp_path):
    branch = tiny_model("audio_all").branches["audio"]
    with torch.no_grad():
        branch.backbone.feature_extractor.conv_layers[-1].conv.weight.mul_(1e6)
    table = FeatureTable.for_branch(branch, tmp_path / "cache", "float16")
    with pytest.raises(OverflowError, match="beyond float16's range.*use float32 entries"):
        table.compute(branch, clips, progress=False)
    assert len(table.missing(clips)) == len(clips)


def test_trials_store_audio_tables_as_the_search_says_and_video_tables_as_float32(tmp_path):
    model = tiny_model("multimodal_iter1")
    data = SimpleNamespace(node_cache=lambda: tmp_path / "cache")
    for dtype in ENTRY_DTYPES:
        settings = TrialSettings(data=data, max_epochs=1, audio_features=dtype)
        assert feature_table(settings, "audio", model.branches["audio"]).dtype == dtype
        assert feature_table(settings, "video", model.branches["video"]).dtype == "float32"


def test_gradients_flow_to_the_trainable_rest_only(clips, tmp_path):
    model = tiny_model("video_iter4")
    model.train()
    tables = tables_for(model, tmp_path / "cache", clips)
    cached = PrefixCachedModel(model, tables)
    batch = fed_batch(tables, clips[:4])
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


def test_cache_info_and_clear_features_cli(clips, tmp_path, capsys):
    """Through msa.prepare's main() in this process (its command line runs in test_prepare)."""
    cache = tmp_path / "cache"
    model = tiny_model("multimodal_iter1")
    tables_for(model, cache, clips)
    tables_for(model, cache, clips, audio="float16")

    assert prepare_main(["--cache", str(cache), "--cache-info"]) == 0
    info = capsys.readouterr().out
    assert f"{len(clips):5d} clips" in info
    assert (
        "float32  frozen through trunk.avgpool" in info
        and "float32  frozen through backbone.feature_extractor" in info
        and "float16  frozen through backbone.feature_extractor" in info
    )
    assert prepare_main(["--cache", str(cache), "--clear-features", "--cache-info"]) == 0
    cleared = capsys.readouterr().out
    assert "MB freed" in cleared and "feature tables: none" in cleared
    assert list_tables(cache) == [] and clear_features(cache) == 0
    assert all(clip.entry.is_dir() for clip in clips)  # prepared clips are kept

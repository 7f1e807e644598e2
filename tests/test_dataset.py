import torch
from media import ravdess_name, write_clip

from msa.data.dataset import ClipDataset, collate, make_loader
from msa.data.datasets.ravdess import CLASS_PRESETS
from msa.data.decode import PrepareParams
from msa.data.labels import LabelSet
from msa.data.prepare import prepare


def sample(frames, samples, label=0):
    return {
        "video": torch.full((frames, 3, 4, 4), 7, dtype=torch.uint8),
        "audio": torch.ones(samples),
        "label": label,
        "speaker": 1,
        "path": "p",
    }


def test_collate_pads_and_masks():
    batch = collate([sample(3, 5, 0), sample(2, 8, 1)])
    assert batch["video"].shape == (2, 3, 3, 4, 4) and batch["video"].dtype == torch.uint8
    assert batch["video_mask"].tolist() == [[True, True, True], [True, True, False]]
    assert (batch["video"][1, 2] == 0).all()
    assert batch["audio"].shape == (2, 8)
    assert batch["audio_mask"].tolist() == [[True] * 5 + [False] * 3, [True] * 8]
    assert batch["audio"][0, 5:].abs().sum() == 0
    assert batch["label"].tolist() == [0, 1] and batch["label"].dtype == torch.long


def test_collate_single_modality():
    batch = collate([{k: v for k, v in sample(2, 3).items() if k != "audio"}])
    assert "audio" not in batch and "audio_mask" not in batch and batch["video_mask"].all()


def prepared(tmp_path):
    root = tmp_path / "data"
    for actor in (1, 2):
        for emotion in range(1, 9):
            write_clip(root / f"Actor_{actor:02d}" / ravdess_name(emotion, actor), num_frames=4 + emotion % 3)
    return prepare(
        root, tmp_path / "cache", PrepareParams(num_frames=8, image_size=8), workers=2, progress=False
    ).clips


def test_dataset_labels_and_loader(tmp_path):
    clips = prepared(tmp_path)
    all8 = ClipDataset(clips, LabelSet("all8", CLASS_PRESETS["all8"]))
    assert len(all8) == 16
    item = all8[0]
    assert item["video"].shape[1:] == (3, 8, 8) and item["video"].dtype == torch.uint8
    assert item["audio"].dtype == torch.float32 and item["audio"].ndim == 1
    assert {all8.label(i) for i in range(16)} == set(range(8))

    seed4 = ClipDataset(clips, LabelSet("seed4", CLASS_PRESETS["seed4"]), modalities=("video",))
    assert len(seed4) == 8, "emotions outside seed4 are dropped"
    names = [seed4.clips[i].record.label for i in range(8)]
    assert all(seed4.label(i) == ("sad", "happy", "disgust", "angry").index(n) for i, n in enumerate(names))
    assert "audio" not in seed4[0]

    def order(seed, workers):
        loader = make_loader(all8, batch_size=3, shuffle=True, seed=seed, num_workers=workers)
        return [tuple(batch["path"]) for batch in loader]

    assert order(1, 0) == order(1, 2), "order depends on the seed, not on the workers"
    assert order(1, 0) != order(2, 0)
    batch = next(iter(make_loader(all8, batch_size=16, shuffle=False)))
    lengths = batch["video_mask"].sum(1)
    assert lengths.min() < lengths.max(), "clips of different lengths were padded"

"""Dataset of prepared clips, the padding collate and deterministic loaders.

A sample is a dict::

    {"video": uint8 (T, C, H, W), "audio": float32 (S,), "label": int, "speaker": int | str | None, "path": str}

and a batch, after ``collate``::

    {"video": uint8 (B, T, C, H, W), "video_mask": bool (B, T),
     "audio": float32 (B, S),        "audio_mask": bool (B, S),
     "label": int64 (B,), "speaker": list, "path": list[str]}

Masks are True where there is real data and False over padding. Arrays looked up per clip
(``arrays={"video_features": table.load}``: cached features of a frozen prefix, say) arrive
``(L, ...)`` in their own dtype (a float16 feature table's stay float16: half the bytes to move;
the model casts them) under their key and are padded along L the same way, with ``<key>_mask``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from msa.data.labels import LabelSet
from msa.data.prepare import PreparedClip

MODALITIES = ("video", "audio")
METADATA_KEYS = ("label", "speaker", "path")  # per-sample fields that are not padded


class ClipDataset(Dataset):
    """Prepared clips of the classes in ``label_set`` (others are dropped; None: every clip,
    label -1), read memory-mapped. ``modalities`` limits what is read, so a video model never
    touches audio (and an audio file's clip, which has no frames, can only be read for audio).

    ``arrays`` maps extra sample keys to a function of the clip returning an array (L, ...);
    ``transform`` is applied to each finished sample (e.g. frame augmentation for training)."""

    def __init__(
        self,
        clips: Sequence[PreparedClip],
        label_set: LabelSet | None,
        modalities: Sequence[str] = MODALITIES,
        arrays: Mapping[str, Callable[[PreparedClip], np.ndarray]] | None = None,
        transform: Callable[[dict], dict] | None = None,
    ):
        arrays = dict(arrays or {})
        unknown = set(modalities) - set(MODALITIES)
        if unknown or not (modalities or arrays):
            raise ValueError(
                f"modalities must be a subset of {MODALITIES}, non-empty unless arrays are given; got {list(modalities)}"
            )
        self.label_set = label_set
        self.modalities = tuple(modalities)
        self.arrays = arrays
        self.transform = transform
        self.clips = [
            clip for clip in clips if label_set is None or label_set.index(clip.record.label) is not None
        ]
        if "video" in self.modalities:
            audio_only = next((clip.display for clip in self.clips if not clip.record.has_video), None)
            if audio_only is not None:
                raise ValueError(f"{audio_only} is an audio file: it has no frames for a video model")

    def __len__(self) -> int:
        return len(self.clips)

    def label(self, index: int) -> int:
        return -1 if self.label_set is None else self.label_set.index(self.clips[index].record.label)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        sample = {"label": self.label(index), "speaker": clip.record.speaker, "path": clip.display}
        if self.modalities:
            video, audio = clip.load(mmap=True)
            if "video" in self.modalities:
                # np.array copies out of the read-only memmap.
                sample["video"] = torch.from_numpy(np.array(video)).permute(0, 3, 1, 2)
            if "audio" in self.modalities:
                sample["audio"] = torch.from_numpy(np.array(audio, dtype=np.float32))
        for key, lookup in self.arrays.items():
            sample[key] = torch.from_numpy(np.array(lookup(clip)))  # a copy out of a read-only memmap
        return self.transform(sample) if self.transform is not None else sample


def pad_stack(tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack tensors of shape (L_i, ...) into (B, max L, ...) zero-padded along the first
    axis, with a bool mask (B, max L) that is True over real entries."""
    longest = max(t.shape[0] for t in tensors)
    padded = tensors[0].new_zeros((len(tensors), longest, *tensors[0].shape[1:]))
    mask = torch.zeros(len(tensors), longest, dtype=torch.bool)
    for i, tensor in enumerate(tensors):
        padded[i, : tensor.shape[0]] = tensor
        mask[i, : tensor.shape[0]] = True
    return padded, mask


def collate(samples: Sequence[dict]) -> dict:
    """Pad video along time, audio along samples and any other array along its first axis to
    the longest in the batch; each gets a ``<key>_mask``, True = real data, False = padding."""
    batch = {
        "label": torch.tensor([s["label"] for s in samples], dtype=torch.long),
        "speaker": [s["speaker"] for s in samples],
        "path": [s["path"] for s in samples],
    }
    for key in samples[0]:
        if key not in METADATA_KEYS:
            batch[key], batch[f"{key}_mask"] = pad_stack([s[key] for s in samples])
    return batch


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in each loader worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: ClipDataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader whose order depends only on ``seed`` (and the epoch, through the
    generator's state), whatever the number of workers."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )

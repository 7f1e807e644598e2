"""Random batches in msa.data's collate format, for tests, benchmarks and smoke checks."""

import torch


def random_batch(
    video_lengths: list[int],
    audio_lengths: list[int],
    frame_size: int = 112,
    num_classes: int = 8,
    generator: torch.Generator | None = None,
) -> dict:
    """One clip per entry of the length lists (frames, samples), padded at the end with zeros:
    video (B, T, 3, H, W) uint8, video_mask (B, T), audio (B, S) float32 in [-1, 1),
    audio_mask (B, S), label (B,), speaker list, path list[str]."""
    if len(video_lengths) != len(audio_lengths):
        raise ValueError("one video length and one audio length per clip")
    batch_size, frames, samples = len(video_lengths), max(video_lengths), max(audio_lengths)
    video_mask = torch.arange(frames) < torch.tensor(video_lengths).unsqueeze(1)
    audio_mask = torch.arange(samples) < torch.tensor(audio_lengths).unsqueeze(1)
    video = torch.randint(
        0, 256, (batch_size, frames, 3, frame_size, frame_size), dtype=torch.uint8, generator=generator
    )
    audio = torch.rand(batch_size, samples, generator=generator) * 2 - 1
    return {
        "video": video * video_mask[:, :, None, None, None],
        "video_mask": video_mask,
        "audio": audio * audio_mask,
        "audio_mask": audio_mask,
        "label": torch.randint(0, num_classes, (batch_size,), generator=generator),
        "speaker": list(range(1, batch_size + 1)),
        "path": [f"synthetic-{i}.mp4" for i in range(batch_size)],
    }

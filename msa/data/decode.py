"""Decoding one clip: frame sampling (decord), face crop, resize, and 16 kHz mono audio (PyAV,
converted by msa.audio_format.to_model_audio).

The crop is fixed (``crop_box``: where the face is on RAVDESS) or, with ``PrepareParams.crop``
"face", around the face found in the sampled frames (``msa.data.faces``), for recordings framed
otherwise.

decode -> sample -> transform are separate steps so each can be tested on its own. Output is
what the cache stores: video uint8 ``(T, H, W, C)`` and audio float32 ``(S,)``. Scaling to
[0, 1] and ImageNet normalisation belong to the model's input transform, not here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from msa.audio_format import MIN_AUDIO_SAMPLES, SAMPLE_RATE, to_model_audio
from msa.data.datasets.records import NO_AUDIO, NO_VIDEO, TOO_SHORT, UNREADABLE
from msa.data.faces import FaceBox, cut_square, face_crop_box, find_face
from msa.data.media import MediaError, first_line, read_audio

NUM_FRAMES = 16
IMAGE_SIZE = 112  # pixels, square
# The smallest frame side every video model takes: the small CNN trunk (video_iter1, msa.models
# VideoConfig.cnn_channels) halves it in each of its three blocks and needs 1 pixel after the
# last; ResNet-18's trunk takes less. Every command's --image-size check reads this one.
MIN_IMAGE_SIZE = 8  # pixels
# RAVDESS frames are 1280x720 with the actor's head centred on a white background. A centred
# square of 0.78 x height starting 0.03 x height from the top holds hair to chin on the real
# clips (checked on real RAVDESS clips); the seed's 400 px centre crop cut the forehead off.
CROP_SIZE_FRACTION = 0.78  # of frame height
CROP_TOP_FRACTION = 0.03  # of frame height
# "fixed": crop_box on every clip; "face": the square msa.data.faces finds around the face
# (calibrated to match crop_box on RAVDESS), the fixed crop where no frame shows a face.
CROPS = ("fixed", "face")
# What msa predict classifies by default: its sliding window (the span a window's frames and audio
# cover), which a trial's measured latency also times.
PREDICT_WINDOW = 3.0  # s


class DecodeError(RuntimeError):
    """A file that cannot be prepared: ``reason`` is the report's reason (unreadable, no audio
    track, no video track, too short), the message adds the detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class PrepareParams:
    """Every parameter that changes a prepared clip; part of each cache entry's key."""

    num_frames: int = NUM_FRAMES
    image_size: int = IMAGE_SIZE
    crop_size_fraction: float = CROP_SIZE_FRACTION
    crop_top_fraction: float = CROP_TOP_FRACTION
    sample_rate: int = SAMPLE_RATE
    crop: str = "fixed"  # one of CROPS

    def __post_init__(self):
        if self.num_frames < 1 or self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(
                f"num_frames must be >= 1 and image_size >= {MIN_IMAGE_SIZE}, got {self.num_frames}, {self.image_size}"
            )
        if not (0 < self.crop_size_fraction <= 1 and 0 <= self.crop_top_fraction < 1):
            raise ValueError("crop fractions must lie in (0, 1]")
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {', '.join(CROPS)}, got {self.crop!r}")

    def to_dict(self) -> dict:
        """The fields, less ``crop`` when it is "fixed": entries prepared before the face crop
        existed keep their keys (and their meta.json), and "face" entries get keys of their own."""
        fields = asdict(self)
        if self.crop == "fixed":
            del fields["crop"]
        return fields


@dataclass(frozen=True)
class CroppedVideo:
    """A decoded clip's frames and how they were cropped: ``crop`` is the crop used ("fixed" or
    "face"; "fixed" where params.crop was "face" but no sampled frame showed a face), ``face`` the
    face found (None without one, or with params.crop "fixed", which searches for none)."""

    frames: np.ndarray  # uint8 (T, S, S, C)
    crop: str
    face: FaceBox | None


Span = tuple[float, float] | None  # (start, end) seconds within the file; None: all of it


def sample_frame_indices(num_source_frames: int, num_frames: int) -> np.ndarray:
    """Indices of ``num_frames`` frames spread uniformly over the clip: the centre of each of
    ``num_frames`` equal segments. A clip shorter than that gives all its frames."""
    if num_source_frames <= num_frames:
        return np.arange(num_source_frames)
    return ((np.arange(num_frames) + 0.5) * num_source_frames / num_frames).astype(np.int64)


def crop_box(height: int, width: int, params: PrepareParams) -> tuple[int, int, int]:
    """(top, left, side) of the square face crop, clamped to the frame."""
    side = min(round(height * params.crop_size_fraction), height, width)
    top = min(round(height * params.crop_top_fraction), height - side)
    left = (width - side) // 2
    return top, left, side


def crop_and_resize(
    frames: np.ndarray, params: PrepareParams, box: tuple[int, int, int] | None = None
) -> np.ndarray:
    """(T, H, W, C) uint8 -> (T, S, S, C) uint8 with S = params.image_size (antialiased), cropped
    at ``box`` (top, left, side; default ``crop_box``). A box leaving the frame (a face crop near
    its border) is padded with the frame's border pixels."""
    top, left, side = crop_box(frames.shape[1], frames.shape[2], params) if box is None else box
    crop = torch.from_numpy(np.ascontiguousarray(cut_square(frames, top, left, side)))
    crop = crop.permute(0, 3, 1, 2).float()
    size = (params.image_size, params.image_size)
    resized = F.interpolate(crop, size=size, mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def decode_video(path: str, params: PrepareParams) -> np.ndarray:
    """The clip's sampled, cropped and resized frames, uint8 (T, H, W, C)."""
    return decode_cropped_video(path, params).frames


def decode_cropped_video(path: str, params: PrepareParams, span: Span = None) -> CroppedVideo:
    """The clip's sampled, cropped and resized frames and the crop they got: ``num_frames``
    spread over the whole file, or over the frames that start within ``span``. With params.crop
    "face" the face is searched in the sampled frames themselves: one box for the clip."""
    import decord

    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        candidates = np.arange(len(reader))
        if span is not None and len(reader):
            starts = reader.get_frame_timestamp(candidates)[:, 0]
            candidates = candidates[(starts >= span[0]) & (starts < span[1])]
        indices = candidates[sample_frame_indices(len(candidates), params.num_frames)]
        if len(indices) == 0:
            raise DecodeError(
                NO_VIDEO, f"{path}: no video frames" + (f" in {span[0]:g}-{span[1]:g} s" if span else "")
            )
        frames = reader.get_batch(indices.tolist()).asnumpy()
    except DecodeError:
        raise
    except Exception as error:  # decord raises its own DECORDError and RuntimeErrors
        raise DecodeError(UNREADABLE, f"{path}: {first_line(error)}") from None
    face = find_face(frames) if params.crop == "face" else None
    box = None if face is None else face_crop_box(face)
    return CroppedVideo(crop_and_resize(frames, params, box), "fixed" if face is None else "face", face)


def decode_audio(path: str, params: PrepareParams, span: Span = None) -> np.ndarray:
    """The clip's audio (all of it, or ``span``), mono float32 (S,) at params.sample_rate
    (msa.audio_format). Audio shorter than MIN_AUDIO_SAMPLES (at SAMPLE_RATE) is TOO_SHORT."""
    try:
        decoded = read_audio(path, span)
    except MediaError as error:
        reason = NO_AUDIO if str(error).endswith(NO_AUDIO) else UNREADABLE
        raise DecodeError(reason, str(error)) from None
    samples = decoded.samples
    minimum = MIN_AUDIO_SAMPLES * decoded.rate / SAMPLE_RATE
    if samples.shape[1] < minimum:
        seconds = samples.shape[1] / decoded.rate
        raise DecodeError(
            TOO_SHORT,
            f"{path}: {seconds * 1000:.0f} ms of audio, under {minimum / decoded.rate * 1000:.0f} ms",
        )
    try:
        return to_model_audio(samples, decoded.rate, decoded.layout, params.sample_rate)
    except (ValueError, RuntimeError) as error:  # a channel layout libswresample cannot mix down
        raise DecodeError(UNREADABLE, f"{path}: {first_line(error)}") from None


def decode_clip(path: str, params: PrepareParams) -> tuple[np.ndarray, np.ndarray]:
    """(video uint8 (T, H, W, C), audio float32 (S,)) of one audio-video file."""
    return decode_video(path, params), decode_audio(path, params)

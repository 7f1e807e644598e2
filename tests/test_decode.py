import numpy as np
import pytest
from conftest import REAL_CLIPS
from media import frame_value, write_clip

from msa.data.decode import (
    DecodeError,
    PrepareParams,
    crop_and_resize,
    crop_box,
    decode_audio,
    decode_clip,
    sample_frame_indices,
)


def test_frame_indices_are_segment_centres():
    assert sample_frame_indices(99, 16).tolist() == [
        3,
        9,
        15,
        21,
        27,
        34,
        40,
        46,
        52,
        58,
        64,
        71,
        77,
        83,
        89,
        95,
    ]
    assert sample_frame_indices(8, 4).tolist() == [1, 3, 5, 7]
    assert sample_frame_indices(5, 16).tolist() == [0, 1, 2, 3, 4], "a short clip gives all its frames"


def test_crop_box_real_geometry():
    # 1280x720: a 562 px square, 22 px from the top, centred horizontally.
    assert crop_box(720, 1280, PrepareParams()) == (22, 359, 562)
    assert crop_box(100, 60, PrepareParams(crop_size_fraction=1.0)) == (3, 0, 60), (
        "clamped to a portrait frame"
    )


def test_crop_and_resize_keeps_only_the_crop():
    params = PrepareParams(image_size=16, crop_size_fraction=0.5, crop_top_fraction=0.25)
    frames = np.zeros((2, 80, 160, 3), dtype=np.uint8)
    top, left, side = crop_box(80, 160, params)
    assert (top, left, side) == (20, 60, 40)
    frames[:, top : top + side, left : left + side] = 200
    frames[1, top : top + side // 2, left : left + side] = 100  # upper half of the crop in frame 1
    out = crop_and_resize(frames, params)
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.uint8
    assert (out[0] == 200).all(), "nothing from outside the crop leaks in"
    assert (out[1, :7] == 100).all() and (out[1, 9:] == 200).all(), "orientation preserved"


def test_decode_lossless_clip(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", num_frames=24, width=64, height=48)
    params = PrepareParams(num_frames=6, image_size=32)
    video, audio = decode_clip(str(path), params)
    assert video.shape == (6, 32, 32, 3) and video.dtype == np.uint8
    expected = [frame_value(i) for i in sample_frame_indices(24, 6)]
    assert np.abs(video.reshape(6, -1).mean(1) - expected).max() < 2.5, "the right frames, in order"
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = 24 * 1001 / 30000
    assert abs(len(audio) - seconds * 16_000) < 700, (
        "16 kHz over the clip (AAC adds under one frame of priming)"
    )
    assert 0.15 < np.abs(audio).max() < 0.5


def test_unreadable_and_no_audio(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\0" * 1000)
    with pytest.raises(DecodeError) as error:
        decode_clip(str(corrupt), PrepareParams())
    assert error.value.reason == "unreadable"
    silent = write_clip(tmp_path / "silent.mp4", audio_seconds=0)
    with pytest.raises(DecodeError) as error:
        decode_audio(str(silent), PrepareParams())
    assert error.value.reason == "no audio track"


@pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason="../shared/ravdess-real is not present")
@pytest.mark.parametrize(
    "clip, audio_samples", [("01-01-01-01-01-01-01.mp4", 52907), ("01-01-01-01-01-01-09.mp4", 52565)]
)
def test_decode_real_clips(clip, audio_samples):
    video, audio = decode_clip(str(REAL_CLIPS / clip), PrepareParams())
    assert video.shape == (16, 112, 112, 3)
    assert len(audio) == audio_samples
    # The face fills the crop: its centre is skin/dark, its top corners white background.
    centre = video[:, 40:72, 40:72].astype(float).mean()
    corners = np.concatenate([video[:, :8, :8], video[:, :8, -8:]]).astype(float).mean()
    assert corners > 200 and centre < 190

"""The face crop (msa.data.faces, PrepareParams.crop "face"): found wherever the face is, one box
per window, calibrated to the fixed crop on the real RAVDESS clips."""

import dataclasses
import hashlib
import json

import cv2
import numpy as np
import pytest
from conftest import REAL_CLIPS
from media import ravdess_name, write_clip, write_off_centre_clip

from msa.data import faces
from msa.data.datasets.ravdess import ClipName
from msa.data.decode import (
    PrepareParams,
    crop_and_resize,
    crop_box,
    decode_clip,
    decode_cropped_video,
    sample_frame_indices,
)
from msa.data.prepare import CACHE_FORMAT_VERSION, entry_key, prepare
from msa.data.sources import Source
from msa.prepare import main as prepare_main

CLIPS = ("01-01-01-01-01-01-01.mp4", "01-01-01-01-01-01-09.mp4")
needs_real_clips = pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason="../shared/ravdess-real is not present")


def crop_offsets(box: tuple[int, int, int], reference: tuple[int, int, int]) -> float:
    """The largest distance between an edge of ``box`` and the same edge of ``reference`` (both
    (top, left, side)), as a fraction of the reference's side."""
    (top, left, side), (ref_top, ref_left, ref_side) = box, reference
    bottom, right = top + side - ref_top - ref_side, left + side - ref_left - ref_side
    return max(abs(top - ref_top), abs(left - ref_left), abs(bottom), abs(right)) / ref_side


def read_frames(path, count: int) -> np.ndarray:
    """``count`` frames sampled as decoding samples them, RGB uint8 (T, H, W, 3)."""
    import decord

    reader = decord.VideoReader(str(path), num_threads=1)
    return reader.get_batch(sample_frame_indices(len(reader), count).tolist()).asnumpy()


@pytest.fixture(scope="module")
def real_frames() -> dict[str, np.ndarray]:
    if not REAL_CLIPS.is_dir():
        pytest.skip("../shared/ravdess-real is not present")
    return {clip: read_frames(REAL_CLIPS / clip, 16) for clip in CLIPS}


def on_canvas(frames: np.ndarray, scale: float, left: int, top: int, background: int) -> np.ndarray:
    """The frames scaled by ``scale`` and pasted with their top-left corner at (left, top) on a
    1920x1080 canvas of grey level ``background``: a recording not framed like RAVDESS."""
    canvas = np.full((len(frames), 1080, 1920, 3), background, dtype=np.uint8)
    for out, frame in zip(canvas, frames):
        small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return canvas


@needs_real_clips
@pytest.mark.parametrize("clip", CLIPS)
def test_face_crop_matches_the_fixed_crop_on_ravdess(real_frames, clip):
    face = faces.find_face(real_frames[clip])
    assert face is not None and face.found_in == face.frames == 16
    box = faces.face_crop_box(face)
    fixed = crop_box(720, 1280, PrepareParams())
    # The calibration (faces.py) puts every edge within 5.2 % of the side; the two actors' faces
    # differ in size by 10 %, so a crop that follows the face cannot match one fixed box closer.
    assert crop_offsets(box, fixed) < 0.065, (box, fixed)
    assert abs(box[0] + box[2] - fixed[0] - fixed[2]) < 0.02 * fixed[2], "the chin at the fixed crop's bottom"


@needs_real_clips
@pytest.mark.parametrize(
    "scale, left, top, background",
    [(1.0, 0, 0, 128), (0.75, 900, 500, 255), (0.5, 1200, 60, 128), (0.4, 100, 640, 200)],
    ids=["corner", "bottom-right", "small-top-right", "smaller-bottom-left"],
)
def test_face_found_off_centre_in_every_window(real_frames, scale, left, top, background):
    for clip, frames in real_frames.items():
        for window in np.split(frames, 2):  # two windows of 8 frames, as prediction would cut them
            original = faces.find_face(window)
            canvas = on_canvas(window, scale, left, top, background)
            face = faces.find_face(canvas)
            assert face is not None and face.found_in == len(window), (clip, face)
            # The original frame's face, mapped onto the canvas, lies inside the crop...
            top_, left_, side = faces.face_crop_box(face)
            mapped = [original.left * scale + left, original.top * scale + top]
            mapped += [mapped[0] + original.width * scale, mapped[1] + original.height * scale]
            assert left_ <= mapped[0] and top_ <= mapped[1], (clip, face, mapped)
            assert mapped[2] <= left_ + side and mapped[3] <= top_ + side, (clip, face, mapped)
            # ...which is where and how large the calibrated crop of that face is, at any scale.
            expected = faces.face_crop_box(
                faces.FaceBox(*mapped[:2], original.width * scale, original.height * scale, 8, 8)
            )
            assert crop_offsets((top_, left_, side), expected) < 0.06, (clip, expected)
            assert abs(side - faces.CROP_SIDE_PER_FACE_WIDTH * original.width * scale) < 0.06 * side
            # A crop leaving the canvas (the corner case) is padded with the canvas's border.
            video = crop_and_resize(canvas, PrepareParams(image_size=32), (top_, left_, side))
            assert video.shape == (8, 32, 32, 3)


def test_no_face_gives_none():
    assert faces.find_face(np.full((4, 720, 1280, 3), 255, dtype=np.uint8)) is None
    assert faces.find_face(np.full((2, 480, 640, 3), 90, dtype=np.uint8)) is None
    assert faces.find_face(np.zeros((0, 480, 640, 3), dtype=np.uint8)) is None


def test_cut_square_pads_with_the_border_pixels():
    frames = np.zeros((1, 4, 6, 3), dtype=np.uint8)
    frames[0, 0, :] = 7  # the top row
    frames[0, :, -1] = 9  # the right column
    crop = faces.cut_square(frames, -2, 3, 5)
    assert crop.shape == (1, 5, 5, 3)
    assert (crop[0, :3, :2] == 7).all(), "above the frame: its top row repeated"
    assert (crop[0, :, 2:] == 9).all(), "right of the frame: its right column repeated"
    assert (crop[0, 3:, :2] == 0).all()
    assert faces.cut_square(frames, 1, 1, 2).shape == (1, 2, 2, 3)
    with pytest.raises(ValueError):
        faces.cut_square(frames, 4, 0, 2)


def test_crop_is_part_of_the_cache_key_and_fixed_keys_are_unchanged():
    source = Source("/data/Actor_01/01-01-01-01-01-01-01.mp4", 1000, 123)
    # A default (fixed-crop) entry's key hashes its parameters without ``crop``, as before the
    # face crop existed (the key changed with cache format 2, where the audio decoding did).
    fields = dataclasses.asdict(PrepareParams())
    del fields["crop"]
    payload = json.dumps([CACHE_FORMAT_VERSION, source.identity(), fields], sort_keys=True)
    record = ClipName.parse(source.filename).record()
    assert entry_key(source, PrepareParams(), record) == hashlib.sha256(payload.encode()).hexdigest()[:32]
    assert entry_key(source, PrepareParams(), record) == "4b3768cb349a21c6a2d4b0659cda6c8d"
    assert "crop" not in PrepareParams().to_dict()
    face = PrepareParams(crop="face")
    assert face.to_dict()["crop"] == "face"
    assert entry_key(source, face, record) != entry_key(source, PrepareParams(), record)
    with pytest.raises(ValueError):
        PrepareParams(crop="centre")


@needs_real_clips
def test_decode_with_the_face_crop(real_frames, tmp_path):
    path = REAL_CLIPS / CLIPS[1]
    fixed, _ = decode_clip(str(path), PrepareParams())
    on_ravdess = decode_cropped_video(str(path), PrepareParams(crop="face"))
    assert on_ravdess.crop == "face" and on_ravdess.face is not None
    assert on_ravdess.frames.shape == fixed.shape == (16, 112, 112, 3)
    # Mean absolute difference in grey levels: the crops differ by up to 5 % (6 px of 112), which
    # moves the hair's edges against the white background; a crop of the wrong place is ~90 off.
    difference = np.abs(on_ravdess.frames.astype(float) - fixed).mean()
    assert difference < 30, "on RAVDESS the face crop sees what the fixed crop sees"

    # The same actor small and off-centre: the fixed crop misses the face, the face crop finds it.
    moved = tmp_path / "moved.mp4"
    write_off_centre_clip(moved, real_frames[CLIPS[1]])
    face = decode_cropped_video(str(moved), PrepareParams(num_frames=16, crop="face"))
    still_fixed = decode_cropped_video(str(moved), PrepareParams(num_frames=16))
    assert face.crop == "face" and still_fixed.crop == "fixed" and still_fixed.face is None
    to_face = np.abs(face.frames.astype(float) - fixed).mean()
    to_fixed = np.abs(still_fixed.frames.astype(float) - fixed).mean()
    assert to_face < 30 and to_fixed > 3 * to_face, (to_face, to_fixed)


def test_prepare_falls_back_to_the_fixed_crop_without_a_face(tmp_path, capsys):
    root = tmp_path / "data"
    for emotion in (1, 3):
        write_clip(root / "Actor_01" / ravdess_name(emotion, 1), num_frames=8, width=128, height=96)
    params = PrepareParams(num_frames=4, image_size=16, crop="face")
    report = prepare(root, tmp_path / "cache", params, workers=1, progress=False)
    assert report.decoded == 2 and sorted(report.without_face()) == sorted(c.display for c in report.clips)
    meta = json.loads((report.clips[0].entry / "meta.json").read_text())
    assert meta["params"]["crop"] == "face" and meta["crop_used"] == "fixed" and meta["face_box"] is None
    video, _ = report.clips[0].load()
    assert video.shape == (4, 16, 16, 3)
    fixed = prepare(
        root, tmp_path / "cache", PrepareParams(num_frames=4, image_size=16), workers=1, progress=False
    )
    assert fixed.decoded == 2 and fixed.without_face() == [], (
        "another entry; the fixed crop looks for no face"
    )

    assert (
        prepare_main(
            [
                "--data",
                str(root),
                "--cache",
                str(tmp_path / "cache"),
                "--crop",
                "face",
                "--workers",
                "1",
                "--frames",
                "4",
                "--image-size",
                "16",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "0 decoded, 2 already prepared" in out
    assert "face crop: no face found in 2 of 2 clips (fixed crop there)" in out

"""Finding the face in a clip's frames, for recordings not framed like RAVDESS.

RAVDESS frames show one actor's head centred on a white background, so training crops a fixed
square of every frame (``msa.data.decode.crop_box``). Other recordings put the face anywhere,
at any size: :func:`find_face` finds it in a clip's (or a window's) sampled frames with
OpenCV's Haar cascade (the cascade file ships inside the opencv-python-headless wheel: nothing
is downloaded), and :func:`face_crop_box` turns it into the square crop training would have
taken, hair to chin. One box per clip or window, so the crop does not jitter from frame to frame.

Detection runs in two passes: on a greyscale copy whose longer side is ``DETECT_SIZE`` px, for
faces at least ``MIN_FACE_FRACTION`` of its shorter side; then around the face found, scaled so
the face is ``REFINE_FACE_WIDTH`` px wide, for a box whose size does not depend on the face's
size in the frame. About 12 ms per 720p frame on one core, half each (docs/reference/datasets.md).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

# Calibration: the face crop of the real RAVDESS clips matches their fixed crop. On the two real
# clips (1280x720, actors 01 and 09; their 16 sampled frames, find_face as below) the face boxes
# are 396 x 396 px at (426, 140) and 435 x 435 px at (429, 97) (left, top), and the fixed crop
# is the 562 px square at (359, 22). Least squares over both clips of the crop's side
# (side = k x face width: k = 1.3499) and of its top edge (top = face top - t x face height:
# t = 0.2298), rounded; the crop is centred horizontally on the face. Actor 09 sits nearer the
# camera (a 10 % wider face), so no face-relative crop matches one fixed crop on both: the face
# crops are 535 px at (49, 357) and 587 px at (-3, 353) (top, left), their bottom edges (the
# chin) on the fixed crop's and every edge within 5.2 % of its side of the fixed crop's edge.
CROP_SIDE_PER_FACE_WIDTH = 1.35  # crop side / Haar face box width (dimensionless)
CROP_TOP_PER_FACE_HEIGHT = 0.23  # (face box top - crop top) / face box height (dimensionless)

CASCADE = "haarcascade_frontalface_default.xml"  # steadier boxes than alt2 on the real clips
DETECT_SIZE = 320  # px: the longer side of the greyscale copy detection runs on (never upscaled)
MIN_FACE_FRACTION = 0.15  # smallest face looked for, as a fraction of the frame's shorter side
SCALE_FACTOR = 1.3  # step between the cascade's scales (first pass: where the face is, roughly)
MIN_NEIGHBOURS = 4  # overlapping raw detections a face needs (OpenCV's default is 3)
# The second pass looks again around the first pass's box with the face scaled to this width, so
# that boxes (and so the calibration) do not depend on how large the face is in the frame: the
# cascade's boxes of faces near its smallest window run up to 20 % larger.
REFINE_FACE_WIDTH = 96  # px (the real clips' faces are about this wide at DETECT_SIZE)
REFINE_MARGIN = 0.3  # of the first box's width, added on each side of it: the region searched
REFINE_SIZES = (0.7, 1.45)  # smallest and largest face looked for, relative to the first box
REFINE_SCALE_FACTOR = 1.1  # finer steps than the first pass: the box's size sets the crop's
# Per-frame boxes further than this from the clip's median (centre distance plus |log size
# ratio|, in units of the median face width) are outliers: another face, or a false detection.
OUTLIER_DISTANCE = 0.5


@dataclass(frozen=True)
class FaceBox:
    """The face of a clip or window: a box in the source frame's pixels (it may be fractional),
    and in how many of the ``frames`` frames searched a face was found."""

    left: float
    top: float
    width: float
    height: float
    found_in: int
    frames: int

    @property
    def centre(self) -> tuple[float, float]:
        return self.left + self.width / 2, self.top + self.height / 2


@functools.cache
def _cascade():
    import cv2  # here, not at import: 0.3 s that a fixed crop never needs

    # One thread: the cascade runs per frame inside callers that are parallel already (prepare's
    # workers, trials); OpenCV's pool would only oversubscribe the cores.
    cv2.setNumThreads(1)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load its bundled {CASCADE} from {cv2.data.haarcascades}")
    return cascade


def detect_faces(frame: np.ndarray) -> np.ndarray:
    """Every face the cascade finds in one RGB uint8 (H, W, 3) frame, as float (n, 4) rows of
    (left, top, width, height) in the frame's pixels, largest first."""
    height, width = frame.shape[:2]
    scale = min(1.0, DETECT_SIZE / max(height, width))
    shorter = min(height, width) if scale == 1 else max(1, round(min(height, width) * scale))
    smallest = max(1, round(MIN_FACE_FRACTION * shorter))  # of the grey copy detection runs on
    return _cascade_boxes(frame, (0, 0, width, height), scale, SCALE_FACTOR, (smallest, smallest), None)


def detect_faces_near(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The second pass: faces in the region around ``reference`` (left, top, width, height) of
    one RGB frame, searched with that face scaled to REFINE_FACE_WIDTH px; same format as
    ``detect_faces``."""
    height, width = frame.shape[:2]
    left, top, box_width, box_height = reference
    region = (
        max(0, math.floor(left - REFINE_MARGIN * box_width)),
        max(0, math.floor(top - REFINE_MARGIN * box_height)),
        min(width, math.ceil(left + (1 + REFINE_MARGIN) * box_width)),
        min(height, math.ceil(top + (1 + REFINE_MARGIN) * box_height)),
    )
    smallest, largest = ((round(REFINE_FACE_WIDTH * f),) * 2 for f in REFINE_SIZES)
    scale = REFINE_FACE_WIDTH / box_width
    return _cascade_boxes(frame, region, scale, REFINE_SCALE_FACTOR, smallest, largest)


def _cascade_boxes(
    frame: np.ndarray,
    region: tuple[int, int, int, int],
    scale: float,
    scale_factor: float,
    smallest: tuple[int, int],
    largest: tuple[int, int] | None,
) -> np.ndarray:
    """The cascade's faces in ``region`` (x0, y0, x1, y1) of an RGB frame, searched on a grey copy
    resized by ``scale``, with face sizes from ``smallest`` to ``largest`` (in the resized copy's
    pixels) -> (n, 4) boxes in the frame's pixels, largest first."""
    import cv2

    x0, y0, x1, y1 = region
    grey = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    if scale != 1:
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    sizes = {"minSize": smallest} | ({"maxSize": largest} if largest else {})
    boxes = _cascade().detectMultiScale(grey, scaleFactor=scale_factor, minNeighbors=MIN_NEIGHBOURS, **sizes)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / scale + [x0, y0, 0, 0]
    return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")]


def _distance(boxes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """How far each (left, top, width, height) row is from ``reference``, in units of its width:
    centre distance plus |log size ratio|."""
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    centre = reference[:2] + reference[2:] / 2
    offset = np.hypot(*(centres - centre).T) / reference[2]
    return offset + np.abs(np.log(boxes[:, 2] / reference[2]))


def find_face(frames: np.ndarray, first_pass: list[np.ndarray] | None = None) -> FaceBox | None:
    """The face in RGB uint8 frames (T, H, W, 3) of one clip or window, or None when no frame
    shows one.

    Each frame's largest detection gives a first median box; the second pass looks again around
    it in every frame (``detect_faces_near``), each frame contributes its detection nearest to
    the first box unless it is an outlier, and the face is the median of those (per coordinate):
    one box for all the frames, robust to a missed or a wrong frame. ``first_pass``: each
    frame's ``detect_faces`` already computed (overlapping windows share frames; the second pass
    depends on the window's first box, so it runs per window).
    """
    detections = first_pass if first_pass is not None else [detect_faces(frame) for frame in frames]
    largest = np.array([boxes[0] for boxes in detections if len(boxes)])
    if len(largest) == 0:
        return None
    reference = np.median(largest, axis=0)
    refined = [detect_faces_near(frame, reference) for frame in frames]
    if any(len(boxes) for boxes in refined):
        detections = refined
    chosen = []
    for boxes in detections:
        if len(boxes):
            distance = _distance(boxes, reference)
            if distance.min() <= OUTLIER_DISTANCE:
                chosen.append(boxes[np.argmin(distance)])
    left, top, width, height = np.median(chosen, axis=0) if chosen else reference
    return FaceBox(float(left), float(top), float(width), float(height), len(chosen), len(frames))


def face_crop_box(face: FaceBox) -> tuple[int, int, int]:
    """(top, left, side) of the square crop training would take around ``face``: hair to chin,
    centred on the face horizontally. It may leave the frame; ``msa.data.decode.crop_and_resize``
    pads it with the frame's border pixels."""
    side = max(1, round(CROP_SIDE_PER_FACE_WIDTH * face.width))
    top = round(face.top - CROP_TOP_PER_FACE_HEIGHT * face.height)
    left = round(face.centre[0] - side / 2)
    return top, left, side


def cut_square(frames: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """frames (T, H, W, C)[:, top : top + side, left : left + side], where the parts of the square
    outside the frame repeat the frame's nearest border pixel (on RAVDESS-like footage, the
    background; never a black bar the model did not see in training)."""
    height, width = frames.shape[1:3]
    if not (top < height and left < width and top + side > 0 and left + side > 0):
        raise ValueError(f"crop ({top}, {left}, {side}) lies outside the {width}x{height} frame")
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + side, height), min(left + side, width)
    crop = frames[:, t0:t1, l0:l1]
    pad = ((0, 0), (t0 - top, top + side - t1), (l0 - left, left + side - l1), (0, 0))
    if any(before or after for before, after in pad):
        crop = np.pad(crop, pad, mode="edge")
    return crop

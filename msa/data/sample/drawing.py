"""Drawing: the bust (hair, ears, face, eyes, brows, nose, neck, shirt) and the mouth, as
antialiased shapes in float RGB on a canvas that covers only a patch of the frame.

The head is drawn in model coordinates (frame pixels of an upright, unshifted head) through a
:class:`Pose` that lowers, turns and scales it; the shirt and collar stay put. The mouth is
drawn separately, once per frame, since it opens and closes with the syllables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msa.data.sample.actors import Actor
from msa.data.sample.emotions import Face

# Pixels (or degrees, or scale) per unit of the matching :class:`.emotions.Face` field.
BROW_PX = 28.0  # px of brow raise
TILT_PX = 15.0  # px of brow tilt (inner end)
EYE_PX = 14.0  # px of eye half-height at openness 1
CURVE_PX = 22.0  # px of mouth-corner rise
JAW_PX = 26.0  # px of resting jaw opening
HEAD_PX = 24.0  # px of head lowering
ROLL_DEG = 4.0  # degrees of head roll (clockwise on screen > 0)
LEAN_STEP = 1.06  # head scale factor per unit of lean towards the camera


class Pose:
    """Head pose: scale by ``scale`` and turn by ``roll`` degrees (clockwise on screen) about
    ``pivot`` (the base of the neck), then shift by ``shift``; maps model to frame coordinates."""

    def __init__(self, pivot, scale: float, roll: float, shift):
        self.px, self.py = pivot
        self.s = scale
        self.c, self.n = np.cos(np.radians(roll)), np.sin(np.radians(roll))
        self.dx, self.dy = shift

    def forward(self, x, y):
        """Model to frame coordinates (arrays of any one shape)."""
        x, y = x - self.px, y - self.py
        return (
            self.px + self.dx + self.s * (self.c * x - self.n * y),
            self.py + self.dy + self.s * (self.n * x + self.c * y),
        )

    def inverse(self, x, y):
        """Frame to model coordinates (arrays of any one shape)."""
        x, y = (x - self.px - self.dx) / self.s, (y - self.py - self.dy) / self.s
        return self.px + self.c * x + self.n * y, self.py - self.n * x + self.c * y

    def box(self, left, top, right, bottom):
        """The frame-coordinate bounding box (left, top, right, bottom) of a model box."""
        xs, ys = self.forward(np.array([left, right, left, right]), np.array([top, top, bottom, bottom]))
        return xs.min(), ys.min(), xs.max(), ys.max()


class Canvas:
    """A (h, w, 3) float32 RGB image (``img``) of the frame region with top-left (x0, y0)."""

    def __init__(self, x0: int, y0: int, w: int, h: int, background=(255.0, 255.0, 255.0)):
        self.x0, self.y0 = x0, y0
        self.img = np.empty((h, w, 3), np.float32)
        self.img[:] = background
        self.pose: Pose | None = None  # when set, shapes are given in the head's model coordinates

    def window(self, left, top, right, bottom) -> tuple[slice, slice] | None:
        """The slices into ``img`` of a box clipped to the canvas, or None when the box misses
        it; the box is in model coordinates when a pose is set, frame coordinates otherwise."""
        if self.pose is not None:
            left, top, right, bottom = self.pose.box(left, top, right, bottom)
        h, w = self.img.shape[:2]
        c0 = max(0, int(np.floor(left)) - self.x0)
        c1 = min(w, int(np.ceil(right)) + 1 - self.x0)
        r0 = max(0, int(np.floor(top)) - self.y0)
        r1 = min(h, int(np.ceil(bottom)) + 1 - self.y0)
        if c1 <= c0 or r1 <= r0:
            return None
        return slice(r0, r1), slice(c0, c1)

    def centres(self, rows: slice, cols: slice):
        """Pixel centres of ``img[rows, cols]``: X (1, w') and Y (h', 1), or both (h', w') in
        model coordinates under a pose."""
        xs = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :] + self.x0
        ys = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] + self.y0
        return self.pose.inverse(xs, ys) if self.pose is not None else (xs, ys)

    def grid(self, left, top, right, bottom):
        """Pixel centres (:meth:`centres`) of a box clipped to the canvas (:meth:`window`) and
        its slices into ``img``; None when the box misses the canvas."""
        sl = self.window(left, top, right, bottom)
        return None if sl is None else (*self.centres(*sl), sl)

    def blend(self, sl, alpha, color):
        """Blend ``color`` (RGB) into ``img[sl]`` with coverage ``alpha`` (broadcast to its (h', w'))."""
        region = self.img[sl]
        change = np.asarray(color, np.float32) - region
        change *= alpha.astype(np.float32, copy=False)[..., None]
        region += change

    def ellipse_alpha(self, cx, cy, a, b, box=None):
        """(coverage of the ellipse, slices) over ``box`` (default: the ellipse's own), or (None, None)."""
        g = self.grid(*(box or (cx - a - 2, cy - b - 2, cx + a + 2, cy + b + 2)))
        if g is None:
            return None, None
        X, Y, sl = g
        r = np.sqrt(((X - cx) / a) ** 2 + ((Y - cy) / b) ** 2)
        return np.clip(0.5 - (r - 1) * min(a, b), 0, 1), sl

    def ellipse(self, cx, cy, a, b, color, opacity=1.0):
        alpha, sl = self.ellipse_alpha(cx, cy, a, b)
        if alpha is not None:
            self.blend(sl, alpha * opacity, color)

    def capsule(self, x0, y0, x1, y1, radius, color, opacity=1.0):
        """A segment from (x0, y0) to (x1, y1) with round ends, ``radius`` px thick each side."""
        g = self.grid(
            min(x0, x1) - radius - 2,
            min(y0, y1) - radius - 2,
            max(x0, x1) + radius + 2,
            max(y0, y1) + radius + 2,
        )
        if g is None:
            return
        X, Y, sl = g
        dx, dy = x1 - x0, y1 - y0
        u = np.clip(((X - x0) * dx + (Y - y0) * dy) / max(1e-6, dx * dx + dy * dy), 0, 1)
        d = np.sqrt((X - x0 - u * dx) ** 2 + (Y - y0 - u * dy) ** 2)
        self.blend(sl, np.clip(radius + 0.5 - d, 0, 1) * opacity, color)


@dataclass(frozen=True, eq=False)
class Mouth:
    """The mouth's geometry for a clip, in the head's model coordinates (px); only its opening
    changes from frame to frame."""

    x: float  # centre
    y: float
    half_width: float
    curve: float  # rise of the corners relative to the centre (smile > 0, frown < 0)
    jaw: float  # resting opening
    teeth: float  # teeth shown, 0..1
    sneer: float  # upper-lip raise
    lip: float  # lip thickness
    color: np.ndarray  # lips, RGB (3,)


def head_pose(p: Actor, e: Face) -> Pose:
    """Lowered / raised, turned (roll) and leaning towards or away from the camera (scale)."""
    return Pose(
        pivot=(p.cx, p.cy + p.half_height),
        scale=LEAN_STEP ** float(np.clip(e.lean, -3, 3)),
        roll=ROLL_DEG * float(np.clip(e.roll, -3, 3)),
        shift=(0.0, HEAD_PX * e.head),
    )


def draw_bust(c: Canvas, p: Actor, e: Face, pose: Pose, rng: np.random.Generator) -> Mouth:
    """Everything but the mouth; returns the mouth's geometry (model coordinates)."""
    cx, cy, a, b = p.cx, p.cy, p.half_width, p.half_height
    skin, hair = p.skin, p.hair
    # Shirt and collar stay; the neck and everything above move with the head pose.
    c.pose = None
    c.ellipse(cx, 800, 1.95 * a + 30, 205, p.shirt)
    c.pose = pose
    c.ellipse(cx, cy + 0.95 * b, 0.48 * a, 0.55 * b, skin * 0.88)
    c.pose = None
    c.ellipse(cx, 612, 0.50 * a, 26, skin * 0.84)
    c.pose = pose
    if p.long_hair:
        c.ellipse(cx, cy + 0.25 * b, p.volume * a * 1.08, 1.05 * b, hair)
    c.ellipse(cx, cy - 0.14 * b, p.volume * a, 0.96 * b, hair)
    ear_y = cy + p.eye_y * b + 18
    for s in (-1, 1):
        c.ellipse(cx + s * 0.97 * a, ear_y, 17, 34, skin * 0.93)
    # Face.
    c.ellipse(cx, cy, a, b, skin)
    # Fringe: inside a slightly larger head ellipse and above a curved hairline.
    g = c.grid(cx - 1.1 * a, cy - 1.2 * b, cx + 1.1 * a, cy)
    if g is not None:
        X, Y, sl = g
        u = (X - cx) / a
        line = cy - p.hairline * b + 0.35 * b * u**2 + 0.06 * b * p.part * u
        r = np.sqrt((u / 1.03) ** 2 + ((Y - cy + 0.06 * b) / (0.98 * b)) ** 2)
        alpha = np.clip(0.5 - (r - 1) * a, 0, 1) * np.clip(line - Y + 0.5, 0, 1)
        c.blend(sl, alpha, hair)

    eye_y = cy + p.eye_y * b
    ew = p.eye_w * a
    eh = float(np.clip(EYE_PX * e.eye, 2.0, 26.0))
    brow_color = hair * 0.8 if hair.mean() < 160 else hair * 0.6
    nose_y = cy + 0.24 * b
    gaze = rng.uniform(-3, 3)
    for s in (-1, 1):
        ex = cx + s * p.eye_sep * a
        # Brow: inner end up with tilt, the whole brow up with raise; a slight arch.
        base = min(eye_y - 20 - eh * 0.6 - BROW_PX * e.brow, eye_y - eh - p.brow_r - 3)
        xin, xout = ex - s * 0.9 * ew, ex + s * 1.15 * ew
        yin = min(base - TILT_PX * e.tilt, eye_y - 0.5 * eh - p.brow_r - 1)
        yout = base + 0.35 * TILT_PX * e.tilt
        xm, ym = (xin + xout) / 2, (yin + yout) / 2 - 4
        c.capsule(xin, yin, xm, ym, p.brow_r, brow_color)
        c.capsule(xm, ym, xout, yout, p.brow_r * 0.85, brow_color)
        # Eye: sclera, iris and pupil inside it, upper lid line.
        alpha, sl = c.ellipse_alpha(
            ex, eye_y, ew, eh, box=(ex - ew - 4, eye_y - eh - 4, ex + ew + 4, eye_y + eh + 4)
        )
        if alpha is not None:
            c.blend(sl, alpha, (246, 246, 242))
            X, Y, _ = c.grid(ex - ew - 4, eye_y - eh - 4, ex + ew + 4, eye_y + eh + 4)
            d = np.sqrt((X - ex - gaze) ** 2 + (Y - eye_y) ** 2)
            c.blend(sl, alpha * np.clip(10.5 - d, 0, 1), p.iris)
            c.blend(sl, alpha * np.clip(4.8 - d, 0, 1), (15, 12, 12))
            r = np.sqrt(((X - ex) / ew) ** 2 + ((Y - eye_y) / eh) ** 2)
            ring = np.clip(1.6 - np.abs(r - 1) * min(ew, eh) * 1.2, 0, 1) * (Y < eye_y + 1)
            c.blend(sl, ring, skin * 0.35)
        # Smile lines.
        if e.smile > 0.15:
            c.capsule(
                cx + s * 0.22 * a,
                nose_y + 6,
                cx + s * 0.40 * a,
                cy + p.mouth_y * b,
                2.0,
                skin * 0.78,
                min(1.0, e.smile) * 0.8,
            )
    # Nose: bridge shadow, tip, nostrils, disgust wrinkles.
    c.capsule(cx + 4, eye_y + 14, cx + 9, nose_y - 12, 2.5, skin * 0.86, 0.7)
    c.ellipse(cx, nose_y - 4, 22, 13, skin * 0.94, 0.6)
    for s in (-1, 1):
        c.ellipse(cx + s * 12, nose_y + 2, 6.5, 3.8, skin * 0.5)
        if e.sneer > 0.2:
            op = min(1.0, e.sneer) * 0.8
            for k in range(2):
                yk = eye_y + 12 + 7 * k
                c.capsule(cx + s * 8, yk, cx + s * 20, yk + 5, 1.6, skin * 0.7, op)
    return Mouth(
        x=cx,
        y=cy + p.mouth_y * b,
        half_width=p.mouth_w * a * float(np.clip(e.width, 0.7, 1.5)),
        curve=CURVE_PX * float(np.clip(e.curve, -2.2, 2.2)),
        jaw=JAW_PX * max(0.0, e.jaw),
        teeth=float(np.clip(e.teeth, 0, 1)),
        sneer=6.0 * max(0.0, e.sneer),
        lip=5.5 if p.male else 7.0,
        color=p.lips,
    )


def mouth_box(m: Mouth, max_open: float, pose: Pose) -> tuple[int, int, int, int]:
    """An even-aligned frame box (left, top, right, bottom) holding the mouth at any opening."""
    left = m.x - m.half_width - 8
    right = m.x + m.half_width + 8
    top = m.y - max(m.curve, 0) - 0.35 * max_open - m.sneer - m.lip - 8
    bottom = m.y + max(-m.curve, 0) + 0.65 * max_open + 1.4 * m.lip + 8
    left, top, right, bottom = pose.box(left, top, right, bottom)
    return (int(left) // 2 * 2, int(top) // 2 * 2, (int(right) + 3) // 2 * 2, (int(bottom) + 3) // 2 * 2)


class MouthPainter:
    """Draws a clip's mouth on canvas ``c`` at any opening. What does not depend on the opening
    (the pixels' model coordinates, the lips' profile across the mouth) is computed once for the
    whole canvas; each frame slices the box it needs."""

    def __init__(self, c: Canvas, m: Mouth):
        self.c, self.m = c, m
        h, w = c.img.shape[:2]
        X, self.Y = np.broadcast_arrays(*c.centres(slice(0, h), slice(0, w)))
        u = np.clip((X - m.x) / m.half_width, -1.2, 1.2)
        self.inside = np.clip((1 - np.abs(u)) * m.half_width + 0.5, 0, 1)
        self.bulge = np.clip(1 - u**2, 0, 1)
        self.centre = m.y - m.curve * u**2
        self.upper_lip = m.lip * np.sqrt(self.bulge)
        self.lower_lip = 1.4 * m.lip * np.sqrt(self.bulge)

    def draw(self, opening: float):
        """Draw lips, the mouth's inside and teeth, the lips ``opening`` px apart at the centre."""
        m = self.m
        top = m.y - abs(m.curve) - 0.35 * opening - m.sneer - 2 * m.lip - 4
        bottom = m.y + abs(m.curve) + 0.65 * opening + 2 * m.lip + 4
        sl = self.c.window(m.x - m.half_width - 2, top, m.x + m.half_width + 2, bottom)
        if sl is None:
            return
        Y, inside, bulge, centre = self.Y[sl], self.inside[sl], self.bulge[sl], self.centre[sl]
        top = centre - (0.35 * opening + m.sneer) * bulge - 0.8
        bottom = centre + 0.65 * opening * bulge + 0.8
        upper = top - self.upper_lip[sl] - 0.5
        lower = bottom + self.lower_lip[sl] + 0.5

        def band(y0, y1):
            return np.clip(np.minimum(Y - y0, y1 - Y) + 0.5, 0, 1) * inside

        self.c.blend(sl, band(upper, top), m.color)
        self.c.blend(sl, band(bottom, lower), m.color * 1.05)
        self.c.blend(sl, band(top, bottom), (70, 22, 30))
        if m.teeth > 0.2:
            teeth_bottom = top + np.minimum(0.4 * (bottom - top), 9.0)
            self.c.blend(sl, band(top, teeth_bottom) * min(1.0, m.teeth), (240, 238, 228))

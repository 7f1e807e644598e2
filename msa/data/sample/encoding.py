"""Frames and files: colour conversion and frame assembly (Y'CbCr 4:2:0, BT.601 limited range,
as libx264 tags it), one clip's content (:func:`render_clip`) and its mp4 (:func:`write_clip`).

Only the bust's patch of the frame is drawn, once per clip, and the mouth's small box once per
frame; each frame pastes them, shifted by the head motion, onto a white background.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from msa.data.sample.actors import make_actor
from msa.data.sample.drawing import Canvas, MouthPainter, draw_bust, head_pose, mouth_box
from msa.data.sample.emotions import face_expression
from msa.data.sample.spec import AUDIO_RATE, FPS, HEIGHT, WIDTH, SampleSpec
from msa.data.sample.voice import synthesise_audio

AUDIO_BIT_RATE = 128_000  # bits per second
AAC_FRAME = 1024  # samples per AAC frame
WHITE_YUV = (235, 128, 128)  # Y'CbCr (BT.601, limited range) of white: the background
MARGIN = 16  # px of white around the bust's patch, wider than the head motion


def to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float RGB (h, w, 3) in 0..255, h and w even -> uint8 planes Y (h, w), U and V (h/2, w/2)."""
    r, g, b = rgb[..., 0] / 255, rgb[..., 1] / 255, rgb[..., 2] / 255
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    h, w = rgb.shape[:2]
    # The 2x2 block means, summed in the order numpy's mean(axis=(1, 3)) takes (bit for bit), but
    # without its slow strided reduction.
    q = rgb.reshape(h // 2, 2, w // 2, 2, 3)
    sub = ((q[:, 0, :, 0] + q[:, 0, :, 1]) + q[:, 1, :, 0] + q[:, 1, :, 1]) / 4 / 255
    r, g, b = sub[..., 0], sub[..., 1], sub[..., 2]
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return tuple(np.clip(np.rint(x), 0, 255).astype(np.uint8) for x in (y, u, v))


def yuv_planes(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y (HEIGHT, WIDTH), U and V (HEIGHT / 2, WIDTH / 2) planes of a yuv420p frame
    buffer (HEIGHT * 3 / 2, WIDTH)."""
    return (
        buf[:HEIGHT],
        buf[HEIGHT : HEIGHT * 5 // 4].reshape(HEIGHT // 2, WIDTH // 2),
        buf[HEIGHT * 5 // 4 :].reshape(HEIGHT // 2, WIDTH // 2),
    )


def paste(planes, patch, x: int, y: int):
    """Paste (Y, U, V) ``patch`` with its top-left at even (x, y), clipped to the frame."""
    for k, (dst, src) in enumerate(zip(planes, patch)):
        f = 1 if k == 0 else 2
        px, py = x // f, y // f
        h, w = src.shape
        r0, c0 = max(0, -py), max(0, -px)
        r1, c1 = min(h, dst.shape[0] - py), min(w, dst.shape[1] - px)
        if r1 > r0 and c1 > c0:
            dst[py + r0 : py + r1, px + c0 : px + c1] = src[r0:r1, c0:c1]


def fill(planes, x: int, y: int, w: int, h: int):
    """Paint the frame box at even (x, y), ``w`` x ``h`` px, white in the (Y, U, V) ``planes``."""
    for k, dst in enumerate(planes):
        f = 1 if k == 0 else 2
        dst[max(0, y // f) : max(0, (y + h) // f), max(0, x // f) : max(0, (x + w) // f)] = WHITE_YUV[k]


def render_clip(spec: SampleSpec, actor: int, emotion: int, intensity: int, statement: int, repetition: int):
    """The clip's content as (frames, audio): ``frames`` yields ``spec.num_frames`` yuv420p
    frames, each a (HEIGHT * 3 / 2, WIDTH) uint8 array (Y, then U, then V; the same buffer is
    reused, copy it to keep it); ``audio`` is float32 stereo (2, spec.num_samples) in [-1, 1]."""
    p = make_actor(spec.seed, actor)
    rng = np.random.default_rng([spec.seed, 2, actor, emotion, intensity, statement, repetition])
    audio, frame_env = synthesise_audio(p, emotion, intensity, statement, spec, rng)
    e = face_expression(emotion, intensity, p.expressive, rng)

    # The static bust on an even-aligned patch with a white margin wider than the head motion.
    a, b = p.half_width, p.half_height
    x0 = int(p.cx - 2.1 * a - 40) // 2 * 2
    x1 = (int(p.cx + 2.1 * a + 40) + 1) // 2 * 2
    pose = head_pose(p, e)
    head_top = pose.box(p.cx - 1.4 * a, p.cy - 1.3 * b, p.cx + 1.4 * a, p.cy)[1]
    y0 = max(0, int(head_top) // 2 * 2 - MARGIN)
    y1 = HEIGHT + 2 * MARGIN
    canvas = Canvas(x0, y0, x1 - x0, y1 - y0)
    mouth = draw_bust(canvas, p, e, pose, rng)
    patch = to_yuv420(canvas.img)

    openings = mouth.jaw + 22.0 * (0.6 + 0.4 * max(0.0, e.jaw + 0.5)) * frame_env  # px, (num_frames,)
    openings = np.maximum(openings, 0.0)
    mb = mouth_box(mouth, float(openings.max()), pose)
    mouth_base = canvas.img[mb[1] - y0 : mb[3] - y0, mb[0] - x0 : mb[2] - x0].copy()

    # Head motion: a slow sway plus a small nod with the syllables, in even pixels.
    n = spec.num_frames
    tt = np.arange(n) / float(FPS)
    sway = rng.uniform(3, 7) * np.sin(2 * np.pi * rng.uniform(0.25, 0.5) * tt + rng.uniform(0, 2 * np.pi))
    bob = (
        rng.uniform(1, 3) * np.sin(2 * np.pi * rng.uniform(0.3, 0.6) * tt + rng.uniform(0, 2 * np.pi))
        + 3 * frame_env
    )
    dxs = (np.rint(sway / 2) * 2).astype(int)
    dys = (np.rint(bob / 2) * 2).astype(int)

    def frames():
        buf = np.empty((HEIGHT * 3 // 2, WIDTH), np.uint8)
        planes = yuv_planes(buf)
        fill(planes, 0, 0, WIDTH, HEIGHT)
        mcanvas = Canvas(mb[0], mb[1], mb[2] - mb[0], mb[3] - mb[1])
        mcanvas.pose = pose
        painter = MouthPainter(mcanvas, mouth)
        mouths = {}  # opening (px) -> the mouth box in Y'CbCr: the silences repeat one opening
        prev = None
        for i in range(n):
            dx, dy = int(dxs[i]), int(dys[i])
            if (dx, dy) != prev:  # else the bust is in place, and the mouth box is pasted over
                if prev is not None:
                    fill(planes, x0 + prev[0], y0 + prev[1], x1 - x0, y1 - y0)
                paste(planes, patch, x0 + dx, y0 + dy)
            opening = float(openings[i])
            if opening not in mouths:
                mcanvas.img[:] = mouth_base
                painter.draw(opening)
                mouths[opening] = to_yuv420(mcanvas.img)
            paste(planes, mouths[opening], mb[0] + dx, mb[1] + dy)
            prev = (dx, dy)
            yield buf

    return frames(), audio


def write_clip(path: Path, spec: SampleSpec, clip: tuple[int, int, int, int, int]) -> None:
    """Render one clip and write it as an mp4 (H.264 + AAC) with PyAV, single-threaded."""
    frames, audio = render_clip(spec, *clip)
    n_audio = audio.shape[1]
    per_frame = n_audio / spec.num_frames
    with av.open(str(path), mode="w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        vs.codec_context.thread_count = 1
        vs.options = {"preset": spec.preset, "crf": str(spec.crf), "threads": "1"}
        aus = out.add_stream("aac", rate=AUDIO_RATE)
        aus.layout = "stereo"
        aus.bit_rate = AUDIO_BIT_RATE
        aus.codec_context.thread_count = 1
        sent = 0

        def push_audio(upto: int):
            nonlocal sent
            while sent + AAC_FRAME <= upto or (upto >= n_audio and sent < n_audio):
                chunk = np.ascontiguousarray(audio[:, sent : sent + AAC_FRAME])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate = AUDIO_RATE
                frame.pts = sent
                frame.time_base = Fraction(1, AUDIO_RATE)
                for packet in aus.encode(frame):
                    out.mux(packet)
                sent += chunk.shape[1]

        # One frame object, refilled each time: the encoder copies the picture when it is sent.
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        targets = [
            np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
            for plane in frame.planes
        ]
        for i, buf in enumerate(frames):
            for target, source in zip(targets, yuv_planes(buf)):
                target[:] = source
            frame.pts = i
            frame.time_base = 1 / FPS
            for packet in vs.encode(frame):
                out.mux(packet)
            push_audio(int((i + 1) * per_frame))
        push_audio(n_audio)
        for packet in vs.encode():
            out.mux(packet)
        for packet in aus.encode():
            out.mux(packet)

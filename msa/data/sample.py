"""The embedded sample dataset: a small synthetic RAVDESS look-alike generated on first use.

Why it exists: `tune_main.py` must run end to end on a fresh machine without the real
RAVDESS download, and tests need data whose labels are learnable. The sample is written in
the real format so that it goes through exactly the same discovery, decoding and preparation
code as the real files:

- ``ROOT/Actor_AA/01-01-EE-II-SS-RR-AA.mp4`` (audio-video, speech, emotion, intensity,
  statement, repetition, actor; odd actors are male, even actors female);
- 1280x720 H.264 (libx264, yuv420p) at 30000/1001 fps, AAC 48 kHz stereo audio, both streams
  of the same length, written with PyAV.

The default :class:`SampleSpec` is 8 actors (4 male, 4 female) x 8 emotions x 2 statements x
intensity 01 x repetition 01 = 128 clips of 2.5 s.

How emotion is carried
----------------------
Video: a drawn bust (hair, ears, face, neck, dark shirt) on a white background, framed like
the real clips (face and hair in the middle third, inside the decoder's face crop). The
expression follows the emotion through eyebrow height and tilt, eye openness, mouth curvature
(smile / frown), mouth width, resting jaw opening, teeth, an upper-lip raise with nose
wrinkles (disgust) and smile lines (happy). The mouth opens and closes with the syllables of
the soundtrack and the head sways slightly. Neutral/calm, fearful/surprised and angry/disgust
share most visual cues, and every clip gets random jitter, so video alone is not perfect.

Audio: a voiced, speech-like signal: a harmonic source at fundamental f0 shaped by moving
vowel formants, seven syllables whose durations and stresses differ between the two
statements, fricative noise bursts at consonant onsets, and short silences before and after.
The emotion sets the f0 level and range, the intonation contour (rising, falling, tremor),
the syllable rate, loudness, breathiness and spectral tilt. Happy/angry, calm/sad and
neutral/disgust sound alike, other pairs than those that look alike, so the two modalities
together are better than either alone.

Per actor: face shape and size, skin, hair and shirt colour, hair style, eye spacing, eye
and mouth position, expressiveness, and a voice (f0 by gender plus an offset, formant scale,
loudness and tempo), so that a model trained on some actors must generalise to new faces and
voices. Strong intensity (02) exaggerates the emotion's deviation from neutral.

Everything is a function of the spec and its seed: each clip draws from its own random
generator keyed by (seed, actor, emotion, intensity, statement, repetition), libx264 and the
AAC encoder run single-threaded, so the same spec gives byte-identical files whatever the
number of worker processes.

The module needs numpy and PyAV only (plus tqdm for the progress bar).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from msa.data import default_cache_dir
from msa.data.labels import EMOTIONS

FPS = Fraction(30000, 1001)  # frames per second (29.97, as RAVDESS)
AUDIO_RATE = 48_000  # Hz, as RAVDESS
AUDIO_CHANNELS = 2  # stereo, as RAVDESS
WIDTH, HEIGHT = 1280, 720  # pixels
AUDIO_BIT_RATE = 128_000  # bits per second
AAC_FRAME = 1024  # samples per AAC frame
GENERATOR_VERSION = 1  # bump whenever the generated content changes: it names the cache folder
MARKER = ".msa-sample.json"  # written last, inside the folder, before it is renamed into place

# Y'CbCr (BT.601, limited range) of white: the background.
_WHITE_YUV = (235, 128, 128)

# ---------------------------------------------------------------------------------------------
# Emotion prototypes. Video (pixels per unit in _*_PX below): brow raise (up > 0), brow tilt
# (inner end up > 0), eye openness (1 = neutral), mouth curve (corners up > 0), mouth width
# (factor), resting jaw opening, teeth shown (0..1), upper-lip raise and nose wrinkles (0..1),
# smile lines (0..1), head lowered (> 0), head roll, lean towards the camera (head larger > 0).
# Neutral/calm, fearful/surprised and angry/disgust are close on purpose.
_VIDEO_KEYS = ("brow", "tilt", "eye", "curve", "width", "jaw", "teeth", "sneer", "smile",
               "head", "roll", "lean")
_VIDEO_PROTO = {
    #             brow   tilt   eye   curve  width  jaw   teeth sneer smile head  roll  lean
    "neutral":   (0.00, 0.00, 1.00, 0.00, 1.00, 0.00, 0.0, 0.0, 0.0, 0.00, 0.0, 0.0),
    "calm":      (0.00, 0.10, 0.80, 0.30, 1.00, 0.00, 0.0, 0.0, 0.1, 0.25, 0.0, -0.2),
    "happy":     (0.15, 0.00, 0.75, 1.10, 1.25, 0.20, 1.0, 0.0, 1.0, -0.40, 1.0, 0.3),
    "sad":       (-0.15, 0.95, 0.75, -0.85, 0.92, 0.00, 0.0, 0.0, 0.0, 1.20, -0.6, -0.4),
    "angry":     (-0.80, -1.00, 0.85, -0.35, 1.02, 0.15, 0.8, 0.3, 0.0, 0.50, 0.0, 1.2),
    "fearful":   (0.85, 0.55, 1.40, -0.30, 1.15, 0.35, 0.3, 0.0, 0.0, -0.50, 0.0, -1.0),
    "disgust":   (-0.45, -0.55, 0.75, -0.60, 0.96, 0.05, 0.3, 1.0, 0.0, -0.30, -1.0, -0.6),
    "surprised": (1.00, 0.10, 1.45, 0.00, 0.88, 0.60, 0.2, 0.0, 0.0, -0.90, 0.2, -0.5),
}
_BROW_PX, _TILT_PX, _EYE_PX, _CURVE_PX, _JAW_PX, _HEAD_PX = 28.0, 15.0, 14.0, 22.0, 26.0, 24.0  # px per unit
_ROLL_DEG = 4.0  # degrees per unit of head roll (clockwise on screen > 0)
_LEAN_STEP = 1.06  # head scale factor per unit of lean towards the camera
# Per-clip jitter (standard deviation) of each video parameter, same units.
_VIDEO_JITTER = (0.22, 0.25, 0.12, 0.25, 0.06, 0.10, 0.25, 0.25, 0.25, 0.30, 0.35, 0.30)

# Audio: f0 offset (semitones from the actor's base), f0 range (semitones of accent), tempo
# factor (syllable rate), loudness (dB), breathiness (noise share), source spectral slope
# (amplitude ~ harmonic**-slope: higher = darker), tremor depth (semitones at 6 Hz), final
# contour (semitones of rise > 0 or fall < 0 over the last syllables).
# Happy/angry, calm/sad and neutral/disgust are close on purpose (other pairs than video).
_AUDIO_KEYS = ("f0", "range", "tempo", "loud", "breath", "slope", "tremor", "final")
_AUDIO_PROTO = {
    #             f0    range tempo  loud  breath slope tremor final
    "neutral":   (0.0, 2.0, 1.00, 0.0, 0.06, 1.15, 0.00, -1.0),
    "calm":      (-1.0, 1.4, 0.86, -4.0, 0.16, 1.35, 0.00, -1.5),
    "happy":     (3.0, 4.5, 1.10, 4.5, 0.06, 0.90, 0.00, 0.5),
    "sad":       (-1.5, 1.2, 0.82, -5.0, 0.18, 1.40, 0.10, -2.5),
    "angry":     (2.5, 3.5, 1.14, 6.0, 0.08, 0.75, 0.00, -1.0),
    "fearful":   (4.5, 2.5, 1.22, 1.0, 0.15, 1.00, 0.50, 0.5),
    "disgust":   (-0.5, 2.4, 0.90, -1.0, 0.09, 1.20, 0.00, -2.0),
    "surprised": (5.0, 5.0, 1.00, 3.0, 0.08, 0.95, 0.00, 4.0),
}
_AUDIO_JITTER = (1.0, 0.7, 0.07, 1.8, 0.035, 0.10, 0.08, 1.0)

# The two statements: syllables as (relative duration, stress 0..1, F1 Hz, F2 Hz, onset
# consonant: 0 none, 1 plosive burst, 2 fricative hiss). "Kids are talking by the door" and
# "Dogs are sitting by the door": same length, different rhythm, vowels and consonants.
_STATEMENTS = {
    1: ((0.95, 1.0, 400, 2000, 1), (0.55, 0.2, 650, 1100, 0), (1.10, 0.9, 620, 900, 1),
        (0.70, 0.3, 420, 1900, 0), (0.80, 0.5, 720, 1350, 1), (0.45, 0.1, 520, 1500, 2),
        (1.40, 0.8, 480, 800, 1)),
    2: ((1.05, 1.0, 600, 950, 1), (0.55, 0.2, 650, 1100, 0), (0.90, 0.8, 420, 2000, 2),
        (0.75, 0.4, 430, 1850, 1), (0.80, 0.5, 720, 1350, 1), (0.45, 0.1, 520, 1500, 2),
        (1.40, 0.9, 480, 800, 1)),
}
_SYLLABLE_SECONDS = 0.20  # one unit of relative syllable duration at tempo 1

_SKINS = ((241, 200, 170), (228, 176, 142), (205, 145, 108), (168, 114, 80), (125, 85, 60),
          (236, 192, 160), (248, 214, 190), (190, 130, 95))
_HAIRS = ((28, 24, 24), (62, 40, 28), (105, 70, 42), (196, 160, 98), (135, 62, 36),
          (150, 148, 145), (45, 32, 26))
_IRISES = ((85, 55, 35), (60, 100, 150), (70, 110, 75), (40, 30, 25))
_SHIRTS = ((22, 22, 24), (38, 40, 62), (60, 32, 32), (32, 52, 42), (85, 85, 88), (30, 30, 30))


@dataclass(frozen=True)
class SampleSpec:
    """What to generate. Counts may be given as numbers (``actors=8`` means actors 1..8) or as
    explicit RAVDESS codes (``emotions=(3, 5)``); both normalise to sorted tuples of codes.
    Neutral (01) has no strong intensity and is generated at intensity 01 only."""

    actors: int | tuple[int, ...] = 8  # actor ids 1..99, odd male, even female
    emotions: int | tuple[int, ...] = 8  # emotion codes 1..8
    statements: int | tuple[int, ...] = 2  # statement codes 1..2
    intensities: int | tuple[int, ...] = 1  # intensity codes 1 (normal), 2 (strong)
    repetitions: int | tuple[int, ...] = 1  # repetition codes 1..99
    duration: float = 2.5  # seconds per clip (rounded to whole video frames)
    seed: int = 0
    crf: int = 23  # libx264 constant rate factor
    preset: str = "ultrafast"  # libx264 preset

    def __post_init__(self):
        limits = {"actors": 99, "emotions": 8, "statements": 2, "intensities": 2, "repetitions": 99}
        for name, top in limits.items():
            value = getattr(self, name)
            codes = tuple(range(1, value + 1)) if isinstance(value, int) else tuple(sorted(set(int(v) for v in value)))
            if not codes or codes[0] < 1 or codes[-1] > top:
                raise ValueError(f"SampleSpec.{name} must name codes in 1..{top}, got {value!r}")
            object.__setattr__(self, name, codes)
        if not 1.0 <= self.duration <= 10.0:
            raise ValueError(f"SampleSpec.duration must lie in [1, 10] seconds, got {self.duration}")
        object.__setattr__(self, "duration", float(self.duration))
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def num_frames(self) -> int:
        return max(1, round(self.duration * FPS))

    @property
    def num_samples(self) -> int:
        """Audio samples per clip: exactly the video's length."""
        return round(self.num_frames / FPS * AUDIO_RATE)

    def clips(self) -> list[tuple[int, int, int, int, int]]:
        """Every clip as (actor, emotion, intensity, statement, repetition), in a fixed order."""
        return [
            (a, e, i, s, r)
            for a in self.actors for e in self.emotions for i in self.intensities
            for s in self.statements for r in self.repetitions
            if not (e == 1 and i == 2)
        ]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def short_hash(self) -> str:
        text = json.dumps({"version": GENERATOR_VERSION, "spec": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def clip_relpath(actor: int, emotion: int, intensity: int, statement: int, repetition: int) -> str:
    """``Actor_AA/01-01-EE-II-SS-RR-AA.mp4``: audio-video (01), speech (01)."""
    return (f"Actor_{actor:02d}/01-01-{emotion:02d}-{intensity:02d}-{statement:02d}-"
            f"{repetition:02d}-{actor:02d}.mp4")


# ---------------------------------------------------------------------------------------------
# Actors and clip parameters


def _actor(seed: int, actor: int) -> dict:
    rng = np.random.default_rng([seed, 1, actor])
    male = actor % 2 == 1
    p = {"male": male}
    p["a"] = rng.uniform(140, 162) + (6 if male else -4)  # face half-width, px
    p["b"] = rng.uniform(192, 218) + (6 if male else 0)  # face half-height, px
    p["cx"] = WIDTH / 2 + rng.uniform(-8, 8)
    p["cy"] = 320 + rng.uniform(-8, 8)
    p["skin"] = np.array(_SKINS[rng.integers(len(_SKINS))], float) + rng.uniform(-8, 8, 3)
    p["hair"] = np.array(_HAIRS[rng.integers(len(_HAIRS))], float) + rng.uniform(-6, 6, 3)
    p["iris"] = np.array(_IRISES[rng.integers(len(_IRISES))], float)
    p["shirt"] = np.array(_SHIRTS[rng.integers(len(_SHIRTS))], float)
    p["hairline"] = rng.uniform(0.50, 0.64)  # hairline height, fraction of b above the centre
    p["part"] = rng.uniform(-1, 1)  # side parting / asymmetry of the fringe
    p["volume"] = rng.uniform(1.04, 1.12) if male else rng.uniform(1.10, 1.22)
    p["long_hair"] = (not male) and rng.random() < 0.85
    p["eye_sep"] = rng.uniform(0.36, 0.45)  # eye centre offset, fraction of a
    p["eye_y"] = rng.uniform(-0.14, -0.09)  # eye height, fraction of b from the centre
    p["eye_w"] = rng.uniform(0.19, 0.22)  # eye half-width, fraction of a
    p["mouth_y"] = rng.uniform(0.46, 0.52)  # mouth height, fraction of b below the centre
    p["mouth_w"] = rng.uniform(0.30, 0.37)  # mouth half-width, fraction of a
    p["brow_r"] = rng.uniform(6.0, 7.5) if male else rng.uniform(4.2, 5.5)  # brow radius, px
    p["lips"] = p["skin"] * np.array([0.82, 0.55, 0.58]) if not male else p["skin"] * np.array([0.80, 0.62, 0.60])
    p["expressive"] = rng.uniform(0.75, 1.2)  # scales every emotion's deviation from neutral
    # Voice.
    p["f0"] = rng.uniform(105, 140) if male else rng.uniform(185, 240)  # Hz
    p["formants"] = (1.0 if male else 1.15) * rng.uniform(0.96, 1.04)
    p["voice_loud"] = rng.normal(0, 1.5)  # dB
    p["voice_tempo"] = rng.uniform(0.92, 1.08)
    p["voice_expressive"] = rng.uniform(0.75, 1.2)
    return p


def _expression(table, jitter, keys, emotion: int, intensity: int, expressive: float, rng) -> dict:
    """One clip's parameters: neutral + the actor's expressiveness x intensity x (emotion's
    prototype - neutral) + per-clip jitter."""
    neutral = np.array(table["neutral"], float)
    proto = np.array(table[EMOTIONS[emotion - 1]], float)
    scale = expressive * (1.5 if intensity == 2 else 1.0)
    values = neutral + scale * (proto - neutral) + rng.normal(0, 1, len(keys)) * np.array(jitter)
    return dict(zip(keys, values))


# ---------------------------------------------------------------------------------------------
# Audio


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Low-pass ``x`` with a triangular window about ``width`` samples wide (two box passes)."""
    half = max(1, width // 2)
    if half <= 1:
        return x
    for _ in range(2):
        padded = np.pad(x, (half // 2 + 1, half - half // 2), mode="edge")
        c = np.cumsum(padded)
        x = (c[half:] - c[:-half])[: len(x)] / half
    return x


def _band_noise(rng, n: int, lo: float, hi: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / AUDIO_RATE)
    spectrum[(freqs < lo) | (freqs > hi)] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (noise.std() + 1e-12)


def _synthesise_audio(actor: dict, emotion: int, intensity: int, statement: int, spec: SampleSpec, rng):
    """(stereo float32 (2, N), syllable envelope at each video frame in 0..1)."""
    n = spec.num_samples
    sr = AUDIO_RATE
    v = _expression(_AUDIO_PROTO, _AUDIO_JITTER, _AUDIO_KEYS, emotion, intensity, actor["voice_expressive"], rng)
    syllables = _STATEMENTS[statement]
    total = n / sr
    lead = rng.uniform(0.22, 0.42)
    tail = 0.15
    tempo = max(0.55, v["tempo"] * actor["voice_tempo"])
    rel = np.array([s[0] for s in syllables]) * (1 + 0.08 * rng.standard_normal(len(syllables)))
    durations = np.clip(rel, 0.3, None) * _SYLLABLE_SECONDS / tempo
    if lead + durations.sum() + tail > total:  # squeeze into the clip
        durations *= (total - lead - tail) / durations.sum()
    starts = lead + np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    t = np.arange(n) / sr

    # Envelope (voiced), formant tracks and consonant bursts, syllable by syllable.
    env = np.zeros(n)
    burst = np.zeros(n)
    hiss = np.zeros(n)
    f1 = np.full(n, 500.0)
    f2 = np.full(n, 1500.0)
    centres, stresses = [], []
    for (rd, stress, F1, F2, cons), start, dur in zip(syllables, starts, durations):
        c_dur = 0.035 if cons else 0.0
        v0, v1 = start + c_dur, start + dur - 0.02
        i0, i1 = int(v0 * sr), max(int(v0 * sr) + 1, int(v1 * sr))
        phase = np.linspace(0, 1, i1 - i0, endpoint=False)
        env[i0:i1] = (0.55 + 0.45 * stress) * np.sin(np.pi * phase) ** 0.6
        j0 = int(start * sr)
        f1[j0:i1], f2[j0:i1] = F1, F2
        if cons:
            k1 = int((start + c_dur) * sr)
            shape = np.sin(np.pi * np.linspace(0, 1, k1 - j0, endpoint=False)) ** 2
            (burst if cons == 1 else hiss)[j0:k1] = (0.5 + 0.5 * stress) * shape
        centres.append(start + dur / 2)
        stresses.append(stress)
    env = _smooth(env, int(0.012 * sr))
    f1 = _smooth(f1, int(0.04 * sr)) * actor["formants"]
    f2 = _smooth(f2, int(0.04 * sr)) * actor["formants"]

    # Intonation: declination, accents on stressed syllables, final rise/fall, tremor, jitter.
    centres, stresses = np.array(centres), np.array(stresses)
    progress = (centres - centres[0]) / max(1e-6, centres[-1] - centres[0])
    semis = (v["f0"] - 1.5 * progress + max(0.2, v["range"]) * (stresses - 0.4)
             + v["final"] * np.clip((progress - 0.6) / 0.4, 0, 1))
    semis = np.interp(t, centres, semis)
    semis = _smooth(semis, int(0.06 * sr))
    semis += max(0.0, v["tremor"]) * np.sin(2 * np.pi * 6.0 * t + rng.uniform(0, 2 * np.pi))
    wobble = np.interp(t, np.linspace(0, total, 60), rng.standard_normal(60))
    semis += 0.15 * wobble
    f0 = actor["f0"] * 2 ** (semis / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr

    # Harmonic source shaped by formants (amplitudes at a 2 ms control rate).
    hop = 96
    tc = np.arange(0, n, hop)
    f0c, f1c, f2c = f0[tc], f1[tc], f2[tc]
    f3 = 2600.0 * actor["formants"]
    slope = max(0.5, v["slope"])
    voiced = np.zeros(n)
    kmax = int(5000 / f0.min())
    for k in range(1, kmax + 1):
        fk = k * f0c
        gain = (1.0 / (1 + ((fk - f1c) / 70) ** 2) + 0.6 / (1 + ((fk - f2c) / 90) ** 2)
                + 0.25 / (1 + ((fk - f3) / 130) ** 2) + 0.03)
        amp = k ** -slope * gain * (fk < 5000)
        if not amp.any():
            continue
        voiced += np.interp(np.arange(n), tc, amp) * np.sin(k * phase)
    speaking = env > 0.05
    voiced /= voiced[speaking].std() + 1e-12 if speaking.any() else 1.0

    breath = float(np.clip(v["breath"], 0.0, 0.5))
    signal = env * ((1 - breath) * voiced + 2.0 * breath * _band_noise(rng, n, 400, 6000))
    signal += 0.6 * burst * _band_noise(rng, n, 1500, 5000) + 0.45 * hiss * _band_noise(rng, n, 3500, 9000)
    loud_db = v["loud"] + actor["voice_loud"]
    signal *= 0.07 * 10 ** (loud_db / 20)
    signal = np.tanh(signal / 0.9) * 0.9  # soft limit, well below full scale
    signal += 1e-4 * rng.standard_normal(n)  # a quiet room
    signal[: int(0.01 * sr)] *= np.linspace(0, 1, int(0.01 * sr))
    stereo = np.stack([signal, signal]).astype(np.float32)

    frame_times = (np.arange(spec.num_frames) + 0.5) / FPS
    frame_env = np.interp(frame_times.astype(float), t, _smooth(env, int(0.05 * sr)))
    return stereo, np.clip(frame_env / max(1e-6, env.max()), 0, 1)


# ---------------------------------------------------------------------------------------------
# Drawing: float RGB on a patch (the bust's bounding box), antialiased shapes.


class _Pose:
    """Head pose: scale by ``scale`` and turn by ``roll`` degrees (clockwise on screen) about
    ``pivot`` (the base of the neck), then shift by ``shift``; maps model to frame coordinates."""

    def __init__(self, pivot, scale: float, roll: float, shift):
        self.px, self.py = pivot
        self.s = scale
        self.c, self.n = np.cos(np.radians(roll)), np.sin(np.radians(roll))
        self.dx, self.dy = shift

    def forward(self, x, y):
        x, y = x - self.px, y - self.py
        return (self.px + self.dx + self.s * (self.c * x - self.n * y),
                self.py + self.dy + self.s * (self.n * x + self.c * y))

    def inverse(self, x, y):
        x, y = (x - self.px - self.dx) / self.s, (y - self.py - self.dy) / self.s
        return self.px + self.c * x + self.n * y, self.py - self.n * x + self.c * y

    def box(self, left, top, right, bottom):
        xs, ys = self.forward(np.array([left, right, left, right]), np.array([top, top, bottom, bottom]))
        return xs.min(), ys.min(), xs.max(), ys.max()


class _Canvas:
    def __init__(self, x0: int, y0: int, w: int, h: int, background=(255.0, 255.0, 255.0)):
        self.x0, self.y0 = x0, y0
        self.img = np.empty((h, w, 3), np.float32)
        self.img[:] = background
        self.pose: _Pose | None = None  # when set, shapes are given in the head's model coordinates

    def grid(self, left, top, right, bottom):
        """Pixel centres (X, Y) of a box clipped to the canvas, and its slices. The box and the
        coordinates are in model coordinates when a pose is set, frame coordinates otherwise."""
        if self.pose is not None:
            left, top, right, bottom = self.pose.box(left, top, right, bottom)
        h, w = self.img.shape[:2]
        c0 = max(0, int(np.floor(left)) - self.x0)
        c1 = min(w, int(np.ceil(right)) + 1 - self.x0)
        r0 = max(0, int(np.floor(top)) - self.y0)
        r1 = min(h, int(np.ceil(bottom)) + 1 - self.y0)
        if c1 <= c0 or r1 <= r0:
            return None
        xs = np.arange(c0, c1, dtype=np.float32)[None, :] + self.x0
        ys = np.arange(r0, r1, dtype=np.float32)[:, None] + self.y0
        if self.pose is not None:
            xs, ys = self.pose.inverse(xs, ys)
        return xs, ys, (slice(r0, r1), slice(c0, c1))

    def blend(self, sl, alpha, color):
        region = self.img[sl]
        region += alpha[..., None].astype(np.float32) * (np.asarray(color, np.float32) - region)

    def ellipse_alpha(self, cx, cy, a, b, box=None):
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
        g = self.grid(min(x0, x1) - radius - 2, min(y0, y1) - radius - 2,
                      max(x0, x1) + radius + 2, max(y0, y1) + radius + 2)
        if g is None:
            return
        X, Y, sl = g
        dx, dy = x1 - x0, y1 - y0
        u = np.clip(((X - x0) * dx + (Y - y0) * dy) / max(1e-6, dx * dx + dy * dy), 0, 1)
        d = np.sqrt((X - x0 - u * dx) ** 2 + (Y - y0 - u * dy) ** 2)
        self.blend(sl, np.clip(radius + 0.5 - d, 0, 1) * opacity, color)


def _head_pose(p: dict, e: dict) -> _Pose:
    """Lowered / raised, turned (roll) and leaning towards or away from the camera (scale)."""
    return _Pose(pivot=(p["cx"], p["cy"] + p["b"]), scale=_LEAN_STEP ** float(np.clip(e["lean"], -3, 3)),
                 roll=_ROLL_DEG * float(np.clip(e["roll"], -3, 3)), shift=(0.0, _HEAD_PX * e["head"]))


def _draw_bust(c: _Canvas, p: dict, e: dict, pose: _Pose, rng) -> dict:
    """Everything but the mouth; returns the mouth's geometry (model coordinates)."""
    cx, cy, a, b = p["cx"], p["cy"], p["a"], p["b"]
    skin, hair = p["skin"], p["hair"]
    # Shirt and collar stay; the neck and everything above move with the head pose.
    c.pose = None
    c.ellipse(cx, 800, 1.95 * a + 30, 205, p["shirt"])
    c.pose = pose
    c.ellipse(cx, cy + 0.95 * b, 0.48 * a, 0.55 * b, skin * 0.88)
    c.pose = None
    c.ellipse(cx, 612, 0.50 * a, 26, skin * 0.84)
    c.pose = pose
    if p["long_hair"]:
        c.ellipse(cx, cy + 0.25 * b, p["volume"] * a * 1.08, 1.05 * b, hair)
    c.ellipse(cx, cy - 0.14 * b, p["volume"] * a, 0.96 * b, hair)
    ear_y = cy + p["eye_y"] * b + 18
    for s in (-1, 1):
        c.ellipse(cx + s * 0.97 * a, ear_y, 17, 34, skin * 0.93)
    # Face.
    c.ellipse(cx, cy, a, b, skin)
    # Fringe: inside a slightly larger head ellipse and above a curved hairline.
    g = c.grid(cx - 1.1 * a, cy - 1.2 * b, cx + 1.1 * a, cy)
    if g is not None:
        X, Y, sl = g
        u = (X - cx) / a
        line = cy - p["hairline"] * b + 0.35 * b * u ** 2 + 0.06 * b * p["part"] * u
        r = np.sqrt((u / 1.03) ** 2 + ((Y - cy + 0.06 * b) / (0.98 * b)) ** 2)
        alpha = np.clip(0.5 - (r - 1) * a, 0, 1) * np.clip(line - Y + 0.5, 0, 1)
        c.blend(sl, alpha, hair)

    eye_y = cy + p["eye_y"] * b
    ew = p["eye_w"] * a
    eh = float(np.clip(_EYE_PX * e["eye"], 2.0, 26.0))
    brow_color = hair * 0.8 if hair.mean() < 160 else hair * 0.6
    nose_y = cy + 0.24 * b
    gaze = rng.uniform(-3, 3)
    for s in (-1, 1):
        ex = cx + s * p["eye_sep"] * a
        # Brow: inner end up with tilt, the whole brow up with raise; a slight arch.
        base = min(eye_y - 20 - eh * 0.6 - _BROW_PX * e["brow"], eye_y - eh - p["brow_r"] - 3)
        xin, xout = ex - s * 0.9 * ew, ex + s * 1.15 * ew
        yin = min(base - _TILT_PX * e["tilt"], eye_y - 0.5 * eh - p["brow_r"] - 1)
        yout = base + 0.35 * _TILT_PX * e["tilt"]
        xm, ym = (xin + xout) / 2, (yin + yout) / 2 - 4
        c.capsule(xin, yin, xm, ym, p["brow_r"], brow_color)
        c.capsule(xm, ym, xout, yout, p["brow_r"] * 0.85, brow_color)
        # Eye: sclera, iris and pupil inside it, upper lid line.
        alpha, sl = c.ellipse_alpha(ex, eye_y, ew, eh, box=(ex - ew - 4, eye_y - eh - 4, ex + ew + 4, eye_y + eh + 4))
        if alpha is not None:
            c.blend(sl, alpha, (246, 246, 242))
            X, Y, _ = c.grid(ex - ew - 4, eye_y - eh - 4, ex + ew + 4, eye_y + eh + 4)
            d = np.sqrt((X - ex - gaze) ** 2 + (Y - eye_y) ** 2)
            c.blend(sl, alpha * np.clip(10.5 - d, 0, 1), p["iris"])
            c.blend(sl, alpha * np.clip(4.8 - d, 0, 1), (15, 12, 12))
            r = np.sqrt(((X - ex) / ew) ** 2 + ((Y - eye_y) / eh) ** 2)
            ring = np.clip(1.6 - np.abs(r - 1) * min(ew, eh) * 1.2, 0, 1) * (Y < eye_y + 1)
            c.blend(sl, ring, skin * 0.35)
        # Smile lines.
        if e["smile"] > 0.15:
            c.capsule(cx + s * 0.22 * a, nose_y + 6, cx + s * 0.40 * a, cy + p["mouth_y"] * b,
                      2.0, skin * 0.78, min(1.0, e["smile"]) * 0.8)
    # Nose: bridge shadow, tip, nostrils, disgust wrinkles.
    c.capsule(cx + 4, eye_y + 14, cx + 9, nose_y - 12, 2.5, skin * 0.86, 0.7)
    c.ellipse(cx, nose_y - 4, 22, 13, skin * 0.94, 0.6)
    for s in (-1, 1):
        c.ellipse(cx + s * 12, nose_y + 2, 6.5, 3.8, skin * 0.5)
        if e["sneer"] > 0.2:
            op = min(1.0, e["sneer"]) * 0.8
            for k in range(2):
                yk = eye_y + 12 + 7 * k
                c.capsule(cx + s * 8, yk, cx + s * 20, yk + 5, 1.6, skin * 0.7, op)
    return {
        "mx": cx, "my": cy + p["mouth_y"] * b,
        "hw": p["mouth_w"] * a * float(np.clip(e["width"], 0.7, 1.5)),
        "curve": _CURVE_PX * float(np.clip(e["curve"], -2.2, 2.2)),
        "jaw": _JAW_PX * max(0.0, e["jaw"]),
        "teeth": float(np.clip(e["teeth"], 0, 1)),
        "sneer": 6.0 * max(0.0, e["sneer"]),
        "lip": 5.5 if p["male"] else 7.0,
        "lips": p["lips"],
    }


def _mouth_box(m: dict, max_open: float, pose: _Pose) -> tuple[int, int, int, int]:
    """An even-aligned frame box (left, top, right, bottom) holding the mouth at any opening."""
    left = m["mx"] - m["hw"] - 8
    right = m["mx"] + m["hw"] + 8
    top = m["my"] - max(m["curve"], 0) - 0.35 * max_open - m["sneer"] - m["lip"] - 8
    bottom = m["my"] + max(-m["curve"], 0) + 0.65 * max_open + 1.4 * m["lip"] + 8
    left, top, right, bottom = pose.box(left, top, right, bottom)
    return (int(left) // 2 * 2, int(top) // 2 * 2, (int(right) + 3) // 2 * 2, (int(bottom) + 3) // 2 * 2)


def _draw_mouth(c: _Canvas, m: dict, opening: float):
    top = m["my"] - abs(m["curve"]) - 0.35 * opening - m["sneer"] - 2 * m["lip"] - 4
    bottom = m["my"] + abs(m["curve"]) + 0.65 * opening + 2 * m["lip"] + 4
    g = c.grid(m["mx"] - m["hw"] - 2, top, m["mx"] + m["hw"] + 2, bottom)
    if g is None:
        return
    X, Y, sl = g
    u = np.clip((X - m["mx"]) / m["hw"], -1.2, 1.2)
    inside = np.clip((1 - np.abs(u)) * m["hw"] + 0.5, 0, 1)
    bulge = np.clip(1 - u ** 2, 0, 1)
    centre = m["my"] - m["curve"] * u ** 2
    top = centre - (0.35 * opening + m["sneer"]) * bulge - 0.8
    bottom = centre + 0.65 * opening * bulge + 0.8
    upper = top - m["lip"] * np.sqrt(bulge) - 0.5
    lower = bottom + 1.4 * m["lip"] * np.sqrt(bulge) + 0.5

    def band(y0, y1):
        return np.clip(np.minimum(Y - y0, y1 - Y) + 0.5, 0, 1) * inside

    c.blend(sl, band(upper, top), m["lips"])
    c.blend(sl, band(bottom, lower), m["lips"] * 1.05)
    c.blend(sl, band(top, bottom), (70, 22, 30))
    if m["teeth"] > 0.2:
        teeth_bottom = top + np.minimum(0.4 * (bottom - top), 9.0)
        c.blend(sl, band(top, teeth_bottom) * min(1.0, m["teeth"]), (240, 238, 228))


# ---------------------------------------------------------------------------------------------
# Colour conversion and frame assembly (Y'CbCr 4:2:0, BT.601 limited range, as libx264 tags it)


def _to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = rgb[..., 0] / 255, rgb[..., 1] / 255, rgb[..., 2] / 255
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    h, w = rgb.shape[:2]
    sub = rgb.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3)) / 255
    r, g, b = sub[..., 0], sub[..., 1], sub[..., 2]
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return tuple(np.clip(np.rint(x), 0, 255).astype(np.uint8) for x in (y, u, v))


def _paste(planes, patch, x: int, y: int):
    """Paste (Y, U, V) ``patch`` with its top-left at even (x, y), clipped to the frame."""
    for k, (dst, src) in enumerate(zip(planes, patch)):
        f = 1 if k == 0 else 2
        px, py = x // f, y // f
        h, w = src.shape
        r0, c0 = max(0, -py), max(0, -px)
        r1, c1 = min(h, dst.shape[0] - py), min(w, dst.shape[1] - px)
        if r1 > r0 and c1 > c0:
            dst[py + r0 : py + r1, px + c0 : px + c1] = src[r0:r1, c0:c1]


def _fill(planes, x: int, y: int, w: int, h: int):
    for k, dst in enumerate(planes):
        f = 1 if k == 0 else 2
        dst[max(0, y // f) : max(0, (y + h) // f), max(0, x // f) : max(0, (x + w) // f)] = _WHITE_YUV[k]


# ---------------------------------------------------------------------------------------------
# One clip


def render_clip(spec: SampleSpec, actor: int, emotion: int, intensity: int, statement: int, repetition: int):
    """The clip's content as (frames, audio): ``frames`` yields ``spec.num_frames`` yuv420p
    frames, each a (HEIGHT * 3 / 2, WIDTH) uint8 array (Y, then U, then V; the same buffer is
    reused, copy it to keep it); ``audio`` is float32 stereo (2, spec.num_samples) in [-1, 1]."""
    p = _actor(spec.seed, actor)
    rng = np.random.default_rng([spec.seed, 2, actor, emotion, intensity, statement, repetition])
    audio, frame_env = _synthesise_audio(p, emotion, intensity, statement, spec, rng)
    e = _expression(_VIDEO_PROTO, _VIDEO_JITTER, _VIDEO_KEYS, emotion, intensity, p["expressive"], rng)

    # The static bust on an even-aligned patch with a white margin wider than the head motion.
    margin = 16
    x0 = int(p["cx"] - 2.1 * p["a"] - 40) // 2 * 2
    x1 = (int(p["cx"] + 2.1 * p["a"] + 40) + 1) // 2 * 2
    pose = _head_pose(p, e)
    head_top = pose.box(p["cx"] - 1.4 * p["a"], p["cy"] - 1.3 * p["b"], p["cx"] + 1.4 * p["a"], p["cy"])[1]
    y0 = max(0, int(head_top) // 2 * 2 - margin)
    y1 = HEIGHT + 2 * margin
    canvas = _Canvas(x0, y0, x1 - x0, y1 - y0)
    mouth = _draw_bust(canvas, p, e, pose, rng)
    patch = _to_yuv420(canvas.img)

    openings = mouth["jaw"] + 22.0 * (0.6 + 0.4 * max(0.0, e["jaw"] + 0.5)) * frame_env
    openings = np.maximum(openings, 0.0)
    mb = _mouth_box(mouth, float(openings.max()), pose)
    mouth_base = canvas.img[mb[1] - y0 : mb[3] - y0, mb[0] - x0 : mb[2] - x0].copy()

    # Head motion: a slow sway plus a small nod with the syllables, in even pixels.
    n = spec.num_frames
    tt = np.arange(n) / float(FPS)
    sway = rng.uniform(3, 7) * np.sin(2 * np.pi * rng.uniform(0.25, 0.5) * tt + rng.uniform(0, 2 * np.pi))
    bob = rng.uniform(1, 3) * np.sin(2 * np.pi * rng.uniform(0.3, 0.6) * tt + rng.uniform(0, 2 * np.pi)) + 3 * frame_env
    dxs = (np.rint(sway / 2) * 2).astype(int)
    dys = (np.rint(bob / 2) * 2).astype(int)

    def frames():
        buf = np.empty((HEIGHT * 3 // 2, WIDTH), np.uint8)
        planes = (buf[:HEIGHT], buf[HEIGHT : HEIGHT * 5 // 4].reshape(HEIGHT // 2, WIDTH // 2),
                  buf[HEIGHT * 5 // 4 :].reshape(HEIGHT // 2, WIDTH // 2))
        _fill(planes, 0, 0, WIDTH, HEIGHT)
        mcanvas = _Canvas(mb[0], mb[1], mb[2] - mb[0], mb[3] - mb[1])
        mcanvas.pose = pose
        prev = None
        for i in range(n):
            dx, dy = int(dxs[i]), int(dys[i])
            if prev is not None:
                _fill(planes, x0 + prev[0], y0 + prev[1], x1 - x0, y1 - y0)
            _paste(planes, patch, x0 + dx, y0 + dy)
            mcanvas.img[:] = mouth_base
            _draw_mouth(mcanvas, mouth, float(openings[i]))
            _paste(planes, _to_yuv420(mcanvas.img), mb[0] + dx, mb[1] + dy)
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

        for i, buf in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
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


def _write_one(args) -> str:
    root, spec, clip = args
    path = Path(root) / clip_relpath(*clip)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_clip(path, spec, clip)
    return str(path)


# ---------------------------------------------------------------------------------------------
# The tree: atomic generation and the cache


def is_complete(root: Path, spec: SampleSpec | None = None) -> bool:
    """Whether ``root`` holds a finished sample (its marker is present, readable, and names
    this generator version and, when given, this spec)."""
    try:
        marker = json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("version") != GENERATOR_VERSION:
        return False
    return spec is None or marker.get("spec") == spec.to_dict()


def _default_workers(n_clips: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_clips))


def generate_sample(root: Path, spec: SampleSpec = SampleSpec(), workers: int | None = None,
                    progress: bool = True) -> Path:
    """Write the sample described by ``spec`` to ``root`` (``root/Actor_XX/*.mp4``) and return
    ``root``. Nothing to do when ``root`` already holds it. The clips are written into a
    temporary sibling folder, the marker last, and the folder is then renamed into place, so a
    half-written tree is never taken for a finished one; when two processes race, the loser
    discards its own copy and uses the winner's. A folder at ``root`` without a valid marker is
    replaced."""
    root = Path(root)
    if is_complete(root, spec):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        clips = spec.clips()
        workers = _default_workers(len(clips)) if workers is None else max(1, int(workers))
        jobs = [(str(tmp), spec, clip) for clip in clips]
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="sample clips", unit="clip", file=sys.stderr,
                   disable=not progress, leave=False)
        with bar:
            if workers == 1:
                for job in jobs:
                    _write_one(job)
                    bar.update()
            else:
                import multiprocessing

                # spawn: safe even when the caller runs threads (torch, Ray) that fork would copy.
                ctx = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                    try:
                        for future in as_completed([pool.submit(_write_one, job) for job in jobs]):
                            future.result()
                            bar.update()
                    except BaseException:
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise
        marker = {"generator": "msa.data.sample", "version": GENERATOR_VERSION, "spec": spec.to_dict(),
                  "clips": len(clips)}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
        _install(tmp, root, spec)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _install(tmp: Path, root: Path, spec: SampleSpec) -> None:
    """Rename ``tmp`` to ``root``; give way to a finished ``root``; move an unfinished one aside."""
    for _ in range(10):
        try:
            os.rename(tmp, root)
            return
        except OSError:
            if not root.exists():
                continue  # it vanished between the calls: try again
            if is_complete(root, spec):
                return  # another process won; the caller removes tmp
            stale = root.parent / f".{root.name}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(root, stale)
            except OSError:
                continue  # someone else moved it first
            shutil.rmtree(stale, ignore_errors=True)
    raise RuntimeError(f"could not move the generated sample into place at {root}")


def sample_dir(cache_dir: Path | None = None, spec: SampleSpec = SampleSpec()) -> Path:
    """Where the sample for ``spec`` lives in the cache: ``CACHE/sample-v1-<hash>``."""
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    return cache_dir / f"sample-v{GENERATOR_VERSION}-{spec.short_hash()}"


def ensure_sample(cache_dir: Path | None = None, spec: SampleSpec = SampleSpec(),
                  workers: int | None = None, progress: bool = True) -> Path:
    """The embedded sample's root in the cache, generated on first use (one line on stderr
    when it is, and one with the time it took)."""
    root = sample_dir(cache_dir, spec)
    if is_complete(root, spec):
        return root
    n = len(spec.clips())
    print(f"Generating the embedded sample dataset ({n} clips) into {root} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    generate_sample(root, spec, workers=workers, progress=progress)
    print(f"Embedded sample ready in {time.perf_counter() - start:.1f} s.", file=sys.stderr, flush=True)
    return root

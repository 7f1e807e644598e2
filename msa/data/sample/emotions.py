"""How each emotion looks and sounds: the prototype tables, the two statements, and one clip's
expression (prototype scaled by the actor's expressiveness and the intensity, plus jitter).

A clip's expression is a :class:`Face` (drawn by :mod:`.drawing`) and a :class:`Voice` (spoken
by :mod:`.voice`). Their fields are in abstract units; :mod:`.drawing` and :mod:`.voice` turn
them into pixels, degrees, Hz and dB. Neutral/calm, fearful/surprised and angry/disgust look
alike; happy/angry, calm/sad and neutral/disgust sound alike (other pairs), so the two
modalities together are better than either alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from msa.data.datasets.ravdess import EMOTIONS


@dataclass(frozen=True)
class Face:
    """One clip's facial expression and head pose (0 = neutral unless noted)."""

    brow: float  # brow raise, up > 0 (x drawing.BROW_PX pixels)
    tilt: float  # brow tilt, inner end up > 0 (x drawing.TILT_PX pixels)
    eye: float  # eye openness, 1 = neutral (x drawing.EYE_PX pixels of half-height)
    curve: float  # mouth curve, corners up > 0 (x drawing.CURVE_PX pixels)
    width: float  # mouth width, factor (1 = neutral)
    jaw: float  # resting jaw opening (x drawing.JAW_PX pixels)
    teeth: float  # teeth shown, 0..1
    sneer: float  # upper-lip raise and nose wrinkles, 0..1
    smile: float  # smile lines, 0..1
    head: float  # head lowered > 0 (x drawing.HEAD_PX pixels)
    roll: float  # head roll, clockwise on screen > 0 (x drawing.ROLL_DEG degrees)
    lean: float  # lean towards the camera, head larger > 0 (drawing.LEAN_STEP ** lean scale)


@dataclass(frozen=True)
class Voice:
    """One clip's manner of speaking (added to the actor's own voice)."""

    f0: float  # f0 offset, semitones from the actor's base
    f0_range: float  # f0 range, semitones of accent
    tempo: float  # syllable rate, factor
    loud: float  # loudness, dB
    breath: float  # breathiness, noise share 0..0.5
    slope: float  # source spectral slope: amplitude ~ harmonic ** -slope (higher = darker)
    tremor: float  # tremor depth, semitones at 6 Hz
    final: float  # final contour, semitones of rise > 0 or fall < 0 over the last syllables


# Prototypes, one row per emotion, columns in the order of the fields above.
# Neutral/calm, fearful/surprised and angry/disgust are close on purpose.
VIDEO_PROTO = {
    #             brow   tilt   eye   curve  width  jaw   teeth sneer smile head  roll  lean
    "neutral": (0.00, 0.00, 1.00, 0.00, 1.00, 0.00, 0.0, 0.0, 0.0, 0.00, 0.0, 0.0),
    "calm": (0.00, 0.10, 0.80, 0.30, 1.00, 0.00, 0.0, 0.0, 0.1, 0.25, 0.0, -0.2),
    "happy": (0.15, 0.00, 0.75, 1.10, 1.25, 0.20, 1.0, 0.0, 1.0, -0.40, 1.0, 0.3),
    "sad": (-0.15, 0.95, 0.75, -0.85, 0.92, 0.00, 0.0, 0.0, 0.0, 1.20, -0.6, -0.4),
    "angry": (-0.80, -1.00, 0.85, -0.35, 1.02, 0.15, 0.8, 0.3, 0.0, 0.50, 0.0, 1.2),
    "fearful": (0.85, 0.55, 1.40, -0.30, 1.15, 0.35, 0.3, 0.0, 0.0, -0.50, 0.0, -1.0),
    "disgust": (-0.45, -0.55, 0.75, -0.60, 0.96, 0.05, 0.3, 1.0, 0.0, -0.30, -1.0, -0.6),
    "surprised": (1.00, 0.10, 1.45, 0.00, 0.88, 0.60, 0.2, 0.0, 0.0, -0.90, 0.2, -0.5),
}
# Per-clip jitter (standard deviation) of each Face field, same units.
VIDEO_JITTER = (0.22, 0.25, 0.12, 0.25, 0.06, 0.10, 0.25, 0.25, 0.25, 0.30, 0.35, 0.30)

# Happy/angry, calm/sad and neutral/disgust are close on purpose (other pairs than video).
AUDIO_PROTO = {
    #             f0    range tempo  loud  breath slope tremor final
    "neutral": (0.0, 2.0, 1.00, 0.0, 0.06, 1.15, 0.00, -1.0),
    "calm": (-1.0, 1.4, 0.86, -4.0, 0.16, 1.35, 0.00, -1.5),
    "happy": (3.0, 4.5, 1.10, 4.5, 0.06, 0.90, 0.00, 0.5),
    "sad": (-1.5, 1.2, 0.82, -5.0, 0.18, 1.40, 0.10, -2.5),
    "angry": (2.5, 3.5, 1.14, 6.0, 0.08, 0.75, 0.00, -1.0),
    "fearful": (4.5, 2.5, 1.22, 1.0, 0.15, 1.00, 0.50, 0.5),
    "disgust": (-0.5, 2.4, 0.90, -1.0, 0.09, 1.20, 0.00, -2.0),
    "surprised": (5.0, 5.0, 1.00, 3.0, 0.08, 0.95, 0.00, 4.0),
}
# Per-clip jitter (standard deviation) of each Voice field, same units.
AUDIO_JITTER = (1.0, 0.7, 0.07, 1.8, 0.035, 0.10, 0.08, 1.0)

# The two statements: syllables as (relative duration, stress 0..1, F1 Hz, F2 Hz, onset
# consonant: 0 none, 1 plosive burst, 2 fricative hiss). "Kids are talking by the door" and
# "Dogs are sitting by the door": same length, different rhythm, vowels and consonants.
STATEMENTS = {
    1: (
        (0.95, 1.0, 400, 2000, 1),
        (0.55, 0.2, 650, 1100, 0),
        (1.10, 0.9, 620, 900, 1),
        (0.70, 0.3, 420, 1900, 0),
        (0.80, 0.5, 720, 1350, 1),
        (0.45, 0.1, 520, 1500, 2),
        (1.40, 0.8, 480, 800, 1),
    ),
    2: (
        (1.05, 1.0, 600, 950, 1),
        (0.55, 0.2, 650, 1100, 0),
        (0.90, 0.8, 420, 2000, 2),
        (0.75, 0.4, 430, 1850, 1),
        (0.80, 0.5, 720, 1350, 1),
        (0.45, 0.1, 520, 1500, 2),
        (1.40, 0.9, 480, 800, 1),
    ),
}

STRONG = 1.5  # intensity 02 multiplies the emotion's deviation from neutral by this

assert all(len(row) == len(dataclasses.fields(Face)) for row in (*VIDEO_PROTO.values(), VIDEO_JITTER))
assert all(len(row) == len(dataclasses.fields(Voice)) for row in (*AUDIO_PROTO.values(), AUDIO_JITTER))


def face_expression(emotion: int, intensity: int, expressive: float, rng: np.random.Generator) -> Face:
    """One clip's face (draws 12 normals from ``rng``)."""
    return Face(*_expression(VIDEO_PROTO, VIDEO_JITTER, emotion, intensity, expressive, rng))


def voice_expression(emotion: int, intensity: int, expressive: float, rng: np.random.Generator) -> Voice:
    """One clip's voice (draws 8 normals from ``rng``)."""
    return Voice(*_expression(AUDIO_PROTO, AUDIO_JITTER, emotion, intensity, expressive, rng))


def _expression(
    table: dict, jitter: tuple, emotion: int, intensity: int, expressive: float, rng: np.random.Generator
) -> np.ndarray:
    """One clip's parameters, shape (len(jitter),): neutral + the actor's expressiveness x
    intensity x (emotion's prototype - neutral) + per-clip jitter."""
    neutral = np.array(table["neutral"], float)
    proto = np.array(table[EMOTIONS[emotion - 1]], float)
    scale = expressive * (STRONG if intensity == 2 else 1.0)
    return neutral + scale * (proto - neutral) + rng.normal(0, 1, len(jitter)) * np.array(jitter)

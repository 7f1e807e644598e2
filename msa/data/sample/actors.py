"""The actors: each one's face, colours, hair and voice, drawn once from (seed, actor).

Odd actors are male, even actors female. Lengths are in frame pixels (1280x720) or fractions
of the face's semi-axes, colours are RGB in 0..255 as float arrays of shape (3,).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msa.data.sample.spec import WIDTH

# Palettes (RGB 0..255) each actor picks from.
SKINS = (
    (241, 200, 170),
    (228, 176, 142),
    (205, 145, 108),
    (168, 114, 80),
    (125, 85, 60),
    (236, 192, 160),
    (248, 214, 190),
    (190, 130, 95),
)
HAIRS = (
    (28, 24, 24),
    (62, 40, 28),
    (105, 70, 42),
    (196, 160, 98),
    (135, 62, 36),
    (150, 148, 145),
    (45, 32, 26),
)
IRISES = ((85, 55, 35), (60, 100, 150), (70, 110, 75), (40, 30, 25))
SHIRTS = ((22, 22, 24), (38, 40, 62), (60, 32, 32), (32, 52, 42), (85, 85, 88), (30, 30, 30))


@dataclass(frozen=True, eq=False)
class Actor:
    """One actor's look and voice."""

    male: bool
    # Face and head.
    half_width: float  # face ellipse half-width ("a"), px
    half_height: float  # face ellipse half-height ("b"), px
    cx: float  # face centre, frame px
    cy: float
    skin: np.ndarray  # RGB (3,)
    hair: np.ndarray  # RGB (3,)
    iris: np.ndarray  # RGB (3,)
    shirt: np.ndarray  # RGB (3,)
    lips: np.ndarray  # RGB (3,)
    hairline: float  # hairline height, fraction of half_height above the centre
    part: float  # side parting / asymmetry of the fringe, -1..1
    volume: float  # hair ellipse size, factor of the face's
    long_hair: bool
    eye_sep: float  # eye centre offset, fraction of half_width
    eye_y: float  # eye height, fraction of half_height from the centre (< 0: above)
    eye_w: float  # eye half-width, fraction of half_width
    mouth_y: float  # mouth height, fraction of half_height below the centre
    mouth_w: float  # mouth half-width, fraction of half_width
    brow_r: float  # brow radius (half thickness), px
    expressive: float  # scales every emotion's deviation from neutral in the face
    # Voice.
    f0: float  # base fundamental frequency, Hz
    formants: float  # formant frequency scale
    voice_loud: float  # loudness offset, dB
    voice_tempo: float  # syllable rate factor
    voice_expressive: float  # scales every emotion's deviation from neutral in the voice


def make_actor(seed: int, actor: int) -> Actor:
    """Actor ``actor`` (1..99) of the sample with this seed (the draws' order is part of the
    generated content: changing it changes every clip)."""
    rng = np.random.default_rng([seed, 1, actor])
    male = actor % 2 == 1
    half_width = rng.uniform(140, 162) + (6 if male else -4)
    half_height = rng.uniform(192, 218) + (6 if male else 0)
    cx = WIDTH / 2 + rng.uniform(-8, 8)
    cy = 320 + rng.uniform(-8, 8)
    skin = np.array(SKINS[rng.integers(len(SKINS))], float) + rng.uniform(-8, 8, 3)
    hair = np.array(HAIRS[rng.integers(len(HAIRS))], float) + rng.uniform(-6, 6, 3)
    iris = np.array(IRISES[rng.integers(len(IRISES))], float)
    shirt = np.array(SHIRTS[rng.integers(len(SHIRTS))], float)
    hairline = rng.uniform(0.50, 0.64)
    part = rng.uniform(-1, 1)
    volume = rng.uniform(1.04, 1.12) if male else rng.uniform(1.10, 1.22)
    long_hair = (not male) and rng.random() < 0.85
    eye_sep = rng.uniform(0.36, 0.45)
    eye_y = rng.uniform(-0.14, -0.09)
    eye_w = rng.uniform(0.19, 0.22)
    mouth_y = rng.uniform(0.46, 0.52)
    mouth_w = rng.uniform(0.30, 0.37)
    brow_r = rng.uniform(6.0, 7.5) if male else rng.uniform(4.2, 5.5)
    lips = skin * np.array([0.82, 0.55, 0.58]) if not male else skin * np.array([0.80, 0.62, 0.60])
    expressive = rng.uniform(0.75, 1.2)
    f0 = rng.uniform(105, 140) if male else rng.uniform(185, 240)
    formants = (1.0 if male else 1.15) * rng.uniform(0.96, 1.04)
    voice_loud = rng.normal(0, 1.5)
    voice_tempo = rng.uniform(0.92, 1.08)
    voice_expressive = rng.uniform(0.75, 1.2)
    return Actor(
        male=male,
        half_width=half_width,
        half_height=half_height,
        cx=cx,
        cy=cy,
        skin=skin,
        hair=hair,
        iris=iris,
        shirt=shirt,
        lips=lips,
        hairline=hairline,
        part=part,
        volume=volume,
        long_hair=long_hair,
        eye_sep=eye_sep,
        eye_y=eye_y,
        eye_w=eye_w,
        mouth_y=mouth_y,
        mouth_w=mouth_w,
        brow_r=brow_r,
        expressive=expressive,
        f0=f0,
        formants=formants,
        voice_loud=voice_loud,
        voice_tempo=voice_tempo,
        voice_expressive=voice_expressive,
    )

"""What to generate: the output format's constants, :class:`SampleSpec` and the clip file names.

Every other module of the package takes its format constants (frame size, frame rate, audio
rate) from here, and the cache takes its version and marker names from here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction

from msa.data.datasets.ravdess import ACTORS as RAVDESS_ACTORS

FPS = Fraction(30000, 1001)  # frames per second (29.97, as RAVDESS)
AUDIO_RATE = 48_000  # Hz, as RAVDESS
AUDIO_CHANNELS = 2  # stereo, as RAVDESS
WIDTH, HEIGHT = 1280, 720  # pixels
GENERATOR_VERSION = 1  # bump whenever the generated content changes: it names the cache folder
MARKER = ".msa-sample.json"  # written last, inside the folder, before it is renamed into place


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

    @classmethod
    def full_ravdess(cls, actors: int | tuple[int, ...] = len(RAVDESS_ACTORS), **options) -> SampleSpec:
        """RAVDESS's audio-video speech set in size and naming: 8 emotions x 2 intensities
        (neutral at 01 only) x 2 statements x 2 repetitions = 60 clips per actor, for each of
        RAVDESS's actors by default. ``options`` are the other fields (seed, duration, ...)."""
        return cls(actors=actors, emotions=8, statements=2, intensities=2, repetitions=2, **options)

    def __post_init__(self):
        limits = {"actors": 99, "emotions": 8, "statements": 2, "intensities": 2, "repetitions": 99}
        for name, top in limits.items():
            value = getattr(self, name)
            codes = (
                tuple(range(1, value + 1))
                if isinstance(value, int)
                else tuple(sorted(set(int(v) for v in value)))
            )
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
            for a in self.actors
            for e in self.emotions
            for i in self.intensities
            for s in self.statements
            for r in self.repetitions
            if not (e == 1 and i == 2)
        ]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def short_hash(self) -> str:
        text = json.dumps({"version": GENERATOR_VERSION, "spec": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def clip_relpath(actor: int, emotion: int, intensity: int, statement: int, repetition: int) -> str:
    """``Actor_AA/01-01-EE-II-SS-RR-AA.mp4``: audio-video (01), speech (01)."""
    return (
        f"Actor_{actor:02d}/01-01-{emotion:02d}-{intensity:02d}-{statement:02d}-"
        f"{repetition:02d}-{actor:02d}.mp4"
    )

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

Modules
-------
- :mod:`.spec`: the output format's constants, :class:`SampleSpec`, the clip file names;
- :mod:`.emotions`: how each emotion looks and sounds (prototypes, jitter, the two statements);
- :mod:`.actors`: each actor's face, colours and voice;
- :mod:`.voice`: audio synthesis;
- :mod:`.drawing`: the canvas, head pose, bust and mouth;
- :mod:`.encoding`: Y'CbCr 4:2:0 frame assembly, :func:`render_clip` and :func:`write_clip`;
- :mod:`.tree`: atomic generation of a whole sample and the cache;
- :mod:`.layouts`: a finished sample's clips under other datasets' layouts (RAVDESS audio-only,
  CREMA-D, a speaker manifest, audiofolder, one folder per emotion).

The package needs numpy and PyAV only (plus tqdm for the progress bar).
"""

from msa.data.sample.encoding import AAC_FRAME, AUDIO_BIT_RATE, render_clip, write_clip
from msa.data.sample.layouts import LAYOUTS, write_layout
from msa.data.sample.spec import (
    AUDIO_CHANNELS,
    AUDIO_RATE,
    FPS,
    GENERATOR_VERSION,
    HEIGHT,
    MARKER,
    WIDTH,
    SampleSpec,
    clip_relpath,
)
from msa.data.sample.tree import ensure_sample, generate_sample, is_complete, sample_dir

__all__ = [
    "AAC_FRAME",
    "AUDIO_BIT_RATE",
    "AUDIO_CHANNELS",
    "AUDIO_RATE",
    "FPS",
    "GENERATOR_VERSION",
    "HEIGHT",
    "LAYOUTS",
    "MARKER",
    "WIDTH",
    "SampleSpec",
    "clip_relpath",
    "ensure_sample",
    "generate_sample",
    "is_complete",
    "render_clip",
    "sample_dir",
    "write_clip",
    "write_layout",
]

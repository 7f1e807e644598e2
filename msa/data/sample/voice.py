"""Audio synthesis: a voiced, speech-like signal for one clip.

A harmonic source at fundamental f0 shaped by moving vowel formants, one syllable per entry of
the statement (:data:`.emotions.STATEMENTS`), plosive bursts and fricative hiss at consonant
onsets, and short silences before and after. The actor's voice and the clip's
:class:`.emotions.Voice` set the f0 level and range, the intonation contour, the syllable rate,
loudness, breathiness and spectral tilt.
"""

from __future__ import annotations

import numpy as np

from msa.data.sample.actors import Actor
from msa.data.sample.emotions import STATEMENTS, voice_expression
from msa.data.sample.spec import AUDIO_RATE, FPS, SampleSpec

SYLLABLE_SECONDS = 0.20  # s: one unit of relative syllable duration at tempo 1


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Low-pass ``x`` (N,) with a triangular window about ``width`` samples wide (two box passes)."""
    half = max(1, width // 2)
    if half <= 1:
        return x
    for _ in range(2):
        padded = np.pad(x, (half // 2 + 1, half - half // 2), mode="edge")
        c = np.cumsum(padded)
        x = (c[half:] - c[:-half])[: len(x)] / half
    return x


def band_noise(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """White noise band-limited to ``lo``..``hi`` Hz, shape (n,), unit standard deviation."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / AUDIO_RATE)
    spectrum[(freqs < lo) | (freqs > hi)] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (noise.std() + 1e-12)


def synthesise_audio(
    actor: Actor, emotion: int, intensity: int, statement: int, spec: SampleSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(stereo float32 (2, spec.num_samples) in [-1, 1], syllable envelope at each video frame
    (spec.num_frames,) in 0..1). Draws the clip's :class:`.emotions.Voice` from ``rng`` first."""
    n = spec.num_samples
    sr = AUDIO_RATE
    v = voice_expression(emotion, intensity, actor.voice_expressive, rng)
    syllables = STATEMENTS[statement]
    total = n / sr
    lead = rng.uniform(0.22, 0.42)
    tail = 0.15
    tempo = max(0.55, v.tempo * actor.voice_tempo)
    rel = np.array([s[0] for s in syllables]) * (1 + 0.08 * rng.standard_normal(len(syllables)))
    durations = np.clip(rel, 0.3, None) * SYLLABLE_SECONDS / tempo
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
    for (_, stress, F1, F2, cons), start, dur in zip(syllables, starts, durations):
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
    env = smooth(env, int(0.012 * sr))
    f1 = smooth(f1, int(0.04 * sr)) * actor.formants
    f2 = smooth(f2, int(0.04 * sr)) * actor.formants

    # Intonation: declination, accents on stressed syllables, final rise/fall, tremor, jitter.
    centres, stresses = np.array(centres), np.array(stresses)
    progress = (centres - centres[0]) / max(1e-6, centres[-1] - centres[0])
    semis = (
        v.f0
        - 1.5 * progress
        + max(0.2, v.f0_range) * (stresses - 0.4)
        + v.final * np.clip((progress - 0.6) / 0.4, 0, 1)
    )
    semis = np.interp(t, centres, semis)
    semis = smooth(semis, int(0.06 * sr))
    semis += max(0.0, v.tremor) * np.sin(2 * np.pi * 6.0 * t + rng.uniform(0, 2 * np.pi))
    wobble = np.interp(t, np.linspace(0, total, 60), rng.standard_normal(60))
    semis += 0.15 * wobble
    f0 = actor.f0 * 2 ** (semis / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr

    # Harmonic source shaped by formants (amplitudes at a 2 ms control rate).
    hop = 96
    tc = np.arange(0, n, hop)
    f0c, f1c, f2c = f0[tc], f1[tc], f2[tc]
    f3 = 2600.0 * actor.formants
    slope = max(0.5, v.slope)
    # The source matters only where the envelope is not exactly zero (it is multiplied by it, and
    # the room noise added later makes the sign of a zero irrelevant): skip the silences.
    sounding = np.flatnonzero(env)
    span = slice(sounding[0], sounding[-1] + 1)
    voiced = np.zeros(n)
    kmax = int(5000 / f0.min())
    # np.interp(np.arange(n), tc, amp), bit for bit, as one broadcast over the regular hops.
    offsets = np.arange(hop, dtype=float)
    after_last = n - tc[-1]  # samples from the last control point on, held at its value

    def upsample(amp: np.ndarray) -> np.ndarray:
        slopes = (amp[1:] - amp[:-1]) / float(hop)
        ramps = slopes[:, None] * offsets + amp[:-1, None]
        return np.concatenate([ramps.ravel(), np.full(after_last, amp[-1])])

    for k in range(1, kmax + 1):
        fk = k * f0c
        gain = (
            1.0 / (1 + ((fk - f1c) / 70) ** 2)
            + 0.6 / (1 + ((fk - f2c) / 90) ** 2)
            + 0.25 / (1 + ((fk - f3) / 130) ** 2)
            + 0.03
        )
        amp = k**-slope * gain * (fk < 5000)
        if not amp.any():
            continue
        voiced[span] += upsample(amp)[span] * np.sin(k * phase[span])
    speaking = env > 0.05
    voiced /= voiced[speaking].std() + 1e-12 if speaking.any() else 1.0

    breath = float(np.clip(v.breath, 0.0, 0.5))
    signal = env * ((1 - breath) * voiced + 2.0 * breath * band_noise(rng, n, 400, 6000))
    signal += 0.6 * burst * band_noise(rng, n, 1500, 5000) + 0.45 * hiss * band_noise(rng, n, 3500, 9000)
    loud_db = v.loud + actor.voice_loud
    signal *= 0.07 * 10 ** (loud_db / 20)
    signal = np.tanh(signal / 0.9) * 0.9  # soft limit, well below full scale
    signal += 1e-4 * rng.standard_normal(n)  # a quiet room
    signal[: int(0.01 * sr)] *= np.linspace(0, 1, int(0.01 * sr))
    stereo = np.stack([signal, signal]).astype(np.float32)

    frame_times = (np.arange(spec.num_frames) + 0.5) / FPS
    frame_env = np.interp(frame_times.astype(float), t, smooth(env, int(0.05 * sr)))
    return stereo, np.clip(frame_env / max(1e-6, env.max()), 0, 1)

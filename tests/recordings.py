"""Recordings made of clips, for the predict tests: each clip's decoded frames and audio samples
placed one after another, so that a cue over a clip's span holds exactly the clip."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from conftest import REPO

from msa.data.media import read_audio
from msa.predict.subtitles import Cue, format_webvtt

MILLISECOND = Fraction(1, 1000)


def concatenate_clips(clips: list[Path], out: Path, gap: float = 0.012) -> list[Cue]:
    """Write ``out`` (Matroska): clip k's frames (re-encoded losslessly: H.264 at qp 0 of its
    decoded yuv420p frames, so they decode to the same pixels) and its decoded 48 kHz samples
    (float PCM: the same samples) from ``start_k``, a whole millisecond; ``gap`` seconds of
    silence and no frame between clips. Returns one cue per clip: [start_k, start_k + its
    audio's length), which must be a whole number of milliseconds (clips of 32 frames at
    29.97 fps have 51 AAC frames of audio: 52,224 samples, 1.088 s)."""
    slots, audio = [], []
    for clip in clips:
        decoded = read_audio(clip)
        samples_per_ms = decoded.rate // 1000
        if decoded.samples.shape[1] % samples_per_ms:
            raise ValueError(f"{clip}: {decoded.samples.shape[1]} audio samples are not whole milliseconds")
        audio.append(decoded)
    start = Fraction(0)
    with av.open(str(out), "w", format="matroska") as container:
        video = container.add_stream("libx264", rate=1000)
        video.width, video.height, video.pix_fmt = 1280, 720, "yuv420p"
        video.options = {"qp": "0", "preset": "ultrafast"}
        sound = container.add_stream("pcm_f32le", rate=audio[0].rate, layout=audio[0].layout)
        pcm = []
        for clip, decoded in zip(clips, audio, strict=True):
            length = Fraction(decoded.samples.shape[1], decoded.rate)
            with av.open(str(clip)) as source:
                frames = list(source.decode(video=0))
            for frame in frames:
                clip_time = frame.pts * frame.time_base
                frame.pts = round((start + clip_time) / MILLISECOND)
                frame.time_base = MILLISECOND
                frame.pict_type = av.video.frame.PictureType.NONE
                container.mux(video.encode(frame))
            slots.append((start, length))
            pcm.append(decoded.samples)
            gap_samples = round(gap * decoded.rate)
            pcm.append(np.zeros((decoded.samples.shape[0], gap_samples), dtype=np.float32))
            start += length + Fraction(gap_samples, decoded.rate)
        container.mux(video.encode(None))
        samples = np.concatenate(pcm, axis=1)
        for offset in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, offset : offset + 1024]),
                format="fltp",
                layout=audio[0].layout,
            )
            frame.sample_rate, frame.pts = audio[0].rate, offset
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    return [
        Cue(float(begin), float(begin + length), clip.name, str(number))
        for number, (clip, (begin, length)) in enumerate(zip(clips, slots, strict=True), start=1)
    ]


def write_vtt(cues: list[Cue], path: Path) -> Path:
    path.write_text(format_webvtt(cues), encoding="utf-8")
    return path


def _default_sigint() -> None:
    """Ctrl-C as a terminal delivers it: an xdist worker ignores SIGINT, and its children would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def live_command(model, *args, recording, speed: float = 50.0) -> subprocess.Popen:
    """``replay RECORDING | msa predict MODEL --live - ARGS`` (the replay at ``speed``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    replay = subprocess.Popen(
        [sys.executable, "-m", "msa.predict.replay", str(recording), "--speed", str(speed)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    command = [sys.executable, "-m", "msa.predict", str(model), "--live", "-", "--quiet", *args]
    process = subprocess.Popen(
        command,
        stdin=replay.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
        preexec_fn=_default_sigint,
    )
    replay.stdout.close()  # the reader holds the pipe now
    process.replay = replay
    return process

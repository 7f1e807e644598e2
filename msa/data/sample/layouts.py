"""The sample's clips under other datasets' layouts, derived from a finished sample tree.

Why: the data code must find, label and split datasets that are not laid out as RAVDESS. Each
layout here is written from the clips of a sample made by :func:`.tree.generate_sample`, in the
order of its spec's :meth:`SampleSpec.clips`:

- ``ravdess-audio``: RAVDESS's audio-only speech set, ``Actor_AA/03-01-EE-II-SS-RR-AA.wav``;
- ``crema-d``: CREMA-D, ``VideoFlash/SSSS_SEN_EMO_INT.flv`` (the mp4 remuxed, no re-encoding)
  and ``VideoDemographics.csv``; clips without a CREMA-D emotion, and repetitions, are skipped;
- ``manifest``: one long recording per speaker, ``recordings/speaker_AA.wav``, and
  ``labels.csv`` giving each clip's span (start, end in seconds) in it;
- ``audiofolder``: Hugging Face's audiofolder, ``data/<stem>.wav`` and ``metadata.csv``;
- ``folders``: one folder per emotion, ``LABEL/<stem>.wav``, no speakers.

Audio is the clip's AAC track decoded with PyAV (all of it, as a decoder returns it) and
written as 16-bit PCM WAV at its own rate and channels. Every layout is written into a
temporary sibling folder that is renamed into place when complete.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import uuid
from pathlib import Path

import av
import numpy as np

from msa.data.datasets import crema_d
from msa.data.datasets.ravdess import EMOTIONS
from msa.data.sample.spec import MARKER, SampleSpec, clip_relpath
from msa.data.sample.tree import is_complete

LAYOUTS = ("ravdess-audio", "crema-d", "manifest", "audiofolder", "folders")
WAV_CODEC = "pcm_s16le"  # 16-bit PCM
WAV_CHUNK = 8192  # samples per encoded WAV frame
AUDIO_ONLY = "03"  # RAVDESS modality code of the audio-only files (01 is audio-video)
GAP_SECONDS = 0.25  # silence after each clip in a manifest recording
CREMA_ACTOR_BASE = 1000  # CREMA-D speaker id = 1000 + actor
CREMA_SENTENCES = {1: "DFA", 2: "IEO"}  # statement -> sentence code
# RAVDESS emotion code -> CREMA-D's (calm and surprised have none)
CREMA_EMOTIONS = {EMOTIONS.index(label) + 1: code for code, label in crema_d.EMOTION_CODES.items()}
CREMA_INTENSITIES = {1: "XX", 2: "HI"}  # intensity -> level code ("XX": unspecified)
CREMA_DEMOGRAPHICS = ("ActorID", "Age", "Sex", "Race", "Ethnicity")  # crema_d.DEMOGRAPHICS_FILE's header
CREMA_PERSON = {"Age": 30, "Race": "Unknown", "Ethnicity": "Not Hispanic"}  # the same for all
MANIFEST_COLUMNS = ("path", "label", "speaker", "gender", "start", "end")
AUDIOFOLDER_COLUMNS = ("file_name", "label", "speaker_id")

Clip = tuple[int, int, int, int, int]  # (actor, emotion, intensity, statement, repetition)


def sample_clips(sample_root: Path) -> list[tuple[Clip, Path]]:
    """The clips of the finished sample at ``sample_root`` with their mp4 paths, in its spec's
    order; ValueError when ``sample_root`` holds no finished sample."""
    sample_root = Path(sample_root)
    if not is_complete(sample_root):
        raise ValueError(f"{sample_root} holds no finished sample (no valid {MARKER})")
    spec = SampleSpec(**json.loads((sample_root / MARKER).read_text())["spec"])
    return [(clip, sample_root / clip_relpath(*clip)) for clip in spec.clips()]


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """The first audio stream of ``path`` decoded with PyAV -> (int16 array (channels, samples),
    sample rate)."""
    chunks = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            x = frame.to_ndarray()
            if not frame.format.is_planar:  # interleaved: (1, samples * channels)
                x = x.reshape(-1, len(frame.layout.channels)).T
            chunks.append(x)
        rate = stream.codec_context.sample_rate
    x = np.concatenate(chunks, axis=1)
    if x.dtype == np.int16:
        return x, rate
    scale = 32768.0 if x.dtype.kind == "f" else 32768.0 / 2.0 ** (8 * x.dtype.itemsize - 1)
    return np.clip(np.rint(x.astype(np.float64) * scale), -32768, 32767).astype(np.int16), rate


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    """Write int16 ``pcm`` (channels, samples) as a 16-bit PCM WAV file with PyAV."""
    layout = {1: "mono", 2: "stereo"}[pcm.shape[0]]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="wav") as out:
        stream = out.add_stream(WAV_CODEC, rate=rate, layout=layout)
        for start in range(0, pcm.shape[1], WAV_CHUNK):
            chunk = np.ascontiguousarray(pcm[:, start : start + WAV_CHUNK].T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
            frame.sample_rate, frame.pts = rate, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def remux(src: Path, dst: Path, format: str) -> None:
    """Copy every audio and video packet of ``src`` into a ``format`` container (no re-encoding)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp, av.open(str(dst), mode="w", format=format) as out:
        streams = {
            s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("audio", "video")
        }
        for packet in inp.demux(*[inp.streams[i] for i in streams]):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


def crema_d_name(actor: int, emotion: int, intensity: int, statement: int) -> str | None:
    """``SSSS_SEN_EMO_INT``, CREMA-D's name for the clip; None when its emotion has no CREMA-D label."""
    if emotion not in CREMA_EMOTIONS:
        return None
    return (
        f"{CREMA_ACTOR_BASE + actor}_{CREMA_SENTENCES[statement]}_{CREMA_EMOTIONS[emotion]}_"
        f"{CREMA_INTENSITIES[intensity]}"
    )


def _write_csv(path: Path, header, rows) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _stem(clip: Clip) -> str:
    return Path(clip_relpath(*clip)).stem


def _ravdess_audio(clips, out: Path) -> None:
    for clip, mp4 in clips:
        write_wav(out / f"Actor_{clip[0]:02d}" / f"{AUDIO_ONLY}{_stem(clip)[2:]}.wav", *read_audio(mp4))


def _crema_d(clips, out: Path) -> None:
    names, actors = set(), []
    for (actor, emotion, intensity, statement, _), mp4 in clips:
        name = crema_d_name(actor, emotion, intensity, statement)
        if name is None or name in names:  # no CREMA-D emotion, or a repetition
            continue
        names.add(name)
        remux(mp4, out / "VideoFlash" / f"{name}.flv", "flv")
        if actor not in actors:
            actors.append(actor)
    rows = [
        (CREMA_ACTOR_BASE + a, CREMA_PERSON["Age"], "Male" if a % 2 else "Female")
        + (CREMA_PERSON["Race"], CREMA_PERSON["Ethnicity"])
        for a in actors
    ]
    _write_csv(out / crema_d.DEMOGRAPHICS_FILE, CREMA_DEMOGRAPHICS, rows)


def _manifest(clips, out: Path) -> None:
    rows, by_actor = [], {}
    for clip, mp4 in clips:
        by_actor.setdefault(clip[0], []).append((clip, mp4))
    for actor, own in by_actor.items():
        rel = f"recordings/speaker_{actor:02d}.wav"
        parts, offset, rate = [], 0, None
        for clip, mp4 in own:
            pcm, clip_rate = read_audio(mp4)
            if rate not in (None, clip_rate):
                raise ValueError(f"{mp4}: {clip_rate} Hz, the other clips of actor {actor} {rate} Hz")
            rate = clip_rate
            gap = np.zeros((pcm.shape[0], round(GAP_SECONDS * rate)), np.int16)
            start, end = offset / rate, (offset + pcm.shape[1]) / rate
            gender = "male" if actor % 2 else "female"
            rows.append((rel, EMOTIONS[clip[1] - 1], f"spk{actor:02d}", gender, f"{start:.6f}", f"{end:.6f}"))
            parts += [pcm, gap]
            offset += pcm.shape[1] + gap.shape[1]
        write_wav(out / rel, np.concatenate(parts, axis=1), rate)
    _write_csv(out / "labels.csv", MANIFEST_COLUMNS, rows)


def _audiofolder(clips, out: Path) -> None:
    rows = []
    for clip, mp4 in clips:
        rel = f"data/{_stem(clip)}.wav"
        write_wav(out / rel, *read_audio(mp4))
        rows.append((rel, EMOTIONS[clip[1] - 1], f"actor{clip[0]:02d}"))
    _write_csv(out / "metadata.csv", AUDIOFOLDER_COLUMNS, rows)


def _folders(clips, out: Path) -> None:
    for clip, mp4 in clips:
        write_wav(out / EMOTIONS[clip[1] - 1] / f"{_stem(clip)}.wav", *read_audio(mp4))


WRITERS = {
    "ravdess-audio": _ravdess_audio,
    "crema-d": _crema_d,
    "manifest": _manifest,
    "audiofolder": _audiofolder,
    "folders": _folders,
}


def out_problem(out: Path) -> str | None:
    """Why ``out`` cannot receive a layout (it must be absent or an empty folder); None if it can."""
    out = Path(out)
    if not out.exists():
        return None
    if not out.is_dir():
        return "exists and is not a folder"
    return "exists and is not empty" if any(out.iterdir()) else None


def write_layout(layout: str, sample_root: Path, out: Path) -> Path:
    """Write the clips of the sample at sample_root (a finished sample tree) under `layout` into
    out (created; must not exist or be empty), atomically (write into a sibling temp folder,
    then rename). Returns out.

    ValueError for an unknown layout or an unfinished sample, FileExistsError for a bad ``out``.
    """
    if layout not in WRITERS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    out = Path(out)
    problem = out_problem(out)
    if problem:
        raise FileExistsError(f"{out} {problem}")
    clips = sample_clips(sample_root)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        WRITERS[layout](clips, tmp)
        os.rename(tmp, out)  # replaces an empty folder at out, fails on a non-empty one
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out

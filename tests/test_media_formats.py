"""The media files users bring, through a manifest and ``prepare``: every container and sample
format a team records in becomes a mono float32 16 kHz clip of the right length; broken files
are left out, each once, with the reason the report gives; real stereo RAVDESS files are mixed
down (skipped without ../shared).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
from audio_files import write_audio
from conftest import REAL_SPEECH, REPO
from media import write_clip

from msa.audio_format import SAMPLE_RATE, to_model_audio
from msa.data.datasets.records import EMPTY, NO_AUDIO, TOO_SHORT, UNREADABLE
from msa.data.decode import PrepareParams
from msa.data.prepare import prepare

PARAMS = PrepareParams(num_frames=4, image_size=16)
SECONDS = 0.5
EXPECTED = round(SECONDS * SAMPLE_RATE)
PCM = 2  # samples: PCM and FLAC keep every sample; resampling gives or takes one
LOSSY = round(0.1 * SAMPLE_RATE)  # MP3, AAC, Vorbis, Opus: encoder delay and frame padding
LABELS = ("neutral", "happy")

# file name -> (how to write it under a folder, length tolerance in samples at 16 kHz)
FORMATS = {
    "u8_8k_mono.wav": (lambda p: write_audio(p, SECONDS, rate=8000, codec="pcm_u8"), PCM),
    "s16_44k_stereo.wav": (lambda p: write_audio(p, SECONDS, rate=44100, channels=2), PCM),
    "s24_96k_mono.wav": (lambda p: write_audio(p, SECONDS, rate=96000, codec="pcm_s24le"), PCM),
    "s32_mono.wav": (lambda p: write_audio(p, SECONDS, codec="pcm_s32le"), PCM),
    "f32_mono.wav": (lambda p: write_audio(p, SECONDS, codec="pcm_f32le"), PCM),
    "surround_5_1.wav": (lambda p: write_audio(p, SECONDS, channels=6), PCM),
    "s16_44k_stereo.flac": (lambda p: write_audio(p, SECONDS, rate=44100, channels=2), PCM),
    "s24_96k.flac": (lambda p: write_audio(p, SECONDS, rate=96000, sample_format="s32"), PCM),
    "mono_44k.mp3": (lambda p: write_audio(p, SECONDS, rate=44100), LOSSY),
    "stereo.m4a": (lambda p: write_audio(p, SECONDS, channels=2), LOSSY),
    "adts.aac": (lambda p: write_audio(p, SECONDS), LOSSY),
    "vorbis_stereo.ogg": (lambda p: write_audio(p, SECONDS, channels=2), LOSSY),
    "flac_mono.ogg": (lambda p: write_audio(p, SECONDS), PCM),  # FLAC in Ogg
    "mono.opus": (lambda p: write_audio(p, SECONDS), LOSSY),
    "opus_audio_only.mkv": (lambda p: write_audio(p, SECONDS), LOSSY),
    "opus_audio_only.webm": (lambda p: write_audio(p, SECONDS), LOSSY),
    "pcm_audio_only.mov": (lambda p: write_audio(p, SECONDS), PCM),
    "pcm_audio_only.avi": (lambda p: write_audio(p, SECONDS), PCM),
    "h264_aac.mp4": (lambda p: write_clip(p, audio_seconds=SECONDS), LOSSY),
    "h264_aac.mov": (lambda p: write_clip(p, audio_seconds=SECONDS), LOSSY),
    "h264_aac.avi": (lambda p: write_clip(p, audio_seconds=SECONDS), LOSSY),
    "h264_aac.mkv": (lambda p: write_clip(p, audio_seconds=SECONDS), LOSSY),
}
WITH_VIDEO = {name for name in FORMATS if name.startswith("h264_")}


def write_manifest(path: Path, files: list[str | Path]) -> Path:
    """A manifest of ``files`` (relative to it, or absolute): 2 labels and 3 speakers round robin."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "speaker"])
        for i, file in enumerate(files):
            writer.writerow([file, LABELS[i % 2], f"s{i % 3 + 1}"])
    return path


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    """Every file of FORMATS in one manifest, prepared: (report, {file name: its clip})."""
    root = tmp_path_factory.mktemp("formats")
    for name, (write, _) in FORMATS.items():
        write(root / "media" / name)
    csv_path = write_manifest(root / "manifest.csv", [f"media/{name}" for name in FORMATS])
    report = prepare(csv_path, root / "cache", PARAMS, workers=1, progress=False)
    return report, {Path(clip.display).name: clip for clip in report.clips}


def test_manifest_of_every_format_is_read_in_full(formats):
    report, _ = formats
    assert len(report.corpus.found) == len(FORMATS)
    assert {item.record.speaker for item in report.corpus.found} == {"s1", "s2", "s3"}
    assert report.corpus.labels == tuple(sorted(LABELS))


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_prepares_a_mono_16k_clip(formats, name):
    report, clips = formats
    skipped = {Path(display).name: reason for display, reason in report.skipped}
    assert name not in skipped, f"{name} skipped: {skipped.get(name)}"
    clip = clips[name]
    video, audio = clip.load()
    assert audio.dtype == np.float32 and audio.ndim == 1
    tolerance = FORMATS[name][1]
    assert abs(len(audio) - EXPECTED) <= tolerance, (
        f"{len(audio)} samples, expected {EXPECTED} +- {tolerance}"
    )
    assert np.isfinite(audio).all()
    assert np.sqrt(np.mean(np.square(audio, dtype=np.float64))) > 0.01
    if name in WITH_VIDEO:
        assert clip.record.has_video is True
        assert video.shape == (PARAMS.num_frames, PARAMS.image_size, PARAMS.image_size, 3)
    else:
        assert clip.record.has_video is False
        assert video is None


# ---- broken files -------------------------------------------------------------------------


def wav_bytes(folder: Path, seconds: float = SECONDS) -> bytes:
    return write_audio(folder / "whole.wav", seconds).read_bytes()


def mp4_bytes(folder: Path) -> bytes:
    return write_clip(folder / "whole.mp4", audio_seconds=SECONDS).read_bytes()


# file name -> (how to write it, given a scratch folder; the reasons it may be skipped with)
BROKEN = {
    # A zero-byte file is left out when the manifest is read, before anything decodes it.
    "zero_bytes.wav": (lambda scratch: b"", {EMPTY}),
    # A RIFF/WAVE header announcing a data chunk that is not there: FFmpeg refuses to open it.
    "header_only.wav": (lambda scratch: wav_bytes(scratch)[:44], {UNREADABLE}),
    "cut_in_header.wav": (lambda scratch: wav_bytes(scratch)[:20], {UNREADABLE}),
    "text.wav": (lambda scratch: b"this is a note, not a recording\n" * 20, {UNREADABLE}),
    # PNG magic then noise: FFmpeg probes it as a PNG image (png_pipe), a video stream without
    # audio ("no audio track"); an FFmpeg that probed it otherwise would find it unreadable.
    "image.mp3": (
        lambda scratch: b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(4096),
        {NO_AUDIO, UNREADABLE},
    ),
    "no_audio.mp4": (
        lambda scratch: write_clip(scratch / "silent.mp4", audio_seconds=0).read_bytes(),
        {NO_AUDIO},
    ),
    "ten_ms.wav": (lambda scratch: wav_bytes(scratch, seconds=0.01), {TOO_SHORT}),
    # PyAV writes the moov atom last: the first 2 KB hold ftyp and the start of mdat, no index,
    # and FFmpeg cannot open it. (A faststart file cut there would have its index and could
    # decode as a shorter clip, or "too short".)
    "cut_at_2k.mp4": (lambda scratch: mp4_bytes(scratch)[:2048], {UNREADABLE, TOO_SHORT, NO_AUDIO}),
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A folder of the BROKEN files and one good wav, with a manifest of them all
    (``with_good.csv``) and one of the broken files only (``only_broken.csv``)."""
    root = tmp_path_factory.mktemp("broken")
    scratch = root / "scratch"
    scratch.mkdir()
    (root / "media").mkdir()
    for name, (content, _) in BROKEN.items():
        (root / "media" / name).write_bytes(content(scratch))
    write_audio(root / "media" / "good.wav", SECONDS)
    names = [f"media/{name}" for name in BROKEN]
    write_manifest(root / "with_good.csv", ["media/good.wav", *names])
    write_manifest(root / "only_broken.csv", names)
    return root


def test_broken_files_are_skipped_once_with_their_reason(broken, tmp_path):
    report = prepare(broken / "with_good.csv", tmp_path / "cache", PARAMS, workers=1, progress=False)
    assert [Path(clip.display).name for clip in report.clips] == ["good.wav"]
    assert len(report.clips[0].load()[1]) == EXPECTED
    counts = Counter(Path(display).name for display, _ in report.skipped)
    assert counts == Counter(list(BROKEN)), "every broken file is skipped exactly once"
    for display, reason in report.skipped:
        allowed = BROKEN[Path(display).name][1]
        assert reason in allowed, f"{display}: {reason!r}, expected one of {sorted(allowed)}"


def run_prepare_cli(data: Path, cache: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "msa.prepare", "--data", str(data), "--cache", str(cache)]
    command += ["--frames", "4", "--image-size", "16", "--workers", "1"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_prepare_cli_lists_broken_files_and_fails_when_none_is_usable(broken, tmp_path):
    done = run_prepare_cli(broken / "with_good.csv", tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    printed = dict(
        line.strip().removeprefix("skipped ").rsplit(": ", 1)
        for line in done.stdout.splitlines()
        if line.strip().startswith("skipped ")
    )
    assert {Path(path).name for path in printed} == set(BROKEN)
    for path, reason in printed.items():
        assert reason in BROKEN[Path(path).name][1], f"{path}: {reason}"

    failed = run_prepare_cli(broken / "only_broken.csv", tmp_path / "cache")
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr, failed.stderr
    # stderr also holds the progress bar (tqdm): one line of it says what went wrong.
    errors = [line for line in failed.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: "), failed.stderr
    # The files that reached decoding are counted by reason (the zero-byte one was left out
    # when the manifest was read, before the candidates).
    for reason in (UNREADABLE, TOO_SHORT, NO_AUDIO):
        assert reason in errors[0], errors[0]


# ---- real RAVDESS speech ------------------------------------------------------------------


def probe(path: Path) -> tuple[int, float]:
    """(channels, duration in seconds) of a file's first audio track, from its headers."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None:
            return stream.channels, float(stream.duration * stream.time_base)
        return stream.channels, container.duration / av.time_base


@pytest.mark.skipif(not REAL_SPEECH.is_dir(), reason=f"no real RAVDESS speech at {REAL_SPEECH}")
def test_real_stereo_and_mono_flac_files(tmp_path):
    files = sorted((REAL_SPEECH / "Actor_01").glob("*.flac")) + sorted(
        (REAL_SPEECH / "Actor_05").glob("*.flac")
    )
    probed = {path: probe(path) for path in files}
    stereo = [path for path, (channels, _) in probed.items() if channels == 2]
    mono = [path for path, (channels, _) in probed.items() if channels == 1][:3]
    assert [path.parent.name for path in stereo] == ["Actor_01", "Actor_01", "Actor_05"]
    csv_path = write_manifest(tmp_path / "real.csv", [path.resolve() for path in stereo + mono])
    report = prepare(csv_path, tmp_path / "cache", PARAMS, workers=1, progress=False)
    assert report.skipped == []
    clips = {Path(clip.display).resolve(): clip for clip in report.clips}
    for path in stereo + mono:
        video, audio = clips[path.resolve()].load()
        assert video is None and audio.dtype == np.float32 and audio.ndim == 1
        expected = probed[path][1] * SAMPLE_RATE
        assert abs(len(audio) - expected) <= 2, f"{path.name}: {len(audio)} samples, expected {expected:.1f}"
        assert np.isfinite(audio).all()
        assert np.sqrt(np.mean(np.square(audio, dtype=np.float64))) > 1e-3, f"{path.name} is silent"
    for path in stereo:
        # These stereo files hold the same signal in both channels: mixed down as libswresample
        # does ((L + R) / sqrt 2), the clip is sqrt 2 times one channel converted alone.
        with av.open(str(path)) as container:
            rate = container.streams.audio[0].rate
            planar = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
            frames = [out for frame in container.decode(audio=0) for out in planar.resample(frame)]
        left = np.concatenate([frame.to_ndarray()[:1] for frame in frames], axis=1)
        one_channel = to_model_audio(left, rate)
        _, audio = clips[path.resolve()].load()
        np.testing.assert_allclose(audio, np.sqrt(2) * one_channel, atol=1e-5)


@pytest.mark.parametrize("name", ["long.wav", "long.flac", "long.mp3", "long.m4a", "long.opus"])
def test_a_span_is_read_by_seeking_as_it_stands_in_the_whole_track(tmp_path, name):
    """read_audio(path, span) seeks near the span instead of decoding the whole recording, and
    gives the samples the whole track has there (AAC's decoder, restarted by the seek, within
    1e-5; every other codec exactly)."""
    from msa.data.media import read_audio

    path = write_audio(tmp_path / name, 8.0, channels=2)
    whole = read_audio(path)
    for span in ((0.3, 1.2), (2.5, 3.7), (5.01, 7.99)):
        start, end = (round(seconds * whole.rate) for seconds in span)
        part = read_audio(path, span)
        assert part.samples.shape == (2, end - start) and part.rate == whole.rate
        np.testing.assert_allclose(
            part.samples, whole.samples[:, start:end], atol=1e-5 if name.endswith("m4a") else 0
        )

"""The embedded sample's clips under other datasets' layouts (msa.data.sample.layouts)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from msa.data.sample import SampleSpec, clip_relpath, generate_sample
from msa.data.sample import __main__ as cli
from msa.data.sample.layouts import LAYOUTS, crema_d_name, write_layout

# 2 actors (male, female) x calm (no CREMA-D label) and happy x both intensities x 2
# repetitions, 1 s clips: 16 clips in about 2 s on 2 cores.
SPEC = SampleSpec(actors=(1, 2), emotions=(2, 3), intensities=2, statements=1, repetitions=2, duration=1.0)
NAMES = {2: "calm", 3: "happy"}
RATE, CHANNELS = 48_000, 2
GAP = 12_000  # 0.25 s of silence after each clip in a manifest recording


def decode_audio(path: Path) -> tuple[np.ndarray, str, int]:
    """All of the first audio stream, as float (channels, samples) in [-1, 1], with its codec
    and rate."""
    chunks = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        for frame in container.decode(stream):
            x = frame.to_ndarray()
            chunks.append(x if frame.format.is_planar else x.reshape(-1, channels).T)
        codec, rate = stream.codec_context.name, stream.codec_context.sample_rate
    x = np.concatenate(chunks, axis=1)
    return (x / 32768.0 if x.dtype == np.int16 else x.astype(np.float64)), codec, rate


def check_wav(path: Path, source: np.ndarray) -> np.ndarray:
    """``path`` is 16-bit PCM WAV at 48 kHz stereo holding ``source``'s samples, rounded."""
    x, codec, rate = decode_audio(path)
    assert (codec, rate, x.shape) == ("pcm_s16le", RATE, source.shape), path
    assert np.abs(x - source).max() <= 1.01 / 32768, path
    return x


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("layouts") / "sample", SPEC, workers=2, progress=False)


@pytest.fixture(scope="module")
def source(sample) -> dict[tuple, np.ndarray]:
    """Each clip's decoded audio, by clip."""
    return {clip: decode_audio(sample / clip_relpath(*clip))[0] for clip in SPEC.clips()}


@pytest.fixture(scope="module")
def written(sample, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("written")
    return {layout: write_layout(layout, sample, root / layout) for layout in LAYOUTS}


def stem(clip) -> str:
    return Path(clip_relpath(*clip)).stem


def test_ravdess_audio(written, source):
    out = written["ravdess-audio"]
    expected = {
        f"Actor_{a:02d}/03-01-{e:02d}-{i:02d}-{s:02d}-{r:02d}-{a:02d}.wav": (a, e, i, s, r)
        for a, e, i, s, r in SPEC.clips()
    }
    assert files(out) == sorted(expected) and len(expected) == 16
    for name, clip in expected.items():
        check_wav(out / name, source[clip])


def test_crema_d_names():
    assert crema_d_name(3, 1, 1, 2) == "1003_IEO_NEU_XX"
    assert crema_d_name(12, 7, 2, 1) == "1012_DFA_DIS_HI"
    assert [crema_d_name(1, e, 1, 1).split("_")[2] for e in (3, 4, 5, 6)] == ["HAP", "SAD", "ANG", "FEA"]
    assert crema_d_name(1, 2, 1, 1) is None and crema_d_name(1, 8, 2, 2) is None  # calm, surprised


def test_crema_d(sample, written):
    out = written["crema-d"]
    # calm has no CREMA-D label; the second repetition takes the first's name and is skipped.
    flv = {
        f"VideoFlash/100{a}_DFA_HAP_{level}.flv": (a, 3, i, 1, 1)
        for a in (1, 2)
        for i, level in ((1, "XX"), (2, "HI"))
    }
    assert files(out) == sorted([*flv, "VideoDemographics.csv"])
    assert read_csv(out / "VideoDemographics.csv") == [
        ["ActorID", "Age", "Sex", "Race", "Ethnicity"],
        ["1001", "30", "Male", "Unknown", "Not Hispanic"],
        ["1002", "30", "Female", "Unknown", "Not Hispanic"],
    ]
    for name, clip in flv.items():
        mp4 = sample / clip_relpath(*clip)
        with av.open(str(out / name)) as remuxed, av.open(str(mp4)) as original:
            assert remuxed.format.name == "flv"
            assert [s.codec_context.name for s in (remuxed.streams.video[0], remuxed.streams.audio[0])] == [
                "h264",
                "aac",
            ]
            # A stream copy: the same coded video, packet for packet.
            copied = [bytes(p) for p in remuxed.demux(video=0) if p.size]
            assert copied == [bytes(p) for p in original.demux(video=0) if p.size]
        with av.open(str(out / name)) as remuxed:
            frames = [f.to_ndarray(format="gray").shape for f in remuxed.decode(video=0)]
        assert len(frames) == SPEC.num_frames and frames[0] == (720, 1280)
        audio, codec, rate = decode_audio(out / name)
        assert (codec, rate, audio.shape[0]) == ("aac", RATE, CHANNELS)
        assert audio.shape[1] >= SPEC.num_samples and np.abs(audio).max() > 0.01


def test_manifest(written, source):
    out = written["manifest"]
    assert files(out) == ["labels.csv", "recordings/speaker_01.wav", "recordings/speaker_02.wav"]
    rows = read_csv(out / "labels.csv")
    assert rows[0] == ["path", "label", "speaker", "gender", "start", "end"]
    assert len(rows) == 1 + len(SPEC.clips())
    recordings = {}
    for row, clip in zip(rows[1:], SPEC.clips()):  # the sample's clip order
        a = clip[0]
        path, label, speaker, gender, start, end = row
        assert (path, label, speaker, gender) == (
            f"recordings/speaker_{a:02d}.wav",
            NAMES[clip[1]],
            f"spk{a:02d}",
            "male" if a % 2 else "female",
        )
        assert len(start.split(".")[1]) == len(end.split(".")[1]) == 6
        if path not in recordings:
            recordings[path] = decode_audio(out / path)
            assert recordings[path][1:] == ("pcm_s16le", RATE) and float(start) == 0
        audio = recordings[path][0]
        s, e = round(float(start) * RATE), round(float(end) * RATE)
        n = source[clip].shape[1]
        assert abs((e - s) - n) <= 1
        assert np.abs(audio[:, s : s + n] - source[clip]).max() <= 1.01 / 32768
        assert not audio[:, s + n : s + n + GAP].any()  # the silence after it
    for path, (audio, _, _) in recordings.items():
        own = [clip for clip in SPEC.clips() if f"speaker_{clip[0]:02d}" in path]
        assert audio.shape == (CHANNELS, sum(source[c].shape[1] + GAP for c in own))


def test_audiofolder(written, source):
    out = written["audiofolder"]
    rows = read_csv(out / "metadata.csv")
    assert rows[0] == ["file_name", "label", "speaker_id"]
    expected = [[f"data/{stem(c)}.wav", NAMES[c[1]], f"actor{c[0]:02d}"] for c in SPEC.clips()]
    assert rows[1:] == expected
    assert files(out) == sorted(["metadata.csv", *(r[0] for r in expected)])
    for clip in SPEC.clips():
        check_wav(out / f"data/{stem(clip)}.wav", source[clip])


def test_folders(written, source):
    out = written["folders"]
    expected = {f"{NAMES[c[1]]}/{stem(c)}.wav": c for c in SPEC.clips()}
    assert files(out) == sorted(expected)
    assert sorted(p.name for p in out.iterdir()) == ["calm", "happy"]  # no speaker folders
    for name, clip in expected.items():
        check_wav(out / name, source[clip])


def test_write_layout_refusals_and_atomicity(sample, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        write_layout("folders", sample, tmp_path / "full")
    with pytest.raises(ValueError, match="unknown layout"):
        write_layout("nope", sample, tmp_path / "new")
    with pytest.raises(ValueError, match="no finished sample"):
        write_layout("folders", tmp_path / "full", tmp_path / "new")
    (tmp_path / "empty").mkdir()  # an empty folder is fine
    assert write_layout("folders", sample, tmp_path / "empty") == tmp_path / "empty"
    assert len(files(tmp_path / "empty")) == len(SPEC.clips())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "full"]  # no temporary folders


def test_cli_layout(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "msa.data.sample", *args], capture_output=True, text=True, timeout=300
        )

    # A non-empty --out is refused before anything is generated.
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "f").write_text("x")
    sample = tmp_path / "sample"
    refused = run(str(sample), "--actors", "1", "--layout", "folders", "--out", str(tmp_path / "taken"))
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("error: ") and len(refused.stderr.splitlines()) == 1
    assert not sample.exists()
    # Actor 1 of the default spec: 8 emotions x 2 statements.
    done = run(
        str(sample),
        "--actors",
        "1",
        "--workers",
        "2",
        "--no-progress",
        "--layout",
        "folders",
        "--out",
        str(tmp_path / "f"),
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1 and "16 files (16 .wav)" in done.stdout
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == sorted(
        ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    )
    assert len(files(tmp_path / "f")) == 16


def test_cli_arguments():
    assert cli.parse_args(["out"])[0].layout == "ravdess"  # the default, as before
    args, _ = cli.parse_args(["--layout", "crema-d", "--out", "d"])
    assert (args.out, args.layout_out) == (None, Path("d"))
    for bad in (["--layout", "folders"], ["out", "--out", "d"], [], ["--layout", "x", "--out", "d"]):
        with pytest.raises(SystemExit) as exc:
            cli.parse_args(bad)
        assert exc.value.code == 2

"""The embedded sample dataset: real format, determinism, atomic install, learnability."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import decord
import numpy as np
import pytest

from msa.data.datasets import read_dataset
from msa.data.datasets.ravdess import EMOTIONS, ClipName
from msa.data.sample import (
    GENERATOR_VERSION,
    MARKER,
    SampleSpec,
    clip_relpath,
    ensure_sample,
    generate_sample,
    is_complete,
    sample_dir,
)
from msa.data.sample import __main__ as cli

TINY = SampleSpec(actors=(1, 2), emotions=(3, 5), statements=1, duration=1.0, seed=7)
# All 8 emotions and 8 actors (4 male, 4 female), one statement, shorter clips: ~64 clips in
# about 10 s on 2 cores. The full default spec has its own slow test below.
LEARN = SampleSpec(statements=1, duration=2.0)
FOLDS = ((1, 2), (3, 4), (5, 6), (7, 8))  # held-out actor pairs: one male, one female each


# ---------------------------------------------------------------------------------------------
# Simple per-clip features and a tiny classifier (numpy only)


def parse_name(path: Path) -> tuple[int, ...]:
    return tuple(int(v) for v in path.stem.split("-"))


def video_features(path: Path, num_frames: int = 4) -> np.ndarray:
    """Mean over ``num_frames`` frames of the decoder's face crop (a centred square of 0.78 x
    height from 0.03 x height), in grey, block-averaged to 16 x 16, standardised per clip."""
    vr = decord.VideoReader(str(path))
    idx = np.linspace(0, len(vr) - 1, num_frames + 2)[1:-1].round().astype(int)
    frames = vr.get_batch(list(idx)).asnumpy().astype(np.float32).mean(axis=3)
    h, w = frames.shape[1:]
    side = round(0.78 * h) // 16 * 16
    top, left = round(0.03 * h), (w - side) // 2
    crop = frames[:, top : top + side, left : left + side].mean(axis=0)
    cells = crop.reshape(16, side // 16, 16, side // 16).mean(axis=(1, 3)).ravel()
    return (cells - cells.mean()) / (cells.std() + 1e-6)


def audio_features(path: Path) -> np.ndarray:
    """From 16 kHz mono audio: mean log energy of 20 log-spaced bands over the voiced frames
    (relative to their mean), frame log-energy statistics, voiced fraction, zero-crossing rate
    and an autocorrelation pitch estimate (median, spread)."""
    x = decord.AudioReader(str(path), sample_rate=16000, mono=True)[:].asnumpy()[0].astype(np.float64)
    win, hop = 512, 256
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop] * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    energy = np.log(power.sum(axis=1) + 1e-10)
    voiced = energy > energy.max() - 5
    freqs = np.fft.rfftfreq(win, 1 / 16000)
    edges = np.geomspace(60, 8000, 21)
    bands = np.stack(
        [power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for lo, hi in zip(edges[:-1], edges[1:])], 1
    )
    spectrum = np.log(bands[voiced] + 1e-10).mean(axis=0)
    e = energy[voiced]
    zcr = (np.diff(np.sign(frames[voiced]), axis=1) != 0).mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames[voiced], 1024, axis=1)) ** 2, axis=1)
    lo, hi = 16000 // 400, 16000 // 70  # lags for 400 .. 70 Hz
    f0 = np.log(16000 / (lo + ac[:, lo:hi].argmax(axis=1)))
    stats = [
        e.mean(),
        e.std(),
        e.max(),
        voiced.mean(),
        zcr,
        np.median(f0),
        f0.std(),
        np.percentile(f0, 90) - np.percentile(f0, 10),
    ]
    return np.concatenate([spectrum - spectrum.mean(), stats])


def softmax_regression(
    x: np.ndarray, y: np.ndarray, classes: int, l2: float = 1e-2, steps: int = 500
) -> np.ndarray:
    """Multinomial logistic regression by full-batch gradient descent; returns weights with bias."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros((xb.shape[1], classes))
    target = np.eye(classes)[y]
    for _ in range(steps):
        z = xb @ w
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = xb.T @ (p - target) / len(x)
        grad[:-1] += l2 * w[:-1]
        w -= 0.5 * grad
    return w


def held_out_accuracy(
    features: np.ndarray, labels: np.ndarray, actors: np.ndarray, folds=FOLDS
) -> np.ndarray:
    """Accuracy on each fold's held-out actors of a classifier trained on the other actors,
    features standardised with the training actors' statistics."""
    accs = []
    for test in folds:
        train = ~np.isin(actors, test)
        mu, sd = features[train].mean(axis=0), features[train].std(axis=0) + 1e-6
        w = softmax_regression((features[train] - mu) / sd, labels[train], len(EMOTIONS))
        z = np.hstack([(features[~train] - mu) / sd, np.ones(((~train).sum(), 1))])
        accs.append(float(((z @ w).argmax(axis=1) == labels[~train]).mean()))
    return np.array(accs)


def learnability(root: Path) -> dict[str, np.ndarray]:
    paths = sorted(root.glob("Actor_*/*.mp4"))
    names = np.array([parse_name(p) for p in paths])
    labels, actors = names[:, 2] - 1, names[:, 6]
    video = np.stack([video_features(p) for p in paths])
    audio = np.stack([audio_features(p) for p in paths])
    return {
        "video": held_out_accuracy(video, labels, actors),
        "audio": held_out_accuracy(audio, labels, actors),
        "both": held_out_accuracy(np.hstack([video, audio]), labels, actors),
    }


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("tiny") / "sample", TINY, workers=1, progress=False)


@pytest.fixture(scope="session")
def learn_root(tmp_path_factory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("learn") / "sample", LEARN, workers=2, progress=False)


# ---------------------------------------------------------------------------------------------
# Tests


def test_spec_normalises_counts_and_lists_clips():
    spec = SampleSpec()
    assert spec.actors == tuple(range(1, 9)) and spec.emotions == tuple(range(1, 9))
    assert spec.statements == (1, 2) and spec.intensities == (1,) and spec.repetitions == (1,)
    assert len(spec.clips()) == 128
    assert SampleSpec(actors=8) == SampleSpec(actors=(8, 7, 6, 5, 4, 3, 2, 1))
    assert SampleSpec(actors=8).short_hash() == SampleSpec(actors=tuple(range(1, 9))).short_hash()
    assert SampleSpec(seed=1).short_hash() != SampleSpec().short_hash()
    # Neutral has no strong intensity.
    strong = SampleSpec(actors=1, statements=1, intensities=2).clips()
    assert len(strong) == 15 and (1, 1, 2, 1, 1) not in strong
    assert clip_relpath(4, 6, 2, 1, 2) == "Actor_04/01-01-06-02-01-02-04.mp4"
    with pytest.raises(ValueError):
        SampleSpec(emotions=(9,))
    with pytest.raises(ValueError):
        SampleSpec(duration=0.1)


def test_format_matches_ravdess(tiny_root: Path):
    paths = sorted(tiny_root.glob("Actor_*/*.mp4"))
    assert len(paths) == len(TINY.clips()) == 4
    assert sorted(p.parent.name for p in paths) == ["Actor_01", "Actor_01", "Actor_02", "Actor_02"]
    for path in paths:
        fields = path.stem.split("-")
        assert len(fields) == 7 and all(len(f) == 2 and f.isdigit() for f in fields)
        modality, channel, emotion, intensity, statement, repetition, actor = map(int, fields)
        assert (modality, channel) == (1, 1) and 1 <= emotion <= 8 and intensity in (1, 2)
        assert path.parent.name == f"Actor_{actor:02d}"
        with av.open(str(path)) as container:
            v, a = container.streams.video[0], container.streams.audio[0]
            assert v.codec_context.name == "h264" and (v.codec_context.width, v.codec_context.height) == (
                1280,
                720,
            )
            assert v.average_rate == Fraction(30000, 1001)
            assert a.codec_context.name == "aac" and a.codec_context.sample_rate == 48000
            assert a.codec_context.channels == 2
        vr = decord.VideoReader(str(path))
        assert len(vr) == TINY.num_frames and abs(vr.get_avg_fps() - 29.97) < 0.01
        frame = vr[len(vr) // 2].asnumpy()
        assert frame.shape == (720, 1280, 3)
        # White background at the sides, a face in the middle of the decoder's crop.
        assert frame[:, :200].mean() > 245 and frame[:, -200:].mean() > 245
        assert frame[200:500, 540:740].mean() < 235
        audio = decord.AudioReader(str(path), sample_rate=16000, mono=True)[:].asnumpy()[0]
        assert abs(len(audio) / 16000 - TINY.num_frames / (30000 / 1001)) < 0.1  # same length as the video
        assert 0.01 < np.abs(audio).max() < 1.0
        head = audio[: int(0.15 * 16000)]
        assert np.sqrt((head**2).mean()) < 0.1 * np.sqrt((audio**2).mean())  # silence before speech
    marker = json.loads((tiny_root / MARKER).read_text())
    assert marker["version"] == GENERATOR_VERSION and marker["spec"] == TINY.to_dict()


def test_generation_is_deterministic(tiny_root: Path, tmp_path: Path):
    """Same spec, other folder, other worker count: identical files, and so identical decoded
    pixels and audio."""
    again = generate_sample(tmp_path / "again", TINY, workers=2, progress=False)
    for path in sorted(tiny_root.glob("Actor_*/*.mp4")):
        twin = again / path.relative_to(tiny_root)
        assert path.read_bytes() == twin.read_bytes(), path.name
    path = next(tiny_root.glob("Actor_01/*.mp4"))
    twin = again / path.relative_to(tiny_root)
    a, b = decord.VideoReader(str(path)), decord.VideoReader(str(twin))
    assert np.array_equal(a.get_batch([0, 10]).asnumpy(), b.get_batch([0, 10]).asnumpy())
    other = generate_sample(
        tmp_path / "other",
        SampleSpec(actors=1, emotions=(3,), statements=1, duration=1.0, seed=8),
        workers=1,
        progress=False,
    )
    assert (other / clip_relpath(1, 3, 1, 1, 1)).read_bytes() != (
        tiny_root / clip_relpath(1, 3, 1, 1, 1)
    ).read_bytes()


def test_marker_less_folder_is_regenerated(tmp_path: Path):
    spec = SampleSpec(actors=1, emotions=(2,), statements=1, duration=1.0)
    root = tmp_path / "sample"
    (root / "Actor_01").mkdir(parents=True)
    (root / "Actor_01" / "01-01-02-01-01-01-01.mp4").write_bytes(b"half written")
    assert not is_complete(root, spec)
    generate_sample(root, spec, workers=1, progress=False)
    assert is_complete(root, spec)
    clip = root / clip_relpath(1, 2, 1, 1, 1)
    assert clip.stat().st_size > 1000 and len(decord.VideoReader(str(clip))) == spec.num_frames
    # A marker for another spec is not this sample either.
    assert not is_complete(root, SampleSpec(actors=1, emotions=(2,), statements=1, duration=1.0, seed=3))
    # No temporary folders are left beside it.
    assert [p.name for p in tmp_path.iterdir()] == ["sample"]


def test_complete_folder_is_reused_and_race_loser_gives_way(tmp_path: Path, monkeypatch):
    spec = SampleSpec(actors=1, emotions=(4,), statements=1, duration=1.0)
    root = generate_sample(tmp_path / "sample", spec, workers=1, progress=False)
    stamp = (root / MARKER).stat().st_mtime_ns
    assert generate_sample(root, spec, workers=1, progress=False) == root
    assert (root / MARKER).stat().st_mtime_ns == stamp
    # A process that finished second finds the winner's folder in place: it keeps it and
    # discards its own copy.
    from msa.data.sample import tree

    # The first look (before generating) misses the folder, as when another process installs
    # it while this one is generating. generate_sample looks it up in msa.data.sample.tree.
    assert generate_sample.__globals__ is vars(tree)  # else the patch below would not reach it
    monkeypatch.setattr(tree, "is_complete", _first_false(tree.is_complete))
    assert generate_sample(root, spec, workers=1, progress=False) == root
    assert (root / MARKER).stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample"]


def _first_false(real):
    state = {"first": True}

    def is_complete(root, spec=None):
        if state.pop("first", False):
            return False
        return real(root, spec)

    return is_complete


def test_ensure_sample_uses_the_cache(tmp_path: Path, capsys):
    spec = SampleSpec(actors=(2,), emotions=(8,), statements=1, duration=1.0)
    root = ensure_sample(tmp_path / "cache", spec, workers=1, progress=False)
    assert root == sample_dir(tmp_path / "cache", spec)
    assert root.name == f"sample-v{GENERATOR_VERSION}-{spec.short_hash()}"
    assert (root / clip_relpath(2, 8, 1, 1, 1)).is_file()
    err = capsys.readouterr().err
    assert "Generating the embedded sample" in err and "ready in" in err
    assert ensure_sample(tmp_path / "cache", spec) == root
    assert capsys.readouterr().err == ""  # nothing to say the second time


def test_default_cache_dir_from_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MSA_CACHE", str(tmp_path / "c"))
    assert sample_dir(spec=SampleSpec()).parent == tmp_path / "c"


def _check_learnable(root: Path) -> dict[str, np.ndarray]:
    accs = learnability(root)
    for name, acc in accs.items():
        print(f"{name}: held-out accuracy per fold {np.round(acc, 3)}, mean {acc.mean():.3f}")
    for modality in ("video", "audio"):
        # Clearly above chance (1/8) on actors never seen in training ...
        assert accs[modality].mean() > 0.35, (modality, accs[modality])
        assert accs[modality].min() > 0.2, (modality, accs[modality])
        # ... and not trivially perfect for one modality alone.
        assert accs[modality].mean() < 0.9, (modality, accs[modality])
    return accs


def test_learnable_on_held_out_actors(learn_root: Path):
    _check_learnable(learn_root)


@pytest.mark.slow
def test_default_sample_learnable_on_held_out_actors(tmp_path: Path):
    root = generate_sample(tmp_path / "default", SampleSpec(), progress=False)
    assert len(list(root.glob("Actor_*/*.mp4"))) == 128
    _check_learnable(root)


def _generate_in_child(root: str) -> str:
    return str(
        generate_sample(
            Path(root),
            SampleSpec(actors=1, emotions=(6, 8), statements=1, duration=1.0),
            workers=1,
            progress=False,
        )
    )


def test_two_processes_generating_at_once(tmp_path: Path):
    """Both get the same finished folder; no temporary or stale folders are left behind."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    root = tmp_path / "sample"
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_generate_in_child, [str(root), str(root)]))
    assert results == [str(root), str(root)]
    assert is_complete(root) and len(list(root.glob("Actor_01/*.mp4"))) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["sample"]


# ---------------------------------------------------------------------------------------------
# The command line and the RAVDESS-sized set


def ravdess_speech_clips(actors) -> dict[str, tuple[int, int, int, int, int]]:
    """RAVDESS's audio-video speech set for these actors, spelt out from its rules (neutral at
    normal intensity only, every other emotion at both, 2 statements, 2 repetitions): file name
    -> the labels it stands for, (actor, emotion, intensity, statement, repetition)."""
    return {
        f"Actor_{a:02d}/01-01-{e:02d}-{i:02d}-{s:02d}-{r:02d}-{a:02d}.mp4": (a, e, i, s, r)
        for a in actors
        for e in range(1, 9)
        for i in ((1,) if e == 1 else (1, 2))
        for s in (1, 2)
        for r in (1, 2)
    }


def check_parsed_as_intended(root: Path, clips: dict[str, tuple[int, int, int, int, int]]) -> None:
    """msa's RAVDESS discovery finds exactly these files under ``root``, includes every one as
    an audio-video speech clip, and reads from each the labels it stands for."""
    corpus = read_dataset(root)
    assert corpus.dataset == "ravdess", corpus.evidence
    found = corpus.found
    assert sorted(Path(f.source.path).relative_to(root).as_posix() for f in found) == sorted(clips)
    for item in found:
        actor, emotion, intensity, statement, repetition = clips[
            Path(item.source.path).relative_to(root).as_posix()
        ]
        assert item.included, (item.source.path, item.reason)
        name = ClipName.parse(item.source.filename)
        assert (name.modality, name.vocal_channel) == (1, 1)
        assert item.record.label == EMOTIONS[emotion - 1]
        assert (item.record.speaker, name.intensity, name.statement, name.repetition) == (
            actor,
            intensity,
            statement,
            repetition,
        )


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "msa.data.sample", *args], capture_output=True, text=True, timeout=600
    )


def test_full_spec_is_ravdess_speech_set(tmp_path: Path):
    """Naming only, no encoding: 24 actors x 60 clips named as RAVDESS, each parsed by msa's
    discovery (on 1-byte stand-ins) with the labels its name encodes."""
    spec = SampleSpec.full_ravdess()
    assert len(spec.actors) == 24 and len(spec.clips()) == 1440
    clips = ravdess_speech_clips(range(1, 25))
    assert {clip_relpath(*clip): clip for clip in spec.clips()} == clips
    for actor in spec.actors:
        assert sum(name.startswith(f"Actor_{actor:02d}/") for name in clips) == 60
    for name in clips:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    check_parsed_as_intended(tmp_path, clips)
    # --actors keeps some of them, as a count or as ids.
    assert cli.parse_args(["out", "--full", "--actors", "2"])[1] == SampleSpec.full_ravdess(actors=(1, 2))
    assert cli.parse_args(["out", "--full", "--actors", "3,1"])[1] == SampleSpec.full_ravdess(actors=(1, 3))
    assert cli.parse_args(["out", "--seed", "4"])[1] == SampleSpec(seed=4)


@pytest.mark.parametrize(
    "args",
    [
        ["--actors", "9"],  # the default sample has actors 1..8
        ["--full", "--actors", "1,25"],
        ["--actors", "two"],
        ["--actors", "0"],
        ["--workers", "0"],
        ["--seed", "-1"],
        ["--bogus"],
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path: Path, capsys, args: list[str]):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(tmp_path / "out"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "error:" in err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_foreign_out(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_cli(str(out), "--full", "--actors", "1", "--no-progress")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and str(out) in result.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and sorted(tmp_path.iterdir()) == [out]


def test_cli_writes_then_has_nothing_to_do(tmp_path: Path):
    """The smallest sample the command line writes (1 actor of the default spec, 16 clips)."""
    out = tmp_path / "out"
    out.mkdir()  # an empty OUT is fine
    result = run_cli(str(out), "--actors", "1", "--workers", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.startswith(f"Wrote 16 clips, 1 actor to {out}: ") and "MiB on disk in" in result.stdout
    )
    assert len(result.stdout.splitlines()) == 1 and result.stderr == ""
    assert is_complete(out, SampleSpec(actors=1)) and sorted(tmp_path.iterdir()) == [out]
    stamp = (out / MARKER).stat().st_mtime_ns
    again = run_cli(str(out), "--actors", "1", "--no-progress")
    assert again.returncode == 0 and "nothing to do" in again.stdout and len(again.stdout.splitlines()) == 1
    assert (out / MARKER).stat().st_mtime_ns == stamp
    # A complete sample of another spec is not this one.
    other = run_cli(str(out), "--full", "--actors", "1", "--no-progress")
    assert other.returncode == 2 and "another spec" in other.stderr and len(other.stderr.splitlines()) == 1


@pytest.mark.slow
def test_cli_full_for_two_actors(tmp_path: Path):
    """The RAVDESS-sized set for actors 1-2 through the real command line: 120 clips named as
    RAVDESS, parsed with their labels, decodable; a second run has nothing to do."""
    out = tmp_path / "full"
    result = run_cli(str(out), "--full", "--actors", "2", "--workers", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Wrote 120 clips, 2 actors to {out}: ")
    clips = ravdess_speech_clips((1, 2))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mp4")) == sorted(clips)
    check_parsed_as_intended(out, clips)
    strong = out / clip_relpath(2, 5, 2, 2, 2)
    assert len(decord.VideoReader(str(strong))) == SampleSpec().num_frames
    again = run_cli(str(out), "--full", "--actors", "1,2")
    assert again.returncode == 0 and "nothing to do" in again.stdout

"""msa predict --live: a recording replayed as a stream through a pipe gives the windows file
mode gives; outputs are valid after every window; a slow model skips windows (counted) instead
of falling behind; memory stays flat; Ctrl-C, a stall and a bad source end as documented."""

import csv
import dataclasses
import io
import json
import queue
import signal
import subprocess
import sys
import time
from itertools import count

import numpy as np
import pytest
import torch
from conftest import REPO, tiny_trained_model
from recordings import concatenate_clips, live_command, write_vtt

from msa.data.decode import PrepareParams
from msa.data.sample import SampleSpec, generate_sample
from msa.predict.__main__ import main
from msa.predict.classifier import load_classifier
from msa.predict.live import LiveOptions, LivePass
from msa.predict.live_cues import complete_cues
from msa.predict.live_output import AppendedFile, JsonFile, LiveRow, open_output
from msa.predict.live_source import GridFrame, LiveAudio, Source, SourceInfo, StreamEnd, parse_source
from msa.predict.media import probe
from msa.predict.run import predict_spans
from msa.predict.spans import window_spans
from msa.predict.subtitles import read_subtitles
from msa.predict.timeline import WindowPrediction
from msa.train import save_checkpoint

LABELS = ["neutral", "happy", "angry", "surprised"]
PARAMS = PrepareParams(num_frames=8, image_size=32)
CLIP_FRAMES = 32  # as tests/test_predict.py: clips whose audio is a whole number of milliseconds
WINDOW, HOP = 1.0, 0.5  # s
TOLERANCE = 1e-4

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    spec = SampleSpec(actors=(1,), emotions=(1, 3, 5), statements=1, duration=CLIP_FRAMES / (30000 / 1001))
    root = generate_sample(tmp_path_factory.mktemp("sample") / "data", spec, workers=1, progress=False)
    folder = tmp_path_factory.mktemp("recording")
    cues = concatenate_clips(sorted(root.rglob("*.mp4")), folder / "meeting.mkv")
    return folder / "meeting.mkv", cues, write_vtt(cues, folder / "meeting.vtt")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = tiny_trained_model("multimodal_iter2", len(LABELS))
    with torch.no_grad():
        model.head.weight.mul_(4)
    path = tmp_path_factory.mktemp("checkpoint") / "multimodal.pt"
    return save_checkpoint(path, model, epoch=1, labels=LABELS, preprocessing=dataclasses.asdict(PARAMS))


def test_a_piped_stream_gives_the_windows_file_mode_gives(recording, checkpoint, tmp_path):
    path, _, _ = recording
    # Replayed at 50x: --max-latency keeps every window, however busy the machine.
    process = live_command(
        checkpoint,
        "--window",
        str(WINDOW),
        "--hop",
        str(HOP),
        "--crop",
        "fixed",
        "--max-latency",
        "600",
        recording=path,
    )
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert set(rows[0]) == {
        "start",
        "end",
        "text",
        "top",
        "probability",
        "probabilities",
        "source",
        "latency",
    }
    assert all(row["latency"] >= 0 for row in rows)
    assert "windows written, none skipped; latency p50" in stderr.splitlines()[-1], stderr

    info = probe(path)
    spans = [s for s in window_spans(info.duration, WINDOW, HOP, info.frame_times, PARAMS.num_frames)]
    expected, _ = predict_spans(load_classifier(str(checkpoint)), info, spans, "fixed", steady=True)
    # File mode's last window ends at the recording's end; the stream's windows stay on the hop grid.
    whole = [p for p in expected if (p.start / HOP).is_integer()]
    assert [(r["start"], r["end"]) for r in rows] == [(p.start, p.end) for p in whole]
    for row, prediction in zip(rows, whole, strict=True):
        assert row["source"] == prediction.source == "audio+video"
        got = np.array([row["probabilities"][label] for label in LABELS])
        assert np.abs(got - prediction.probabilities).max() < TOLERANCE + 1e-4  # the line's 4 decimals


def test_live_subtitle_cues_and_an_output_file_valid_after_every_cue(recording, checkpoint, tmp_path):
    path, cues, vtt = recording
    out = tmp_path / "live.vtt"
    process = live_command(checkpoint, "--subtitles-live", str(vtt), "--out", str(out), recording=path)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    written = read_subtitles(out)
    assert [(c.start, c.end) for c in written] == [(c.start, c.end) for c in cues]
    assert all(
        c.text.startswith("[") and c.text.endswith(cue.text) for c, cue in zip(written, cues, strict=True)
    )
    assert f"{len(cues)} cues written" in stderr.splitlines()[-1]


def test_ctrl_c_writes_the_complete_windows_and_exits_130(recording, checkpoint, tmp_path):
    path, _, _ = recording
    out = tmp_path / "live.csv"
    process = live_command(
        checkpoint, "--out", str(out), "--window", "1", "--hop", "0.5", speed=0.25, recording=path
    )
    # A quarter of real time: the 3.3 s stream lasts 13 s, so Ctrl-C comes while it still runs, however
    # long the model took to load while the replay filled the pipe.
    deadline = time.monotonic() + 120
    while len(out.read_text().splitlines() if out.exists() else []) < 3:  # a header and two windows
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    process.replay.wait(timeout=60)
    assert process.returncode == 130, stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0][:6] == ["start", "end", "text", "top", "top_probability", "source"] and len(rows) >= 3
    assert all(len(row) == len(rows[0]) for row in rows)
    assert "windows written" in stderr.splitlines()[-1]


def test_a_stalled_followed_file_stops_with_one_line_and_a_valid_file(recording, checkpoint, tmp_path):
    path, _, _ = recording
    out = tmp_path / "live.json"
    result = subprocess.run(
        [sys.executable, "-m", "msa.predict", str(checkpoint), "--live", str(path), "--follow", "--quiet"]
        + ["--stall-timeout", "2", "--out", str(out), "--window", "1", "--hop", "0.5"]
        + ["--max-latency", "600"],  # the file is there at once: keep every window, however busy the machine
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {path}: no data for 2 s (--stall-timeout); stopping"]
    document = json.loads(out.read_text())
    assert document["labels"] == LABELS and len(document["items"]) >= 5  # every complete window


def test_a_source_that_is_not_media_is_one_line_and_exit_2(checkpoint, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "msa.predict", str(checkpoint), "--live", "-", "--quiet"],
        input=b"not media at all\n" * 100,
        capture_output=True,
        cwd=tmp_path,
        timeout=300,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert [line for line in stderr.splitlines() if "error" in line] == [
        "error: -: cannot be opened (Invalid data found when processing input)"
    ]
    assert result.stdout == b""


@pytest.mark.parametrize(
    "args, message",
    [
        (["--live", "nosuch.mkv", "--follow"], "error: --live nosuch.mkv: no such file"),
        (["--live", "gopher://host/x"], "error: --live gopher://host/x: unknown source"),
        (["--live", "-", "--out", "live.txt"], "error: --out live.txt: unknown extension"),
        (["INPUT.mp4", "--follow"], "error: --follow goes with --live SOURCE"),
        (
            ["--live", "-", "--subtitles-live", "-"],
            "error: --live - and --subtitles-live - cannot both read stdin",
        ),
        (["--live", "-", "INPUT.mp4"], "annotates one stream: give no INPUT with it"),
    ],
)
def test_bad_live_arguments_are_one_line_and_exit_2(args, message, checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        status = main([str(checkpoint), *args, "--quiet"])
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    stderr = capsys.readouterr().err
    assert status == 2, stderr
    assert [line for line in stderr.splitlines() if "error" in line] == [
        next(line for line in stderr.splitlines() if message in line)
    ]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the live pass, in process


class FakeClassifier:
    """A model that sees anything: fixed probabilities, ``seconds`` of work per span."""

    labels = tuple(LABELS)
    params = PARAMS
    uses_video = uses_audio = predicts_without_video = True
    min_audio_samples = 1
    description = "fake"

    def __init__(self, seconds: float = 0.0):
        self.seconds, self.calls = seconds, 0

    def probabilities(self, inputs):
        self.calls += 1
        if self.seconds:
            time.sleep(self.seconds)  # the model's own time, which latency must include
        return np.array([0.7, 0.1, 0.1, 0.1]), len(inputs.frame_keys)


class Items:
    """A source's queue fed by a generator, ``burst`` items per drain (then queue.Empty once)."""

    def __init__(self, items, burst: int):
        self.items, self.burst, self.taken = iter(items), burst, count(1)

    def get(self, timeout=None):
        return next(self.items)

    def get_nowait(self):
        if next(self.taken) % self.burst == 0:
            raise queue.Empty
        try:
            return next(self.items)
        except StopIteration:
            raise queue.Empty from None


class FakeReader:
    source = Source("fake", "stdin", "-")
    info = SourceInfo(True, True, 16_000, "mono", 1, 64, 48)

    def __init__(self, items):
        self.items = items
        self.last_data = time.monotonic()


def synthetic_stream(seconds: float, step: float, arrival):
    """Grid frames and 16 kHz audio for ``seconds``, in 0.1 s chunks, stamped by ``arrival()``."""
    rgb = np.zeros((48, 64, 3), dtype=np.uint8)
    for tenth in range(round(seconds * 10)):
        start, end = tenth / 10, (tenth + 1) / 10
        indices = tuple(j for j in range(int(end / step) + 1) if start <= (j + 0.5) * step < end)
        if indices:
            yield GridFrame(indices, rgb, end, arrival())
        yield LiveAudio(tenth * 1600, np.zeros((1, 1600), dtype=np.float32), arrival())
    yield StreamEnd(arrival())


class Rows:
    def __init__(self):
        self.rows = []

    def write(self, row):
        self.rows.append(row)


def live_pass(seconds, arrival, classifier, burst=1000, max_latency=1.0):
    options = LiveOptions(window=WINDOW, hop=HOP, max_latency=max_latency, crop="fixed")
    step = WINDOW / PARAMS.num_frames
    reader = FakeReader(Items(synthetic_stream(seconds, step, arrival), burst))
    rows = Rows()
    summary = LivePass(classifier, reader, options, rows, note=lambda line: None).run()
    return summary, rows.rows


def test_a_model_slower_than_the_stream_skips_windows_and_says_how_many():
    late = time.monotonic() - 60  # every item arrived a minute ago: every window waited too long
    summary, rows = live_pass(10, lambda: late, FakeClassifier())
    assert summary.skipped == 19 - 1 and [(r.start, r.end) for r in rows] == [(9.0, 10.0)]  # the newest
    assert summary.written == 1 and summary.latencies[0] >= 60


def test_a_model_that_keeps_up_writes_every_window_with_its_latency():
    classifier = FakeClassifier(seconds=0.01)
    summary, rows = live_pass(5, time.monotonic, classifier, burst=5)
    assert [(r.start, r.end) for r in rows] == [(k * HOP, k * HOP + WINDOW) for k in range(9)]
    assert summary.skipped == 0 and classifier.calls == 9
    assert all(0.01 <= latency < 5 for latency in summary.latencies)
    assert set(summary.latency_stats()) == {"p50", "p95", "max"}


def test_memory_does_not_grow_with_the_stream():
    held = {}
    for seconds in (20, 200):
        summary, rows = live_pass(seconds, time.monotonic, FakeClassifier(), burst=3)
        assert len(rows) == round((seconds - WINDOW) / HOP) + 1
        held[seconds] = summary.max_frames_held
    assert held[20] == held[200] <= 2 * PARAMS.num_frames, held


# ------------------------------------------------------------------ pieces


def test_sources_are_parsed_by_kind(tmp_path):
    growing = tmp_path / "growing.mkv"
    growing.write_bytes(b"")
    assert parse_source("-", False).kind == "stdin"
    assert parse_source("rtsp://camera.local/stream", False).kind == "url"
    assert parse_source("srt://0.0.0.0:9000?mode=listener", False).kind == "url"
    device = parse_source("v4l2:/dev/video0", False)
    assert (device.kind, device.format, device.target) == ("device", "v4l2", "/dev/video0")
    assert parse_source("pulse:default", False).format == "pulse"
    assert parse_source(str(growing), True).kind == "file"
    with pytest.raises(ValueError, match="give --follow"):
        parse_source(str(growing), False)


def test_cues_are_read_once_their_block_is_complete():
    text = "WEBVTT\n\n00:01.000 --> 00:02.000\nhello\n\n00:02.500 --> 00:03.000\nhal"
    assert [(c.start, c.text) for c in complete_cues(text, "x")] == [(1.0, "hello")]
    assert [c.text for c in complete_cues(text + "f\n\n", "x")] == ["hello", "half"]
    assert complete_cues("WEBVTT\n", "x") == []


@pytest.mark.parametrize("extension", [".vtt", ".srt", ".csv", ".json"])
def test_an_output_file_is_valid_after_every_window(extension, tmp_path):
    path = tmp_path / f"live{extension}"
    output = open_output(LABELS, str(path))
    assert isinstance(output, JsonFile if extension == ".json" else AppendedFile)
    for k in range(3):
        prediction = WindowPrediction(k * HOP, k * HOP + WINDOW, (0.1, 0.6, 0.2, 0.1), "audio")
        output.write(LiveRow(prediction.start, prediction.end, None, prediction, 0.1))
        if extension in (".vtt", ".srt"):
            written = read_subtitles(path)
            assert [(c.start, c.end) for c in written] == [(0.0, 1.0), (1.0, 1.5), (1.5, 2.0)][: k + 1]
            assert {c.text for c in written} == {"[happy 0.60]"}
        elif extension == ".csv":
            assert len(list(csv.reader(io.StringIO(path.read_text())))) == k + 2
        else:
            assert [item["top"] for item in json.loads(path.read_text())["items"]] == ["happy"] * (k + 1)
    output.close()


def test_the_warm_up_leaves_nothing_behind(checkpoint):
    classifier = load_classifier(str(checkpoint))
    classifier.warm_up(WINDOW)
    assert len(classifier.frame_cache) == 0, "no made-up frame is kept for a real window"

"""python -m msa.predict on recordings made of sample clips: a cue over a clip gives what the
model gives on the clip as prepared for training; windows share their frames; ONNX models run
without the training code; bad inputs fail in one line; memory does not grow with the length."""

import dataclasses
import json
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
from conftest import REAL_CLIPS, REPO, tiny_trained_model
from media import OFF_CENTRE, write_clip, write_off_centre_clip
from recordings import concatenate_clips, live_command, write_vtt

from msa.data.decode import PrepareParams, decode_clip
from msa.data.faces import find_face
from msa.data.sample import SampleSpec, generate_sample
from msa.export.__main__ import main as export_main
from msa.predict.__main__ import main
from msa.predict.classifier import TorchClassifier, load_classifier
from msa.predict.media import probe
from msa.predict.run import AudioBuffer, AudioChunk, predict_spans, steady_box
from msa.predict.spans import cue_frames, cue_spans, grid_frames, window_spans
from msa.predict.subtitles import Cue, read_subtitles
from msa.train import save_checkpoint

LABELS = ["neutral", "happy", "angry", "surprised"]
EMOTIONS = (1, 3, 5, 8)  # their RAVDESS codes
PARAMS = PrepareParams(num_frames=8, image_size=32)
CLIP_FRAMES = 32  # 1.068 s at 29.97 fps: 51 AAC frames of audio, 1.088 s, a whole number of ms
MODELS = ("video_iter3", "audio_last2", "multimodal_iter2")
TOLERANCE = 1e-4  # the issue's: a cue's probabilities vs the model's on the prepared clip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    spec = SampleSpec(actors=(1,), emotions=EMOTIONS, statements=1, duration=CLIP_FRAMES / (30000 / 1001))
    root = generate_sample(tmp_path_factory.mktemp("sample") / "data", spec, workers=1, progress=False)
    return sorted(root.rglob("*.mp4"))


@pytest.fixture(scope="module")
def recording(clips, tmp_path_factory):
    folder = tmp_path_factory.mktemp("recording")
    cues = concatenate_clips(clips, folder / "meeting.mkv")
    return folder / "meeting.mkv", cues, write_vtt(cues, folder / "meeting.vtt")


def tiny_checkpoint(folder, name):
    model = tiny_trained_model(name, len(LABELS))
    with torch.no_grad():  # confident enough that a wrong input moves the probabilities
        model.head.weight.mul_(4)
    return save_checkpoint(
        folder / f"{name}.pt", model, epoch=1, labels=LABELS, preprocessing=dataclasses.asdict(PARAMS)
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    return {name: tiny_checkpoint(folder, name) for name in MODELS}


def training_probabilities(classifier: TorchClassifier, clip) -> np.ndarray:
    """The model's output on the clip as training prepares it (msa.data.decode.decode_clip)."""
    video, audio = decode_clip(str(clip), PARAMS)
    batch = {
        "video": torch.from_numpy(video).permute(0, 3, 1, 2)[None],
        "video_mask": torch.ones(1, len(video), dtype=torch.bool),
        "audio": torch.from_numpy(audio)[None],
        "audio_mask": torch.ones(1, len(audio), dtype=torch.bool),
    }
    with torch.no_grad():
        logits = classifier.model(**{key: batch[key] for key in classifier.model.input_keys})
    return torch.softmax(logits.double(), dim=-1)[0].numpy()


def cue_predictions(classifier, path, cues, crop="fixed"):
    info = probe(path)
    return predict_spans(classifier, info, cue_spans(cues, info.frame_times, PARAMS.num_frames), crop)


@pytest.mark.parametrize("name", MODELS)
def test_a_cue_over_a_clip_gives_the_training_output(name, checkpoints, recording, clips):
    path, cues, vtt = recording
    classifier = load_classifier(str(checkpoints[name]))
    predictions, stats = cue_predictions(classifier, path, read_subtitles(vtt))
    source = {"video_iter3": "video", "audio_last2": "audio", "multimodal_iter2": "audio+video"}[name]
    assert [p.source for p in predictions] == [source] * len(clips)
    expected = [training_probabilities(classifier, clip) for clip in clips]
    for prediction, clip_probabilities in zip(predictions, expected, strict=True):
        assert np.abs(np.array(prediction.probabilities) - clip_probabilities).max() < TOLERANCE
    # The tolerance means something: cues 0.1 s late (3 frames, 1,600 samples) are far off.
    late = [Cue(c.start + 0.1, min(c.end + 0.1, 4.388), c.text) for c in cues]
    shifted, _ = cue_predictions(classifier, path, late)
    assert (
        max(np.abs(np.array(p.probabilities) - e).max() for p, e in zip(shifted, expected)) > 10 * TOLERANCE
    )
    if "video" in name:
        assert stats.boxes == [(22, 359, 562)] * len(clips), "the fixed RAVDESS crop of 1280x720"


def test_windows_share_frames_and_equal_windows_alone(checkpoints, recording):
    path, _, _ = recording
    info = probe(path)
    classifier = load_classifier(str(checkpoints["multimodal_iter2"]))
    spans = window_spans(info.duration, 1.0, 0.25, info.frame_times, PARAMS.num_frames)
    predictions, stats = predict_spans(classifier, info, spans, "fixed")
    assert len(spans) == 15 and all(len(span.frames) == PARAMS.num_frames for span in spans)
    unique = {index for span in spans for index in span.frames}
    assert stats.frames_embedded == len(unique) < len(spans) * PARAMS.num_frames / 3, (
        "each frame embedded once, however many windows show it"
    )
    for span, shared in list(zip(spans, predictions))[::4]:
        alone = load_classifier(str(checkpoints["multimodal_iter2"]))
        (prediction,), _ = predict_spans(alone, info, [span], "fixed")
        assert np.abs(np.array(prediction.probabilities) - shared.probabilities).max() < 1e-6


def run_command(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "msa.predict", *map(str, args), "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_command_annotates_subtitles_and_draws_the_timeline(checkpoints, recording, tmp_path, capsys):
    path, cues, vtt = recording
    model = checkpoints["multimodal_iter2"]
    out = tmp_path / "annotated.vtt"
    result = run_command(model, path, "--subtitles", vtt, "--out", out, "--crop", "fixed")
    assert result.returncode == 0, result.stderr
    annotated = read_subtitles(out)
    assert [(c.start, c.end) for c in annotated] == [(c.start, c.end) for c in cues]
    for cue, original in zip(annotated, cues, strict=True):
        tag, text = cue.text.split("] ", 1)
        label, probability = tag[1:].split()
        assert text == original.text and label in LABELS and 0.25 <= float(probability) <= 1
    assert "4 cues (4 audio+video)" in result.stdout

    table = tmp_path / "windows.json"
    plot = tmp_path / "windows.png"
    flags = ["--out", table, "--plot", plot, "--window", "1.5", "--hop", "0.5", "--quiet"]
    assert main([str(model), str(path), *map(str, flags)]) == 0  # in this process: quicker
    items = json.loads(table.read_text())["items"]
    assert [round(item["start"], 3) for item in items] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 2.9]
    assert all(abs(sum(item["probabilities"].values()) - 1) < 1e-3 for item in items if item["top"])
    assert (
        plot.stat().st_size > 10_000
        and "crop: face (not a clip of the dataset the fixed crop is framed for)" in capsys.readouterr().err
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.vtt", "windows.json", "windows.png"]


@pytest.fixture(scope="module")
def onnx_model(checkpoints, tmp_path_factory):
    """The multimodal checkpoint exported in this process (the command line is msa.export's test)."""
    out = tmp_path_factory.mktemp("onnx") / "multimodal.onnx"
    assert export_main([str(checkpoints["multimodal_iter2"]), "--format", "onnx", "--out", str(out)]) == 0
    return out


def test_an_onnx_model_predicts_without_the_training_code(onnx_model, checkpoints, recording, tmp_path):
    path, _, vtt = recording
    out = tmp_path / "onnx.csv"
    code = (
        "import sys; from msa.predict.__main__ import main; "
        f"code = main([{str(onnx_model)!r}, {str(path)!r}, '--subtitles', {str(vtt)!r}, "
        f"'--out', {str(out)!r}, '--crop', 'fixed', '--quiet']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers' "
        "or m.startswith(('msa.models', 'msa.train', 'msa.trial', 'msa.export')))); sys.exit(code)"
    )
    # Of msa.export only the package (whose names load on use) and its torch-free metadata module.
    allowed = "['msa.export', 'msa.export.metadata']"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == allowed
    classifier = load_classifier(str(checkpoints["multimodal_iter2"]))
    expected, _ = cue_predictions(classifier, path, read_subtitles(vtt))
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    for row, prediction in zip(rows, expected, strict=True):
        assert row[5] == "audio+video"
        assert np.abs(np.array(row[6:], dtype=float) - prediction.probabilities).max() < TOLERANCE

    # Live, the exported model gives what it gives on the finished file.
    process = live_command(
        onnx_model, "--crop", "fixed", "--window", "1", "--hop", "0.5", "--max-latency", "600", recording=path
    )  # replayed at 50x: no window may be skipped, however busy the machine
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    live = [json.loads(line) for line in stdout.splitlines()]
    info = probe(path)
    spans = [
        s
        for s in window_spans(info.duration, 1.0, 0.5, info.frame_times, PARAMS.num_frames)
        if (s.start / 0.5).is_integer()
    ]
    from_file, _ = predict_spans(load_classifier(str(onnx_model)), info, spans, "fixed", steady=True)
    assert [(row["start"], row["source"]) for row in live] == [(p.start, p.source) for p in from_file]
    for row, prediction in zip(live, from_file, strict=True):
        assert np.abs(np.array(list(row["probabilities"].values())) - prediction.probabilities).max() < 2e-4

    # Without a face the exported model, like the checkpoint, predicts from the audio.
    grey = write_clip(tmp_path / "grey.mp4", num_frames=90, width=128, height=96)
    info = probe(grey)
    spans = window_spans(info.duration, 2.0, 1.0, info.frame_times, PARAMS.num_frames)
    from_onnx, _ = predict_spans(load_classifier(str(onnx_model)), info, spans, "face")
    from_checkpoint, _ = predict_spans(classifier, info, spans, "face")
    assert [p.source for p in from_onnx] == [p.source for p in from_checkpoint] == ["audio"] * 3
    for onnx_prediction, prediction in zip(from_onnx, from_checkpoint, strict=True):
        assert np.abs(np.array(onnx_prediction.probabilities) - prediction.probabilities).max() < TOLERANCE


def write_wav(path, seconds: float) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16_000, layout="mono")
        t = np.arange(round(seconds * 16_000)) / 16_000
        samples = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 16_000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_audio_files_and_windows_without_a_face(checkpoints, tmp_path):
    speech = tmp_path / "speech.wav"
    write_wav(speech, 4.0)
    classifier = load_classifier(str(checkpoints["audio_last2"]))
    info = probe(speech)
    predictions, _ = predict_spans(classifier, info, window_spans(info.duration, 3.0, 1.0, None, 8), "face")
    assert [p.source for p in predictions] == ["audio", "audio"]

    grey = write_clip(tmp_path / "grey.mp4", num_frames=90, width=128, height=96)  # no face anywhere
    info = probe(grey)
    spans = window_spans(info.duration, 2.0, 1.0, info.frame_times, PARAMS.num_frames)
    for name, source in (("video_iter3", "no face"), ("multimodal_iter2", "audio")):
        predictions, _ = predict_spans(load_classifier(str(checkpoints[name])), info, spans, "face")
        assert {p.source for p in predictions} == {source}, name


@pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason="../shared/ravdess-real is not present")
def test_the_face_is_found_off_centre_in_every_window(checkpoints, tmp_path):
    clip = REAL_CLIPS / "01-01-01-01-01-01-09.mp4"
    with av.open(str(clip)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    moved = tmp_path / "moved.mp4"
    write_off_centre_clip(moved, frames)
    left, top, scale = OFF_CENTRE
    face = find_face(frames[:: len(frames) // 16])
    face_box = (left + scale * face.left, top + scale * face.top, scale * face.width, scale * face.height)
    info = probe(moved)
    spans = window_spans(info.duration, 1.0, 0.5, info.frame_times, PARAMS.num_frames)
    predictions, stats = predict_spans(load_classifier(str(checkpoints["video_iter3"])), info, spans, "face")
    assert len(predictions) == 6 and {p.source for p in predictions} == {"video"}
    for crop_top, crop_left, side in stats.boxes:
        assert crop_left <= face_box[0] and face_box[0] + face_box[2] <= crop_left + side
        assert crop_top <= face_box[1] and face_box[1] + face_box[3] <= crop_top + side
        assert side < 1.6 * face_box[2], "a crop around the face, not the frame"


def test_memory_does_not_grow_with_the_recording(checkpoints, tmp_path):
    classifier = load_classifier(str(checkpoints["video_iter3"]))
    held = {}
    for seconds in (10, 40):
        path = write_clip(tmp_path / f"{seconds}.mp4", num_frames=round(seconds * 29.97), width=64, height=48)
        info = probe(path)
        spans = window_spans(info.duration, 3.0, 1.0, info.frame_times, PARAMS.num_frames)
        _, stats = predict_spans(classifier, info, spans, "fixed")
        held[seconds] = stats.max_frames_held
    assert held[10] == held[40] <= PARAMS.num_frames * 4, held


@pytest.mark.parametrize(
    "case, message",
    [
        ("not media", "not a readable media file"),
        ("missing", "no such file"),
        ("no audio", "no audio track, and the model classifies audio"),
        ("audio only", "no video track, and the model classifies video only"),
        ("subtitle syntax", "broken.vtt line 3: "),
        ("cue past the end", "lies past the end of the media"),
        ("missing subtitles", "--subtitles"),
        ("plot extension", "--plot"),
        ("output extension", "unknown extension"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(case, message, checkpoints, recording, tmp_path, capsys):
    path, _, vtt = recording
    model, extra = checkpoints["multimodal_iter2"], []
    out = tmp_path / "out" / "annotated.vtt"
    out.parent.mkdir()
    if case == "not media":
        path = tmp_path / "notes.mp4"
        path.write_text("minutes of the meeting\n")
    elif case == "missing":
        path = tmp_path / "absent.mp4"
    elif case == "no audio":
        path = write_clip(tmp_path / "silent.mp4", num_frames=30, audio_seconds=0)
    elif case == "audio only":
        path, model = tmp_path / "speech.wav", checkpoints["video_iter3"]
        write_wav(path, 2.0)
    elif case == "subtitle syntax":
        broken = tmp_path / "broken.vtt"
        broken.write_text("WEBVTT\n\n1\n00:00:01.000 -> 00:00:02.000\nHello\n")
        extra = ["--subtitles", broken]
    elif case == "cue past the end":
        extra = ["--subtitles", write_vtt([Cue(4.0, 9.0, "after the end")], tmp_path / "late.vtt")]
    elif case == "output extension":
        out = tmp_path / "out" / "annotated.txt"
    elif case == "missing subtitles":
        extra = ["--subtitles", tmp_path / "absent.vtt"]
    elif case == "plot extension":
        extra = ["--plot", tmp_path / "out" / "timeline.jpg"]
    code = main([str(model), str(path), "--out", str(out), "--quiet", *map(str, extra)])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and error.startswith("error: ") and message in error, error
    assert not any(out.parent.iterdir()), "nothing written"


def test_spans_pick_frames_as_training_does():
    times = np.arange(100) / 29.97
    first = int(np.searchsorted(times, 1.0))
    assert cue_frames(times, 1.0, 2.0, 8) == tuple(first + i for i in (1, 5, 9, 13, 16, 20, 24, 28))
    assert cue_frames(times, 1.0, 1.01, 8) == (30,), "a cue between two frames: the one on screen"
    assert cue_frames(None, 0.0, 1.0, 8) == ()
    windows = [grid_frames(times, start, start + 1.5, 1.5 / 8) for start in (0.0, 0.75, 1.6)]
    assert [len(w) for w in windows] == [8, 8, 8]
    assert set(windows[0][4:]) == set(windows[1][:4]), "overlapping windows show the same frames"


def test_steady_box_and_audio_buffer():
    assert steady_box(None, (10, 20, 100)) == (10, 20, 100)
    assert steady_box((10, 20, 100), (13, 16, 104)) == (10, 20, 100), "moved by 4 px of 100: kept"
    assert steady_box((10, 20, 100), (10, 30, 100)) == (10, 30, 100)

    buffer, rate = AudioBuffer(1), 1000
    ones = np.ones((1, 100), dtype=np.float32)
    buffer.add(AudioChunk(0, ones), rate)
    buffer.add(AudioChunk(110, 2 * ones), rate)  # 10 samples late: timestamp rounding, contiguous
    buffer.add(AudioChunk(500, 3 * ones), rate)  # 300 samples late: a gap of silence
    assert buffer.end == 600
    assert buffer.span(95, 105).tolist() == [[1] * 5 + [2] * 5]
    assert buffer.span(495, 505).tolist() == [[0] * 5 + [3] * 5]
    buffer.drop_before(300)
    assert buffer.origin == 300 and buffer.span(0, 1000).shape == (1, 300)

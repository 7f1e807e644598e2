"""Every dataset adapter on generated files (names, labels, speakers, genders, spans, every
refusal), detection, --classes, and the real RAVDESS speech in ../shared (skipped without it)."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_SPEECH

from msa.data.datasets import DatasetError, read_dataset
from msa.data.decode import PrepareParams
from msa.data.experiment import find_data, prepare_experiment_data, prepare_locally, split_data
from msa.data.labels import class_map
from msa.data.prepare import prepare
from msa.data.sample.layouts import write_layout
from msa.data.splits import SplitConfig, SplitError

PARAMS = PrepareParams(num_frames=4, image_size=16)
TINY_LABELS = ("happy", "sad", "angry", "disgust")  # the tiny sample's emotions


@pytest.fixture(scope="module")
def layouts(tiny_sample, tmp_path_factory) -> dict[str, Path]:
    """The tiny sample (4 actors x 4 emotions, 1 s) under every layout it writes."""
    root = tmp_path_factory.mktemp("layouts")
    written = {"ravdess": tiny_sample}
    for layout in ("ravdess-audio", "crema-d", "manifest", "audiofolder", "folders"):
        written[layout] = write_layout(layout, tiny_sample, root / layout)
    return written


@pytest.mark.parametrize(
    "layout, dataset, speakers, genders, has_video",
    [
        ("ravdess", "ravdess", [1, 2, 3, 4], {1: "male", 2: "female"}, True),
        ("ravdess-audio", "ravdess-audio", [1, 2, 3, 4], {3: "male", 4: "female"}, False),
        ("crema-d", "crema-d", [1001, 1002, 1003, 1004], {1001: "male", 1002: "female"}, True),
        (
            "manifest",
            "manifest",
            ["spk01", "spk02", "spk03", "spk04"],
            {"spk01": "male", "spk04": "female"},
            False,
        ),
        ("audiofolder", "manifest", ["actor01", "actor02", "actor03", "actor04"], {"actor01": None}, False),
        ("folders", "folders", [], {}, False),
    ],
)
def test_every_layout_is_detected_with_its_labels_speakers_and_genders(
    layouts, layout, dataset, speakers, genders, has_video
):
    root = layouts[layout] / "labels.csv" if layout == "manifest" else layouts[layout]
    corpus = read_dataset(root)
    assert corpus.dataset == dataset, corpus.evidence
    assert len(corpus.included) == 16 and corpus.has_video == has_video
    assert corpus.speakers == speakers and corpus.has_speakers == bool(speakers)
    assert set(corpus.labels) >= set(TINY_LABELS)
    assert Counter(item.record.label for item in corpus.included) == dict.fromkeys(TINY_LABELS, 4)
    by_speaker = {item.record.speaker: item.record.gender for item in corpus.included}
    for speaker, gender in genders.items():
        assert by_speaker[speaker] == gender
    assert corpus.dataset in corpus.describe() and "16" in corpus.describe()


def test_detection_prints_its_evidence(layouts):
    assert (
        read_dataset(layouts["ravdess-audio"]).evidence
        == "detected from 16 of 16 files named 03-01-EE-II-SS-RR-AA"
    )
    crema = read_dataset(layouts["crema-d"])
    assert crema.evidence == "detected from 16 of 17 files named 1001_DFA_ANG_XX"  # + VideoDemographics.csv
    assert read_dataset(layouts["folders"]).evidence == "detected: 16 media files in 4 label folders"


def test_crema_d_without_demographics_has_unknown_genders(layouts, tmp_path):
    root = shutil.copytree(layouts["crema-d"], tmp_path / "crema")
    (root / "VideoDemographics.csv").unlink()
    corpus = read_dataset(root)
    assert {item.record.gender for item in corpus.included} == {None}
    assert any("genders unknown" in note for note in corpus.notes)


def test_crema_d_audio_and_video_copies_of_a_clip_are_one_clip(layouts, tmp_path):
    root = shutil.copytree(layouts["crema-d"], tmp_path / "crema")
    wav = next(layouts["ravdess-audio"].rglob("*.wav"))
    flv = next((root / "VideoFlash").glob("*.flv"))
    (root / "AudioWAV").mkdir()
    shutil.copy(wav, root / "AudioWAV" / flv.with_suffix(".wav").name)
    corpus = read_dataset(root)
    copies = [item for item in corpus.found if item.source.filename.startswith(flv.stem)]
    assert sorted((item.source.filename, item.reason) for item in copies) == [
        (flv.name, None),
        (flv.with_suffix(".wav").name, "duplicate"),
    ]


def test_mixed_layouts_are_refused_naming_both(layouts, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(layouts["ravdess"] / "Actor_01", root / "video")
    shutil.copytree(layouts["ravdess-audio"] / "Actor_02", root / "audio")
    with pytest.raises(DatasetError, match=r"mixed data: 4 named like ravdess .* 4 named like ravdess-audio"):
        read_dataset(root)
    assert read_dataset(root, "ravdess-audio").speakers == [2]  # --dataset chooses
    skipped = {item.reason for item in read_dataset(root, "ravdess-audio").found if not item.included}
    assert skipped == {"audio-video (read it with --dataset ravdess)"}


def test_a_folder_of_nothing_known_is_named(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    with pytest.raises(DatasetError, match="cannot tell the dataset: 1 files, 1 of them media"):
        read_dataset(tmp_path)
    with pytest.raises(DatasetError, match="--dataset nope"):
        read_dataset(tmp_path, "nope")


def test_the_same_clip_through_ravdess_and_a_manifest_is_one_prepared_entry(layouts, tmp_path):
    clips = sorted(layouts["ravdess"].rglob("*.mp4"))[:3]
    manifest = tmp_path / "labels.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "speaker"])
        for index, clip in enumerate(clips):
            writer.writerow([str(clip), "happy", index])
    cache = tmp_path / "cache"
    by_manifest = prepare(manifest, cache, PARAMS, workers=1, progress=False)
    by_ravdess = prepare(layouts["ravdess"], cache, PARAMS, workers=1, progress=False)
    assert by_manifest.decoded == 3 and by_ravdess.decoded == 16 - 3, "the manifest's entries were reused"
    entries = {clip.display: clip.entry for clip in by_ravdess.clips}
    for clip in by_manifest.clips:
        assert clip.entry == entries[clip.display]
        assert (clip.entry / "video.npy").exists()


def test_manifest_spans_give_the_clips_cut_from_a_long_recording(layouts, tmp_path):
    """labels.csv's spans over one recording per speaker: each prepared span equals the same
    clip prepared from its own file (the ravdess-audio layout's wav), sample for sample."""
    cache = tmp_path / "cache"
    spans = prepare(layouts["manifest"] / "labels.csv", cache, PARAMS, workers=1, progress=False)
    whole = prepare(layouts["ravdess-audio"], cache, PARAMS, workers=1, progress=False)
    assert len(spans.clips) == len(whole.clips) == 16
    assert all(clip.record.span is not None and "@" in clip.display for clip in spans.clips)
    for cut, own in zip(spans.clips, whole.clips, strict=True):  # both in the sample's clip order
        assert cut.load()[0] is None and own.load()[0] is None  # audio files: no frames
        np.testing.assert_allclose(cut.load()[1], own.load()[1], atol=1e-6)


def write_manifest(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    "header, rows, message",
    [
        (["path", "label", "speaker", "mood"], [["a.wav", "happy", "1", "x"]], "unknown column 'mood'"),
        (["path", "label"], [["a.wav", "happy"]], "no 'speaker' column"),
        (["path", "label", "speaker", "start"], [["a.wav", "happy", "1", "0"]], "both a start and an end"),
        (["path", "label", "speaker"], [["missing.wav", "happy", "1"]], "line 2: no such file missing.wav"),
        (
            ["path", "label", "speaker"],
            [["a.wav", "happy", "1"], ["a.wav", "sad", "2"]],
            "line 3: duplicate of line 2",
        ),
        (
            ["path", "label", "speaker", "start", "end"],
            [["a.wav", "happy", "1", "0.5", "0.5"]],
            "start 0.5 >= end 0.5",
        ),
        (
            ["path", "label", "speaker", "start", "end"],
            [["a.wav", "happy", "1", "0", "9"]],
            "ends past the end of a.wav",
        ),
        (
            ["path", "label", "speaker", "start", "end"],
            [["a.wav", "happy", "1", "x", "1"]],
            "must be seconds",
        ),
        (["path", "label", "speaker"], [["a.wav", "", "1"]], "line 2: empty label"),
        (["path", "label", "speaker"], [["a.wav", "happy", ""]], "line 2: empty speaker"),
        (["path", "label", "speaker"], [], "empty"),
    ],
)
def test_bad_manifests_are_one_line_naming_the_file_and_row(layouts, tmp_path, header, rows, message):
    shutil.copy(next(layouts["folders"].rglob("*.wav")), tmp_path / "a.wav")
    manifest = write_manifest(tmp_path / "labels.csv", header, rows)
    with pytest.raises(DatasetError, match=message) as error:
        read_dataset(manifest)
    assert str(manifest) in str(error.value) and "\n" not in str(error.value)


def test_a_span_may_end_at_the_file_end_within_its_rounding(layouts, tmp_path):
    shutil.copy(next(layouts["folders"].rglob("*.wav")), tmp_path / "a.wav")  # 1 s
    rows = [["a.wav", "happy", "1", "0", "1.03"], ["a.wav", "sad", "1", "0.2", "0.6"]]
    manifest = write_manifest(tmp_path / "labels.csv", ["path", "label", "speaker", "start", "end"], rows)
    assert [item.record.span for item in read_dataset(manifest).found] == [(0.0, 1.03), (0.2, 0.6)]


def test_hugging_face_metadata_needs_file_name_and_a_label(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    write_manifest(tmp_path / "metadata.csv", ["file_name", "transcription"], [["a.wav", "hello"]])
    with pytest.raises(DatasetError, match="no label column"):
        read_dataset(tmp_path)
    write_manifest(
        tmp_path / "metadata.csv", ["file_name", "label", "transcription"], [["a.wav", "sad", "hi"]]
    )
    corpus = read_dataset(tmp_path)  # other columns are the dataset's own features: ignored
    assert corpus.dataset == "manifest" and not corpus.has_speakers


def test_label_folders_refuse_a_speaker_split_unless_random(layouts, tmp_path):
    found = find_data(layouts["folders"], tmp_path / "cache", PARAMS)
    decoded, failed = prepare_locally(found, progress=False)
    with pytest.raises(SplitError, match="names no speakers.*--split random.*95.8 %"):
        split_data(found, decoded, failed, "all", SplitConfig())
    with pytest.warns(UserWarning, match="leaks speakers"):
        data, _ = split_data(found, decoded, failed, "all", SplitConfig("random"))
    assert sum(len(items) for items in data.parts.values()) == 16 and data.actors["test"] == []


def test_classes_subset_mapping_and_presets(layouts, tmp_path):
    cache = tmp_path / "cache"

    def classes_of(spec):
        data, _ = prepare_experiment_data(
            layouts["crema-d"], cache, spec, SplitConfig(), PARAMS, progress=False
        )
        labels = Counter(item.record.label for items in data.parts.values() for item in items)
        return data.labels, dict(labels)

    assert classes_of("all") == (("angry", "disgust", "happy", "sad"), dict.fromkeys(TINY_LABELS, 4))
    assert classes_of("sad,happy") == (("sad", "happy"), {"sad": 4, "happy": 4})
    mapping = {"negative": ["angry", "sad", "disgust"], "positive": "happy"}
    assert classes_of(json.dumps(mapping)) == (("negative", "positive"), {"negative": 12, "positive": 4})
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    assert classes_of(str(tmp_path / "map.json"))[0] == ("negative", "positive")
    with pytest.raises(DatasetError, match="unknown label 'calm'; crema-d has angry, disgust, happy, sad"):
        classes_of("sad,calm")
    with pytest.raises(DatasetError, match="seed4: neither a label of crema-d"):
        classes_of("seed4")  # RAVDESS's preset


def test_class_map_rules():
    present = ("neutral", "happy", "sad", "angry")
    presets = {"seed4": ("sad", "happy", "disgust", "angry")}
    with pytest.raises(DatasetError, match="unknown label 'disgust'"):  # a preset's label the data lacks
        class_map("seed4", present, presets, "ravdess")
    with pytest.raises(DatasetError, match="'sad' is in both 'a' and 'b'"):
        class_map('{"a": ["sad"], "b": ["sad", "happy"]}', present)
    with pytest.raises(DatasetError, match="at least 2 classes"):
        class_map("happy", present)
    with pytest.raises(DatasetError, match="not valid JSON"):
        class_map("{happy", present)
    assert class_map("all", present).classes == present
    assert class_map("happy, sad", present).class_of("angry") is None


def test_an_audio_only_corpus_trains_no_video_space(layouts, tmp_path):
    from msa.tune.inputs import check_space_fits_data
    from msa.tune.options import UsageError

    found = find_data(layouts["ravdess-audio"], tmp_path / "cache", PARAMS)
    check_space_fits_data("audio_wav2vec", found)
    for space in ("video_transformer", "multimodal"):
        with pytest.raises(UsageError, match=f"--space {space} needs video, but --data .* has no video"):
            check_space_fits_data(space, found)


@pytest.mark.skipif(not REAL_SPEECH.is_dir(), reason="../shared/ravdess-speech is absent (a user's clone)")
def test_real_ravdess_speech_is_detected_and_labelled():
    corpus = read_dataset(REAL_SPEECH)
    assert corpus.dataset == "ravdess-audio" and not corpus.has_video
    assert len(corpus.included) == 480 and corpus.speakers == list(range(1, 9))
    assert [item.source.filename for item in corpus.found if not item.included] == ["README.md"]
    assert Counter(item.record.speaker for item in corpus.included) == dict.fromkeys(range(1, 9), 60)
    labels = Counter(item.record.label for item in corpus.included)
    assert labels == {"neutral": 32, **dict.fromkeys(corpus.labels[1:], 64)}  # neutral: normal intensity only
    genders = {item.record.speaker: item.record.gender for item in corpus.included}
    assert genders == {a: "male" if a % 2 else "female" for a in range(1, 9)}
    for item in corpus.included:
        fields = item.source.filename.split(".")[0].split("-")
        assert (
            corpus.labels[int(fields[2]) - 1] == item.record.label and int(fields[6]) == item.record.speaker
        )


def test_the_audio_only_zip_as_distributed_is_read_in_place(layouts, tmp_path):
    """Audio_Speech_Actors_01-24.zip holds Actor_XX/03-01-...wav: read by member, decoded from
    a copy that keeps the member's extension."""
    import zipfile

    root = tmp_path / "download"
    root.mkdir()
    with zipfile.ZipFile(root / "Audio_Speech_Actors_01-24.zip", "w") as archive:
        for wav in sorted(layouts["ravdess-audio"].rglob("*.wav")):
            archive.write(wav, wav.relative_to(layouts["ravdess-audio"]).as_posix())
    report = prepare(root, tmp_path / "cache", PARAMS, workers=1, progress=False)
    assert report.corpus.dataset == "ravdess-audio" and len(report.clips) == 16 and not report.failed
    assert all("::" in clip.display and clip.load()[0] is None for clip in report.clips)
    own = prepare(layouts["ravdess-audio"], tmp_path / "cache", PARAMS, workers=1, progress=False)
    np.testing.assert_array_equal(report.clips[0].load()[1], own.clips[0].load()[1])


def test_a_crema_d_demographics_table_without_its_columns_is_named(layouts, tmp_path):
    root = shutil.copytree(layouts["crema-d"], tmp_path / "crema")
    (root / "VideoDemographics.csv").write_text("Speaker,Gender\n1001,Male\n")
    with pytest.raises(DatasetError, match=r"VideoDemographics.csv: expected columns ActorID and Sex"):
        read_dataset(root)

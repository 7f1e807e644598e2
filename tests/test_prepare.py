import csv
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from media import ravdess_name, write_clip

from msa.data import prepare as prepare_module
from msa.data.datasets import DatasetError
from msa.data.decode import PrepareParams
from msa.data.prepare import NoUsableClipsError, prepare
from msa.prepare import main

PARAMS = PrepareParams(num_frames=4, image_size=16)


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    for actor in (1, 2):
        for emotion in (1, 3):
            write_clip(root / f"Actor_{actor:02d}" / ravdess_name(emotion, actor), num_frames=8)
    with zipfile.ZipFile(root / "Video_Speech_Actor_03.zip", "w") as archive:
        archive.write(root / "Actor_01" / ravdess_name(1, 1), f"Actor_03/{ravdess_name(5, 3)}")
    (root / "Actor_01" / ravdess_name(4, 1)).write_bytes(b"\1" * 500)  # corrupt
    write_clip(root / "Actor_02" / ravdess_name(4, 2), num_frames=8, audio_seconds=0)  # no audio
    return root


def test_prepare_then_reuse(data_root, cache):
    report = prepare(data_root, cache, PARAMS, workers=2, progress=False)
    assert report.decoded == 5 and len(report.clips) == 5
    assert sorted(report.failed.values()) == ["no audio track", "unreadable"]
    video, audio = report.clips[0].load()
    assert isinstance(video, np.memmap) and video.shape == (4, 16, 16, 3) and video.dtype == np.uint8
    assert audio.dtype == np.float32

    again = prepare(data_root, cache, PARAMS, workers=2, progress=False)
    assert again.decoded == 0 and [c.entry for c in again.clips] == [c.entry for c in report.clips]
    assert "0 decoded, 5 already prepared" in again.summary()

    other = prepare(data_root, cache, PrepareParams(num_frames=2, image_size=16), workers=1, progress=False)
    assert other.decoded == 5, "a different parameter is a different entry"


def test_changed_file_is_prepared_again(data_root, cache):
    first = prepare(data_root, cache, PARAMS, workers=1, progress=False)
    clip = data_root / "Actor_01" / ravdess_name(3, 1)
    write_clip(clip, num_frames=10)
    second = prepare(data_root, cache, PARAMS, workers=1, progress=False)
    assert second.decoded == 1
    assert {c.entry for c in second.clips} - {c.entry for c in first.clips}


def test_interrupted_write_is_not_read_back(data_root, cache, monkeypatch):
    calls = {"n": 0}
    real_save = np.save

    def dying_save(path, array):
        calls["n"] += 1
        if calls["n"] == 2:  # video written, audio not: the process "dies" here
            raise KeyboardInterrupt
        real_save(path, array)

    monkeypatch.setattr(prepare_module.np, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        prepare(data_root, cache, PARAMS, workers=1, progress=False)
    monkeypatch.setattr(prepare_module.np, "save", real_save)
    assert not any((cache / "clips").glob("*/video.npy")), "no entry was published"
    report = prepare(data_root, cache, PARAMS, workers=1, progress=False)
    assert report.decoded == 5
    for clip in report.clips:
        clip.load(mmap=False)


def test_stale_work_folders_of_dead_processes_are_removed(data_root, cache):
    import socket

    stale = cache / "tmp" / f"999999999-{socket.gethostname()}-abc"
    stale.mkdir(parents=True)
    (stale / "video.npy").write_bytes(b"half")
    prepare(data_root, cache, PARAMS, workers=1, progress=False)
    assert not stale.exists()


def test_two_processes_prepare_at_once(data_root, cache):
    code = (
        "import sys; from msa.data.prepare import prepare; from msa.data.decode import PrepareParams;"
        "r = prepare(sys.argv[1], sys.argv[2], PrepareParams(num_frames=4, image_size=16), workers=1, progress=False);"
        "print(len(r.clips))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(data_root), str(cache)], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].decode().strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and outputs == ["5", "5"]
    assert len(list((cache / "clips").iterdir())) == 5
    report = prepare(data_root, cache, PARAMS, workers=1, progress=False)
    assert report.decoded == 0


def test_zip_members_are_extracted_only_into_the_cache(data_root, cache):
    before = sorted(p.name for p in data_root.rglob("*"))
    prepare(data_root, cache, PARAMS, workers=1, progress=False)
    assert sorted(p.name for p in data_root.rglob("*")) == before
    assert not list((cache / "clips").rglob("*.mp4"))


def test_data_of_no_dataset_is_named(tmp_path, cache):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="cannot tell the dataset: 1 files, 0 of them media"):
        prepare(tmp_path, cache, PARAMS, progress=False)


def test_no_usable_clip_says_why(tmp_path, cache):
    for emotion in (1, 2):
        (tmp_path / ravdess_name(emotion, 1, channel=2)).write_bytes(b"x")  # songs
    (tmp_path / ravdess_name(3, 1)).write_bytes(b"")
    with pytest.raises(NoUsableClipsError, match=r"among 3 files \(1 empty, 2 song\)"):
        prepare(tmp_path, cache, PARAMS, progress=False)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "msa.prepare", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_manifest(data_root, cache, tmp_path):
    (data_root / "Actor_01" / ravdess_name(3, 1, channel=2)).write_bytes(b"x")
    result = run_cli(
        "--data",
        str(data_root),
        "--cache",
        str(cache),
        "--manifest",
        str(tmp_path / "m.csv"),
        "--frames",
        "4",
        "--image-size",
        "16",
        "--workers",
        "1",  # a pool of decoders costs seconds of start-up; test_prepare_then_reuse runs one
    )
    assert result.returncode == 0, result.stderr
    assert "5 usable clips" in result.stdout
    with open(tmp_path / "m.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "included", "reason", "label", "speaker", "gender", "start", "end"]
    reasons = sorted((row["included"], row["reason"]) for row in rows)
    assert reasons == [("no", "no audio track"), ("no", "song"), ("no", "unreadable")] + [("yes", "")] * 5
    zipped = next(row for row in rows if "::" in row["path"])
    assert (zipped["speaker"], zipped["label"], zipped["gender"]) == ("3", "angry", "male")

    again = run_cli("--data", str(data_root), "--cache", str(cache), "--frames", "4", "--image-size", "16")
    assert "0 decoded, 5 already prepared" in again.stdout


@pytest.mark.parametrize("make_data", ["missing", "empty"])
def test_cli_exits_2_with_one_line(tmp_path, cache, make_data, capsys):
    """In this process, through the command's main() (test_cli_manifest runs the real command
    line; a process costs seconds)."""
    data = tmp_path / "data"
    if make_data == "empty":
        data.mkdir()
        (data / "readme.txt").write_text("x")
    assert main(["--data", str(data), "--cache", str(cache)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(data) in lines[0]


def test_a_storage_uri_is_prepared_like_the_folder(data_root, cache, tmp_path):
    local = prepare(data_root, tmp_path / "local-cache", PARAMS, workers=1, progress=False)
    remote = prepare(data_root.as_uri(), cache, PARAMS, workers=2, progress=False)
    assert [c.record for c in remote.clips] == [c.record for c in local.clips]
    assert sorted(reason for _, reason in remote.skipped) == sorted(reason for _, reason in local.skipped)
    for a, b in zip(local.clips, remote.clips):
        assert all(np.array_equal(x, y) for x, y in zip(a.load(), b.load()))
    assert not list((cache / "clips").rglob("*.mp4")), "fetched copies are not kept"


def test_cache_id_tells_shared_from_separate_caches(tmp_path):
    first = prepare_module.cache_id(tmp_path / "a")
    assert prepare_module.cache_id(tmp_path / "a") == first != prepare_module.cache_id(tmp_path / "b")

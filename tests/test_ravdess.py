import zipfile

import pytest
from media import ravdess_name, write_clip

from msa.data.datasets import ravdess, read_dataset
from msa.data.datasets.ravdess import AUDIO_ONLY, BadNameError, ClipName
from msa.data.sources import Source


def discover(root):
    """Every file under root, as the audio-video RAVDESS adapter classifies it."""
    return read_dataset(root, "ravdess").found


def test_parse_every_field():
    name = ClipName.parse("01-01-06-02-01-02-12.mp4")
    assert (name.modality, name.vocal_channel, name.emotion, name.intensity) == (1, 1, 6, 2)
    assert (name.statement, name.repetition, name.actor) == (1, 2, 12)
    assert name.emotion_name == "fearful"
    assert name.gender == "female" and ClipName.parse("01-01-06-02-01-02-11.mp4").gender == "male"
    assert name.clip_id == "01-01-06-02-01-02-12"
    record = name.record()
    assert (record.label, record.speaker, record.gender, record.has_video) == ("fearful", 12, "female", True)


@pytest.mark.parametrize(
    "filename, audio_video, audio_only",
    [
        ("01-01-01-01-01-01-01.mp4", None, "audio-video (read it with --dataset ravdess)"),
        ("02-01-01-01-01-01-01.mp4", "video-only", "video-only"),
        ("03-01-01-01-01-01-01.wav", AUDIO_ONLY, None),
        ("03-01-01-01-01-01-01.flac", AUDIO_ONLY, None),
        ("01-02-01-01-01-01-01.mp4", "song", "audio-video (read it with --dataset ravdess)"),
        ("03-02-01-01-01-01-01.wav", AUDIO_ONLY, "song"),
    ],
)
def test_each_set_keeps_its_own_speech(filename, audio_video, audio_only):
    source = Source(f"/data/{filename}", 100, 0)
    assert ravdess.classify(source, ravdess.AUDIO_VIDEO).reason == audio_video
    assert ravdess.classify(source, ravdess.AUDIO_ONLY_MODALITY).reason == audio_only


@pytest.mark.parametrize(
    "filename",
    [
        "01-01-01-01-01-01.mp4",
        "1-01-01-01-01-01-01.mp4",
        "04-01-01-01-01-01-01.mp4",
        "01-01-09-01-01-01-01.mp4",
        "01-01-00-01-01-01-01.mp4",
        "01-01-01-03-01-01-01.mp4",
        "01-01-01-01-03-01-01.mp4",
        "01-01-01-01-01-03-01.mp4",
        "01-01-01-01-01-01-00.mp4",
        "clip.mp4",
        "01_01_01_01_01_01_01.mp4",
    ],
)
def test_bad_names(filename):
    with pytest.raises(BadNameError):
        ClipName.parse(filename)


@pytest.fixture
def messy_root(tmp_path):
    """Folders and zips, nested and at the root, with one file of every kind of junk."""
    root = tmp_path / "data"
    good = write_clip(root / "Actor_01" / ravdess_name(3, 1))
    write_clip(root / "nested" / "Actor_02" / ravdess_name(4, 2))
    (root / "Actor_01" / ravdess_name(3, 1, channel=2)).write_bytes(good.read_bytes())  # song
    (root / "Actor_01" / ravdess_name(3, 1, modality=2)).write_bytes(good.read_bytes())  # video-only
    (root / "Actor_01" / "03-01-03-01-01-01-01.wav").write_bytes(b"RIFF")  # audio-only
    (root / "Actor_01" / "holiday.mp4").write_bytes(good.read_bytes())  # bad name
    (root / "Actor_01" / "notes.txt").write_text("hello")  # not a video
    (root / "Actor_01" / ravdess_name(5, 1)).write_bytes(b"")  # empty
    (root / "Actor_01" / ".DS_Store").write_bytes(b"junk")
    (root / "Actor_01" / "._01-01-03-01-01-01-01.mp4").write_bytes(b"junk")
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "whatever.mp4").write_bytes(b"junk")
    with zipfile.ZipFile(root / "Video_Speech_Actor_03.zip", "w") as archive:
        archive.write(good, f"Actor_03/{ravdess_name(6, 3)}")
        archive.writestr(f"Actor_03/{ravdess_name(7, 3, modality=3)}", b"x")
        archive.writestr("__MACOSX/Actor_03/._x.mp4", b"junk")
        archive.writestr("Actor_03/", b"")
    (root / "Video_Speech_Actor_04.zip").write_bytes(b"not a zip")
    return root


def test_discovery_over_folders_and_zips(messy_root):
    found = discover(messy_root)
    by_name = {f.source.filename: f for f in found}
    reasons = {name: f.reason for name, f in by_name.items()}
    assert reasons == {
        ravdess_name(3, 1): None,
        ravdess_name(4, 2): None,
        ravdess_name(6, 3): None,
        ravdess_name(3, 1, channel=2): "song",
        ravdess_name(3, 1, modality=2): "video-only",
        "03-01-03-01-01-01-01.wav": AUDIO_ONLY,
        ravdess_name(7, 3, modality=3): AUDIO_ONLY,
        "holiday.mp4": "bad name",
        "notes.txt": "not a media file",
        ravdess_name(5, 1): "empty",
        "Video_Speech_Actor_04.zip": "unreadable",
    }
    assert len(found) == len(by_name), "every file is reported exactly once"
    zipped = by_name[ravdess_name(6, 3)].source
    assert zipped.member == f"Actor_03/{ravdess_name(6, 3)}" and zipped.path.endswith(
        "Video_Speech_Actor_03.zip"
    )


@pytest.mark.parametrize("member", ["../evil.mp4", "/etc/evil.mp4", "Actor_01/../../evil.mp4", "C:/evil.mp4"])
def test_zip_path_traversal_is_rejected(tmp_path, member):
    root = tmp_path / "data"
    root.mkdir()
    zip_path = root / "Video_Speech_Actor_01.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr(f"Actor_01/{ravdess_name(1, 1)}", b"x" * 10)
        archive.writestr(member, b"x")
    found = discover(root)
    assert len(found) == 1, "no member of an unsafe zip is used"
    assert found[0].reason.startswith("unsafe zip")
    assert str(zip_path) in found[0].reason and member in found[0].reason


def test_same_clip_in_zip_and_folder_is_used_once(tmp_path):
    root = tmp_path / "data"
    clip = write_clip(root / "Actor_01" / ravdess_name(2, 1))
    with zipfile.ZipFile(root / "Video_Speech_Actor_01.zip", "w") as archive:
        archive.write(clip, f"Actor_01/{clip.name}")
    found = discover(root)
    assert sorted(f.reason or "used" for f in found) == ["duplicate", "used"]


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        discover(tmp_path / "absent")


def test_source_identity_changes_with_content(tmp_path):
    path = write_clip(tmp_path / ravdess_name(1, 1))
    before = discover(tmp_path)[0].source.identity()
    path.write_bytes(path.read_bytes() + b"\0")
    assert discover(tmp_path)[0].source.identity() != before
    assert ravdess.classify(discover(tmp_path)[0].source, ravdess.AUDIO_VIDEO).included


def test_a_storage_uri_is_discovered_like_the_folder(messy_root):
    """--data gs://... or s3://... goes through pyarrow's filesystems; file:// takes the same path."""
    local = discover(messy_root)
    remote = discover(messy_root.as_uri())
    assert [(f.source.filename, f.source.member, f.source.size, f.reason) for f in remote] == [
        (f.source.filename, f.source.member, f.source.size, f.reason) for f in local
    ]
    assert all(f.source.path.startswith("file:///") for f in remote)
    zipped = next(f for f in remote if f.source.member)
    with zipped.source.open_member() as handle:  # a member read by range from the remote zip
        assert handle.read() == (messy_root / "Actor_01" / ravdess_name(3, 1)).read_bytes()


def test_a_missing_uri_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data file://.*absent: no such folder"):
        discover((tmp_path / "absent").as_uri())


def test_gcs_uris_give_up_instead_of_retrying_for_minutes():
    import pyarrow.fs

    from msa.data import remote_filesystem

    filesystem, path = remote_filesystem("gs://bucket/RAVDESS")
    assert isinstance(filesystem, pyarrow.fs.GcsFileSystem) and path == "bucket/RAVDESS"

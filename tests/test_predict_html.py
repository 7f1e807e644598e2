"""msa predict --html: the annotated-transcript page is one self-contained file that loads nothing
from the network, shows cue text and file names as text, carries the same rows as the JSON
output, refers to the recording by a path relative to the page (or embeds it, up to a limit),
and bad --html arguments fail in one line. The page in a real browser: test_predict_browser.py."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest
from recordings import write_vtt
from test_predict import LABELS, tiny_checkpoint, write_wav

from msa.data.sample import SampleSpec, generate_sample
from msa.export.__main__ import main as export_main
from msa.predict import html
from msa.predict.__main__ import main
from msa.predict.html import DATA_ELEMENT_ID, PlayerError, check_player, write_player
from msa.predict.plot import CLASS_COLOURS, class_colour
from msa.predict.subtitles import Cue
from msa.predict.timeline import AnnotatedCue, WindowPrediction, merge_segments

HOSTILE_MARKUP = "<img src=x onerror=\"window.__pwned='img'\">"
HOSTILE_SCRIPT = "</script><script>window.__pwned='script'</script>"
HOSTILE_NAME = "<img src=x onerror=alert(1)>&#x27;.mp4"  # a file name can hold all of it but "/"
TALK_SECONDS = 4.0
TALK_CUES = (
    Cue(0.0, 0.9, "Good morning, everyone."),
    Cue(1.0, 1.9, HOSTILE_MARKUP),
    Cue(2.0, 2.9, HOSTILE_SCRIPT),
    Cue(3.0, 3.9, "Let's begin & see."),
)
NETWORK_REFERENCE = re.compile(r"https?:|(?:src|href)\s*=\s*[\"']?//|<link|<script[^>]*\ssrc", re.IGNORECASE)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> tuple[Path, Path]:
    """A 4 s talking head (H.264 + AAC in mp4, which browsers play) and its subtitles, one cue
    a second, two of them hostile -> (recording, subtitles)."""
    folder = tmp_path_factory.mktemp("talk")
    spec = SampleSpec(actors=(1,), emotions=(5,), statements=1, duration=TALK_SECONDS)
    (clip,) = sorted(generate_sample(folder / "sample", spec, workers=1, progress=False).rglob("*.mp4"))
    recording = clip.rename(folder / "talk.mp4")  # not RAVDESS-named: the face crop
    return recording, write_vtt(list(TALK_CUES), folder / "talk.vtt")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"), "multimodal_iter2")


def page_data(path: Path) -> dict:
    """The JSON the page's script reads."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>', text, re.S)
    return json.loads(match.group(1))


def annotate_to_page(model, recording, tmp_path, *flags) -> tuple[int, dict, dict, Path]:
    """main() with --out JSON and --html into another folder -> (exit status, the JSON output, the
    page's data, the page)."""
    out, page = tmp_path / "annotations" / "talk.json", tmp_path / "shared" / "page" / "talk.html"
    code = main(
        [str(model), str(recording), "--out", str(out), "--html", str(page), "--quiet", *map(str, flags)]
    )
    return code, json.loads(out.read_text()), page_data(page), page


def test_the_page_is_self_contained_and_its_text_is_never_markup(tmp_path):
    media = tmp_path / "media" / HOSTILE_NAME
    media.parent.mkdir()
    media.write_bytes(b"not played here")
    items = [
        AnnotatedCue(cue, WindowPrediction(cue.start, cue.end, (0.7, 0.1, 0.1, 0.1), "audio+video"))
        for cue in TALK_CUES
    ]
    path = write_player(
        tmp_path / "page.html", LABELS, items, media=media, duration=4.0, model=f"{HOSTILE_SCRIPT} model"
    )
    text = path.read_text(encoding="utf-8")
    assert not NETWORK_REFERENCE.search(text), NETWORK_REFERENCE.search(text)
    assert text.count("<script") == text.count("</script>") == 2, "the data block and the page's script"
    for hostile in (HOSTILE_MARKUP, HOSTILE_SCRIPT, HOSTILE_NAME, "<img", 'onerror="', "</script><"):
        assert hostile not in text
    data = page_data(path)
    assert [row["text"] for row in data["rows"]] == [cue.text for cue in TALK_CUES]
    assert data["model"] == f"{HOSTILE_SCRIPT} model" and data["media"]["name"] == HOSTILE_NAME
    assert unquote(data["media"]["src"]) == f"media/{HOSTILE_NAME}" and "<" not in data["media"]["src"]
    # The policy lets exactly the inlined script and style run: hashes of what the page holds.
    policy = re.search(r'Content-Security-Policy" content="([^"]*)"', text).group(1)
    script = re.findall(r"<script>(.*?)</script>", text, re.S)[-1]
    style = re.search(r"<style>(.*?)</style>", text, re.S).group(1)
    for directive, inlined in (("script-src", script), ("style-src", style)):
        digest = base64.b64encode(hashlib.sha256(inlined.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy
    for markup_sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert markup_sink not in script, "the script builds the page from text only"


def test_media_by_relative_path_or_embedded(tmp_path):
    recording = tmp_path / "recordings" / "week 12" / "talk #1?.m4a"
    recording.parent.mkdir(parents=True)
    recording.write_bytes(b"\x00audio bytes\xff")
    windows = [WindowPrediction(0.0, 1.0, (0.1, 0.6, 0.2, 0.1), "audio")]
    page = write_player(
        tmp_path / "out" / "pages" / "talk.html",
        LABELS,
        windows,
        media=recording,
        duration=1.0,
        model="m",
        video=False,
    )
    media = page_data(page)["media"]
    assert media["kind"] == "audio" and media["src"] == "../../recordings/week%2012/talk%20%231%3F.m4a"
    assert (page.parent / unquote(media["src"])).resolve() == recording.resolve()

    embedded = write_player(
        tmp_path / "embedded.html",
        LABELS,
        windows,
        media=recording,
        duration=1.0,
        model="m",
        embed_media=True,
    )
    media = page_data(embedded)["media"]
    prefix = "data:audio/mp4;base64,"
    assert media["src"].startswith(prefix) and media["embedded"]
    assert base64.b64decode(media["src"][len(prefix) :]) == recording.read_bytes()

    alone = write_player(tmp_path / "live.html", LABELS, [], media=None, duration=0.0, model="m")
    assert page_data(alone)["media"] is None and page_data(alone)["rows"] == []


def test_embedding_is_refused_over_the_limit(tmp_path, monkeypatch):
    recording = tmp_path / "talk.mp4"
    recording.write_bytes(bytes(2000))
    monkeypatch.setattr(html, "EMBED_MEDIA_LIMIT", 1000)
    with pytest.raises(PlayerError, match=r"--embed-media: .*talk.mp4 is 0.0 MB, over the 0.001 MB"):
        write_player(
            tmp_path / "page.html", LABELS, [], media=recording, duration=1.0, model="m", embed_media=True
        )
    assert list(tmp_path.iterdir()) == [recording]
    check_player(tmp_path / "page.html", recording, embed_media=False)  # a reference has no limit
    with pytest.raises(PlayerError, match="unknown extension"):
        check_player(tmp_path / "page.txt", recording, embed_media=False)


def test_timeline_rows_are_the_merged_segments():
    windows = [
        WindowPrediction(0.0, 2.0, (0.1, 0.7, 0.1, 0.1), "audio+video"),
        WindowPrediction(1.0, 3.0, (0.1, 0.5, 0.3, 0.1), "audio"),
        WindowPrediction(2.0, 4.0, (), "no face"),
        WindowPrediction(3.0, 5.0, (0.6, 0.2, 0.1, 0.1), "audio+video"),
    ]
    rows = html.segment_rows(windows, LABELS)
    segments = merge_segments(windows, LABELS)
    assert [(r["start"], r["end"], r["top"] or r["source"]) for r in rows] == [
        (s.start, s.end, s.label) for s in segments
    ]
    assert rows[0]["probabilities"] == {"neutral": 0.1, "happy": 0.6, "angry": 0.2, "surprised": 0.1}
    assert (
        rows[0]["probability"] == 0.6
        and rows[0]["source"] == "audio+video, audio"
        and rows[0]["windows"] == 2
    )
    assert rows[1]["top"] is None and rows[1]["probabilities"] == {}


def test_the_page_and_the_png_share_their_colours():
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    tab10 = [to_hex(colormaps["tab10"](index)) for index in range(10)]
    assert list(CLASS_COLOURS) == tab10[:7] + tab10[8:], "tab10 without its grey"
    assert class_colour(9) == class_colour(0)


def test_command_writes_the_page_with_the_json_rows(checkpoint, talk, tmp_path, capsys):
    recording = shutil.copy(talk[0], tmp_path / "talk.mp4")  # beside the page's folders
    code, output, data, page = annotate_to_page(checkpoint, recording, tmp_path, "--subtitles", talk[1])
    assert code == 0 and f"-> {tmp_path / 'annotations' / 'talk.json'}, {page}" in capsys.readouterr().out
    assert data["rows"] == output["items"] and data["labels"] == output["labels"] == LABELS
    assert data["mode"] == "cues" and data["windows"] is None and data["model"].startswith(str(checkpoint))
    assert [row["text"] for row in data["rows"]] == [cue.text for cue in TALK_CUES]
    assert data["media"] == {
        "kind": "video",
        "src": "../../talk.mp4",
        "name": "talk.mp4",
        "embedded": False,
    }
    assert (page.parent / data["media"]["src"]).resolve() == recording.resolve()


def test_an_onnx_model_writes_the_page_of_an_audio_file(tmp_path, capsys):
    speech = tmp_path / "speech.wav"
    write_wav(speech, 4.0)
    model = tmp_path / "audio_cnn.onnx"
    assert (
        export_main([str(tiny_checkpoint(tmp_path, "audio_cnn")), "--format", "onnx", "--out", str(model)])
        == 0
    )
    flags = ("--window", "1.5", "--hop", "0.5", "--embed-media")
    code, output, data, _ = annotate_to_page(model, speech, tmp_path, *flags)
    assert code == 0, capsys.readouterr().err
    assert data["mode"] == "windows" and data["windows"] == output["items"]
    assert sum(row["windows"] for row in data["rows"]) == len(output["items"]) == 6
    assert data["media"]["kind"] == "audio" and data["media"]["src"].startswith("data:audio/wav;base64,")


@pytest.mark.parametrize(
    "case, message",
    [
        ("extension", "--html "),
        ("too large to embed", "--embed-media: "),
        ("several inputs", "belong to one recording"),
        ("embed without html", "--embed-media goes with --html"),
    ],
)
def test_bad_html_arguments_are_one_line_and_write_nothing(
    case, message, checkpoint, talk, tmp_path, monkeypatch, capsys
):
    recording, _ = talk
    out = tmp_path / "out"
    out.mkdir()
    flags = ["--out", str(out / "talk.json"), "--html", str(out / "talk.html")]
    inputs = [str(recording)]
    if case == "extension":
        flags[-1] = str(out / "talk.htm.txt")
    elif case == "too large to embed":
        monkeypatch.setattr(html, "EMBED_MEDIA_LIMIT", 1000)
        flags.append("--embed-media")
    elif case == "several inputs":
        flags[0], inputs = "--out", [str(recording)] * 2
        flags[1] = str(out)
    elif case == "embed without html":
        flags = ["--out", str(out / "talk.json"), "--embed-media"]
    try:
        code = main([str(checkpoint), *inputs, *flags, "--quiet"])
    except SystemExit as exit:  # argparse's parser.error
        code = exit.code
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and message in error, error
    assert not any(out.iterdir()), "nothing written"

"""python -m msa.predict's file formats: subtitles read as real tools write them (and every syntax
error named by file and line), sliding windows, segments, and the atomic .vtt/.srt/.csv/.json
outputs."""

import csv
import json
import subprocess
import sys

import pytest
from conftest import REPO

from msa.predict import timeline
from msa.predict.subtitles import (
    Cue,
    SubtitleError,
    format_subrip,
    format_timestamp,
    format_webvtt,
    read_subtitles,
)
from msa.predict.timeline import (
    AnnotatedCue,
    Segment,
    WindowPrediction,
    emotion_tag,
    merge_segments,
    sliding_windows,
    write_output,
)

LABELS = ("sad", "happy", "disgust", "angry")
HAPPY = (0.1, 0.82, 0.05, 0.03)
SAD = (0.7, 0.1, 0.1, 0.1)

# What real WebVTT files hold: a BOM, header metadata, CRLF, a NOTE, a STYLE block, identifiers,
# MM:SS.mmm timings, cue settings, multi-line text, overlapping cues, blank lines at the end.
REAL_WEBVTT = (
    "\ufeffWEBVTT - a talk\r\n"
    "Kind: captions\r\n"
    "Language: en\r\n"
    "\r\n"
    "NOTE made by hand\r\n"
    "over two lines\r\n"
    "\r\n"
    "STYLE\r\n"
    "::cue { color: yellow }\r\n"
    "\r\n"
    "intro\r\n"
    "00:01.000 --> 00:04.500 align:start position:10%\r\n"
    "Hello there.\r\n"
    "How are you?\r\n"
    "\r\n"
    "\r\n"
    "00:00:04.000 --> 00:00:07.250\r\n"
    "<v Ann>Fine, thanks!\r\n"
    "\r\n"
    "01:00:00.000 --> 01:00:01.001\r\n"
    "Much later.\r\n"
    "\r\n"
    "\r\n"
)
REAL_WEBVTT_CUES = [
    Cue(1.0, 4.5, "Hello there.\nHow are you?", "intro", "align:start position:10%"),
    Cue(4.0, 7.25, "<v Ann>Fine, thanks!"),
    Cue(3600.0, 3601.001, "Much later."),
]

REAL_SUBRIP = (
    "\ufeff1\r\n"
    "00:00:01,000 --> 00:00:04,500\r\n"
    "Hello there.\r\n"
    "How are you?\r\n"
    "\r\n"
    "2\r\n"
    "00:00:04,000 --> 00:00:07,250 X1:10 X2:100 Y1:10 Y2:50\r\n"
    "<i>Fine, thanks!</i>\r\n"
    "\r\n"
    "3\r\n"
    "10:00:00,000 --> 10:00:01,001\r\n"
    "Much later.\r\n"
    "\r\n"
    "\r\n"
)
REAL_SUBRIP_CUES = [
    Cue(1.0, 4.5, "Hello there.\nHow are you?", "1"),
    Cue(4.0, 7.25, "<i>Fine, thanks!</i>", "2"),
    Cue(36000.0, 36001.001, "Much later.", "3"),
]


def write(path, text):
    path.write_text(text, encoding="utf-8", newline="")
    return path


def window(start, end, probabilities=HAPPY, source="audio+video"):
    return WindowPrediction(start, end, probabilities, source)


# ----------------------------------------------------------------------------- reading subtitles


def test_real_webvtt_quirks(tmp_path):
    assert read_subtitles(write(tmp_path / "talk.vtt", REAL_WEBVTT)) == REAL_WEBVTT_CUES


def test_real_subrip_quirks(tmp_path):
    assert read_subtitles(write(tmp_path / "talk.SRT", REAL_SUBRIP)) == REAL_SUBRIP_CUES


def test_subtitle_tolerances(tmp_path):
    # A cue right under the header, a cue without text, SubRip cues without numbers or with a point.
    webvtt = "WEBVTT\n00:00.000 --> 00:01.000\nhi\n\n00:02.000 --> 00:03.000\n"
    assert read_subtitles(write(tmp_path / "a.vtt", webvtt)) == [Cue(0, 1, "hi"), Cue(2, 3, "")]
    subrip = "00:00:00,000 --> 00:00:01,000\nhi\n\n7\n00:00:02.000 --> 00:00:03.000\nyo"
    assert read_subtitles(write(tmp_path / "a.srt", subrip)) == [Cue(0, 1, "hi"), Cue(2, 3, "yo", "7")]
    # A header-only WebVTT file is valid and holds no cues.
    assert read_subtitles(write(tmp_path / "b.vtt", "WEBVTT\n\n")) == []


VTT_ERRORS = [
    (
        "WEBVTT\n\n1\n00:01:02.5 --> 00:01:04.000\nhi\n",
        4,
        "bad timing '00:01:02.5 --> 00:01:04.000' (expected HH:MM:SS.mmm --> HH:MM:SS.mmm)",
    ),
    ("WEBVTT\n\n00:00.000 --> 00:61.000\nhi\n", 3, "bad timing"),
    ("WEBVTT\n\n00:00.000 --> \nhi\n", 3, "bad timing"),
    ("Hello\n\n00:00.000 --> 00:01.000\nhi\n", 1, "missing 'WEBVTT' header (got 'Hello')"),
    ("WEBVTTX\n", 1, "missing 'WEBVTT' header"),
    ("WEBVTT\n\n00:05.000 --> 00:04.000\nhi\n", 3, "cue ends before it starts ('00:05.000 --> 00:04.000')"),
    (
        "WEBVTT\n\n00:05.000 --> 00:06.000\na\n\n00:04.000 --> 00:06.000\nb\n",
        6,
        "before the cue above it (00:00:05.000)",
    ),
    ("WEBVTT\n\nintro\nhi\n", 3, "'intro' is not followed by a cue timing"),
    ("WEBVTT\n\nlonely\n", 3, "'lonely' is not followed by a cue timing"),
]
SRT_ERRORS = [
    (
        "1\n00:00:01.5 --> 00:00:02,000\nhi\n",
        2,
        "bad timing '00:00:01.5 --> 00:00:02,000' (expected HH:MM:SS,mmm --> HH:MM:SS,mmm)",
    ),
    ("1\n00:01,000 --> 00:00:02,000\nhi\n", 2, "bad timing"),
    ("1\n00:00:01,000 --> 00:00:02,000\nhi\n\nhello\n", 5, "expected a cue number, got 'hello'"),
    ("1\n00:00:01,000 --> 00:00:02,000\nhi\n\n2\nhello\n", 5, "cue 2 is not followed by a cue timing"),
    ("1\n00:00:03,000 --> 00:00:02,000\nhi\n", 2, "cue ends before it starts"),
    (
        "1\n00:00:03,000 --> 00:00:04,000\na\n\n2\n00:00:01,000 --> 00:00:02,000\nb\n",
        6,
        "cues must be in time order",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "line", "problem"),
    [("talk.vtt", *error) for error in VTT_ERRORS] + [("talk.srt", *error) for error in SRT_ERRORS],
)
def test_syntax_errors_name_file_and_line(tmp_path, name, text, line, problem):
    path = write(tmp_path / name, text)
    with pytest.raises(SubtitleError) as error:
        read_subtitles(path)
    message = str(error.value)
    assert message.startswith(f"{path} line {line}: "), message
    assert problem in message
    assert "\n" not in message
    assert isinstance(error.value, ValueError)


def test_unreadable_files(tmp_path):
    for name, content in (("empty.vtt", b""), ("blank.srt", b"\xef\xbb\xbf\r\n\n  \n")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(SubtitleError, match=r"empty\.vtt: empty file$|blank\.srt: empty file$"):
            read_subtitles(tmp_path / name)
    (tmp_path / "latin1.srt").write_bytes("1\n00:00:01,000 --> 00:00:02,000\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(SubtitleError, match=r"latin1\.srt line 3: not UTF-8 \(byte 0xe9\)"):
        read_subtitles(tmp_path / "latin1.srt")
    with pytest.raises(
        SubtitleError, match=r"talk\.ass: unknown subtitle extension '\.ass' \(expected \.vtt or \.srt\)"
    ):
        read_subtitles(write(tmp_path / "talk.ass", "[Script Info]\n"))


def test_timestamps_round_to_the_millisecond():
    assert format_timestamp(3723.4567) == "01:02:03.457"
    assert format_timestamp(59.9996, ",") == "00:01:00,000"
    assert format_timestamp(360000.0) == "100:00:00.000"
    with pytest.raises(ValueError, match="must be >= 0"):
        format_timestamp(-0.001)


def test_formatted_subtitles_read_back(tmp_path):
    vtt = write(tmp_path / "a.vtt", format_webvtt(REAL_WEBVTT_CUES))
    assert read_subtitles(vtt) == REAL_WEBVTT_CUES
    srt = write(tmp_path / "a.srt", format_subrip(REAL_WEBVTT_CUES))
    # SubRip numbers its cues and has no settings.
    expected = [Cue(c.start, c.end, c.text, str(i)) for i, c in enumerate(REAL_WEBVTT_CUES, start=1)]
    assert read_subtitles(srt) == expected


# ----------------------------------------------------------------------------- windows and segments


def test_sliding_windows():
    windows = sliding_windows(10.0, 2.0, 1.0)
    assert len(windows) == 9 and windows[0] == (0.0, 2.0) and windows[-1] == (8.0, 10.0)
    # Hops that do not fit: the last window ends at the duration, closer to the one before it.
    windows = sliding_windows(10.5, 2.0, 1.0)
    assert len(windows) == 10 and windows[-2] == (8.0, 10.0) and windows[-1] == (8.5, 10.5)
    # Float noise does not add a window: 0.8 / 0.1 is 8.000000000000002 hops.
    windows = sliding_windows(1.0, 0.2, 0.1)
    assert len(windows) == 9 and windows[-1] == pytest.approx((0.8, 1.0))
    # Hops longer than the window leave gaps; the last window still ends at the duration.
    assert sliding_windows(10.0, 1.0, 3.0) == [(0.0, 1.0), (3.0, 4.0), (6.0, 7.0), (9.0, 10.0)]
    assert all(end - start == pytest.approx(2.0) for start, end in sliding_windows(7.3, 2.0, 0.5))


def test_a_recording_shorter_than_a_window_is_one_window():
    assert sliding_windows(1.5, 2.0, 1.0) == [(0.0, 1.5)]
    assert sliding_windows(2.0, 2.0, 1.0) == [(0.0, 2.0)]


@pytest.mark.parametrize(
    ("duration", "size", "hop", "name"),
    [
        (10, 0, 1, "window"),
        (10, 2, 0, "hop"),
        (10, 2, -1, "hop"),
        (0, 2, 1, "duration"),
        (float("nan"), 2, 1, "duration"),
    ],
)
def test_sliding_windows_validate(duration, size, hop, name):
    with pytest.raises(
        ValueError, match=f"^sliding windows: {name} must be a number of seconds > 0, got"
    ) as error:
        sliding_windows(duration, size, hop)
    assert "\n" not in str(error.value)


def test_window_predictions_validate():
    with pytest.raises(ValueError, match="unknown source 'face'"):
        window(0, 1, source="face")
    with pytest.raises(ValueError, match="'no face' means no probabilities"):
        window(0, 1, source="no face")
    with pytest.raises(ValueError, match="'audio' needs probabilities"):
        window(0, 1, (), source="audio")
    with pytest.raises(ValueError, match="0 <= start <= end"):
        window(2, 1)
    with pytest.raises(ValueError, match="must be finite"):
        window(0, 1, (float("nan"), 1.0, 0, 0))
    with pytest.raises(ValueError, match="has 4 probabilities for 3 labels"):
        window(0, 1).label(LABELS[:3])


def test_merging_same_label_windows_with_overlap():
    # 2 s windows every second: happy, happy, sad, sad, sad, then no face twice, then happy.
    windows = [
        window(0, 2, (0.1, 0.8, 0.05, 0.05)),
        window(1, 3, (0.1, 0.6, 0.2, 0.1), "audio"),
        window(2, 4, SAD),
        window(3, 5, SAD),
        window(4, 6, (0.5, 0.3, 0.1, 0.1), "video"),
        window(5, 7, (), "no face"),
        window(6, 8, (), "no face"),
        window(7, 9, (), "no audio"),
        window(8, 10, HAPPY),
    ]
    segments = merge_segments(windows, LABELS)
    assert segments == [
        Segment(0, 2, "happy", pytest.approx(0.7), "audio+video, audio", 2),
        Segment(2, 5, "sad", pytest.approx(0.6333333), "audio+video, video", 3),
        Segment(5, 7, "no face", None, "no face", 2),
        Segment(7, 8, "no audio", None, "no audio", 1),
        Segment(8, 10, "happy", pytest.approx(0.82), "audio+video", 1),
    ]
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:]))


def test_merging_windows_with_gaps_keeps_the_gaps():
    segments = merge_segments([window(0, 1), window(3, 4), window(6, 7, SAD)], LABELS)
    assert [(s.start, s.end, s.label, s.windows) for s in segments] == [(0, 4, "happy", 2), (6, 7, "sad", 1)]


def test_merging_needs_windows_in_time_order():
    assert merge_segments([], LABELS) == []
    with pytest.raises(ValueError, match="windows must be in time order"):
        merge_segments([window(2, 4), window(1, 3)], LABELS)


def test_emotion_tags():
    assert emotion_tag("happy", 0.8249) == "[happy 0.82]"
    assert emotion_tag("no face", None) == "[no face]"


# ----------------------------------------------------------------------------- writing outputs


def annotate(cues):
    """Each cue classified in turn as happy, sad, no face."""
    predictions = [
        lambda c: window(c.start, c.end, HAPPY),
        lambda c: window(c.start, c.end, SAD, "audio"),
        lambda c: window(c.start, c.end, (), "no face"),
    ]
    return [AnnotatedCue(cue, predictions[i % 3](cue)) for i, cue in enumerate(cues)]


TAGS = ["[happy 0.82] ", "[sad 0.70] ", "[no face] "]


@pytest.mark.parametrize("source", ["talk.vtt", "talk.srt"])
@pytest.mark.parametrize("output", ["out.vtt", "out.srt"])
def test_subtitles_round_trip_with_tags(tmp_path, source, output):
    text = REAL_WEBVTT if source.endswith(".vtt") else REAL_SUBRIP
    cues = read_subtitles(write(tmp_path / source, text))
    written = write_output(tmp_path / output, LABELS, annotate(cues))
    assert written == tmp_path / output
    again = read_subtitles(written)
    assert [(c.start, c.end) for c in again] == [(c.start, c.end) for c in cues]
    assert [c.text for c in again] == [tag + c.text for tag, c in zip(TAGS, cues)]
    if output.endswith(".vtt"):
        assert [(c.identifier, c.settings) for c in again] == [(c.identifier, c.settings) for c in cues]
    else:
        assert [c.identifier for c in again] == ["1", "2", "3"]


def test_timeline_subtitles_are_one_cue_per_segment(tmp_path):
    windows = [window(0, 2), window(1, 3), window(2, 4, SAD), window(3, 5, (), "no face")]
    for name in ("timeline.vtt", "timeline.srt"):
        cues = read_subtitles(write_output(tmp_path / name, LABELS, windows))
        assert cues == [
            Cue(0, 2, "[happy 0.82]", cues[0].identifier),
            Cue(2, 3, "[sad 0.70]", cues[1].identifier),
            Cue(3, 5, "[no face]", cues[2].identifier),
        ]
    assert (
        (tmp_path / "timeline.vtt").read_text().startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n[happy")
    )
    assert "00:00:02,000 --> 00:00:03,000\n[sad 0.70]\n" in (tmp_path / "timeline.srt").read_text()


def test_csv_has_a_row_per_cue(tmp_path):
    cues = [Cue(0.0004, 1.2345, 'He said "hi",\nthen left.'), Cue(2, 3, "b"), Cue(4, 5, "c")]
    path = write_output(tmp_path / "out.csv", LABELS, annotate(cues))
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["start", "end", "text", "top", "top_probability", "source", *LABELS],
        [
            "0.000",
            "1.234",
            'He said "hi",\nthen left.',
            "happy",
            "0.8200",
            "audio+video",
            "0.1000",
            "0.8200",
            "0.0500",
            "0.0300",
        ],
        ["2.000", "3.000", "b", "sad", "0.7000", "audio", "0.7000", "0.1000", "0.1000", "0.1000"],
        ["4.000", "5.000", "c", "", "", "no face", "", "", "", ""],
    ]


def test_csv_and_json_have_a_row_per_window(tmp_path):
    windows = [window(0, 2), window(1, 3, (), "no audio")]
    with open(write_output(tmp_path / "out.csv", LABELS, windows), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["start"], r["text"], r["top"], r["source"], r["happy"]) for r in rows] == [
        ("0.000", "", "happy", "audio+video", "0.8200"),
        ("1.000", "", "", "no audio", ""),
    ]
    document = json.loads(write_output(tmp_path / "out.JSON", LABELS, windows).read_text())
    assert document == {
        "labels": list(LABELS),
        "items": [
            {
                "start": 0.0,
                "end": 2.0,
                "text": None,
                "top": "happy",
                "probability": 0.82,
                "source": "audio+video",
                "probabilities": dict(zip(LABELS, HAPPY)),
            },
            {
                "start": 1.0,
                "end": 3.0,
                "text": None,
                "top": None,
                "probability": None,
                "source": "no audio",
                "probabilities": {},
            },
        ],
    }


def test_json_of_cues(tmp_path):
    cues = [Cue(1.23456, 2, "Ça va ?"), Cue(2, 3, "b")]
    document = json.loads(
        write_output(tmp_path / "out.json", LABELS, annotate(cues)).read_text(encoding="utf-8")
    )
    assert [(i["start"], i["text"], i["top"], i["probability"]) for i in document["items"]] == [
        (1.235, "Ça va ?", "happy", 0.82),
        (2.0, "b", "sad", 0.7),
    ]


def test_output_errors(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"out\.txt: unknown output extension '\.txt' \(expected \.vtt, \.srt, \.csv, \.json\)$",
    ):
        write_output(tmp_path / "out.txt", LABELS, [window(0, 1)])
    with pytest.raises(TypeError, match="not a mix"):
        write_output(tmp_path / "out.csv", LABELS, [window(0, 1), AnnotatedCue(Cue(0, 1, "a"), window(0, 1))])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["out.vtt", "out.srt", "out.csv", "out.json"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, name):
    path = tmp_path / name
    path.write_text("the previous output")

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(timeline.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_output(path, LABELS, [window(0, 1)])
    assert path.read_text() == "the previous output"
    assert list(tmp_path.iterdir()) == [path]


def test_a_write_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    # The third window has 3 probabilities for 4 labels: the CSV writer fails after two rows.
    path = tmp_path / "out.csv"
    path.write_text("the previous output")
    windows = [window(0, 1), window(1, 2), window(2, 3, (0.2, 0.3, 0.5))]
    with pytest.raises(ValueError, match="has 3 probabilities for 4 labels"):
        write_output(path, LABELS, windows)
    assert path.read_text() == "the previous output"
    assert list(tmp_path.iterdir()) == [path]


def test_the_file_formats_import_no_torch():
    code = "import sys, msa.predict.timeline; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"

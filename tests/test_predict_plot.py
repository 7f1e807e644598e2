"""python -m msa.predict --plot: the emotions-over-time figure (its artists per style, gaps shaded
where a window could not be classified, cue steps and boundaries) and the atomic image file."""

import math

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from msa.predict.plot import PLOT_STYLES, draw_timeline, timeline_figure
from msa.predict.subtitles import Cue
from msa.predict.timeline import WindowPrediction

LABELS = ("sad", "happy", "angry")
NO_FACE = 4  # the index of the unclassified window


def windows() -> list[WindowPrediction]:
    """Ten 2 s windows every second, the fifth one without a face."""
    predictions = []
    for index in range(10):
        happy = index / 10
        probabilities = (0.9 - happy, happy, 0.1)
        if index == NO_FACE:
            predictions.append(WindowPrediction(index, index + 2, (), "no face"))
        else:
            predictions.append(WindowPrediction(index, index + 2, probabilities, "audio+video"))
    return predictions


def cue_predictions() -> tuple[list[Cue], list[WindowPrediction]]:
    """Three cues: two that touch, a pause, one without audio."""
    cues = [Cue(0.5, 2.0, "Hello"), Cue(2.0, 3.5, "there"), Cue(5.0, 6.0, "...")]
    predictions = [
        WindowPrediction(0.5, 2.0, (0.1, 0.8, 0.1), "audio+video"),
        WindowPrediction(2.0, 3.5, (0.6, 0.2, 0.2), "video"),
        WindowPrediction(5.0, 6.0, (), "no audio"),
    ]
    return cues, predictions


def legend_texts(fig) -> list[str]:
    return [text.get_text() for legend in fig.legends for text in legend.get_texts()]


def test_stacked_style_has_one_area_per_class_and_shades_the_window_without_a_face():
    fig = timeline_figure(LABELS, windows(), style="stacked", title="talk.mp4")
    ax = fig.axes[0]
    areas = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert [area.get_label() for area in areas] == list(LABELS)
    assert len({tuple(area.get_facecolor()[0]) for area in areas}) == len(LABELS)
    assert len(ax.patches) == 1  # the axvspan of the one unclassified window
    assert ax.patches[0].get_x() == NO_FACE and ax.patches[0].get_width() == 2
    assert legend_texts(fig) == [*LABELS, "no face"]
    assert ax.get_title() == "talk.mp4"
    assert ax.get_ylim() == (0, 1)


def test_lines_style_draws_a_line_per_class_with_the_stacked_colours_and_a_gap():
    stacked = timeline_figure(LABELS, windows(), style="stacked").axes[0]
    ax = timeline_figure(LABELS, windows(), style="lines").axes[0]
    assert [line.get_label() for line in ax.lines] == list(LABELS)
    area_colours = [tuple(area.get_facecolor()[0][:3]) for area in stacked.collections]
    assert [to_rgb(line.get_color()) for line in ax.lines] == area_colours
    x, happy = ax.lines[1].get_data()
    assert list(x) == [index + 1 for index in range(10)]  # the windows' centres
    assert math.isnan(happy[NO_FACE]) and happy[NO_FACE + 1] == pytest.approx(0.5)
    assert ax.get_title() == "Emotions over time"


def test_cues_are_steps_with_their_boundaries_drawn():
    cues, predictions = cue_predictions()
    fig = timeline_figure(LABELS, predictions, cues=cues, style="lines")
    ax = fig.axes[0]
    x, happy = ax.lines[1].get_data()
    # Each cue's value held from its start to its end; a NaN point for the pause before the last cue.
    assert list(x) == [0.5, 2.0, 2.0, 3.5, 3.5, 5.0, 6.0]
    assert list(happy[:4]) == [0.8, 0.8, 0.2, 0.2] and np.isnan(happy[4:]).all()
    (boundaries,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert sorted(segment[0][0] for segment in boundaries.get_segments()) == [0.5, 2.0, 3.5, 5.0, 6.0]
    assert len(ax.patches) == 1 and ax.patches[0].get_x() == 5.0
    assert legend_texts(fig) == [*LABELS, "no audio", "cue start / end"]


def test_a_long_recording_gets_a_wider_figure_and_minute_ticks():
    predictions = [WindowPrediction(5 * i, 5 * i + 10, (0.2, 0.3, 0.5), "audio") for i in range(71)]
    fig = timeline_figure(LABELS, predictions)
    assert fig.get_size_inches()[0] == pytest.approx(20)  # 360 s: 10 in + (360 - 60) s / 30 s per inch
    assert timeline_figure(LABELS, windows()).get_size_inches()[0] == 10
    hour = [WindowPrediction(0, 3600, (0.2, 0.3, 0.5), "audio")]
    assert timeline_figure(LABELS, hour).get_size_inches()[0] == 24
    fig.canvas.draw()
    ticks = [label.get_text() for label in fig.axes[0].get_xticklabels()]
    assert "1:00" in ticks and "5:00" in ticks


@pytest.mark.parametrize("style", PLOT_STYLES)
def test_draw_timeline_writes_an_image_and_no_temporary_file(tmp_path, style):
    path = tmp_path / "out" / "timeline.png"
    assert draw_timeline(path, LABELS, windows(), style=style) == path
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 800
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 10  # drawn, not blank
    assert [p.name for p in path.parent.iterdir()] == ["timeline.png"]


def test_draw_timeline_writes_svg_and_pdf_for_cues(tmp_path):
    cues, predictions = cue_predictions()
    svg = draw_timeline(tmp_path / "cues.svg", LABELS, predictions, cues=cues)
    pdf = draw_timeline(tmp_path / "cues.PDF", LABELS, predictions, cues=cues, style="lines")
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    assert pdf.read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cues.PDF", "cues.svg"]


def test_a_bad_extension_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"timeline\.jpg.*'\.jpg'.*\.png, \.svg, \.pdf"):
        draw_timeline(tmp_path / "timeline.jpg", LABELS, windows())
    with pytest.raises(ValueError, match=r"\(none\)"):
        draw_timeline(tmp_path / "timeline", LABELS, windows())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("predictions", "style", "cues", "message"),
    [
        ([], "stacked", None, "no predictions"),
        (windows(), "area", None, r"unknown plot style 'area' \(expected stacked or lines\)"),
        ([WindowPrediction(0, 2, (0.5, 0.5), "audio")], "lines", None, "2 probabilities for 3 labels"),
        (windows()[:2], "stacked", [Cue(0, 1, "one")], "1 cues for 2 predictions"),
    ],
)
def test_bad_input_is_one_clear_error_and_no_file(tmp_path, predictions, style, cues, message):
    with pytest.raises(ValueError, match=message):
        draw_timeline(tmp_path / "timeline.png", LABELS, predictions, cues=cues, style=style)
    assert list(tmp_path.iterdir()) == []


def test_windows_a_multimodal_model_classified_from_audio_alone_are_hatched():
    predictions = windows()
    predictions[7] = WindowPrediction(7, 9, (0.3, 0.3, 0.4), "audio")  # no face: the audio decided
    fig = timeline_figure(LABELS, predictions)
    hatched = [patch for patch in fig.axes[0].patches if patch.get_hatch()]
    assert [(patch.get_x(), patch.get_width()) for patch in hatched] == [(7, 2)]
    assert legend_texts(fig) == [*LABELS, "no face", "audio only (no face)"]
    audio_model = [
        WindowPrediction(p.start, p.end, p.probabilities, "audio") for p in predictions if p.classified
    ]
    assert not [patch for patch in timeline_figure(LABELS, audio_model).axes[0].patches if patch.get_hatch()]

"""The --html page in headless Chromium (Debian's chromium driven by the playwright package; no
downloaded browser): its rows are the JSON output's, clicking a row or the timeline seeks the
video, hostile cue text shows as text and runs nothing, the highlighted row follows playback,
the filter hides the other rows, and nothing but the page and its recording is requested.

Skipped, saying why, where playwright is not installed or Chromium is missing or cannot start.
A screenshot goes into the test's folder, and into $MSA_SCREENSHOT_DIR when that is set."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_predict_html import HOSTILE_MARKUP, HOSTILE_SCRIPT, TALK_CUES, checkpoint, talk  # noqa: F401

from msa.predict.__main__ import main
from msa.predict.plot import class_colour

CHROMIUM_ARGS = [
    "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1100, "height": 900}  # px: the docs' screenshot
SEEK_TOLERANCE = 0.05  # s: where a click on a row leaves video.currentTime
WAIT = 10_000  # ms: the longest wait for a condition (playback starts in well under a second)
SCREENSHOT = "predict-html.png"
# Conditions are functions: the page's policy lets no string be evaluated as script (no eval).
AT_TIME = "([time, tolerance]) => Math.abs(document.querySelector('video').currentTime - time) < tolerance"
CURRENT_ROW_IS = "index => document.querySelector('#transcript li.current')?.dataset.index === String(index)"

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def chromium():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).is_file():
        pytest.skip("no Chromium: install Debian's chromium package (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except sync_api.Error as error:
            pytest.skip(f"Chromium ({executable}) cannot start: {str(error).strip().splitlines()[0]}")
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def annotated(checkpoint, talk, tmp_path_factory):  # noqa: F811
    """The page the command writes for the talk and its subtitles, in a folder beside the
    recording's -> (the page, the JSON output's items)."""
    folder = tmp_path_factory.mktemp("annotated")
    shutil.copy(talk[0], folder / "talk.mp4")
    shutil.copy(checkpoint, folder / checkpoint.name)
    flags = ["--subtitles", talk[1], "--out", "talk.json", "--html", "pages/talk.html", "--quiet"]
    with pytest.MonkeyPatch.context() as patch:  # relative paths, as a user types them (and the page shows)
        patch.chdir(folder)
        assert main([checkpoint.name, "talk.mp4", *map(str, flags)]) == 0
    return folder / "pages" / "talk.html", json.loads((folder / "talk.json").read_text())["items"]


@pytest.fixture
def view(chromium, annotated):
    """The page open in a fresh context, its video's metadata loaded; what it requested, the
    dialogs it opened and its script errors are recorded, and must be none but file:// requests."""
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    seen = SimpleNamespace(page=page, requests=[], dialogs=[], errors=[])
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("dialog", lambda dialog: (seen.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.goto(annotated[0].as_uri())
    page.wait_for_function(
        "() => { const v = document.querySelector('video'); return v.error || v.readyState >= 1 }",
        timeout=WAIT,
    )
    assert page.evaluate("document.querySelector('video').error") is None, (
        "Chromium cannot play the recording"
    )
    yield seen
    context.close()
    assert not seen.errors and not seen.dialogs
    assert seen.requests and all(url.startswith("file://") for url in seen.requests), seen.requests


def rows_shown(page) -> list[dict]:
    return page.eval_on_selector_all(
        "#transcript li",
        """nodes => nodes.map(node => ({
            start: Number(node.dataset.start), end: Number(node.dataset.end), label: node.dataset.label,
            text: node.querySelector('.text').textContent, tag: node.querySelector('.tag').textContent,
            title: node.title, hidden: node.hidden, current: node.classList.contains('current')}))""",
    )


def current_row(page) -> int | None:
    index = page.evaluate("document.querySelector('#transcript li.current')?.dataset.index")
    return None if index is None else int(index)


def wait_until_at(page, time: float, tolerance: float) -> None:
    page.wait_for_function(AT_TIME, arg=[time, tolerance], timeout=WAIT)


def wait_until_current(page, index: int) -> None:
    page.wait_for_function(CURRENT_ROW_IS, arg=index, timeout=WAIT)


def test_the_rows_are_the_json_output(view, annotated):
    page, (_, items) = view.page, annotated
    rows = rows_shown(page)
    assert [(row["start"], row["end"], row["label"], row["text"]) for row in rows] == [
        (item["start"], item["end"], item["top"] or item["source"], item["text"]) for item in items
    ]
    for row, item in zip(rows, items):
        if item["top"]:
            assert row["tag"] == f"{item['top']} {item['probability']:.2f}"
            assert sorted(row["title"].splitlines()) == sorted(
                f"{k} {p:.2f}" for k, p in item["probabilities"].items()
            )
    fills = set(
        page.eval_on_selector_all("#chart polygon", "nodes => nodes.map(n => n.getAttribute('fill'))")
    )
    labels = json.loads(annotated[0].read_text().split('id="msa-data">')[1].split("</script>")[0])["labels"]
    assert fills == {class_colour(index) for index in range(len(labels))}, "the PNG's colours"


def test_hostile_cue_text_shows_as_text_and_runs_nothing(view):
    page = view.page
    texts = [row["text"] for row in rows_shown(page)]
    assert texts == [cue.text for cue in TALK_CUES] and HOSTILE_MARKUP in texts and HOSTILE_SCRIPT in texts
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("[document.images.length, document.scripts.length]") == [0, 2]


def test_clicking_a_row_or_the_timeline_seeks_the_video(view, annotated):
    page, (_, items) = view.page, annotated
    page.click("#transcript li >> nth=2")
    start = items[2]["start"]
    wait_until_at(page, start, SEEK_TOLERANCE)
    assert current_row(page) == 2

    box = page.locator("#chart .overlay").bounding_box()
    duration = page.evaluate("document.querySelector('video').duration")
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tolerance = 2 * duration / box["width"]  # s: two pixels of the timeline
    wait_until_at(page, duration / 2, tolerance)


def test_the_highlighted_row_follows_playback(view, annotated, tmp_path):
    page, (_, items) = view.page, annotated
    page.evaluate(
        "time => { const video = document.querySelector('video'); video.muted = true; video.currentTime = time; }",
        items[1]["start"] + 0.05,
    )
    wait_until_current(page, 1)
    cursor_before = float(page.get_attribute("#chart .cursor", "x1"))
    page.evaluate("document.querySelector('video').play()")
    wait_until_current(page, 2)
    page.evaluate("document.querySelector('video').pause()")
    assert float(page.get_attribute("#chart .cursor", "x1")) > cursor_before
    assert [row["current"] for row in rows_shown(page)] == [False, False, True, False]

    screenshot = tmp_path / SCREENSHOT
    page.screenshot(path=screenshot, full_page=True)
    if os.environ.get("MSA_SCREENSHOT_DIR"):
        shutil.copy(screenshot, Path(os.environ["MSA_SCREENSHOT_DIR"]) / SCREENSHOT)


def test_the_filter_hides_the_other_rows(view, annotated):
    page, (_, items) = view.page, annotated
    label = items[0]["top"] or items[0]["source"]
    page.select_option("#filter", label)
    expected = [(item["top"] or item["source"]) != label for item in items]
    assert [row["hidden"] for row in rows_shown(page)] == expected and not all(expected)
    assert page.locator("#transcript li:visible").count() == expected.count(False)
    page.select_option("#filter", "")
    assert page.locator("#transcript li:visible").count() == len(items)

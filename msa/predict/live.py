"""``msa predict MODEL --live SOURCE``: windows (or live subtitle cues) classified as the stream
arrives, each written the moment it is classified (msa.predict.live_output).

The stream is decoded on its own thread (msa.predict.live_source), which stamps every item with
the moment it arrived. A window [k * hop, k * hop + window) is *complete* once its last frame-grid
point and its last audio sample have arrived; a cue once the stream has passed its end. Its
**latency** is the time from then to its line being written: waiting for the model, cropping,
classifying and writing. The pass works on one span at a time, so when the model is slower than
real time complete windows queue up; a window that has waited longer than ``max_latency`` while a
newer one is complete is skipped (and said so), so latency stays bounded instead of growing
without limit. Cues are never skipped: each is a line of the transcript.

What is held: the grid frames (``window / num_frames`` apart, as file mode's windows see them)
and the audio of the spans not yet classified, or of the last CUE_HISTORY seconds for cues that
arrive after their speech; memory does not grow with the stream's length.

Frames and faces go through msa.predict.run.SpanClassifier, as in file mode: the face detector
runs on every window's frames, so the crop follows the speaker.
"""

from __future__ import annotations

import math
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from msa.data.decode import sample_frame_indices
from msa.predict.classifier import Classifier
from msa.predict.live_cues import CueFailure, LiveCue
from msa.predict.live_output import LiveOutput, LiveRow
from msa.predict.live_source import (
    GridFrame,
    LiveAudio,
    SourceFailure,
    SourceReader,
    StreamEnd,
    first_grid_point,
    grid_range,
)
from msa.predict.run import AUDIO_LAG_LIMIT, AudioBuffer, AudioChunk, SpanClassifier
from msa.predict.spans import Span

STALL_TIMEOUT = 10.0  # s without any data from SOURCE before giving up
STALL_POLL = 0.1  # s between looks at whether SOURCE still sends while nothing is decoded
CUE_HISTORY = 30.0  # s of frames and audio kept for a cue that arrives after its speech
CUE_GRACE = 2.0  # s after the stream's end that cues may still arrive
END_TOLERANCE = 1e-6  # s: float noise in k * hop + window against the stream's end
PERCENTILES = (50, 95)


class LiveError(RuntimeError):
    """The source failed, stalled, or does not hold what the model needs (exit 2, one line)."""


@dataclass(frozen=True)
class LiveOptions:
    window: float  # s
    hop: float  # s
    max_latency: float  # s a complete window may wait while a newer one is complete
    stall_timeout: float = STALL_TIMEOUT  # s
    crop: str = "face"


@dataclass
class LiveSummary:
    """What a live pass did: spans written and skipped, each written span's latency and model
    time (seconds), the stream time reached, and the most RGB frames held at once."""

    written: int = 0
    skipped: int = 0
    latencies: list[float] = field(default_factory=list)
    model_seconds: list[float] = field(default_factory=list)
    stream_seconds: float = 0.0
    max_frames_held: int = 0

    def latency_stats(self) -> dict[str, float]:
        if not self.latencies:
            return {}
        values = np.asarray(self.latencies)
        stats = {f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES}
        return {**stats, "max": float(values.max())}

    def line(self, kind: str) -> str:
        stats = self.latency_stats()
        latency = (
            f"latency p50 {stats['p50']:.3f} s, p95 {stats['p95']:.3f} s, max {stats['max']:.3f} s "
            f"(the model {np.median(self.model_seconds):.3f} s per {kind})"
            if stats
            else "no latency measured"
        )
        skipped = f", {self.skipped} skipped to keep up" if self.skipped else ", none skipped"
        return f"{self.written} {kind}s written{skipped}; {latency}; {self.stream_seconds:.1f} s of stream"


@dataclass
class _Waiting:
    """A complete span waiting to be classified; ``ready_at`` when its last data arrived."""

    span: Span
    ready_at: float


class LivePass:
    """One live pass over ``reader``'s items (see the module doc). ``cue_mode``: classify the
    LiveCue items the queue also carries, instead of windows."""

    def __init__(
        self,
        classifier: Classifier,
        reader: SourceReader,
        options: LiveOptions,
        output: LiveOutput,
        cue_mode: bool = False,
        note: Callable[[str], None] = print,
    ):
        self.classifier, self.reader, self.options, self.output = classifier, reader, options, output
        self.cue_mode, self.note = cue_mode, note
        self.step = options.window / classifier.params.num_frames
        self.summary = LiveSummary()
        self.state: SpanClassifier | None = None
        self.use_video = self.use_audio = False
        self.rate = 1
        self.last_grid, self.video_time, self.ended = -1, 0.0, False
        self.next_window = 0
        self.cues: list[LiveCue] = []  # arrived, not yet complete
        self.waiting: deque[_Waiting] = deque()

    # ------------------------------------------------------------------ the stream's state

    def _start(self) -> None:
        """The first item arrived: the source is open; check it holds what the model needs."""
        info, classifier = self.reader.info, self.classifier
        name = self.reader.source.text
        if classifier.uses_audio and not info.has_audio:
            raise LiveError(f"{name}: no audio track, and the model classifies audio")
        if classifier.uses_video and not info.has_video and not classifier.predicts_without_video:
            raise LiveError(f"{name}: no video track, and the model classifies video only")
        self.use_video = classifier.uses_video and info.has_video
        self.use_audio = classifier.uses_audio and info.has_audio
        self.rate = info.audio_rate or 1
        audio = AudioBuffer(info.audio_channels) if self.use_audio else None
        self.state = SpanClassifier(
            classifier,
            self.options.crop,
            not self.cue_mode,
            self.use_video,
            audio,
            self.rate,
            info.audio_layout,
        )
        self.note(f"{name}: {info.describe()}")

    def _take(self, item) -> None:
        if isinstance(item, SourceFailure | CueFailure):
            raise LiveError(item.message)
        if self.state is None and not isinstance(item, LiveCue):
            self._start()
        if isinstance(item, GridFrame):
            for index in item.indices:
                self.state.add_frame(index, item.rgb)
            self.last_grid, self.video_time = max(self.last_grid, item.indices[-1]), item.time
        elif isinstance(item, LiveAudio):
            self.state.audio.add(AudioChunk(item.offset, item.samples), self.rate)
        elif isinstance(item, StreamEnd):
            self.ended = True
        elif isinstance(item, LiveCue):
            self.cues.append(item)
        self.summary.stream_seconds = self._reached()
        self._promote(item.arrival)

    def _reached(self) -> float:
        """The stream time both tracks have arrived to."""
        times = []
        if self.use_video:
            times.append(self.video_time)
        if self.use_audio and self.state is not None:
            times.append(self.state.audio.end / self.rate)
        return min(times, default=0.0)

    def _complete(self, end: float) -> bool:
        if self.state is None:
            return False
        if self.ended:
            return (
                end
                <= max(self.video_time, self.state.audio.end / self.rate if self.use_audio else 0.0)
                + END_TOLERANCE
            )
        video_done = not self.use_video or self.last_grid >= grid_range(0.0, end, self.step).stop - 1
        audio_done = (
            not self.use_audio
            or self.state.audio.end >= math.ceil(end * self.rate - END_TOLERANCE)
            or (self.use_video and self.video_time > end + AUDIO_LAG_LIMIT)
        )
        return video_done and audio_done

    def _window(self, index: int) -> Span:
        start = index * self.options.hop
        end = start + self.options.window
        frames = tuple(grid_range(start, end, self.step)) if self.use_video else ()
        return Span(start, end, frames)

    def _cue_span(self, cue) -> Span:
        """A cue's frames: ``num_frames`` spread over the grid points in it (as training spreads
        them over a clip's frames); the grid point nearest its middle for a cue shorter than that."""
        frames = ()
        if self.use_video:
            grid = grid_range(cue.start, cue.end, self.step)
            if len(grid) == 0:
                middle = max(0, round((cue.start + cue.end) / 2 / self.step - 0.5))
                grid = range(middle, middle + 1)
            frames = tuple(
                grid[i] for i in sample_frame_indices(len(grid), self.classifier.params.num_frames)
            )
        return Span(cue.start, cue.end, frames, cue)

    def _promote(self, arrival: float) -> None:
        """Complete spans join the waiting line, stamped with ``arrival``."""
        if self.cue_mode:
            for item in [item for item in self.cues if self._complete(item.cue.end)]:
                self.cues.remove(item)
                self.waiting.append(_Waiting(self._cue_span(item.cue), max(arrival, item.arrival)))
            return
        while self._complete(self.next_window * self.options.hop + self.options.window):
            self.waiting.append(_Waiting(self._window(self.next_window), arrival))
            self.next_window += 1

    def _forget(self) -> None:
        """Drop the frames and audio no waiting or later span needs."""
        if self.state is None:
            return
        if self.cue_mode:
            starts = [w.span.start for w in self.waiting] + [item.cue.start for item in self.cues]
            keep_from = min([*starts, self._reached() - CUE_HISTORY])
        else:
            keep_from = self.waiting[0].span.start if self.waiting else self.next_window * self.options.hop
        keep_from = max(0.0, keep_from)
        self.state.drop_before(first_grid_point(keep_from, self.step), keep_from)

    # ------------------------------------------------------------------ the loop

    def _drain(self, wait: bool) -> None:
        """Take every item that has arrived; with ``wait``, wait for one while the source sends
        something (a stall is SOURCE silent for the stall timeout, not decoding taking long)."""
        items = self.reader.items
        while wait:
            try:
                self._take(items.get(timeout=STALL_POLL))
                break
            except queue.Empty:
                if time.monotonic() - self.reader.last_data > self.options.stall_timeout:
                    what = "nothing arrived" if self.state is None else "no data"
                    raise LiveError(
                        f"{self.reader.source.text}: {what} for {self.options.stall_timeout:g} s "
                        "(--stall-timeout); stopping"
                    ) from None
        while True:
            try:
                self._take(items.get_nowait())
            except queue.Empty:
                return

    def _late_cues(self) -> bool:
        """After the stream's end, whether a cue came within CUE_GRACE seconds (a transcript
        lags its speech)."""
        try:
            self._take(self.reader.items.get(timeout=CUE_GRACE))
            return True
        except queue.Empty:
            return False

    def _skip_stale(self) -> None:
        if self.cue_mode:
            return
        now, skipped = time.monotonic(), []
        while len(self.waiting) > 1 and now - self.waiting[0].ready_at > self.options.max_latency:
            skipped.append(self.waiting.popleft().span)
        if skipped:
            self.summary.skipped += len(skipped)
            self.note(
                f"skipped {len(skipped)} window{'s' * (len(skipped) > 1)} ({skipped[0].start:.1f}-{skipped[-1].end:.1f} s): "
                f"the model is behind by more than --max-latency {self.options.max_latency:g} s"
            )
            self._forget()

    def _classify_next(self) -> None:
        waiting = self.waiting[0]
        started = time.perf_counter()
        prediction = self.state.classify(waiting.span)
        model_seconds = time.perf_counter() - started
        self.waiting.popleft()
        text = waiting.span.cue.text if waiting.span.cue is not None else None
        latency = time.monotonic() - waiting.ready_at  # writing a line takes microseconds
        self.output.write(LiveRow(waiting.span.start, waiting.span.end, text, prediction, latency))
        self.summary.written += 1
        self.summary.latencies.append(latency)
        self.summary.model_seconds.append(model_seconds)
        self.summary.max_frames_held = self.state.stats.max_frames_held
        self._forget()

    def run(self) -> LiveSummary:
        """Until the stream ends (or fails, stalls, or Ctrl-C: KeyboardInterrupt, after the
        complete spans are written)."""
        try:
            while True:
                self._drain(wait=not self.waiting and not self.ended)
                if self.ended and not self.waiting:
                    if self.cue_mode and self._late_cues():
                        continue
                    return self.summary
                self._skip_stale()
                if self.waiting:
                    self._classify_next()
        except KeyboardInterrupt:
            self.finish()
            raise

    def finish(self) -> None:
        """Write the spans already complete (after Ctrl-C): the last complete window is kept."""
        self._drain(wait=False)
        while self.waiting:
            self._classify_next()

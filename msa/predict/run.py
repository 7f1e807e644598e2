"""Classifying a recording's spans in one streamed pass (``predict_spans``).

The recording is decoded once, front to back. Each span is classified as soon as both tracks
have been decoded past it; then the frames and audio no later span needs are dropped. What is
held at any time: the RGB frames the pending spans picked (``num_frames`` per span, shared by
overlapping windows) and their audio at the source's rate, so memory depends on the window (or
the longest cue), not on the recording's length (docs/how-to/predict-export.md).

Per span, in the order training prepares a clip: the frames are cropped (the fixed RAVDESS crop,
or around the face ``msa.data.faces.find_face`` finds in them) and resized
(``msa.data.decode.crop_and_resize``); the audio is mixed down and resampled over the span
(``msa.audio_format.to_model_audio``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from msa.audio_format import to_model_audio
from msa.data.decode import crop_and_resize, crop_box
from msa.data.faces import detect_faces, face_crop_box, find_face
from msa.predict.classifier import Classifier, SpanInputs
from msa.predict.media import AudioChunk, MediaError, MediaInfo, stream
from msa.predict.spans import Span
from msa.predict.timeline import WindowPrediction

# A window's face box is kept from the window before when it moved and changed size by less than
# this (relative to its side): a steady crop, and frames shared by overlapping windows keep one
# crop, so their features are computed once.
BOX_STEADY_FRACTION = 0.05
# Containers interleave their tracks within a second or so. A span whose audio has not arrived
# when the video is this far past its end gets what there is (an audio track that ends early),
# so frames do not pile up waiting for audio that never comes.
AUDIO_LAG_LIMIT = 10.0  # s
# Audio frames are taken as contiguous unless their timestamps say otherwise by more than this:
# containers round timestamps (Matroska to the millisecond), never the samples.
AUDIO_TIMESTAMP_JITTER = 0.02  # s


@dataclass
class PredictStats:
    """What a pass did besides its predictions: frames embedded (by the model, not found in its
    frame cache), each span's crop box in source pixels (top, left, side; None without one), and
    the most RGB frames held at once (the memory bound)."""

    frames_embedded: int = 0
    boxes: list[tuple[int, int, int] | None] = field(default_factory=list)
    max_frames_held: int = 0


def steady_box(previous: tuple[int, int, int] | None, box: tuple[int, int, int]) -> tuple[int, int, int]:
    """``previous`` when ``box`` (top, left, side) lies within BOX_STEADY_FRACTION of it, else ``box``."""
    if previous is None:
        return box
    top, left, side = previous
    moved = max(abs(box[0] - top), abs(box[1] - left), abs(box[2] - side))
    return previous if moved <= BOX_STEADY_FRACTION * side else box


class AudioBuffer:
    """The decoded audio from sample ``origin`` on, planar float32 (C, n) at the track's rate."""

    def __init__(self, channels: int):
        self.channels = channels
        self.origin = 0
        self.samples = np.zeros((channels, 0), dtype=np.float32)
        self.chunks: list[np.ndarray] = []

    @property
    def end(self) -> int:
        return self.origin + self.samples.shape[1] + sum(chunk.shape[1] for chunk in self.chunks)

    def add(self, chunk: AudioChunk, rate: int) -> None:
        """Append a chunk after the samples before it; where its timestamp is further from there
        than AUDIO_TIMESTAMP_JITTER, at its timestamp (a gap is silence, an overlap dropped)."""
        samples = chunk.samples
        if samples.shape[0] != self.channels:
            raise MediaError(f"the audio track changes from {self.channels} to {samples.shape[0]} channels")
        gap = chunk.offset - self.end
        if abs(gap) <= AUDIO_TIMESTAMP_JITTER * rate:
            gap = 0
        if gap > 0:
            self.chunks.append(np.zeros((samples.shape[0], gap), dtype=np.float32))
        elif gap < 0:
            samples = samples[:, -gap:]
        if samples.shape[1]:
            self.chunks.append(samples)

    def _join(self) -> None:
        """Chunks are appended as they come and joined when read: one copy per span, not per chunk."""
        if self.chunks:
            self.samples = np.concatenate([self.samples, *self.chunks], axis=1)
            self.chunks = []

    def span(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of the recording's clock (shorter where the audio ended)."""
        self._join()
        return self.samples[:, max(0, start - self.origin) : max(0, stop - self.origin)]

    def drop_before(self, sample: int) -> None:
        self._join()
        cut = min(max(0, sample - self.origin), self.samples.shape[1])
        self.samples, self.origin = self.samples[:, cut:], self.origin + cut


class SpanClassifier:
    """What classifying spans holds between them, for the file pass (``predict_spans``) and the
    live one (msa.predict.live): the RGB frames the pending spans picked (``frames``, by index),
    their audio, and per frame its first-pass faces and its crop by each box a span used (so that
    a frame is detected, cropped and resized once, not once per span that shows it).

    ``crop_mode``: "fixed" or "face"; ``steady``: keep a span's face box from the span before while
    the face stays put (timeline mode)."""

    def __init__(
        self,
        classifier: Classifier,
        crop_mode: str,
        steady: bool,
        use_video: bool,
        audio: AudioBuffer | None,
        audio_rate: int,
        audio_layout: str | None,
    ):
        self.classifier = classifier
        self.crop_mode = crop_mode
        self.steady = steady
        self.use_video = use_video
        self.audio = audio
        self.audio_rate = audio_rate
        self.audio_layout = audio_layout
        self.frames: dict[int, np.ndarray] = {}
        self.detections: dict[int, np.ndarray] = {}
        self.crops: dict[tuple[int, tuple[int, int, int]], np.ndarray] = {}
        self.previous_box: tuple[int, int, int] | None = None
        self.stats = PredictStats()

    def add_frame(self, index: int, rgb: np.ndarray) -> None:
        self.frames[index] = rgb
        self.stats.max_frames_held = max(self.stats.max_frames_held, len(self.frames))

    def drop_before(self, frame: int, seconds: float) -> None:
        """Forget the frames before index ``frame`` and the audio before ``seconds``."""
        for index in [i for i in self.frames if i < frame]:
            del self.frames[index]
            self.detections.pop(index, None)
        for key in [key for key in self.crops if key[0] < frame]:
            del self.crops[key]
        if self.audio is not None:
            self.audio.drop_before(round(seconds * self.audio_rate))

    def _crop(self, span: Span) -> tuple[tuple[int, int, int] | None, np.ndarray | None, tuple]:
        """(box, cropped frames (T, S, S, 3), their cache keys) of a span; no frames without a face."""
        params, frames = self.classifier.params, self.frames
        shown = [index for index in span.frames if index in frames]
        if not shown:
            return None, None, ()
        if self.crop_mode == "fixed":
            box = crop_box(*frames[shown[0]].shape[:2], params)
        else:
            for index in shown:
                if index not in self.detections:
                    self.detections[index] = detect_faces(frames[index])
            face = find_face(np.stack([frames[i] for i in shown]), [self.detections[i] for i in shown])
            box = None if face is None else face_crop_box(face)
            if box is not None and self.steady:
                box = self.previous_box = steady_box(self.previous_box, box)
        if box is None:
            return None, None, ()
        keys = tuple((index, box) for index in shown)
        new = [key for key in dict.fromkeys(keys) if key not in self.crops]
        if new:
            self.crops.update(zip(new, crop_and_resize(np.stack([frames[i] for i, _ in new]), params, box)))
        return box, np.stack([self.crops[key] for key in keys]), keys

    def classify(self, span: Span) -> WindowPrediction:
        classifier, rate = self.classifier, self.audio_rate
        inputs = {}
        box = None
        if self.use_video and span.frames:
            box, video, keys = self._crop(span)
            if video is not None:
                inputs.update(video=video, frame_keys=keys)
        self.stats.boxes.append(box)
        if self.audio is not None:
            samples = self.audio.span(round(span.start * rate), round(span.end * rate))
            if samples.shape[1]:
                waveform = to_model_audio(samples, rate, self.audio_layout, classifier.params.sample_rate)
                if len(waveform) >= classifier.min_audio_samples:
                    inputs["audio"] = waveform
        if classifier.uses_audio and "audio" not in inputs:
            return WindowPrediction(span.start, span.end, (), "no audio")
        if classifier.uses_video and "video" not in inputs and not classifier.predicts_without_video:
            return WindowPrediction(span.start, span.end, (), "no face")
        probabilities, embedded = classifier.probabilities(SpanInputs(**inputs))
        self.stats.frames_embedded += embedded
        source = "+".join(modality for modality in ("audio", "video") if modality in inputs)
        return WindowPrediction(span.start, span.end, probabilities, source)


def predict_spans(
    classifier: Classifier,
    info: MediaInfo,
    spans: Sequence[Span],
    crop_mode: str,
    steady: bool = False,
    on_progress: Callable[[float], None] | None = None,
) -> tuple[list[WindowPrediction], PredictStats]:
    """One WindowPrediction per span, in order. ``crop_mode``: "fixed" or "face"; ``steady``: keep a
    window's face box from the window before while the face stays put (timeline mode);
    ``on_progress(seconds)`` is called as decoding advances."""
    use_video = classifier.uses_video and info.has_video
    use_audio = classifier.uses_audio and info.has_audio
    wanted = {index for span in spans for index in span.frames} if use_video else set()
    audio = AudioBuffer(info.audio_channels) if use_audio else None
    rate = info.audio_rate or 1
    state = SpanClassifier(classifier, crop_mode, steady, use_video, audio, rate, info.audio_layout)
    predictions: list[WindowPrediction] = []
    last_frame, video_time = -1, 0.0

    def ready(span: Span) -> bool:
        video_done = not use_video or not span.frames or last_frame >= max(span.frames)
        audio_done = (
            audio is None
            or audio.end >= math.ceil(span.end * rate)
            or (use_video and video_time > span.end + AUDIO_LAG_LIMIT)
        )
        return video_done and audio_done

    def flush(finished: bool) -> None:
        while len(predictions) < len(spans) and (finished or ready(spans[len(predictions)])):
            predictions.append(state.classify(spans[len(predictions)]))
            if len(predictions) < len(spans):  # spans start in time order: drop what is behind the next
                following = spans[len(predictions)]
                state.drop_before(min(following.frames, default=0), following.start)

    for item in stream(info, wanted, video=use_video, audio=use_audio):
        if isinstance(item, AudioChunk):
            audio.add(item, rate)
            progress = item.offset / rate
        else:
            if item.rgb is not None:
                state.add_frame(item.index, item.rgb)
            last_frame, video_time = item.index, item.time
            progress = item.time
        flush(finished=False)
        if on_progress is not None:
            on_progress(progress)
    flush(finished=True)
    return predictions, state.stats

"""Subtitle cues that arrive while the stream runs (``msa predict --live SOURCE --subtitles-live
FILE|-``): a transcription service writing WebVTT as the meeting goes, to a file or a pipe.

``CueReader`` reads the text as it comes (a file as it grows, like ``tail -f``; ``-`` from
standard input until it closes) and puts each cue on the live pass's queue (``LiveCue``) once its
block is complete, that is once the blank line after it has arrived. The text is parsed by
msa.predict.subtitles, so a broken cue is the same one-line error as in file mode
(``CueFailure``).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass

from msa.predict.live_source import FOLLOW_POLL, READ_SIZE, STDIN
from msa.predict.subtitles import Cue, SubtitleError, parse_webvtt


@dataclass(frozen=True)
class LiveCue:
    cue: Cue
    arrival: float  # monotonic clock when its block was complete


@dataclass(frozen=True)
class CueFailure:
    message: str
    arrival: float


def complete_cues(text: str, name: str, at_rest: bool = False) -> list[Cue]:
    """The cues of the blocks of WebVTT ``text`` that are complete: followed by a blank line, or,
    when the text is ``at_rest`` (nothing more has arrived for now), ending with a whole line."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    if at_rest and normalised.endswith("\n"):
        complete = normalised
    else:
        complete = normalised[: normalised.rfind("\n\n") + 1] if "\n\n" in normalised else ""
    return parse_webvtt(complete, name) if complete.strip() else []


class CueReader(threading.Thread):
    """Reads ``location`` (a file, followed; or ``-``) and puts LiveCue items on ``items``."""

    def __init__(self, location: str, items: queue.Queue, stop: threading.Event):
        super().__init__(name="msa-live-cues", daemon=True)
        self.location, self.items, self.stop = location, items, stop

    def run(self) -> None:
        name = "standard input" if self.location == STDIN else self.location
        fd = 0 if self.location == STDIN else os.open(self.location, os.O_RDONLY)
        raw, sent, parsed = b"", 0, 0
        try:
            while not self.stop.is_set():
                data = os.read(fd, READ_SIZE)
                at_rest = not data
                if at_rest and len(raw) == parsed:  # nothing new since the last look
                    if self.location == STDIN:
                        return  # the pipe closed
                    self.stop.wait(FOLLOW_POLL)
                    continue
                raw += data
                lines = raw[: raw.rfind(b"\n") + 1]  # whole lines: no character split between reads
                try:
                    text = lines.decode("utf-8-sig")
                except UnicodeDecodeError as error:
                    raise SubtitleError(f"--subtitles-live {name}: not UTF-8 ({error.reason})") from None
                cues = complete_cues(text, f"--subtitles-live {name}", at_rest)
                if at_rest:
                    parsed = len(raw)
                now = time.monotonic()
                for cue in cues[sent:]:
                    self.items.put(LiveCue(cue, now))
                sent = max(sent, len(cues))
        except (SubtitleError, OSError) as error:
            self.items.put(CueFailure(str(error), time.monotonic()))
        finally:
            if fd != 0:
                os.close(fd)

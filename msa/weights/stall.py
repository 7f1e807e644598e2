"""A stall bound around a blocking call: it fails once it has gone `limit` seconds without a sign
of progress, however long it runs while progressing.

For huggingface_hub, whose own retries add up to minutes on a dead connection: a failed metadata
request (HEAD) is retried with a 60 s timeout and back-off, a GET that never answers is retried
five times with a 10 s timeout. The call runs in a daemon thread; the caller beats the watchdog
on every sign of progress, and holds it while something else bounds the wait (see hold). On a
stall the caller gets Stalled at once and the thread is left to end on those timeouts; a daemon,
so that a process never waits for it at exit (a ThreadPoolExecutor's worker would be joined).
"""

import threading
import time
from collections.abc import Callable
from typing import TypeVar

POLL = 0.1  # s between checks of the worker

T = TypeVar("T")


class Stalled(TimeoutError):
    """No progress for the watchdog's limit."""


class Watchdog:
    def __init__(self, limit: float):
        self.limit = limit  # s without a beat
        self._last_beat = time.monotonic()
        self._holds = 0
        self._lock = threading.Lock()

    def beat(self) -> None:
        """A sign of progress (a request answered, a file done); safe from any thread."""
        self._last_beat = time.monotonic()

    def hold(self) -> None:
        """Stop counting until release(): for a phase bounded otherwise (e.g. by a read timeout)."""
        with self._lock:
            self._holds += 1

    def release(self) -> None:
        with self._lock:
            self._holds -= 1
        self.beat()

    def run(self, work: Callable[[], T]) -> T:
        """work()'s result or exception, or Stalled after `limit` s without a beat, outside holds."""
        outcome: dict[str, object] = {}

        def target() -> None:
            try:
                outcome["result"] = work()
            except BaseException as error:  # handed to the caller, who decides
                outcome["error"] = error

        worker = threading.Thread(target=target, name="msa-weights-fetch", daemon=True)
        self.beat()
        worker.start()
        while worker.is_alive():
            worker.join(POLL)
            if worker.is_alive() and not self._holds and time.monotonic() - self._last_beat > self.limit:
                raise Stalled(f"no progress for {self.limit:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

"""What the benchmark scripts share: running a command with its output in a log (and, if asked,
the peak memory of its process tree), and the trials of an experiment on the wall clock.

    seconds, memory = run_logged(command, log, memory=True)   # memory.peak_pss, .peak_rss (KiB)
    windows = trial_windows(experiment)                      # per trial: start, end, in_trial, ...
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd

from msa.analysis import load_experiment

REPO = Path(__file__).resolve().parents[1]
MEMORY_INTERVAL = 0.25  # s between samples of a process tree's memory


def tree_memory_kb(root_pid: int) -> tuple[int, int]:
    """(summed PSS, summed RSS) in KiB of `root_pid` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    pss = rss = 0
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return pss, rss


class PeakMemory(threading.Thread):
    """Samples a process tree's memory until stopped; keeps the peaks (KiB)."""

    def __init__(self, pid: int, interval: float = MEMORY_INTERVAL):
        super().__init__(daemon=True)
        self.pid, self.interval, self.stop = pid, interval, threading.Event()
        self.peak_pss = self.peak_rss = 0

    def run(self) -> None:
        while not self.stop.is_set():
            pss, rss = tree_memory_kb(self.pid)
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            self.stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join()


def run_logged(command: list[str], log: Path, memory: bool = False) -> tuple[float, PeakMemory | None]:
    """Run ``command`` in the repository with its output in ``log`` -> (seconds, the peak memory
    of its process tree when ``memory``). A failure exits naming the command and the log."""
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        sampler = PeakMemory(process.pid) if memory else None
        if sampler:
            with sampler:
                code = process.wait()
        else:
            code = process.wait()
    if code != 0:
        raise SystemExit(f"{' '.join(command)} exited {code}; see {log}")
    return time.perf_counter() - started, sampler


def trial_windows(experiment: str | os.PathLike) -> pd.DataFrame:
    """One row per trial that reported an epoch (index: its folder): ``start`` and ``end`` on the
    wall clock (s), ``in_trial`` (Ray's time_total_s: from the trainable's start to its last
    report), ``in_epochs`` (the sum of its epoch_seconds) and ``epochs``."""
    epochs = load_experiment(experiment).epochs
    clock = epochs["timestamp"]  # whole seconds; msa's own reported_at where there is one
    if "reported_at" in epochs:
        clock = epochs["reported_at"].fillna(clock)
    windows = (
        epochs.assign(clock=clock)
        .groupby("trial")
        .agg(
            end=("clock", "last"),
            in_trial=("time_total_s", "last"),
            in_epochs=("epoch_seconds", "sum"),
            epochs=("epoch", "count"),
        )
    )
    windows["start"] = windows["end"] - windows["in_trial"]
    return windows

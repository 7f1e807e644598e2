"""Whether ``msa predict MODEL --live -`` holds its latency bounded on this machine's CPUs, per
model family and runtime (PyTorch, ONNX).

    python benchmarks/bench_live.py [--models a,b] [--crops face,fixed] [--runtimes pytorch,onnx]
                                    [--seconds 60] [--speed 1] [--long SECONDS [--long-model audio_cnn]
                                    [--long-speed 10]] [--work DIR] [--json OUT]
    python benchmarks/bench_live.py --quick    # smoke run: 10 s, audio_cnn + multimodal_iter2, PyTorch, fixed

What is measured: a meeting as the live command sees it. bench_predict's recording (1280x720
H.264 + AAC, cached in ``--work``) is fed through a pipe at real-time pace by
``python -m msa.predict.replay REC --speed 1`` (what ``ffmpeg -re -i REC -c copy -f matroska -``
does) into ``python -m msa.predict MODEL --live - --quiet`` at the command's default window (3 s),
hop (1 s), --max-latency (the hop) and threads (torch's and ONNX Runtime's defaults: every core),
for every registered model family (``msa.models.list_models()``) at full size with random weights
(bench_predict's checkpoints: speed does not depend on the weights), with each crop for a model
that sees video, once for an audio model; both processes are started here, fresh for each run.
The runtime "onnx" is the same checkpoint exported by ``python -m msa.export CKPT --format onnx``
(cached in ``--work``/exports under a hash of msa.models' and msa.export's code and the torch
version); a model that cannot be exported is reported with the exporter's error line.

Per run, from the command's JSON lines and its summary line on stderr (the two must agree: the
lines' p50/p95/max within their millisecond rounding, the count of lines and windows written):
windows written and skipped; latency p50/p95/max, each window's from the moment its last sample
arrived to its line being written; the model's median seconds per window (classifying: crop,
face detection, the forward pass; the summary's figure) and, from it, the median wait (latency
p50 minus the model's time: the window queued behind earlier ones, or the decoder and the model
shared the cores); load (start to the model loaded: the command's ``model:`` line); the first
line's time; the predict process's peak RSS (its VmHWM, polled every PEAK_INTERVAL); wall time;
the p95 after the first WARMUP_WINDOWS windows (a model's first calls are slow, PyTorch's most,
and the windows behind them queue: in a short run they are the p95); the load average.
The issue's goals, at the default hop on 2 cores: p95 latency < one hop (1 s) for
multimodal_iter2 (each runtime, each crop) and < a quarter of a hop (0.25 s) for the fastest
audio model (per runtime: the audio-only model with the lowest model time per window). Where a
goal is missed the JSON and the table say by how much, beside the model's time and the wait.

``--long SECONDS`` also replays a recording that long ``--long-speed`` times faster than real
time (default 10x) through ``--long-model`` (default audio_cnn, PyTorch) and samples the predict
process's RSS (/proc/PID/status VmRSS) every LONG_RSS_INTERVAL seconds: first (after its first
window), last, peak, so that "memory stays flat" is measured. Faster than real time the model may
fall behind and windows get skipped (counted): that changes how many windows are classified,
not what is held (the frames and audio of the windows not yet classified, at most
``--max-latency`` of them). ``--tiny`` (tests) shrinks the models (msa.models.tiny_overrides)
and the recording to 5 s. ``--speed`` > 1 is for smoke runs (recorded in the JSON): the
decoder then does that many times the work, which the latency shows.

Writes benchmarks/results/live.json (live-quick.json with --quick) and prints a table. Share
nothing else with the machine while it runs: the figures are CPU-bound and latency is wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
from bench_predict import CROPS, MB, RESULTS, describe_recording, recording, save_model, uses_video  # noqa: E402

from msa.data import default_cache_dir  # noqa: E402
from msa.models import list_models, tiny_overrides  # noqa: E402
from msa.predict.__main__ import HOP, WINDOW  # noqa: E402  (s: the command's defaults)

SECONDS = 60.0  # s: the recording of every run
QUICK_SECONDS, TINY_SECONDS = 10.0, 5.0  # s
QUICK_MODELS = ("audio_cnn", "multimodal_iter2")
QUICK_CROPS = ("fixed",)
RUNTIMES = ("pytorch", "onnx")
SPEED = 1.0  # times real time: a live meeting
LONG_MODEL, LONG_SPEED = "audio_cnn", 10.0
LONG_RSS_INTERVAL = 2.0  # s (wall) between RSS samples of --long's predict process
PEAK_INTERVAL = 0.2  # s between looks at a predict process's peak RSS
MULTIMODAL_GOAL = ("multimodal_iter2", HOP)  # the model, p95 latency under this (s)
AUDIO_GOAL = HOP / 4  # s: p95 latency of the fastest audio model
WARMUP_WINDOWS = 3  # the first windows: the model's first calls, and the windows queued behind them
LATENCY_ROUNDING = 1e-3  # s: the JSON lines' latency has 3 decimals, the summary line's too
SUMMARY = re.compile(
    r"(?P<written>\d+) windows written(?:, (?P<skipped>\d+) skipped to keep up|, none skipped); "
    r"latency p50 (?P<p50>[\d.]+) s, p95 (?P<p95>[\d.]+) s, max (?P<max>[\d.]+) s "
    r"\(the model (?P<model>[\d.]+) s per window\); (?P<stream>[\d.]+) s of stream"
)


# -- one live run: replay | predict --live ------------------------------------------------------


class Memory(threading.Thread):
    """Polls process ``pid``'s /proc status until stopped: ``peak_mb``, the kernel's high-water
    mark of its RSS (VmHWM: exact up to the last poll; ``ru_maxrss`` would not do, as a child
    started by vfork inherits the parent's), and with ``every`` (s) ``samples`` of VmRSS,
    (wall s since ``started``, MiB)."""

    def __init__(self, pid: int, started: float, every: float | None):
        super().__init__(daemon=True)
        self.pid, self.started, self.every, self.stop = pid, started, every, threading.Event()
        self.peak_mb, self.samples, self.sampled_at = 0.0, [], -math.inf

    def status_mb(self) -> dict[str, float]:
        try:
            lines = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        except OSError:  # it has ended
            return {}
        fields = (line.split() for line in lines if line.startswith(("VmRSS:", "VmHWM:")))
        return {name.rstrip(":"): int(kib) / MB for name, kib, *_ in fields}

    def run(self) -> None:
        while not self.stop.wait(PEAK_INTERVAL):
            now, status = time.monotonic(), self.status_mb()
            self.peak_mb = max(self.peak_mb, status.get("VmHWM", 0.0))
            if self.every and "VmRSS" in status and now - self.sampled_at >= self.every:
                self.samples.append((round(now - self.started, 1), round(status["VmRSS"], 1)))
                self.sampled_at = now


def live_run(model_file: Path, path: Path, crop: str | None, speed: float, log: Path, rss_every=None) -> dict:
    """``replay path --speed speed | msa.predict model_file --live - --quiet [--crop crop]`` ->
    its figures; ``rss_every`` (s): also the predict process's RSS samples, (wall s, MiB)."""
    replay_command = [sys.executable, "-m", "msa.predict.replay", str(path), "--speed", f"{speed:g}"]
    predict_command = [sys.executable, "-m", "msa.predict", str(model_file), "--live", "-", "--quiet"]
    predict_command += ["--crop", crop] if crop else []
    notes, rows, first_row_s = [], [], None
    load = os.getloadavg()[0]  # another process on the cores shows in latency: say how busy they were
    with open(log, "w") as log_file:
        started = time.monotonic()
        replay = subprocess.Popen(replay_command, stdout=subprocess.PIPE, stderr=log_file, cwd=REPO)
        predict = subprocess.Popen(
            predict_command,
            stdin=replay.stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            text=True,
        )
        replay.stdout.close()  # the predict process holds the pipe now
        memory = Memory(predict.pid, started, rss_every)

        def read_notes() -> None:
            for line in predict.stderr:
                notes.append((time.monotonic() - started, line.rstrip("\n")))

        threads = [threading.Thread(target=read_notes, daemon=True), memory]
        for thread in threads:
            thread.start()
        for line in predict.stdout:
            rows.append(json.loads(line))
            first_row_s = first_row_s or time.monotonic() - started
        predict.wait()
        wall_s = time.monotonic() - started
        memory.stop.set()
        replay.wait()
        for thread in threads:
            thread.join()
        log_file.write("".join(f"{at:8.2f} s  {line}\n" for at, line in notes))
    run = {"command": f"{' '.join(replay_command)} | {' '.join(predict_command)}", "exit": predict.returncode}
    if replay.returncode != 0:  # a stream cut short: the figures would be of part of it
        return run | {"error": f"the replay exited {replay.returncode} (see {log})"}
    match = SUMMARY.search(notes[-1][1]) if notes else None
    if predict.returncode != 0 or match is None:
        last = notes[-1][1] if notes else "no output"
        return run | {"error": f"exit {predict.returncode}: {last} (see {log})"}
    latencies = np.array([row["latency"] for row in rows])
    latency = {f"p{p}": float(np.percentile(latencies, p)) for p in (50, 95)} | {
        "max": float(latencies.max())
    }
    warm = latencies[WARMUP_WINDOWS:]
    summary = {key: float(value or 0) for key, value in match.groupdict().items()}
    load_s = next((at for at, line in notes if line.startswith("model: ")), None)
    run |= {
        "written": len(rows),
        "skipped": int(summary["skipped"]),
        "latency_s": {key: round(value, 3) for key, value in latency.items()},
        "latencies_s": latencies.tolist(),  # per window, in stream order (outliers, skips)
        "p95_after_warmup_s": round(float(np.percentile(warm, 95)), 3) if len(warm) else None,
        "model_s_per_window": summary["model"],
        "wait_p50_s": round(max(0.0, latency["p50"] - summary["model"]), 3),
        "summary_line": notes[-1][1],
        "summary_agrees": len(rows) == summary["written"]
        and all(abs(latency[key] - summary[key]) <= LATENCY_ROUNDING for key in latency),
        "stream_s": summary["stream"],
        "by_source": dict(Counter(row["source"] for row in rows)),
        "load_s": round(load_s, 2) if load_s is not None else None,
        "first_line_s": round(first_row_s, 2),
        "peak_rss_mb": round(memory.peak_mb, 1),
        "wall_s": round(wall_s, 2),
        "load_average_1min": round(load, 2),  # at the run's start, this script's own runs included
    }
    samples = memory.samples
    if samples:
        after_first = [mb for at, mb in samples if at >= first_row_s] or [samples[-1][1]]
        run["rss_mb"] = {"first": after_first[0], "last": after_first[-1], "peak": run["peak_rss_mb"]}
        run["rss_mb"]["growth"] = round(after_first[-1] - after_first[0], 1)
        run["rss_samples"] = samples  # (wall s since start, MiB)
    return run


# -- models and their exports -------------------------------------------------------------------


def code_signature() -> str:
    """What an export depends on besides the model's name: msa.models' and msa.export's code, torch."""
    import torch

    digest = hashlib.sha1(torch.__version__.encode())
    for path in sorted([*(REPO / "msa" / "models").rglob("*.py"), *(REPO / "msa" / "export").rglob("*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def onnx_export(model: str, checkpoint: Path, folder: Path, logs: Path, tag: str) -> dict:
    """The cached ONNX export of ``checkpoint`` -> {"path", "export_s" (None: cached)} or {"error"}."""
    path = folder / f"{model}{tag}-{code_signature()}.onnx"
    if path.is_file():
        return {"path": path, "export_s": None}
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "msa.export", str(checkpoint), "--format", "onnx", "--out", str(path)]
    log = logs / f"{model}{tag}-export.log"
    print(f"{model}: exporting to ONNX ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        lines = log.read_text().strip().splitlines() or ["no output"]
        error = next((line for line in reversed(lines) if line.startswith("error")), lines[-1])
        return {"error": f"not exported (exit {code}): {error}", "export_command": " ".join(command)}
    return {
        "path": path,
        "export_s": round(time.perf_counter() - started, 1),
        "export_command": " ".join(command),
    }


def set_goals(runs: list[dict]) -> list[dict]:
    """Mark the runs the issue's goals apply to (see the module doc) -> the goals, one per run."""
    goals = []
    measured = [run for run in runs if "error" not in run]
    audio = [run for run in measured if run["crop"] == "-"]
    for runtime in RUNTIMES:
        fastest = min(
            (r for r in audio if r["runtime"] == runtime), key=lambda r: r["model_s_per_window"], default=None
        )
        for run in measured:
            if run["runtime"] != runtime:
                continue
            if run["model"] == MULTIMODAL_GOAL[0]:
                run["goal_p95_s"], name = MULTIMODAL_GOAL[1], "p95 latency < one hop"
            elif run is fastest:
                run["goal_p95_s"], name = (
                    AUDIO_GOAL,
                    "p95 latency < a quarter of a hop (the fastest audio model)",
                )
            else:
                continue
            p95 = run["latency_s"]["p95"]
            run["meets_goal"] = p95 < run["goal_p95_s"]
            run["missed_by_s"] = round(max(0.0, p95 - run["goal_p95_s"]), 3)
            keys = ("model", "crop", "runtime", "goal_p95_s", "meets_goal", "missed_by_s")
            keys += ("p95_after_warmup_s", "model_s_per_window", "wait_p50_s")  # where the time goes
            goals.append({"goal": name, "p95_s": p95} | {key: run[key] for key in keys})
    return goals


# -- the table ----------------------------------------------------------------------------------


def goal_mark(run: dict) -> str:
    if "goal_p95_s" not in run:
        return ""
    goal = f"p95 < {run['goal_p95_s']:g} s"
    return f"{goal} ok" if run["meets_goal"] else f"{goal} MISSED by {run['missed_by_s']:.3f} s"


def print_table(runs: list[dict]) -> None:
    header = (
        f"{'model':<22} {'crop':<5} {'runtime':<7} {'written':>7} {'skipped':>7} {'p50 s':>6} {'p95 s':>6} "
        f"{'warm':>6} {'max s':>6} {'model s':>7} {'wait s':>6} {'load s':>6} {'peak MB':>7} {'wall s':>6}  goal"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        lead = f"{run['model']:<22} {run['crop']:<5} {run['runtime']:<7}"
        if "error" in run:
            print(f"{lead} {run['error']}")
            continue
        latency = run["latency_s"]
        print(
            f"{lead} {run['written']:>7} {run['skipped']:>7} {latency['p50']:>6.3f} {latency['p95']:>6.3f} "
            f"{run['p95_after_warmup_s'] or float('nan'):>6.3f} {latency['max']:>6.3f} {run['model_s_per_window']:>7.3f} {run['wait_p50_s']:>6.3f} "
            f"{run['load_s'] or float('nan'):>6.1f} {run['peak_rss_mb']:>7.0f} {run['wall_s']:>6.1f}  {goal_mark(run)}"
        )
    print(
        f"warm: p95 after the first {WARMUP_WINDOWS} windows; model s: its median time per window; "
        "wait s: latency p50 - model s"
    )


def print_long(long: dict) -> None:
    run = long["run"]
    print(f"\nmemory over a long stream: {long['model']}, {long['seconds']:g} s at {long['speed']:g}x")
    if "error" in run:
        print(f"  failed: {run['error']}")
        return
    rss = run["rss_mb"]
    print(
        f"  RSS first {rss['first']:.0f} MB, last {rss['last']:.0f} MB (growth {rss['growth']:+.0f} MB), "
        f"peak {rss['peak']:.0f} MB; {run['written']} windows written, {run['skipped']} skipped"
    )


# -- main ---------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated (default: every registered model)")
    parser.add_argument("--crops", help=f"comma-separated, of {', '.join(CROPS)} (default: all)")
    parser.add_argument("--runtimes", help=f"comma-separated, of {', '.join(RUNTIMES)} (default: all)")
    parser.add_argument("--seconds", type=float, help=f"the recording's length (default {SECONDS:g})")
    parser.add_argument(
        "--speed", type=float, default=SPEED, help="the replay's pace, times real time (default 1)"
    )
    parser.add_argument(
        "--long", type=float, metavar="SECONDS", help="also measure memory over a stream this long"
    )
    parser.add_argument("--long-model", default=LONG_MODEL)
    parser.add_argument("--long-speed", type=float, default=LONG_SPEED, help=f"default {LONG_SPEED:g}x")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 10 s, two models, PyTorch, fixed crop"
    )
    parser.add_argument("--tiny", action="store_true", help="smoke-size models and a 5 s recording (tests)")
    parser.add_argument("--work", type=Path, help="recordings, exports, logs (default: msa's cache)")
    parser.add_argument("--json", type=Path, help="results file (default benchmarks/results/live.json)")
    args = parser.parse_args()
    names, quick = list_models(), args.quick
    args.models = args.models.split(",") if args.models else list(QUICK_MODELS if quick else names)
    args.crops = args.crops.split(",") if args.crops else list(QUICK_CROPS if quick else CROPS)
    args.runtimes = args.runtimes.split(",") if args.runtimes else list(RUNTIMES[:1] if quick else RUNTIMES)
    args.seconds = args.seconds or (TINY_SECONDS if args.tiny else QUICK_SECONDS if quick else SECONDS)
    args.work = args.work or default_cache_dir() / "bench_live"
    args.json = args.json or RESULTS / (
        "live-tiny.json" if args.tiny else "live-quick.json" if quick else "live.json"
    )
    for name in args.models + ([args.long_model] if args.long else []):
        if name not in names:
            parser.error(f"unknown model {name!r}; choose from {', '.join(names)}")
    for values, known, flag in ((args.crops, CROPS, "--crops"), (args.runtimes, RUNTIMES, "--runtimes")):
        for value in values:
            if value not in known:
                parser.error(f"{flag}: unknown {value!r}; choose from {', '.join(known)}")
    for name in ("speed", "long_speed"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")
    return args


def machine() -> dict:
    import av
    import onnxruntime
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),  # what the command runs with
        "onnxruntime": onnxruntime.__version__,
        "pyav": av.__version__,
        "load_average_at_start": os.getloadavg(),  # 1, 5, 15 min: near 0 on an idle machine
    }


def main() -> int:
    args = parse_args()
    about = machine()  # the load average before this script's own work
    logs = args.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base = recording(args.work, args.seconds)
    long = recording(args.work, args.long) if args.long else None
    tag = "-tiny" if args.tiny else ""
    runs, long_result = [], None
    models = list(dict.fromkeys(args.models + ([args.long_model] if long else [])))
    with tempfile.TemporaryDirectory(dir=args.work, prefix="checkpoints-") as folder:
        for model in models:  # one checkpoint on disk at a time (wav2vec2-base's: 0.4 GB)
            overrides = tiny_overrides(model) if args.tiny else {}
            checkpoint = save_model(model, Path(folder), **overrides)
            crops = args.crops if uses_video(model) else [None]
            for runtime in args.runtimes if model in args.models else []:
                model_file, export = checkpoint, {}
                if runtime == "onnx":
                    export = onnx_export(model, checkpoint, args.work / "exports", logs, tag)
                    model_file = export.pop("path", None)
                for crop in crops:
                    row = {"model": model, "crop": crop or "-", "runtime": runtime} | export
                    if model_file is None:  # not exportable: reported, not hidden
                        runs.append(row)
                        continue
                    print(f"{model} ({crop or 'audio'}, {runtime}) live ...", file=sys.stderr, flush=True)
                    log = logs / f"{model}{tag}-{crop or 'audio'}-{runtime}-{base.stem}.log"
                    runs.append(row | live_run(model_file, base, crop, args.speed, log))
            if long and model == args.long_model:
                print(f"{model}: {args.long:g} s at {args.long_speed:g}x ...", file=sys.stderr, flush=True)
                crop = QUICK_CROPS[0] if uses_video(model) else None
                log = logs / f"{model}{tag}-long-{long.stem}.log"
                long_result = {
                    "model": model,
                    "runtime": "pytorch",
                    "crop": crop or "-",
                    "seconds": args.long,
                }
                long_result |= {"speed": args.long_speed, "recording": describe_recording(long)}
                long_result["run"] = live_run(checkpoint, long, crop, args.long_speed, log, LONG_RSS_INTERVAL)
            checkpoint.unlink()

    goals = set_goals(runs)
    result = {
        "machine": about,
        "settings": {
            "window_s": WINDOW,
            "hop_s": HOP,
            "max_latency_s": HOP,  # the command's default
            "speed": args.speed,  # times real time: 1 is a live meeting
            "crops": args.crops,
            "runtimes": args.runtimes,
            "models": "tiny (msa.models.tiny_overrides)" if args.tiny else "full size, random weights",
            "threads": "the command's defaults",
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
        },
        "recording": describe_recording(base),
        "runs": runs,
        "goals": goals,
    }
    if long_result:
        result["long"] = long_result
    print_table(runs)
    if long_result:
        print_long(long_result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{args.json}; logs in {logs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One GPU, one command: a RAVDESS-sized search of video_transformer and multimodal, with the
frozen-prefix feature cache and without it, and how well it used the GPU.

    python benchmarks/gpu.py [--work DIR] [--data DIR] [--json OUT] [--search-seconds S]
                             [--gpus-per-trial 0.25] [--pretrained off|on] [--classes all8|seed4]
                             [--dry-run]

Without --data it writes the RAVDESS-sized synthetic set (``python -m msa.data.sample --full``:
24 actors x 60 clips) into WORK first. Each of the four searches (video_transformer and
multimodal, cache on and off) is ``tune_main.py`` with FIFO + random search, ``--gpus-per-trial``
(4 trials share the GPU at 0.25), stopped by ``--time-budget`` (--search-seconds, 75 by default:
the whole script fits 8 minutes on one GPU with 16 cores). Printed per search:

  trial_epochs_per_min  reported epochs of all trials per minute of the search's trial window
  gpu_busy              mean of nvidia-smi's utilization.gpu, sampled every 0.5 s over the window
  peak_gpu_mb           the largest peak_gpu_memory_mb a trial reported (its own tensors; the
                        CUDA context, ~500 MB per process, comes on top); median in the JSON
  input_wait_share      time training waited for the loader's next batch over the epochs' time
                        (median over trial-epochs); ``starved`` when above STARVED_SHARE

--dry-run runs the same code on the CPU in about a minute (what the tests run): smoke-size
models and data (``--smoke-test``), no GPU and no sampling (gpu_busy is null).
Pretrained weights: ``--pretrained on`` where the machine has them cached (``python -m
msa.weights fetch`` on a connected machine first); off by default, as a GPU box without internet
has none.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import pandas as pd  # noqa: E402
from runs import run_logged, trial_windows  # noqa: E402

from msa.analysis import load_experiment  # noqa: E402

SPACES = ("video_transformer", "multimodal")
SAMPLE_INTERVAL_MS = 500  # nvidia-smi's sampling period
STARVED_SHARE = 0.25  # training waiting longer than this share of its epoch for batches: starved
SEARCH_SECONDS = 75  # per search: 4 searches + data in 8 minutes


class GpuSampler(threading.Thread):
    """nvidia-smi's utilization.gpu (%) every SAMPLE_INTERVAL_MS, with the wall-clock time."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.process = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
             f"-lms={SAMPLE_INTERVAL_MS}"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def run(self) -> None:
        for line in self.process.stdout:
            values = [float(value) for value in line.split(",") if value.strip()]
            if values:
                self.samples.append((time.time(), statistics.mean(values)))  # all GPUs' mean

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()

    def busy(self, start: float, end: float) -> float | None:
        inside = [value for when, value in self.samples if start <= when <= end]
        return round(statistics.mean(inside) / 100, 3) if inside else None


def measure(experiment: Path, sampler: GpuSampler | None) -> dict:
    epochs = load_experiment(experiment).epochs
    if epochs.empty:
        return {"trials": 0}
    windows = trial_windows(experiment)
    start, end = windows["start"].min(), windows["end"].max()
    peaks = epochs.groupby("trial")["peak_gpu_memory_mb"].max()
    wait = (epochs["input_wait_seconds"] / epochs["epoch_seconds"].clip(lower=1e-9)).median()
    return {
        "trials": len(windows),
        "trial_epochs": len(epochs),
        "window_s": round(end - start, 1),
        "trial_epochs_per_min": round(len(epochs) / ((end - start) / 60), 1),
        "gpu_busy": sampler.busy(start, end) if sampler else None,
        "peak_gpu_mb": round(peaks.max(), 1),
        "median_peak_gpu_mb": round(peaks.median(), 1),
        "input_wait_share": round(wait, 3),
        "starved": bool(wait > STARVED_SHARE),
        "cached": {
            "video": bool(epochs.get("cached_video", pd.Series(dtype=bool)).any()),
            "audio": bool(epochs.get("cached_audio", pd.Series(dtype=bool)).any()),
        },
    }


def write_dataset(work: Path, dry_run: bool) -> Path:
    out = work / "ravdess-full"
    command = [sys.executable, "-m", "msa.data.sample", str(out), "--full", "--no-progress"]
    subprocess.run([*command, *(["--actors", "4"] if dry_run else [])], cwd=REPO, check=True)
    return out


def run_search(work: Path, data: Path, space: str, cache_on: bool, args) -> Path:
    name = f"{space}-{'cache' if cache_on else 'nocache'}"
    command = [
        sys.executable, "tune_main.py", "--space", space, "--data", str(data),
        "--cache", str(work / "cache"), "--storage", str(work / "results"), "--name", name,
        "--scheduler", "fifo", "--search", "random", "--pretrained", args.pretrained, "--classes", args.classes,
        *([] if cache_on else ["--no-feature-cache"]),
    ]  # fmt: skip
    if args.dry_run:
        command += ["--smoke-test", "--num-samples", "2", "--max-epochs", "1", "--grace-period", "1"]
    else:
        command += ["--gpus-per-trial", str(args.gpus_per_trial), "--num-samples", "16",
                    "--max-epochs", "4", "--time-budget", str(args.search_seconds)]  # fmt: skip
    run_logged(command, work / f"{name}.log")
    return work / "results" / name


def print_table(results: dict) -> None:
    keys = ("trial_epochs_per_min", "gpu_busy", "peak_gpu_mb", "input_wait_share", "starved", "trials")
    print(f"{'search':<28}" + "".join(f"{key:>22}" for key in keys))
    for name, measured in results["searches"].items():
        print(f"{name:<28}" + "".join(f"{str(measured.get(key)):>22}" for key in keys))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, help="where data, cache and results go (default: a temporary folder)"
    )
    parser.add_argument("--data", type=Path, help="a RAVDESS-format folder (default: the synthetic full set)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--search-seconds", type=int, default=SEARCH_SECONDS)
    parser.add_argument("--gpus-per-trial", type=float, default=0.25)
    parser.add_argument("--pretrained", choices=("off", "on"), default="off")
    parser.add_argument("--classes", choices=("all8", "seed4"), default="all8")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, smoke-size (what the tests run)")
    args = parser.parse_args()
    if not args.dry_run and shutil.which("nvidia-smi") is None:
        parser.error("no nvidia-smi on this machine: run on a GPU machine, or --dry-run")
    work = args.work or Path(tempfile.mkdtemp(prefix="msa_gpu_"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = args.data or write_dataset(work, args.dry_run)
    results = {"data": str(data), "data_seconds": round(time.perf_counter() - started, 1), "searches": {}}
    sampler = None if args.dry_run else GpuSampler()
    if sampler:
        sampler.start()
    try:
        for space in SPACES:
            for cache_on in (True, False):
                experiment = run_search(work, data, space, cache_on, args)
                results["searches"][experiment.name] = measure(experiment, sampler)
    finally:
        if sampler:
            sampler.stop()
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    print_table(results)
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

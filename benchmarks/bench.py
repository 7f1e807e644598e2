"""The Speed benchmark: decoding vs preparation, the frozen-prefix feature cache, ASHA vs FIFO,
and the memory of concurrent trials, all measured in one run on the embedded sample.

    python benchmarks/bench.py [--quick | --tiny] [--json OUT] [--work DIR]

Full run (~21 min on 2 cores): the default sample (128 clips, 16 frames of 112 px), epoch times
over all its train + val clips, searches of 16 trials x 9 epochs. --quick (~6 min): the same
clips and models, shorter searches at 8 frames of 64 px. --tiny (~1.5 min, what make test-all
runs): a 16-clip sample and smoke-size models; its numbers mean nothing.

Stages and the keys they write (targets for the 2-core machine in brackets):
  decode_clips_per_s    decord alone, decoding the clips as prepare needs them (16 sampled
                        frames cropped and resized, 16 kHz mono audio), as many processes as
                        prepare uses, nothing written
  prepare_clips_per_s   msa.data.prepare on the same clips into an empty cache [>= 0.8 x decode]
  cache_speedup_video   epoch time of a frozen-trunk video_transformer trial (video_iter3)
                        without the feature cache / with it [>= 20]; the one-off feature
                        computation is reported separately (video_feature_s)
  cache_speedup_audio   the same for audio_wav2vec with its last 2 layers trainable [>= 5]
                        (cache_speedup_audio_frozen: with its whole transformer frozen, for scale)
  asha_best, fifo_best  best val_acc of ASHA + Optuna TPE and of FIFO + random search, same
                        trials and max epochs, via tune_main.py [asha >= fifo - 0.02]
  asha_epoch_fraction   ASHA's trial-epochs over FIFO's [<= 0.4]
  mem_ratio_4_vs_1      peak memory of a search with 4 concurrent trials over one with 1 trial,
                        each the sum over tune_main.py's process tree (driver, Ray, trials) of
                        proportional set size: resident pages, shared ones (libraries, the
                        memory-mapped caches) divided among the processes mapping them [<= 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from runs import PeakMemory, run_logged  # noqa: E402

from msa.analysis import load_experiment  # noqa: E402
from msa.data.decode import PrepareParams, decode_clip  # noqa: E402
from msa.data.experiment import prepare_experiment_data  # noqa: E402
from msa.data.prepare import prepare  # noqa: E402
from msa.data.ravdess import discover  # noqa: E402
from msa.data.sample import SampleSpec, generate_sample, sample_dir  # noqa: E402
from msa.data.splits import SplitConfig  # noqa: E402
from msa.trial import TrialSettings, run_epoch, setup_trial  # noqa: E402

TARGETS = {  # key -> (comparison, bound) for the 2-core machine
    "cache_speedup_video": (">=", 20),
    "cache_speedup_audio": (">=", 5),
    "prepare_vs_decode": (">=", 0.8),
    "asha_epoch_fraction": ("<=", 0.4),
    "asha_minus_fifo": (">=", -0.02),
    "mem_ratio_4_vs_1": ("<=", 2),
}
VIDEO_TRIAL = {  # a frozen-trunk trial of video_transformer at the transformer's defaults
    "model": "video_iter3",
    "trunk": "frozen",
    "d_model": 256,
    "num_layers": 3,
    "num_heads": 2,
    "dropout": 0.1,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "batch_size": 8,
    "schedule": "constant",
}
AUDIO_TRIAL = {  # audio_wav2vec with the last two transformer layers trainable
    "model": "audio_last2",
    "audio_layers": "last2",
    "layer_weighting": False,
    "pool_dropout": 0.1,
    "lr": 1e-3,
    "backbone_lr": 3e-5,
    "weight_decay": 1e-4,
    "batch_size": 8,
    "schedule": "constant",
}

AUDIO_FROZEN_TRIAL = {**AUDIO_TRIAL, "model": "audio_frozen", "audio_layers": "frozen"}
del AUDIO_FROZEN_TRIAL["backbone_lr"]  # nothing of the backbone trains


@dataclass(frozen=True)
class Mode:
    spec: SampleSpec
    params: PrepareParams  # for decode / prepare / epoch timings
    search_params: PrepareParams  # for the searches
    uncached_epochs: int
    cached_epochs: int
    num_samples: int
    max_epochs: int
    grace_period: int
    memory_epochs: int
    smoke: bool = False
    classes: str = "all8"


MODES = {
    "full": Mode(SampleSpec(), PrepareParams(), PrepareParams(), 2, 3, 16, 9, 1, 2),
    "quick": Mode(
        SampleSpec(), PrepareParams(), PrepareParams(num_frames=8, image_size=64), 1, 2, 8, 6, 1, 1
    ),
    "tiny": Mode(
        SampleSpec(actors=4, emotions=(3, 4, 5, 7), statements=1, duration=1.0),
        PrepareParams(num_frames=4, image_size=32),
        PrepareParams(num_frames=4, image_size=32),
        1,
        1,
        2,
        2,
        1,
        1,
        smoke=True,
        classes="seed4",
    ),
}


# -- decoding and preparation -------------------------------------------------------------------


def _decode_only(job: tuple[str, PrepareParams]) -> int:
    torch.set_num_threads(1)  # as prepare's workers
    video, audio = decode_clip(*job)
    return video.shape[0]


def bench_decode_and_prepare(root: Path, cache: Path, params: PrepareParams, workers: int) -> dict:
    paths = [found.source.path for found in discover(root) if found.included]
    context = multiprocessing.get_context("forkserver")  # the same pool prepare uses
    started = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(_decode_only, [(path, params) for path in paths], chunksize=1))
    decode_s = time.perf_counter() - started
    started = time.perf_counter()
    report = prepare(root, cache, params, workers=workers, progress=False)
    prepare_s = time.perf_counter() - started
    assert report.decoded == len(paths), "the prepare timing needs an empty cache"
    return {
        "clips": len(paths),
        "workers": workers,
        "decode_clips_per_s": len(paths) / decode_s,
        "prepare_clips_per_s": len(paths) / prepare_s,
        "prepare_vs_decode": decode_s / prepare_s,
    }


# -- the feature cache -------------------------------------------------------------------------


def epoch_seconds(config: dict, settings: TrialSettings, epochs: int) -> tuple[float, float]:
    """(median seconds of one train + val epoch, seconds spent computing cached features)."""
    run = setup_trial(config, settings, torch.device("cpu"))
    times = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        run_epoch(run, epoch, settings.seed)
        times.append(time.perf_counter() - started)
    return statistics.median(times), run.feature_seconds


def bench_cache(data, mode: Mode, label: str, config: dict) -> dict:
    torch.set_num_threads(1)  # as a trial with the default --cpus-per-trial 1
    base = dict(
        data=data,
        max_epochs=max(mode.uncached_epochs, mode.cached_epochs),
        smoke_test=mode.smoke,
        progress=False,
    )
    uncached, _ = epoch_seconds(config, TrialSettings(**base, feature_cache=False), mode.uncached_epochs)
    cached, feature_s = epoch_seconds(config, TrialSettings(**base, feature_cache=True), mode.cached_epochs)
    return {
        f"{label}_epoch_uncached_s": uncached,
        f"{label}_epoch_cached_s": cached,
        f"{label}_feature_s": feature_s,
        f"cache_speedup_{label}": uncached / cached,
    }


# -- searches ---------------------------------------------------------------------------------


def run_search(
    work: Path, data_root: Path, cache: Path, mode: Mode, name: str, *flags: str
) -> tuple[dict, PeakMemory, float]:
    params = mode.search_params
    command = [
        sys.executable,
        "tune_main.py",
        "--space",
        "video_transformer",
        "--data",
        str(data_root),
        "--cache",
        str(cache),
        "--storage",
        str(work / "ray_results"),
        "--name",
        name,
        "--frames",
        str(params.num_frames),
        "--image-size",
        str(params.image_size),
        "--pretrained",
        "off",
        "--classes",
        mode.classes,
        *(["--smoke-test"] if mode.smoke else []),
        *flags,
    ]
    seconds, memory = run_logged(command, work / f"{name}.log", memory=True)
    summary = json.loads((work / "ray_results" / name / "summary.json").read_text())
    return summary, memory, seconds


def trial_epochs(work: Path, name: str) -> int:
    return int(load_experiment(work / "ray_results" / name).trials["epochs"].sum())


def bench_searches(work: Path, data_root: Path, cache: Path, mode: Mode) -> dict:
    budget = ["--num-samples", str(mode.num_samples), "--max-epochs", str(mode.max_epochs), "--seed", "0"]
    asha, _, asha_s = run_search(
        work,
        data_root,
        cache,
        mode,
        "asha",
        *budget,
        "--scheduler",
        "asha",
        "--search",
        "optuna",
        "--grace-period",
        str(mode.grace_period),
    )
    fifo, _, fifo_s = run_search(
        work, data_root, cache, mode, "fifo", *budget, "--scheduler", "fifo", "--search", "random"
    )
    asha_epochs, fifo_epochs = trial_epochs(work, "asha"), trial_epochs(work, "fifo")
    return {
        "asha_best": asha["best_val"]["val_acc"],
        "fifo_best": fifo["best_val"]["val_acc"],
        "asha_minus_fifo": asha["best_val"]["val_acc"] - fifo["best_val"]["val_acc"],
        "asha_trial_epochs": asha_epochs,
        "fifo_trial_epochs": fifo_epochs,
        "asha_epoch_fraction": asha_epochs / fifo_epochs,
        "asha_s": asha_s,
        "fifo_s": fifo_s,
        "asha_test_acc": asha["test"]["accuracy"],
        "fifo_test_acc": fifo["test"]["accuracy"],
    }


def bench_memory(work: Path, data_root: Path, cache: Path, mode: Mode) -> dict:
    cpus = os.cpu_count() or 1
    results = {}
    for trials in (1, 4):
        flags = [
            "--num-samples",
            str(trials),
            "--max-concurrent",
            str(trials),
            "--cpus-per-trial",
            str(min(1.0, cpus / trials)),
            "--max-epochs",
            str(mode.memory_epochs),
            "--grace-period",
            "1",
            "--seed",
            "0",
        ]
        _, memory, _ = run_search(work, data_root, cache, mode, f"memory{trials}", *flags)
        results[f"mem_peak_pss_{trials}_mb"] = memory.peak_pss / 1024
        results[f"mem_peak_rss_sum_{trials}_mb"] = memory.peak_rss / 1024
    results["mem_ratio_4_vs_1"] = results["mem_peak_pss_4_mb"] / results["mem_peak_pss_1_mb"]
    results["mem_ratio_4_vs_1_rss_sum"] = results["mem_peak_rss_sum_4_mb"] / results["mem_peak_rss_sum_1_mb"]
    return results


# -- report -----------------------------------------------------------------------------------


def machine() -> dict:
    memory_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.machine(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024**2, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def print_table(results: dict) -> None:
    print(f"\n{'key':28s} {'value':>12s}  target")
    for key, value in results.items():
        if isinstance(value, (dict, str)) or value is None:
            continue
        target = ""
        if key in TARGETS:
            op, bound = TARGETS[key]
            ok = value >= bound if op == ">=" else value <= bound
            target = f"{op} {bound}  {'met' if ok else 'MISSED'}"
        print(
            f"{key:28s} {value:12.3f}  {target}"
            if isinstance(value, float)
            else f"{key:28s} {value:12}  {target}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="shorter searches at smaller frames (~6 min on 2 cores)"
    )
    size.add_argument(
        "--tiny", action="store_true", help="a 16-clip sample and smoke-size models (for make test-all)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results here")
    parser.add_argument(
        "--work",
        type=Path,
        help="keep the sample copy, cache and searches here (default: a temporary folder)",
    )
    args = parser.parse_args()
    mode_name = "tiny" if args.tiny else "quick" if args.quick else "full"
    mode = MODES[mode_name]

    with tempfile.TemporaryDirectory(prefix="msa-bench-") as temporary:
        work = (args.work or Path(temporary)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        cache = work / "cache"
        data_root = generate_sample(sample_dir(work / "sample", mode.spec), mode.spec, progress=False)
        command = f"python benchmarks/bench.py{' --' + mode_name if mode_name != 'full' else ''}"
        results: dict = {"mode": mode_name, "command": command, "machine": machine()}
        stages = [
            (
                "decode vs prepare",
                lambda: bench_decode_and_prepare(data_root, cache, mode.params, os.cpu_count() or 1),
            ),
            (
                "feature cache, video",
                lambda: bench_cache(trial_data(data_root, cache, mode), mode, "video", VIDEO_TRIAL),
            ),
            (
                "feature cache, audio",
                lambda: bench_cache(trial_data(data_root, cache, mode), mode, "audio", AUDIO_TRIAL),
            ),
            (
                "feature cache, audio frozen",
                lambda: bench_cache(
                    trial_data(data_root, cache, mode), mode, "audio_frozen", AUDIO_FROZEN_TRIAL
                ),
            ),
            ("ASHA vs FIFO", lambda: bench_searches(work, data_root, cache, mode)),
            ("memory, 4 trials vs 1", lambda: bench_memory(work, data_root, cache, mode)),
        ]
        for title, stage in stages:
            started = time.perf_counter()
            print(f"[{time.strftime('%H:%M:%S')}] {title} ...", flush=True)
            results.update(stage())
            print(f"[{time.strftime('%H:%M:%S')}] {title}: {time.perf_counter() - started:.0f} s", flush=True)
            if args.json:  # after every stage, so a long run that dies keeps what it measured
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=1))
    print_table(results)
    return 0


def trial_data(data_root: Path, cache: Path, mode: Mode):
    data, _ = prepare_experiment_data(
        data_root, cache, mode.classes, SplitConfig(), mode.params, progress=False
    )
    return data


if __name__ == "__main__":
    sys.exit(main())

"""Whether ``python -m msa.predict`` keeps up with real time on this machine's CPUs, per model family.

    python benchmarks/bench_predict.py [--models a,b] [--crops face,fixed] [--seconds 60]
                                       [--threads 2] [--long 600 [--long-model video_iter3]
                                       [--long-crop fixed]] [--work DIR] [--json OUT] [--profile N]
    python benchmarks/bench_predict.py --quick        # smoke run: 10 s, video_iter3 + multimodal_iter2, fixed

What is measured: timeline mode at the command's default window (3 s) and hop (1 s) on a
realistic recording, for every registered model family (``msa.models.list_models()``) at full
size (ResNet-18, wav2vec2-base) with random weights: speed does not depend on the weights. Each
model is saved as a checkpoint (``msa.train.save_checkpoint``, RAVDESS labels, the default
preprocessing) and run in a fresh process (``--worker``), so that import and model loading are
timed apart from prediction and each run's peak memory is its own. The worker does what
``msa.predict.__main__.annotate`` does for one INPUT: ``load_classifier``, ``probe``,
``window_spans``, ``predict_spans`` (steady face boxes), with ``torch.set_num_threads(--threads)``.

Per run: the real-time factor (recording seconds / ``predict_spans`` seconds; > 1 keeps up),
the load, probe and import times, the windows by source ("audio+video", "video", "audio" for a
window without a face that the audio classifies, "no face"), the frames embedded, the CPU cores
prediction got (CPU seconds / seconds: well under --threads means something else had the cores),
the peak RSS of the whole process (getrusage) and of the prediction alone (the peak restarted
after loading, /proc/self/clear_refs; null where the kernel refuses). The RSS includes torch's
own libraries (about 0.5 GB for a CUDA build). Audio-only models ignore the crop and run once.
The issue's targets: >= 1x real time for multimodal_iter2 and video_iter3.

The recording: the embedded sample's 2.5 s talking heads (``msa.data.sample.ensure_sample``, in
the msa cache) decoded and re-encoded back to back into one 1280x720 29.97 fps H.264 (libx264
veryfast, crf 23, yuv420p) + AAC stereo 48 kHz mp4 of ``--seconds``, looping over the clips,
with continuous timestamps; cached in ``--work`` and reused. The Haar face detector misses the
face in about a quarter of the synthetic frames, so some windows may be "no face" or "audio".

``--long SECONDS`` also runs one model (default video_iter3, fixed crop) on a recording that
long, beside its ``--seconds`` run: prediction streams the recording, so peak memory should not
grow with its length. ``--profile N`` writes each run's N costliest functions (cProfile,
cumulative) to its log in ``--work``/logs.

Writes benchmarks/results/predict.json (predict-quick.json with --quick) and prints a table.
Share nothing else with the machine while it runs: the figures are CPU-bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

STARTED = time.perf_counter()  # the worker's import time counts from here (after the stdlib's)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402

from msa.data import default_cache_dir  # noqa: E402
from msa.data.datasets.ravdess import EMOTIONS  # noqa: E402
from msa.predict.__main__ import HOP, WINDOW  # noqa: E402  (s: the command's defaults)

SECONDS = 60.0  # s: the recording of every run
QUICK_SECONDS = 10.0  # s: --quick's recording
QUICK_MODELS = ("video_iter3", "multimodal_iter2")
QUICK_CROPS = ("fixed",)
CROPS = ("face", "fixed")
THREADS = 2  # torch threads per run (this machine's cores)
TARGETS = {"multimodal_iter2": 1.0, "video_iter3": 1.0}  # the minimum real-time factors
LONG_MODEL, LONG_CROP = "video_iter3", "fixed"
NUM_CLASSES = len(EMOTIONS)  # RAVDESS's 8 emotions
# The recording: the sample's own format, re-encoded as a camera or phone might.
RECORDING_VERSION = 1  # bump when the recording's content or encoding changes: it names the file
X264_OPTIONS = {"preset": "veryfast", "crf": "23"}
RESULTS = REPO / "benchmarks" / "results"
MB = 1024  # KiB per MiB (RSS figures are in MiB)


# -- the recording ------------------------------------------------------------------------------


def clip_pieces(path: Path, fps: Fraction, rate: int):
    """One sample clip, decoded -> (its video frames, its audio (2, n) float32 cut to the video's
    length, so that clips placed back to back keep both tracks in step)."""
    import av

    frames, chunks = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0], container.streams.audio[0]):
            if isinstance(frame, av.VideoFrame):
                frames.append(frame)
            else:
                chunks.append((frame.pts, frame.to_ndarray()))
    audio = np.zeros((2, round(len(frames) * rate / fps)), dtype=np.float32)
    for pts, samples in chunks:  # placed by timestamp: the encoder's padding falls off the end
        end = min(pts + samples.shape[1], audio.shape[1])
        if end > pts >= 0:
            audio[:, pts:end] = samples[:, : end - pts]
    return frames, audio


def build_recording(path: Path, seconds: float) -> None:
    """Write ``seconds`` of the embedded sample's clips, looped back to back, to ``path``."""
    import av

    from msa.data.sample import AAC_FRAME, AUDIO_BIT_RATE, AUDIO_RATE, FPS, HEIGHT, WIDTH, ensure_sample

    clips = sorted(ensure_sample().glob("Actor_*/*.mp4"))
    total = round(seconds * FPS)  # video frames
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    started = time.perf_counter()
    with av.open(str(partial), mode="w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = dict(X264_OPTIONS)
        audio = out.add_stream("aac", rate=AUDIO_RATE)
        audio.layout, audio.bit_rate = "stereo", AUDIO_BIT_RATE
        written, sent, pending, clip = 0, 0, np.zeros((2, 0), dtype=np.float32), 0

        def push_audio(flush: bool) -> None:
            nonlocal sent, pending
            while pending.shape[1] >= AAC_FRAME or (flush and pending.shape[1]):
                chunk = np.ascontiguousarray(pending[:, :AAC_FRAME])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, sent, Fraction(1, AUDIO_RATE)
                out.mux(audio.encode(frame))
                sent, pending = sent + chunk.shape[1], pending[:, AAC_FRAME:]

        while written < total:
            frames, samples = clip_pieces(clips[clip % len(clips)], FPS, AUDIO_RATE)
            clip += 1
            frames = frames[: total - written]
            for frame in frames:
                frame.pts, frame.time_base = written, 1 / FPS
                frame.pict_type = av.video.frame.PictureType.NONE  # let x264 place the keyframes
                out.mux(video.encode(frame))
                written += 1
            pending = np.concatenate([pending, samples[:, : round(len(frames) * AUDIO_RATE / FPS)]], axis=1)
            push_audio(flush=False)
        push_audio(flush=True)
        out.mux(video.encode())
        out.mux(audio.encode())
    os.replace(partial, path)
    print(f"wrote {path} ({seconds:g} s) in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def recording(work: Path, seconds: float) -> Path:
    """The cached recording of ``seconds``, built on first use."""
    path = work / f"recording-v{RECORDING_VERSION}-{seconds:g}s.mp4"
    if not path.is_file():
        work.mkdir(parents=True, exist_ok=True)
        build_recording(path, seconds)
    return path


def describe_recording(path: Path) -> dict:
    from msa.predict.media import probe

    info = probe(path)
    return {
        "path": str(path),
        "duration_s": round(float(info.duration), 3),
        "megabytes": round(path.stat().st_size / 1e6, 1),
        "video": f"{info.width}x{info.height}, {len(info.frame_times)} frames",
        "audio": f"{info.audio_rate} Hz {info.audio_layout}",
    }


# -- one run, in its own process ----------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident memory now (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / MB
    return float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident memory (MiB) since it started or since ``reset_peak_rss``."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MB


def reset_peak_rss() -> bool:
    """Restart the peak at the current RSS (Linux >= 4.0: /proc/self/clear_refs) -> whether it could."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def worker(args: argparse.Namespace) -> int:
    """``--worker CHECKPOINT RECORDING``: predict as the command does, write the figures as JSON."""
    checkpoint, path = args.worker
    import torch

    from msa.predict.classifier import load_classifier
    from msa.predict.media import probe
    from msa.predict.run import predict_spans
    from msa.predict.spans import window_spans

    torch.set_num_threads(args.threads)
    result = {"import_s": time.perf_counter() - STARTED}  # this script's and msa.predict's
    started = time.perf_counter()
    classifier = load_classifier(checkpoint)
    result["load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    info = probe(path)
    spans = window_spans(info.duration, WINDOW, HOP, info.frame_times, classifier.params.num_frames)
    result["probe_s"] = time.perf_counter() - started
    result["rss_after_load_mb"] = rss_mb()
    result["load_peak_rss_mb"] = peak_rss_mb()  # import, checkpoint and model, probe
    predict_peak_known = reset_peak_rss()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    started, cpu_started = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    predictions, stats = predict_spans(classifier, info, spans, args.crops, steady=True)
    if profiler:
        profiler.disable()
    result["predict_s"] = time.perf_counter() - started
    # CPU seconds per second of prediction: near --threads when the run had the cores to itself
    # (decoding, face detection and the Python in between run on one core; torch on --threads).
    result["predict_cores_used"] = (time.process_time() - cpu_started) / result["predict_s"]
    result["predict_peak_rss_mb"] = peak_rss_mb() if predict_peak_known else None
    result |= {
        "recording_s": info.duration,
        "realtime_factor": info.duration / result["predict_s"],
        "windows": len(spans),
        "by_source": dict(Counter(prediction.source for prediction in predictions)),
        "frames_embedded": stats.frames_embedded,  # by the model: overlapping windows share frames
        "max_frames_held": getattr(stats, "max_frames_held", None),  # RGB frames at once
        "peak_rss_mb": max(result["load_peak_rss_mb"], peak_rss_mb()),  # the whole process
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    Path(args.result).write_text(json.dumps(result))
    if profiler:
        import pstats

        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(args.profile)
    return 0


def save_model(name: str, folder: Path, **overrides) -> Path:
    """A checkpoint of the full-size ``name`` (or as ``overrides`` change it, e.g.
    msa.models.tiny_overrides) with random weights, as a trial writes one."""
    import torch

    from msa.data.decode import PrepareParams
    from msa.models import create_model
    from msa.train import save_checkpoint

    torch.manual_seed(0)
    model, _ = create_model(name, NUM_CLASSES, pretrained="off", **overrides)
    path = folder / f"{name}.pt"
    save_checkpoint(
        path, model, durable=False, epoch=0, labels=list(EMOTIONS), preprocessing=asdict(PrepareParams())
    )
    return path


def run_one(args, model: str, checkpoint: Path, crop: str, path: Path, logs: Path) -> dict:
    """One run in a fresh process -> its figures (or its error)."""
    tag = f"{model}-{crop}-{path.stem}"
    result_file = logs / f"{tag}.json"
    result_file.unlink(missing_ok=True)  # never an earlier run's figures
    command = [
        sys.executable, __file__, "--worker", str(checkpoint), str(path), "--crops", crop,
        "--threads", str(args.threads), "--result", str(result_file),
        *(["--profile", str(args.profile)] if args.profile else []),
    ]  # fmt: skip
    from runs import run_logged  # here: its pandas would add to the worker's import time and memory

    print(f"{model} ({crop}) on {path.name} ...", file=sys.stderr, flush=True)
    try:
        process_s, _ = run_logged(command, logs / f"{tag}.log")
    except SystemExit as failure:  # run_logged's one line naming the log: record it, go on
        return {"model": model, "crop": crop, "error": str(failure)}
    result = json.loads(result_file.read_text())
    rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    run = {"model": model, "crop": crop, **rounded, "process_s": round(process_s, 2)}
    if model in TARGETS:
        run["target"] = TARGETS[model]
        run["meets_target"] = result["realtime_factor"] >= TARGETS[model]
    return run


def uses_video(model: str) -> bool:
    from msa.models import model_config

    return model_config(model).video is not None


# -- the table ----------------------------------------------------------------------------------


def sources(run: dict) -> str:
    return ", ".join(f"{n} {source}" for source, n in run.get("by_source", {}).items())


def print_table(runs: list[dict]) -> None:
    header = (
        f"{'model':<17} {'crop':<5} {'x real time':>11} {'predict s':>9} {'load s':>6} {'peak MB':>7} "
        f"{'cores':>5}  sources"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        if "error" in run:
            print(f"{run['model']:<17} {run['crop']:<5} {'failed':>11}  {run['error']}")
            continue
        mark = ""
        if "target" in run:
            mark = " ok" if run["meets_target"] else f" MISSES {run['target']:g}x"
        print(
            f"{run['model']:<17} {run['crop']:<5} {run['realtime_factor']:>10.2f}x {run['predict_s']:>9.1f} "
            f"{run['load_s']:>6.1f} {run['peak_rss_mb']:>7.0f} {run['predict_cores_used']:>5.1f}  {sources(run)}{mark}"
        )


def print_long(long: dict) -> None:
    print(f"\nmemory against length: {long['model']} ({long['crop']})")
    for run in long["runs"]:
        if "error" in run:
            print(f"  failed: {run['error']}")
            continue
        print(
            f"  {run['recording_s']:>6.0f} s: peak RSS {run['peak_rss_mb']:.0f} MB (after load "
            f"{run['rss_after_load_mb']:.0f} MB, predicting {run['predict_peak_rss_mb'] or float('nan'):.0f} MB), "
            f"{run['max_frames_held']} frames held at most, {run['realtime_factor']:.2f}x real time"
        )


# -- main ---------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated (default: every registered model)")
    parser.add_argument("--crops", help=f"comma-separated, of {', '.join(CROPS)} (default: all)")
    parser.add_argument("--seconds", type=float, help=f"the recording's length (default {SECONDS:g})")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"torch threads (default {THREADS})")
    parser.add_argument("--long", type=float, metavar="SECONDS", help="also run --long-model on this length")
    parser.add_argument("--long-model", default=LONG_MODEL)
    parser.add_argument("--long-crop", default=LONG_CROP, choices=CROPS)
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 s, two models, fixed crop")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile's top N in each log")
    parser.add_argument("--work", type=Path, help="recordings, checkpoints, logs (default: msa's cache)")
    parser.add_argument("--json", type=Path, help="results file (default benchmarks/results/predict.json)")
    parser.add_argument("--worker", nargs=2, metavar=("CHECKPOINT", "RECORDING"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return args  # --crops is the one crop; the rest is unused
    from msa.models import list_models

    names = list_models()
    quick = args.quick
    args.models = args.models.split(",") if args.models else list(QUICK_MODELS if quick else names)
    args.crops = args.crops.split(",") if args.crops else list(QUICK_CROPS if quick else CROPS)
    args.seconds = args.seconds or (QUICK_SECONDS if quick else SECONDS)
    args.work = args.work or default_cache_dir() / "bench_predict"
    args.json = args.json or RESULTS / ("predict-quick.json" if quick else "predict.json")
    for name in args.models + ([args.long_model] if args.long else []):
        if name not in names:
            parser.error(f"unknown model {name!r}; choose from {', '.join(names)}")
    for crop in args.crops:
        if crop not in CROPS:
            parser.error(f"unknown crop {crop!r}; choose from {', '.join(CROPS)}")
    return args


def main() -> int:
    args = parse_args()
    if args.worker:
        return worker(args)
    import av
    import torch

    load_at_start = os.getloadavg()  # before this script's own work

    logs = args.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base = recording(args.work, args.seconds)
    long = recording(args.work, args.long) if args.long else None
    runs, long_runs = [], []
    models = list(dict.fromkeys(args.models + ([args.long_model] if long else [])))
    with tempfile.TemporaryDirectory(dir=args.work, prefix="checkpoints-") as folder:
        for model in models:  # one checkpoint on disk at a time (wav2vec2-base's: 0.4 GB)
            checkpoint = save_model(model, Path(folder))
            if model in args.models:
                for crop in args.crops if uses_video(model) else ["-"]:
                    runs.append(
                        run_one(args, model, checkpoint, crop if crop != "-" else "fixed", base, logs)
                    )
                    runs[-1]["crop"] = crop
            if long and model == args.long_model:
                same = [r for r in runs if r["model"] == model and r["crop"] == args.long_crop]
                short = same[0] if same else run_one(args, model, checkpoint, args.long_crop, base, logs)
                long_runs = [short, run_one(args, model, checkpoint, args.long_crop, long, logs)]
            checkpoint.unlink()

    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": args.threads,
            "pyav": av.__version__,
            "load_average_at_start": load_at_start,  # 1, 5, 15 min: near 0 on an idle machine
        },
        "settings": {"window_s": WINDOW, "hop_s": HOP, "crops": args.crops, "targets": TARGETS},
        "recording": describe_recording(base),
        "runs": runs,
    }
    if long:
        result["long"] = {
            "model": args.long_model,
            "crop": args.long_crop,
            "recordings": [describe_recording(base), describe_recording(long)],
            "runs": long_runs,
        }
    print_table(runs)
    if long:
        print_long(result["long"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{args.json}; logs in {logs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Time generating the embedded sample (default spec) and, with --prepare, preparing it.

With --prepare it also times decord alone decoding the same clips the way prepare needs them
(16 sampled frames, cropped and resized, plus the 16 kHz audio) in this one process, for
comparison with `python -m msa.prepare`'s rate (all cores, cold cache, then warm cache).

    python benchmarks/bench_sample.py [--workers N] [--prepare] [--keep DIR]

The project's target: generation plus preparation of the default sample under 2 minutes on
2 CPU cores. Prints one line per stage and a JSON summary on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msa.data.decode import PrepareParams, decode_clip  # noqa: E402
from msa.data.sample import SampleSpec, generate_sample  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None, help="generator processes (default: all cores)")
    parser.add_argument("--prepare", action="store_true", help="also time `python -m msa.prepare` on it")
    parser.add_argument(
        "--keep", type=Path, default=None, help="generate here and keep it (default: a temporary folder)"
    )
    args = parser.parse_args()

    spec = SampleSpec()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        root = base / "sample"
        start = time.perf_counter()
        generate_sample(root, spec, workers=args.workers, progress=True)
        generate_s = time.perf_counter() - start
        clips = len(list(root.glob("Actor_*/*.mp4")))
        size_mb = sum(p.stat().st_size for p in root.glob("Actor_*/*.mp4")) / 1e6
        print(f"generated {clips} clips ({size_mb:.1f} MB) in {generate_s:.1f} s", flush=True)
        result = {
            "clips": clips,
            "megabytes": round(size_mb, 1),
            "generate_s": round(generate_s, 1),
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
        }
        if args.prepare:
            paths = sorted(str(p) for p in root.glob("Actor_*/*.mp4"))
            start = time.perf_counter()
            for path in paths:
                decode_clip(path, PrepareParams())
            decode_s = time.perf_counter() - start
            result["decode_clips_per_s_one_process"] = round(len(paths) / decode_s, 2)
            print(f"decord alone, one process: {len(paths) / decode_s:.1f} clips/s", flush=True)

            command = [
                sys.executable,
                "-m",
                "msa.prepare",
                "--data",
                str(root),
                "--cache",
                str(base / "cache"),
            ]
            start = time.perf_counter()
            subprocess.run(command, check=True)
            result["prepare_s"] = round(time.perf_counter() - start, 1)
            result["prepare_clips_per_s"] = round(clips / result["prepare_s"], 2)
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            result["prepare_again_s"] = round(time.perf_counter() - start, 1)
            result["total_s"] = round(generate_s + result["prepare_s"], 1)
            print(
                f"prepared in {result['prepare_s']:.1f} s ({result['prepare_clips_per_s']:.1f} clips/s, process start "
                f"included); again in {result['prepare_again_s']:.1f} s; generate + prepare {result['total_s']:.1f} s",
                flush=True,
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

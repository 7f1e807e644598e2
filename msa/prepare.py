"""``python -m msa.prepare --data PATH``: find, check and prepare every RAVDESS clip under PATH.

Prints a summary; ``--manifest OUT.csv`` writes one row per file found with whether it is
included and, if not, why. Exits 2 with one line when PATH is missing or holds no usable clip.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from msa.data import default_cache_dir
from msa.data.decode import IMAGE_SIZE, NUM_FRAMES, PrepareParams
from msa.data.prepare import NoUsableClipsError, prepare


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m msa.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="RAVDESS root: Actor_XX/ folders and/or Video_Speech_Actor_XX.zip files")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: $MSA_CACHE or ~/.cache/msa)")
    parser.add_argument("--manifest", type=Path, default=None, help="write one CSV row per file found")
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1, help="parallel decoders (default: all cores)")
    parser.add_argument("--frames", type=positive_int, default=NUM_FRAMES, help=f"frames sampled per clip (default {NUM_FRAMES})")
    parser.add_argument("--image-size", type=positive_int, default=IMAGE_SIZE, help=f"square frame side in pixels (default {IMAGE_SIZE})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cache = args.cache or default_cache_dir()
    if args.manifest is not None and not args.manifest.parent.resolve().is_dir():
        print(f"error: --manifest {args.manifest}: folder {args.manifest.parent} does not exist", file=sys.stderr)
        return 2
    try:
        params = PrepareParams(num_frames=args.frames, image_size=args.image_size)
        started = time.perf_counter()
        report = prepare(args.data, cache, params, workers=args.workers)
    except (FileNotFoundError, NoUsableClipsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    print(report.summary())
    rate = f", {report.decoded / seconds:.1f} clips/s" if report.decoded else ""
    print(f"prepared into {cache} in {seconds:.1f} s{rate}")
    for path, reason in report.skipped:
        print(f"  skipped {path}: {reason}")
    if args.manifest is not None:
        report.write_manifest(args.manifest)
        print(f"manifest: {args.manifest} ({len(report.found)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

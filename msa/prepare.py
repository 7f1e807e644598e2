"""``msa prepare --data PATH`` (alias ``python -m msa.prepare``): read the dataset at PATH, check and prepare every clip.

PATH is a folder, a storage URI or a manifest CSV; ``--dataset`` says how to read it (auto:
detected from the names, and the evidence printed). Prints a summary; ``--manifest OUT.csv`` writes one row per file found with whether it is
included and, if not, why. Exits 2 with one line when PATH is missing, is not the dataset, or holds no usable clip.

``--cache-info`` lists what the cache holds (prepared clips by decoding parameters, the
frozen-prefix feature tables trials computed, and the pretrained weights searches shipped here); ``--clear-features`` deletes the feature tables
(they are recomputed when needed), keeping the prepared clips.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from msa.data import default_cache_dir
from msa.data.arguments import add_cache_argument, add_data_arguments, add_decoding_arguments
from msa.data.datasets import DatasetError
from msa.data.decode import PrepareParams
from msa.data.prepare import NoUsableClipsError, clips_dir, prepare
from msa.features import clear_features, list_tables
from msa.weights.bundle import WEIGHTS_DIR, shipped_weights

MB = 1024**2
PROG = "python -m msa.prepare"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Read a dataset, check every clip and prepare it (decoded, cropped, resized) into the cache.",
    )
    add_data_arguments(parser)
    add_cache_argument(parser)
    add_decoding_arguments(parser, count=positive_int)
    group = parser.add_argument_group("preparing")
    group.add_argument("--manifest", type=Path, default=None, help="write one CSV row per file found")
    group.add_argument(
        "--workers",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="parallel decoders (default: all cores)",
    )
    group = parser.add_argument_group("cache maintenance")
    group.add_argument(
        "--cache-info",
        action="store_true",
        help="list the prepared clips and feature tables in the cache, then exit",
    )
    group.add_argument(
        "--clear-features",
        action="store_true",
        help="delete the cached frozen-prefix features (not the prepared clips), then exit",
    )
    return parser


def parse_args(argv: list[str] | None, prog: str = PROG) -> argparse.Namespace:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.data is None and not (args.cache_info or args.clear_features):
        parser.error("--data is required (or --cache-info / --clear-features)")
    return args


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def print_cache_info(cache: Path) -> None:
    groups: dict[str, list[int]] = {}  # decoding parameters -> [clips, bytes]
    root = clips_dir(cache)
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            params = json.loads((entry / "meta.json").read_text())["params"]
        except (OSError, ValueError, KeyError):
            params = "unreadable meta.json"
        group = groups.setdefault(json.dumps(params, sort_keys=True), [0, 0])
        group[0] += 1
        group[1] += folder_bytes(entry)
    print(f"cache {cache}")
    print(f"prepared clips ({root}):" if groups else f"prepared clips: none in {root}")
    for params, (count, size) in groups.items():
        print(f"  {count:5d} clips {size / MB:9.1f} MB  {params}")
    tables = list_tables(cache)
    print("frozen-prefix feature tables:" if tables else "frozen-prefix feature tables: none")
    for table in tables:
        boundary = table["frozen"][-1] if table["frozen"] else "?"
        print(
            f"  {table['name']}  {table['entries']:5d} clips {table['bytes'] / MB:9.1f} MB {table['dtype']:>7}"
            f"  frozen through {boundary}  created {table['created']}"
        )
    shipped = shipped_weights(cache)
    print(
        f"pretrained weights shipped to this node ({cache / WEIGHTS_DIR}):"
        if shipped
        else "pretrained weights shipped to this node: none"
    )
    for folder in shipped:
        print(f"  {folder.name}  {folder_bytes(folder) / MB:9.1f} MB")


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    cache = Path(args.cache) if args.cache else default_cache_dir()
    if args.clear_features:
        print(f"cleared frozen-prefix features of {cache}: {clear_features(cache) / MB:.1f} MB freed")
    if args.cache_info:
        print_cache_info(cache)
    if args.data is None:
        return 0
    if args.manifest is not None and not args.manifest.parent.resolve().is_dir():
        print(
            f"error: --manifest {args.manifest}: folder {args.manifest.parent} does not exist",
            file=sys.stderr,
        )
        return 2
    try:
        params = PrepareParams(num_frames=args.frames, image_size=args.image_size, crop=args.crop)
        started = time.perf_counter()
        report = prepare(args.data, cache, params, workers=args.workers, dataset=args.dataset)
    except (FileNotFoundError, DatasetError, NoUsableClipsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    print(report.corpus.describe())
    for note in report.corpus.notes:
        print(f"note: {note}")
    print(report.summary())
    rate = f", {report.decoded / seconds:.1f} clips/s" if report.decoded else ""
    print(f"prepared into {cache} in {seconds:.1f} s{rate}")
    for path, reason in report.skipped:
        print(f"  skipped {path}: {reason}")
    if params.crop == "face" and report.corpus.has_video:
        print(report.face_crop_summary())
    if args.manifest is not None:
        report.write_manifest(args.manifest)
        print(f"manifest: {args.manifest} ({len(report.found)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

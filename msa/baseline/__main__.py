"""`python -m msa.baseline [--data DIR] [--classes all8|seed4] [--val-actors 3,4 --test-actors 5,6]
[--seed N] [--frames N] [--image-size N] [--cache DIR] [--json OUT]`: the classical baseline on
the data, classes and actor split a search with the same flags would use.

Without --data it runs on the embedded sample, as tune_main.py does; clips are prepared into
the same cache with the same parameters, so a later search reuses them. Bad input exits 2 with
one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from msa.baseline.classifier import EmptyPartError
from msa.baseline.features import FEATURE_SETS
from msa.baseline.run import baseline_for
from msa.data import is_uri
from msa.data.decode import IMAGE_SIZE, NUM_FRAMES, PrepareParams
from msa.data.experiment import prepare_experiment_data
from msa.data.labels import LABEL_SETS
from msa.data.prepare import NoUsableClipsError
from msa.data.splits import PARTS, SplitConfig, SplitError, actor_list

MIN_IMAGE_SIZE = 16  # pixels: what tune_main.py accepts


class UsageError(ValueError):
    """A bad argument or unusable input: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """argparse's own errors (an unknown option, a bad value) as one line, like ours."""
        raise UsageError(message)


def build_parser() -> Parser:
    p = Parser(prog="python -m msa.baseline", description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("--data", help="RAVDESS root: a folder or a storage URI (default: the embedded sample)")
    p.add_argument("--cache", help="prepared-clip cache (default: $MSA_CACHE or ~/.cache/msa)")
    p.add_argument("--classes", choices=sorted(LABEL_SETS), default="all8", help="label set (default all8)")
    p.add_argument("--val-actors", type=actor_list, default=(), help="explicit validation actors, e.g. 3,4")
    p.add_argument("--test-actors", type=actor_list, default=(), help="explicit test actors, e.g. 5,6")
    p.add_argument("--seed", type=int, default=0, help="seed of the actor split (default 0)")
    p.add_argument("--frames", type=int, default=NUM_FRAMES, help=f"frames per clip (default {NUM_FRAMES})")
    p.add_argument(
        "--image-size",
        type=int,
        default=IMAGE_SIZE,
        help=f"square frame side in pixels (default {IMAGE_SIZE})",
    )
    p.add_argument("--json", help="also write the baseline block (summary.json's format) to this file")
    return p


def check(args: argparse.Namespace) -> None:
    if args.data is not None and not is_uri(args.data) and not Path(args.data).expanduser().is_dir():
        raise UsageError(f"--data {args.data}: no such folder")
    if args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    if args.image_size < MIN_IMAGE_SIZE:
        raise UsageError(f"--image-size must be at least {MIN_IMAGE_SIZE} pixels, got {args.image_size}")


def table(block: dict, actors: dict[str, list[int]], num_classes: int) -> str:
    lines = [
        f"{'features':<12} {'dims':>5} {'C':>7} {'val acc':>8} {'test acc':>9} {'UAR':>6} {'macro-F1':>9}",
    ]
    for name in FEATURE_SETS:
        r = block[name]
        lines.append(
            f"{name:<12} {r['dims']:>5} {r['c']:>7g} {r['val_accuracy']:>8.3f} {r['accuracy']:>9.3f} "
            f"{r['uar']:>6.3f} {r['f1_macro']:>9.3f}"
        )
    parts = "; ".join(f"{part} {','.join(map(str, actors[part]))}" for part in PARTS)
    lines.append(f"actors: {parts}")
    lines.append(f"chance: {1 / num_classes:.3f} (1/{num_classes} classes); took {block['seconds']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        check(args)
        split = SplitConfig("actor", args.seed, args.val_actors, args.test_actors)
        params = PrepareParams(num_frames=args.frames, image_size=args.image_size)
        data, report = prepare_experiment_data(args.data, args.cache, args.classes, split, params)
        print(report.summary())
        block = baseline_for(data)
    except (UsageError, FileNotFoundError, NoUsableClipsError, SplitError, EmptyPartError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(block, data.actors, len(data.labels)))
    if args.json:
        Path(args.json).write_text(json.dumps(block, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

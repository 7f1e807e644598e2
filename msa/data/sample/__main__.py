"""``msa sample [OUT] [--full] [--layout L --out DIR]`` (alias ``python -m msa.data.sample``): write the embedded sample (or a RAVDESS-sized one), or its clips under another dataset's layout.

Why: benchmarks need data the size of the real RAVDESS speech set without the download, and
the same code paths as the real files. Without ``--full`` OUT gets the default
:class:`SampleSpec` (8 actors x 8 emotions x 2 statements = 128 clips); ``--full`` gets
:meth:`SampleSpec.full_ravdess`, RAVDESS's speech set in size and naming (24 actors x 60 clips
= 1,440). ``--actors 2`` (actors 1..2) or ``--actors 1,2`` keeps only some of the actors.

Clips keep the default duration of 2.5 s (real RAVDESS speech clips last about 3.5 s):
generating a clip takes time in proportion to its length (about 0.53 s for 2.5 s and 0.79 s
for 3.5 s on one core), so 3.5 s clips would make ``--full`` half as slow again.

OUT is written the way the cache is (:func:`generate_sample`: a temporary sibling folder,
renamed into place when complete). When OUT already holds this sample, nothing is done; when it
holds anything else, or an argument is bad, the command exits 2 with one line. It ends with one
line: clips, actors, size on disk and seconds taken.

``--layout`` other than ``ravdess`` (the default, the above) also needs ``--out DIR``: the
sample (the same spec flags) is ensured first, in OUT when it is given (as above) or else in
the cache ($MSA_CACHE), and its clips are then written under that layout into DIR
(:func:`.layouts.write_layout`: absent or empty, else exit 2 before anything is generated). It
ends with one line: the layout, files written by kind, size on disk and seconds taken.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path

from msa.data.sample.layouts import LAYOUTS, out_problem, write_layout
from msa.data.sample.spec import SampleSpec
from msa.data.sample.tree import ensure_sample, generate_sample, is_complete

MIB = 1024**2
DISK_BLOCK = 512  # bytes per unit of st_blocks
PROG = "python -m msa.data.sample"


class OneLineParser(argparse.ArgumentParser):
    """Reports a bad argument in one line (argparse's default adds the usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def actor_selection(text: str) -> int | tuple[int, ...]:
    """``N`` (actors 1..N) or a comma-separated list of actor ids."""
    try:
        return tuple(int(v) for v in text.split(",")) if "," in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count N or ids like 1,2, got {text!r}") from None


def build_parser(prog: str = PROG) -> OneLineParser:
    parser = OneLineParser(
        prog=prog,
        description="Write the embedded sample (or a RAVDESS-sized one), or its clips under another dataset's layout.",
    )
    parser.add_argument(
        "out",
        type=Path,
        nargs="?",
        metavar="OUT",
        help="the sample's folder (absent, empty or this sample); optional with --layout, default: the cache",
    )
    parser.add_argument(
        "--full", action="store_true", help="RAVDESS's speech set: 24 actors x 60 clips = 1,440 clips"
    )
    parser.add_argument(
        "--actors", type=actor_selection, help="only these actors: N (actors 1..N) or ids such as 1,2"
    )
    parser.add_argument("--workers", type=positive_int, help="encoding processes (default: all cores)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="generator seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--layout",
        choices=("ravdess", *LAYOUTS),
        default="ravdess",
        help="ravdess (default): the sample itself in OUT; another: its clips under that layout in --out",
    )
    parser.add_argument(
        "--out",
        dest="layout_out",
        type=Path,
        metavar="DIR",
        help="where --layout writes (absent or empty)",
    )
    return parser


def parse_args(argv: list[str] | None, prog: str = PROG) -> tuple[argparse.Namespace, SampleSpec]:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.layout == "ravdess":
        if args.out is None:
            parser.error("the following arguments are required: OUT")
        if args.layout_out is not None:
            parser.error("argument --out: only with a --layout other than ravdess (OUT is its folder)")
    elif args.layout_out is None:
        parser.error(f"argument --out: required with --layout {args.layout}")
    spec = SampleSpec.full_ravdess(seed=args.seed) if args.full else SampleSpec(seed=args.seed)
    if args.actors is not None:
        try:
            chosen = dataclasses.replace(spec, actors=args.actors)
        except ValueError:
            chosen = None
        if chosen is None or not set(chosen.actors) <= set(spec.actors):
            parser.error(f"argument --actors: this sample's actors are 1..{len(spec.actors)}")
        spec = chosen
    return args, spec


def size_on_disk(root: Path) -> int:
    """Bytes allocated to the files under ``root``, as ``du`` counts them."""
    return sum(path.stat().st_blocks * DISK_BLOCK for path in root.rglob("*") if path.is_file())


def foreign_content(out: Path) -> str | None:
    """Why ``out``, which does not hold this sample, cannot be written; None when it is absent or empty."""
    if not out.exists():
        return None
    if not out.is_dir():
        return "exists and is not a folder"
    if is_complete(out):
        return "holds a sample of another spec"
    return "holds other files" if any(out.iterdir()) else None


def write_tree(out: Path, spec: SampleSpec, args: argparse.Namespace) -> str | None:
    """Ensure the sample ``spec`` in ``out`` -> None, or the one line to print on stderr when
    ``out`` holds something else."""
    if is_complete(out, spec):
        return None
    problem = foreign_content(out)
    if problem:
        return f"error: {out} {problem}; remove it or choose another OUT"
    generate_sample(out, spec, workers=args.workers, progress=not args.no_progress)
    return None


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args, spec = parse_args(argv, prog)
    if args.layout != "ravdess":
        return main_layout(args, spec)
    out: Path = args.out
    actors = len(spec.actors)
    counts = f"{len(spec.clips())} clips, {actors} actor{'' if actors == 1 else 's'}"
    if is_complete(out, spec):
        print(
            f"{out} already holds this sample ({counts}, {size_on_disk(out) / MIB:.1f} MiB); nothing to do."
        )
        return 0
    started = time.perf_counter()
    error = write_tree(out, spec, args)
    if error:
        print(error, file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    print(f"Wrote {counts} to {out}: {size_on_disk(out) / MIB:.1f} MiB on disk in {seconds:.1f} s.")
    return 0


def main_layout(args: argparse.Namespace, spec: SampleSpec) -> int:
    """``--layout`` other than ravdess: ensure the sample (in OUT or the cache), then write the
    layout into ``--out``."""
    dest: Path = args.layout_out
    problem = out_problem(dest)
    if problem:
        print(f"error: {dest} {problem}; remove it or choose another --out", file=sys.stderr)
        return 2
    if args.out is not None:
        a, b = dest.resolve(), args.out.resolve()
        if a == b or a in b.parents or b in a.parents:
            print(f"error: --out {dest} and OUT {args.out} must not contain each other", file=sys.stderr)
            return 2
    started = time.perf_counter()
    if args.out is None:
        root = ensure_sample(spec=spec, workers=args.workers, progress=not args.no_progress)
    else:
        error = write_tree(args.out, spec, args)
        if error:
            print(error, file=sys.stderr)
            return 2
        root = args.out
    write_layout(args.layout, root, dest)
    seconds = time.perf_counter() - started
    kinds = Counter(path.suffix for path in dest.rglob("*") if path.is_file())
    files = ", ".join(f"{n} {suffix}" for suffix, n in sorted(kinds.items()))
    print(
        f"Wrote the {args.layout} layout of {len(spec.clips())} clips ({root}) to {dest}: "
        f"{sum(kinds.values())} files ({files}), {size_on_disk(dest) / MIB:.1f} MiB on disk in {seconds:.1f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``msa export MODEL --format onnx|torchscript --out FILE`` (alias ``python -m msa.export``): see msa.export.

Exit status: 0 written and checked; 1 the export failed or its outputs differ from PyTorch's
(one line with the largest difference; nothing written); 2 MODEL holds no usable model, or the
format's packages are missing (one line).
"""

from __future__ import annotations

import argparse
import sys

from msa.data.decode import IMAGE_SIZE, MIN_IMAGE_SIZE, NUM_FRAMES
from msa.data.media import first_line
from msa.export import (
    FORMATS,
    MissingExtra,
    NotExportable,
    ParityError,
    SourceError,
    export_model,
    load_source,
)
from msa.export.formats import require_onnx
from msa.export.source import chosen_trial
from msa.pareto import add_pick_argument
from msa.train import CheckpointError

PROG = "python -m msa.export"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Export a tuned model to ONNX or TorchScript, checked against PyTorch.",
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="an experiment directory STORAGE/NAME (local path or storage URI: its best checkpoint) or a checkpoint file",
    )
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, metavar="FILE", help="the file to write (atomically)")
    parser.add_argument("--trial", help="an experiment's trial folder to export instead of the best trial")
    add_pick_argument(parser, "the trial")
    parser.add_argument(
        "--frames",
        type=int,
        help=f"frames per clip the model was trained on (default: the search's msa_args.json, else {NUM_FRAMES})",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help=f"frame size in pixels the model was trained on, at least {MIN_IMAGE_SIZE} (default: the search's msa_args.json, else {IMAGE_SIZE})",
    )
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if (args.frames is not None and args.frames < 1) or (
        args.image_size is not None and args.image_size < MIN_IMAGE_SIZE
    ):
        parser.error(f"--frames must be >= 1 and --image-size >= {MIN_IMAGE_SIZE}")
    try:
        if args.format == "onnx":
            require_onnx()  # before loading a model, which can take a while
        source = load_source(args.model, chosen_trial(args.model, args.trial, args.pick))
        result = export_model(source, args.format, args.out, args.frames, args.image_size)
    except (MissingExtra, SourceError, CheckpointError, FileNotFoundError, NotExportable) as error:
        print(f"error: {first_line(error)}", file=sys.stderr)
        return 2
    except ParityError as error:
        print(f"error: {first_line(error)}", file=sys.stderr)
        return 1
    except Exception as error:  # the exporter's own failure, often pages long
        print(
            f"error: exporting to {args.format} failed: {type(error).__name__}: {first_line(error)}",
            file=sys.stderr,
        )
        return 1
    print(
        f"wrote {result.path} ({result.exporter}; max |exported - PyTorch| {result.max_abs_diff:.2g} "
        f"on {'; '.join(result.checks)}; {result.seconds:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

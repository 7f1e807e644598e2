"""`msa baseline [--data PATH] [--dataset NAME] [--classes all|A,B|JSON] [--val-actors 3,4
--test-actors 5,6 | --folds K|PRESET] [--seed N] [--frames N] [--image-size N] [--cache DIR] [--json OUT]`:
the classical baseline on the data, classes and speaker split a search with the same flags would
use, or on every fold of a cross-validation (mean +- std over the folds).

``python -m msa.baseline`` is the same command. Without --data it runs on the embedded sample,
as msa search does; clips are prepared into the same cache with the same parameters, so a later
search reuses them. Bad input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from msa.baseline.classifier import EmptyPartError
from msa.baseline.features import FEATURE_SETS
from msa.baseline.run import baseline_for, baseline_for_folds
from msa.data import is_uri
from msa.data.arguments import (
    add_actor_arguments,
    add_cache_argument,
    add_classes_argument,
    add_data_arguments,
    add_decoding_arguments,
)
from msa.data.datasets import DatasetError
from msa.data.decode import MIN_IMAGE_SIZE, PrepareParams
from msa.data.experiment import prepare_experiment_data
from msa.data.folds import FoldError, folds_of, protocol
from msa.data.prepare import NoUsableClipsError
from msa.data.splits import PARTS, SplitConfig, SplitError

PROG = "python -m msa.baseline"


class UsageError(ValueError):
    """A bad argument or unusable input: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """argparse's own errors (an unknown option, a bad value) as one line, like ours."""
        raise UsageError(message)


def build_parser(prog: str = PROG) -> Parser:
    p = Parser(
        prog=prog,
        description="The classical baseline (MFCC and frame-grid statistics, L2 logistic regression) on the data, "
        "classes and speaker split a search with the same flags would use, or on every fold of a cross-validation.",
    )
    add_data_arguments(p, without="the embedded sample")
    add_cache_argument(p)
    add_classes_argument(p)
    add_actor_arguments(p)
    add_decoding_arguments(p, crop=False)
    p.add_argument(
        "--folds", help="every fold of a cross-validation instead of one split: K or a RAVDESS preset"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the actor split (default 0)")
    p.add_argument("--json", help="also write the baseline block (summary.json's format) to this file")
    return p


def check(args: argparse.Namespace) -> None:
    if args.data is not None and not is_uri(args.data) and not Path(args.data).expanduser().exists():
        raise UsageError(f"--data {args.data}: no such file or folder")
    if args.folds and (args.val_actors or args.test_actors or args.split != "actor"):
        raise UsageError(
            "--folds makes its own speaker-disjoint splits: drop --val-actors/--test-actors/--split"
        )
    if args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    if args.image_size < MIN_IMAGE_SIZE:
        raise UsageError(f"--image-size must be at least {MIN_IMAGE_SIZE} pixels, got {args.image_size}")


def table(block: dict, actors: dict[str, list], num_classes: int) -> str:
    lines = [
        f"{'features':<12} {'dims':>5} {'C':>7} {'val acc':>8} {'test acc':>9} {'UAR':>6} {'macro-F1':>9}",
    ]
    for name in (name for name in FEATURE_SETS if name in block):  # audio files: "audio" alone
        r = block[name]
        lines.append(
            f"{name:<12} {r['dims']:>5} {r['c']:>7g} {r['val_accuracy']:>8.3f} {r['accuracy']:>9.3f} "
            f"{r['uar']:>6.3f} {r['f1_macro']:>9.3f}"
        )
    parts = "; ".join(f"{part} {','.join(map(str, actors[part]))}" for part in PARTS)
    lines.append(f"actors: {parts}")
    lines.append(f"chance: {1 / num_classes:.3f} (1/{num_classes} classes); took {block['seconds']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    try:
        args = build_parser(prog).parse_args(argv)
        check(args)
        split = SplitConfig(args.split, args.seed, args.val_actors, args.test_actors)
        params = PrepareParams(num_frames=args.frames, image_size=args.image_size)
        data, report = prepare_experiment_data(
            args.data, args.cache, args.classes, split, params, dataset=args.dataset
        )
        print(report.corpus.describe())
        print(report.summary())
        if args.folds:
            folds = folds_of(data, args.folds, args.seed)
            blocks = baseline_for_folds([fold_data for _, fold_data in folds])
        else:
            blocks = [baseline_for(data)]
    except (
        UsageError,
        FileNotFoundError,
        DatasetError,
        NoUsableClipsError,
        SplitError,
        FoldError,
        EmptyPartError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.folds:
        print(table(blocks[0], data.actors, len(data.labels)))
    else:
        print(f"folds: {protocol(args.folds)}")
        for (fold, fold_data), block in zip(folds, blocks):
            print(f"fold {fold.number} (test {','.join(map(str, fold.test))}):")
            print(table(block, fold_data.actors, len(data.labels)))
        print(folds_summary(blocks))
    if args.json:
        payload = blocks[0] if not args.folds else {"protocol": protocol(args.folds), "folds": blocks}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


def folds_summary(blocks: list[dict]) -> str:
    """Per feature set: test WAR and UAR, mean +- sample std over the folds (as crossval.json)."""
    lines = [f"over {len(blocks)} folds (mean +- std):"]
    for name in (name for name in FEATURE_SETS if name in blocks[0]):
        war = np.array([block[name]["accuracy"] for block in blocks])
        uar = np.array([block[name]["uar"] for block in blocks])
        lines.append(
            f"  {name:<12} WAR {war.mean():.3f} +- {war.std(ddof=1):.3f}   UAR {uar.mean():.3f} +- {uar.std(ddof=1):.3f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

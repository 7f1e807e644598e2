"""The data's command-line flags, each defined once: every command that reads a corpus (``msa
search``, ``msa prepare``, ``msa baseline``) adds its groups from here.

    parser = argparse.ArgumentParser()
    add_data_arguments(parser, without="the embedded sample")   # --data, --dataset
    add_cache_argument(parser)                                  # --cache
    add_classes_argument(parser)                                # --classes
    add_actor_arguments(parser)                                 # --split, --val-actors, --test-actors
    add_decoding_arguments(parser)                              # --frames, --image-size, --crop

Each function adds one argument group, titled by its constant below (the CLI reference groups
every command's options by these titles). ``given_only=True`` (the search) leaves every
default None, so that ``SearchOptions.from_namespace`` can tell a flag given from a default and
a resumed search keeps its saved value; the help names the default either way.
"""

from __future__ import annotations

import argparse

from msa.data.datasets import AUTO, DATASET_CHOICES
from msa.data.decode import CROPS, IMAGE_SIZE, MIN_IMAGE_SIZE, NUM_FRAMES, PrepareParams
from msa.data.labels import ALL
from msa.data.splits import SPLIT_METHODS, SplitConfig, actor_list

# Argument group titles.
DATA, CACHE, CLASSES, ACTORS, DECODING = "data", "cache", "classes", "actors", "decoding"
SHARED_GROUPS = (DATA, CACHE, CLASSES, ACTORS, DECODING)

DEFAULT_DATASET = AUTO
DEFAULT_CLASSES = ALL
DEFAULT_SPLIT = SplitConfig.method
DEFAULT_CROP = PrepareParams.crop


def _default(value, given_only: bool):
    return None if given_only else value


def add_data_arguments(
    parser: argparse.ArgumentParser, *, without: str | None = None, given_only: bool = False
) -> None:
    """--data and --dataset; ``without``: what the command reads when --data is not given
    (None: the command's own rule, which its usage states)."""
    data = parser.add_argument_group(DATA)
    data.add_argument(
        "--data",
        help="a dataset folder or storage URI (gs://, s3://, file://; zips read in place), or a manifest CSV "
        "path,label,speaker[,gender][,start,end]" + (f" (default: {without})" if without else ""),
    )
    data.add_argument(
        "--dataset",
        choices=DATASET_CHOICES,
        default=_default(DEFAULT_DATASET, given_only),
        help=f"how to read --data: auto detects it from the names and prints why (default {DEFAULT_DATASET})",
    )


def add_cache_argument(parser: argparse.ArgumentParser) -> None:
    """--cache (None: each node's $MSA_CACHE or ~/.cache/msa, msa.data.default_cache_dir)."""
    parser.add_argument_group(CACHE).add_argument(
        "--cache", help="prepared-clip cache folder (default: $MSA_CACHE or ~/.cache/msa)"
    )


def add_classes_argument(parser: argparse.ArgumentParser, *, given_only: bool = False) -> None:
    """--classes (msa.data.labels reads its value)."""
    parser.add_argument_group(CLASSES).add_argument(
        "--classes",
        default=_default(DEFAULT_CLASSES, given_only),
        help="all (the data's labels), a preset of the dataset (RAVDESS: all8, seed4), a subset angry,happy,sad, "
        f"or a JSON mapping (inline or a .json file) of classes to labels (default {DEFAULT_CLASSES})",
    )


def add_actor_arguments(parser: argparse.ArgumentParser, *, given_only: bool = False) -> None:
    """--split and the explicit --val-actors / --test-actors (msa.data.splits.SplitConfig)."""
    actors = parser.add_argument_group(ACTORS)
    actors.add_argument(
        "--split",
        choices=SPLIT_METHODS,
        default=_default(DEFAULT_SPLIT, given_only),
        help=f"actor: no speaker in two of train/val/test; random: clips at random, speakers leak (default {DEFAULT_SPLIT})",
    )
    for flag, part in (("--val-actors", "validation"), ("--test-actors", "test")):
        actors.add_argument(
            flag,
            type=actor_list,
            default=_default((), given_only),
            help=f"explicit {part} speakers, e.g. {'3,4' if part == 'validation' else '5,6'} (with --split actor)",
        )


def add_decoding_arguments(
    parser: argparse.ArgumentParser, *, count=int, crop: bool = True, given_only: bool = False
) -> None:
    """--frames, --image-size and (``crop``) --crop: how clips are decoded (msa.data.decode.PrepareParams).

    ``count`` is the argparse type of the two numbers: a command that checks its options after
    parsing (the search also checks a resumed run's saved values) keeps ``int``; one that does
    not refuses a bad number while parsing."""
    decoding = parser.add_argument_group(DECODING)
    decoding.add_argument(
        "--frames",
        type=count,
        default=_default(NUM_FRAMES, given_only),
        help=f"frames sampled per clip (default {NUM_FRAMES})",
    )
    decoding.add_argument(
        "--image-size",
        type=count,
        default=_default(IMAGE_SIZE, given_only),
        help=f"square frame side in pixels, at least {MIN_IMAGE_SIZE} (default {IMAGE_SIZE})",
    )
    if crop:
        decoding.add_argument(
            "--crop",
            choices=CROPS,
            default=_default(DEFAULT_CROP, given_only),
            help="fixed: RAVDESS's framing (a centred square); face: a square around the face found in "
            f"the sampled frames, for recordings framed otherwise (default {DEFAULT_CROP})",
        )

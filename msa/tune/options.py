"""The ``tune_main.py`` command line: parsing and every check that can run before Ray starts.

Nothing here imports Ray, so a bad flag costs milliseconds and leaves no process behind.
Every problem becomes one ``UsageError`` line, which ``tune_main.py`` prints before exiting 2.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from msa.data import is_uri, remote_filesystem
from msa.data.decode import IMAGE_SIZE, NUM_FRAMES
from msa.data.labels import LABEL_SETS
from msa.data.splits import SPLIT_METHODS

METRICS = ("val_acc", "val_f1", "val_uar", "val_loss", "train_acc", "train_loss")
ARGS_FILE = "msa_args.json"  # the parsed command line, saved in the experiment folder for --resume

# What --smoke-test changes: a budget that finishes in about a minute on 2 cores.
SMOKE_DEFAULTS = {"num_samples": 2, "max_epochs": 2, "grace_period": 1, "frames": 4, "image_size": 32}
DEFAULTS = {"num_samples": 8, "max_epochs": 8, "grace_period": 2, "frames": NUM_FRAMES, "image_size": IMAGE_SIZE}


class UsageError(ValueError):
    """A bad argument or unusable input: reported as one line, exit status 2."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    defaults = SMOKE_DEFAULTS if args.smoke_test else DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.mode is None:
        args.mode = "min" if args.metric.endswith("_loss") else "max"
    return args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tune_main.py",
        description="Hyperparameter search for audio-visual emotion recognition on RAVDESS (Ray Tune, ASHA + Optuna).",
    )
    p.add_argument("--space", help="search space name (see --list-spaces)")
    p.add_argument("--list-spaces", action="store_true", help="print every space with a one-line description")
    data = p.add_argument_group("data")
    data.add_argument("--data", help="RAVDESS root, a folder or a storage URI (gs://, s3://, file://): Actor_XX/ folders or Video_Speech_Actor_XX.zip files (default: the embedded sample)")
    data.add_argument("--cache", type=Path, help="prepared-clip cache (default: $MSA_CACHE or ~/.cache/msa)")
    data.add_argument("--classes", choices=sorted(LABEL_SETS), default="all8", help="all8, or seed4 = sad, happy, disgust, angry (default all8)")
    data.add_argument("--split", choices=SPLIT_METHODS, default="actor", help="actor: no actor in two of train/val/test (default)")
    data.add_argument("--val-actors", type=actor_list, default=(), help="explicit validation actors, e.g. 3,4")
    data.add_argument("--test-actors", type=actor_list, default=(), help="explicit test actors, e.g. 5,6")
    data.add_argument("--frames", type=int, help=f"frames sampled per clip (default {NUM_FRAMES})")
    data.add_argument("--image-size", type=int, help=f"square frame side in pixels (default {IMAGE_SIZE})")
    data.add_argument("--no-feature-cache", action="store_true", help="compute frozen layers in every step instead of once per clip (slower; for comparison)")
    search = p.add_argument_group("search")
    search.add_argument("--num-samples", type=int, help=f"trials (default {DEFAULTS['num_samples']})")
    search.add_argument("--max-epochs", type=int, help=f"epochs per trial, ASHA's max_t (default {DEFAULTS['max_epochs']})")
    search.add_argument("--grace-period", type=int, help="ASHA's minimum epochs before stopping a trial (default 2)")
    search.add_argument("--scheduler", choices=("asha", "fifo"), default="asha")
    search.add_argument("--search", choices=("optuna", "random"), default="optuna", help="Optuna TPE (seeded) or random search")
    search.add_argument("--time-budget", type=float, help="stop starting and running trials after this many seconds")
    search.add_argument("--metric", choices=METRICS, default="val_acc")
    search.add_argument("--mode", choices=("max", "min"), help="default: min for losses, max otherwise")
    resources = p.add_argument_group("resources")
    resources.add_argument("--cpus-per-trial", type=float, default=1.0)
    resources.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions allowed, e.g. 0.5")
    resources.add_argument("--max-concurrent", type=int, help="concurrent trials (default: what fits the resources)")
    resources.add_argument("--max-failures", type=int, default=2, help="retries of a crashed trial, from its last checkpoint (default 2)")
    resources.add_argument("--address", help="join a running Ray cluster (auto or HOST:PORT) instead of starting one")
    output = p.add_argument_group("output")
    output.add_argument("--storage", default="./ray_results", help="results root, local path or URI (default ./ray_results)")
    output.add_argument("--name", help="experiment name (default <space>-<timestamp>)")
    output.add_argument("--resume", action="store_true", help="continue the interrupted experiment STORAGE/NAME")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretrained", choices=("auto", "on", "off"), default="auto", help="pretrained backbones: auto (default) finds or downloads them, falling back to random weights only on the embedded sample; on never falls back; off trains from scratch")
    p.add_argument("--video-weights", help="ResNet-18 weights: a torchvision weights name, an http(s) URL or a local .pth file (default IMAGENET1K_V1)")
    p.add_argument("--audio-weights", help="speech encoder (wav2vec 2.0, HuBERT, WavLM): a Hugging Face hub id[@revision] or a local save_pretrained folder (default facebook/wav2vec2-base)")
    p.add_argument("--smoke-test", action="store_true", help="tiny models, frames and budget: a check that everything runs")
    return p


def actor_list(text: str) -> tuple[int, ...]:
    try:
        actors = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated actor ids like 3,4, got {text!r}") from None
    if not actors or min(actors) < 1:
        raise argparse.ArgumentTypeError(f"expected positive actor ids like 3,4, got {text!r}")
    return actors


def validate(args: argparse.Namespace, space_names: list[str]) -> None:
    """Every check that needs neither Ray nor the data. Raises UsageError."""
    if args.space is None:
        raise UsageError("--space is required (see --list-spaces)")
    if args.space not in space_names:
        raise UsageError(f"--space {args.space}: unknown space; valid spaces: {', '.join(space_names)}")
    for flag in ("num_samples", "max_epochs", "grace_period", "frames"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.image_size < 16:
        raise UsageError(f"--image-size must be at least 16 pixels, got {args.image_size}")
    if args.grace_period > args.max_epochs:
        raise UsageError(f"--grace-period {args.grace_period} exceeds --max-epochs {args.max_epochs}")
    if args.time_budget is not None and args.time_budget <= 0:
        raise UsageError(f"--time-budget must be positive seconds, got {args.time_budget}")
    if args.cpus_per_trial <= 0:
        raise UsageError(f"--cpus-per-trial must be positive, got {args.cpus_per_trial}")
    if args.gpus_per_trial < 0 or (args.gpus_per_trial > 1 and args.gpus_per_trial != int(args.gpus_per_trial)):
        raise UsageError(f"--gpus-per-trial must be a fraction in (0, 1] or a whole number, got {args.gpus_per_trial}")
    if args.max_failures < 0:
        raise UsageError(f"--max-failures must be at least 0, got {args.max_failures}")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    if set(args.val_actors) & set(args.test_actors):
        raise UsageError(f"actors {sorted(set(args.val_actors) & set(args.test_actors))} are in both --val-actors and --test-actors")
    if bool(args.val_actors) != bool(args.test_actors):
        raise UsageError("give both --val-actors and --test-actors, or neither")
    if (args.val_actors or args.test_actors) and args.split != "actor":
        raise UsageError("--val-actors/--test-actors need --split actor")
    for flag in ("video_weights", "audio_weights"):
        value = getattr(args, flag)
        if value is not None and looks_like_path(value) and not Path(value).expanduser().exists():
            raise UsageError(f"--{flag.replace('_', '-')} {value}: no such file or folder")
    if args.data is not None and not is_uri(args.data) and not Path(args.data).expanduser().is_dir():
        raise UsageError(f"--data {args.data}: no such folder")  # a URI is listed (and checked) before Ray starts
    if args.resume and not args.name:
        raise UsageError("--resume needs --name of the experiment to continue")
    if args.name is not None and (not args.name or "/" in args.name or args.name.startswith(".")):
        raise UsageError(f"--name {args.name!r}: use a plain folder name")
    if args.gpus_per_trial > 0 and args.address is None:
        gpus = local_gpu_count()
        if gpus == 0:
            raise UsageError(f"--gpus-per-trial {args.gpus_per_trial}: this machine has no CUDA GPU (drop the flag to run on CPUs)")
    check_storage(args)


def looks_like_path(value: str) -> bool:
    """A local file or folder, not a weights name, hub id or URL."""
    if value.startswith(("http://", "https://")):
        return False
    return value.startswith((".", "/", "~")) or value.endswith((".pth", ".pt"))


def local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_storage(args: argparse.Namespace) -> None:
    """A local storage root must be writable; an experiment to resume must exist and match."""
    if is_uri(args.storage):
        return check_uri_storage(args)
    root = Path(args.storage).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".msa-write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"--storage {args.storage}: not a writable folder ({error.strerror or error})") from None
    if args.resume:
        check_resume_matches(args)


def check_uri_storage(args: argparse.Namespace) -> None:
    import pyarrow.fs

    try:
        pyarrow.fs.FileSystem.from_uri(args.storage)
    except Exception as error:  # pyarrow raises several types for unknown schemes or credentials
        raise UsageError(f"--storage {args.storage}: {str(error).splitlines()[0]}") from None
    if args.resume:
        check_resume_matches(args)


def check_resume_matches(args: argparse.Namespace) -> None:
    try:
        stored = read_stored_args(args)
    except (FileNotFoundError, OSError, ValueError):
        raise UsageError(f"--resume: no experiment {args.name!r} under {args.storage} (missing or unreadable {ARGS_FILE})") from None
    if stored.get("space") != args.space:
        raise UsageError(f"--resume: experiment {args.name!r} searched space {stored.get('space')!r}, not --space {args.space}")


# Flags that may change when a search is resumed; everything else is taken from the saved run.
RESUME_OVERRIDABLE = (
    "resume", "address", "storage", "name", "cpus_per_trial", "gpus_per_trial", "max_concurrent", "time_budget", "max_failures",
)


def load_resumed_args(args: argparse.Namespace) -> argparse.Namespace:
    """The saved command line of the experiment being resumed, with this run's resources."""
    stored = read_stored_args(args)
    merged = argparse.Namespace(**stored)
    for key in RESUME_OVERRIDABLE:
        setattr(merged, key, getattr(args, key))
    for key in ("data", "cache"):
        if getattr(merged, key) is not None:
            setattr(merged, key, Path(getattr(merged, key)))
    merged.val_actors, merged.test_actors = tuple(merged.val_actors), tuple(merged.test_actors)
    return merged


def read_stored_args(args: argparse.Namespace) -> dict:
    if is_uri(args.storage):
        import pyarrow.fs

        fs, path = remote_filesystem(args.storage)
        with fs.open_input_stream(f"{path.rstrip('/')}/{args.name}/{ARGS_FILE}") as handle:
            return json.loads(handle.read().decode())
    return json.loads((Path(args.storage).expanduser() / args.name / ARGS_FILE).read_text())


def experiment_name(args: argparse.Namespace) -> str:
    return args.name or f"{args.space}-{time.strftime('%Y%m%d-%H%M%S')}"


def args_to_dict(args: argparse.Namespace) -> dict:
    """The parsed command line as JSON-ready data (what --resume reads back)."""
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}

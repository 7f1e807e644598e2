"""The ``msa search`` command line (alias ``python tune_main.py``) as a typed, frozen ``SearchOptions``, checked once before Ray starts.

    args = build_parser().parse_args(["--space", "video_transformer", "--max-epochs", "4"])  # msa.tune.command_line
    options = SearchOptions.from_namespace(args, SPACES)
    options.check()                # every check that needs neither Ray nor the data
    options.budget.max_epochs      # 4
    options.to_json()              # what the experiment folder keeps in msa_args.json

Options come in groups, and functions take the group they use: ``data`` (what to train on and
how clips are decoded and split), ``budget`` (trials, epochs, the scheduler and searcher, the
metric), ``resources`` (per trial, and the cluster), ``output`` (where results go),
``weights`` (pretrained backbones) and ``evaluation`` (what follows the search).

``msa_args.json`` keeps the command line flat, one key per flag (``no_feature_cache`` as the
flag says it), so a saved run reads back with ``from_json``: fields a run saved before a flag
existed take their default, and storage URIs (``gs://``, ``s3://``, ``file://``) stay strings.

Nothing here imports Ray, so a bad flag costs milliseconds and leaves no process behind. Every
problem becomes one ``UsageError`` line, which the command prints before exiting 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from collections.abc import Collection
from dataclasses import dataclass, fields
from pathlib import Path

from msa.data import is_uri, remote_filesystem
from msa.data.arguments import DEFAULT_CLASSES, DEFAULT_CROP, DEFAULT_DATASET, DEFAULT_SPLIT
from msa.data.datasets import DATASET_CHOICES, SpeakerId
from msa.data.decode import CROPS, IMAGE_SIZE, MIN_IMAGE_SIZE, NUM_FRAMES, PrepareParams
from msa.data.folds import FoldError, check_folds_arg
from msa.data.splits import SplitConfig
from msa.experiment_dir import (
    ARGS_FILE,
    DEFAULT_METRIC,
    DEFAULT_MODE,
    DEFAULT_REDUCTION_FACTOR,
    POPULATION_SCHEDULERS,
    default_mode,
)
from msa.features import DEFAULT_ENTRY_DTYPE, ENTRY_DTYPES
from msa.pareto import ObjectiveError, parse_objectives
from msa.tune.tracking.options import TrackingError, TrackingOptions, check_tracking, installed
from search_spaces import get_space
from search_spaces.scale import epoch_budget

SCHEDULERS = ("asha", "fifo", *POPULATION_SCHEDULERS)
# A multi-objective search's scheduler: ASHA and PBT rank trials by one metric, and cutting
# trials by accuracy alone would drop the fast, slightly less accurate ones a front is for.
MULTI_OBJECTIVE_SCHEDULER = "fifo"
SEARCHERS = ("optuna", "random", "nsga2")  # nsga2: multi-objective only (--objectives)


class UsageError(ValueError):
    """A bad argument or unusable input: reported as one line, exit status 2."""


@dataclass(frozen=True)
class DataOptions:
    """What the trials train on, and how clips are decoded and split."""

    data: str | None = None  # a folder, a storage URI or a manifest CSV; None: the embedded sample
    dataset: str = DEFAULT_DATASET  # how to read it (msa.data.datasets.DATASET_CHOICES)
    cache: str | None = None  # None: each node's $MSA_CACHE or ~/.cache/msa
    classes: str = DEFAULT_CLASSES  # a --classes value (msa.data.labels)
    split: str = DEFAULT_SPLIT
    val_actors: tuple[SpeakerId, ...] = ()
    test_actors: tuple[SpeakerId, ...] = ()
    frames: int = NUM_FRAMES
    image_size: int = IMAGE_SIZE  # pixels, square
    crop: str = DEFAULT_CROP  # one of msa.data.decode.CROPS: RAVDESS's framing, or around the face found
    feature_cache: bool = True  # serve frozen prefixes from the feature cache
    audio_features: str = DEFAULT_ENTRY_DTYPE  # entry dtype of the audio branch's feature tables


@dataclass(frozen=True)
class BudgetOptions:
    """How many trials, how long each may train, and how they are chosen, stopped and ranked."""

    num_samples: int = 8
    # ASHA's max_t and minimum epochs; None: set by the training set's size once the data is
    # known (search_spaces.scale.epoch_budget, SearchOptions.sized_for)
    max_epochs: int | None = None
    grace_period: int | None = None
    reduction_factor: int = DEFAULT_REDUCTION_FACTOR  # ASHA keeps about 1 / this at each rung
    perturbation_interval: int = 2  # epochs between PBT / PB2 exploits
    time_budget: float | None = None  # seconds
    scheduler: str = "asha"
    search: str = "optuna"
    metric: str = DEFAULT_METRIC
    mode: str = DEFAULT_MODE
    seed: int = 0
    # --objectives: the first maximised (the search metric), the others minimised (msa.pareto);
    # () for a single-objective search
    objectives: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResourceOptions:
    """What each trial gets, and where the trials run."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions share a GPU
    max_concurrent: int | None = None  # None: what fits the cluster
    max_failures: int = 2  # retries of a crashed trial from its last checkpoint
    address: str | None = None  # a running Ray cluster (auto or HOST:PORT); None: a private local Ray

    @property
    def threads(self) -> int:
        """Torch threads per trial: its whole CPUs (at least one)."""
        return max(1, math.floor(self.cpus_per_trial))


@dataclass(frozen=True)
class OutputOptions:
    storage: str = "./ray_results"  # a local folder or a storage URI
    name: str | None = None  # None: <space>-<timestamp>
    resume: bool = False


@dataclass(frozen=True)
class WeightOptions:
    pretrained: str = "auto"
    video_weights: str | None = None  # None: msa.weights' default
    audio_weights: str | None = None


@dataclass(frozen=True)
class EvaluationOptions:
    """What runs once the search has found its best configuration."""

    crossval: str | None = None  # --folds of a cross-validation of the best config (msa.crossval); None: none
    nested: str | None = None  # --nested FOLDS: a whole search per outer fold instead (msa.tune.nested)
    inner_folds: int = 1  # --inner-folds: inner validation splits per outer fold (only 1 is built)


@dataclass(frozen=True)
class CrossvalOptions:
    """python -m msa.crossval's own flags (the rest are the search's, from its msa_args.json)."""

    folds: str = "ravdess6"  # a preset (msa.data.folds.PRESETS) or a number of folds
    epochs: int | None = None  # None: the search's --max-epochs
    out: str | None = None  # None: EXPERIMENT/crossval.json
    resume: bool = False


GROUPS = {
    "data": DataOptions,
    "budget": BudgetOptions,
    "resources": ResourceOptions,
    "output": OutputOptions,
    "weights": WeightOptions,
    "evaluation": EvaluationOptions,
    "tracking": TrackingOptions,
}
# What --smoke-test changes: a budget that finishes in about a minute on 2 cores.
SMOKE_DEFAULTS = {"num_samples": 2, "max_epochs": 2, "grace_period": 1, "frames": 4, "image_size": 32}
# Flags that may change when a search is resumed; everything else is the saved run's.
RESUME_OVERRIDABLE = ("resources", "output")
# Field -> the flag (and msa_args.json key) that turns it off.
NEGATED_FLAGS = {"feature_cache": "no_feature_cache"}
# A flag that is no search setting (older msa_args.json files hold it too).
NON_SEARCH_KEYS = ("list_spaces",)


@dataclass(frozen=True)
class SearchOptions:
    space: str
    data: DataOptions = DataOptions()
    budget: BudgetOptions = BudgetOptions()
    resources: ResourceOptions = ResourceOptions()
    output: OutputOptions = OutputOptions()
    weights: WeightOptions = WeightOptions()
    evaluation: EvaluationOptions = EvaluationOptions()
    tracking: TrackingOptions = TrackingOptions()
    smoke_test: bool = False  # tiny models and frames

    @classmethod
    def from_namespace(cls, args: argparse.Namespace, spaces: Collection[str]) -> SearchOptions:
        """Parsed flags with the defaults filled in; check() is still to be called."""
        if args.space is None:
            raise UsageError("--space is required (see --list-spaces)")
        if args.space not in spaces:
            raise UsageError(f"--space {args.space}: unknown space; valid spaces: {', '.join(spaces)}")
        flat = {
            key: value
            for key, value in vars(args).items()
            if value is not None and key not in NON_SEARCH_KEYS
        }
        if args.smoke_test:
            flat = {**SMOKE_DEFAULTS, **flat}
        return cls.from_flat(flat)

    @classmethod
    def from_flat(cls, flat: dict) -> SearchOptions:
        """From one value per flag; missing ones take their defaults (a missing mode follows the metric)."""
        flat = dict(flat)
        for field_name, flag in NEGATED_FLAGS.items():
            if flag in flat:
                flat[field_name] = not flat.pop(flag)
        if isinstance(flat.get("objectives"), str):
            flat["objectives"] = [part.strip() for part in flat["objectives"].split(",")]
        if flat.get("objectives"):  # the first objective is the metric; every trial runs its epochs
            flat.setdefault("metric", flat["objectives"][0])
            flat.setdefault("scheduler", MULTI_OBJECTIVE_SCHEDULER)
        if "metric" in flat and "mode" not in flat:
            flat["mode"] = default_mode(flat["metric"])
        groups = {}
        for group, kind in GROUPS.items():
            names = {f.name for f in fields(kind)}
            groups[group] = kind(**{name: _tuple_if_list(flat.pop(name)) for name in names & set(flat)})
        top = {key: flat.pop(key) for key in ("space", "smoke_test") if key in flat}
        if flat:
            raise UsageError(f"unknown option(s) {', '.join(sorted(flat))}")
        return cls(**top, **groups)

    def to_json(self) -> dict:
        """One key per flag, JSON-ready (what msa_args.json holds)."""
        flat: dict = {"space": self.space, "smoke_test": self.smoke_test}
        for group in GROUPS:
            for key, value in dataclasses.asdict(getattr(self, group)).items():
                if key in NEGATED_FLAGS:
                    key, value = NEGATED_FLAGS[key], not value
                flat[key] = list(value) if isinstance(value, tuple) else value
        return flat

    @classmethod
    def from_json(cls, text: str) -> SearchOptions:
        flat = {key: value for key, value in json.loads(text).items() if key not in NON_SEARCH_KEYS}
        return cls.from_flat(flat)

    def resumed(self) -> SearchOptions:
        """The saved options of the experiment this run resumes, with this run's resources and
        output (and --crossval, when given).
        Raises UsageError when there is none, or it searched another space."""
        try:
            stored = SearchOptions.from_json(read_stored_options(self.output))
        except (OSError, ValueError):
            raise UsageError(
                f"--resume: no experiment {self.output.name!r} under {self.output.storage} (missing or unreadable {ARGS_FILE})"
            ) from None
        if stored.space != self.space:
            raise UsageError(
                f"--resume: experiment {self.output.name!r} searched space {stored.space!r}, not --space {self.space}"
            )
        # --crossval given now is added (a finished search is then cross-validated); else the saved one stays.
        evaluation = self.evaluation if self.evaluation.crossval else stored.evaluation
        return dataclasses.replace(
            stored, evaluation=evaluation, **{group: getattr(self, group) for group in RESUME_OVERRIDABLE}
        )

    def sized_for(self, train_clips: int) -> SearchOptions:
        """These options with the epochs not given on the command line set for a training set of
        ``train_clips`` clips (search_spaces.scale.epoch_budget, times the space's epoch_factor),
        checked. Raises UsageError."""
        max_epochs, grace_period = epoch_budget(train_clips, get_space(self.space).epoch_factor)
        max_epochs = self.budget.max_epochs or max_epochs
        budget = dataclasses.replace(
            self.budget,
            max_epochs=max_epochs,
            grace_period=self.budget.grace_period or min(grace_period, max_epochs),
        )
        check_epochs(budget)
        return dataclasses.replace(self, budget=budget)

    @property
    def experiment_name(self) -> str:
        return self.output.name or f"{self.space}-{time.strftime('%Y%m%d-%H%M%S')}"

    @property
    def prepare_params(self) -> PrepareParams:
        """How the search's clips are decoded (part of each prepared clip's cache key)."""
        data = self.data
        return PrepareParams(num_frames=data.frames, image_size=data.image_size, crop=data.crop)

    @property
    def split(self) -> SplitConfig:
        return SplitConfig(self.data.split, self.budget.seed, self.data.val_actors, self.data.test_actors)

    def check(self) -> None:
        """Every check that needs neither Ray nor the data (the storage, and a resumed run, are
        looked at: check_storage). Raises UsageError."""
        data, budget, resources = self.data, self.budget, self.resources
        for flag, value in (
            ("num-samples", budget.num_samples),
            ("max-epochs", budget.max_epochs),
            ("grace-period", budget.grace_period),
            ("frames", data.frames),
        ):
            if value is not None and value < 1:
                raise UsageError(f"--{flag} must be at least 1, got {value}")
        if data.audio_features not in ENTRY_DTYPES:
            raise UsageError(
                f"--audio-features must be one of {', '.join(ENTRY_DTYPES)}, got {data.audio_features!r}"
            )
        if data.crop not in CROPS:
            raise UsageError(f"--crop must be one of {', '.join(CROPS)}, got {data.crop!r}")
        if data.image_size < MIN_IMAGE_SIZE:
            raise UsageError(f"--image-size must be at least {MIN_IMAGE_SIZE} pixels, got {data.image_size}")
        if budget.reduction_factor < 2:
            raise UsageError(f"--reduction-factor must be at least 2, got {budget.reduction_factor}")
        check_population(budget)
        check_objectives(budget)
        check_epochs(budget)
        if budget.scheduler in POPULATION_SCHEDULERS and self.tracking.optuna_storage is not None:
            raise UsageError(
                f"--optuna-storage keeps an Optuna search's study; --scheduler {budget.scheduler} draws its population without one"
            )
        if budget.time_budget is not None and budget.time_budget <= 0:
            raise UsageError(f"--time-budget must be positive seconds, got {budget.time_budget}")
        check_resources(resources)
        if set(data.val_actors) & set(data.test_actors):
            raise UsageError(
                f"actors {sorted(set(data.val_actors) & set(data.test_actors))} are in both --val-actors and --test-actors"
            )
        if bool(data.val_actors) != bool(data.test_actors):
            raise UsageError("give both --val-actors and --test-actors, or neither")
        if self.evaluation.crossval is not None:
            try:
                check_folds_arg(self.evaluation.crossval, "--crossval")
            except FoldError as error:
                raise UsageError(str(error)) from None
        check_nested(self.evaluation, data)
        if data.val_actors and data.split != "actor":
            raise UsageError("--val-actors/--test-actors need --split actor")
        for flag, value in (
            ("video-weights", self.weights.video_weights),
            ("audio-weights", self.weights.audio_weights),
        ):
            if value is not None and looks_like_path(value) and not Path(value).expanduser().exists():
                raise UsageError(f"--{flag} {value}: no such file or folder")
        if data.data is not None and not is_uri(data.data) and not Path(data.data).expanduser().exists():
            # (A URI is listed, and so checked, before Ray starts.)
            raise UsageError(f"--data {data.data}: no such file or folder")
        if data.dataset not in DATASET_CHOICES:
            raise UsageError(f"--dataset must be one of {', '.join(DATASET_CHOICES)}, got {data.dataset!r}")
        name = self.output.name
        if self.output.resume and not name:
            raise UsageError("--resume needs --name of the experiment to continue")
        if name is not None and (not name or "/" in name or name.startswith(".")):
            raise UsageError(f"--name {name!r}: use a plain folder name")
        from msa.models import PRETRAINED_MODES  # here, not at import: msa.models loads torch and torchvision

        if self.weights.pretrained not in PRETRAINED_MODES:
            raise UsageError(
                f"--pretrained must be one of {', '.join(PRETRAINED_MODES)}, got {self.weights.pretrained!r}"
            )
        check_storage(self.output)
        try:
            check_tracking(self.tracking, self.output.storage, self.experiment_name)
        except TrackingError as error:
            raise UsageError(str(error)) from None


def check_nested(evaluation: EvaluationOptions, data: DataOptions) -> None:
    """--nested FOLDS and --inner-folds: folds that can be named, and nothing that contradicts
    them. Raises UsageError."""
    if evaluation.inner_folds != 1:
        raise UsageError(
            f"--inner-folds {evaluation.inner_folds}: only 1 (one inner validation split per outer fold) is implemented"
        )
    if evaluation.nested is None:
        return
    try:
        check_folds_arg(evaluation.nested, "--nested")
    except FoldError as error:
        raise UsageError(str(error)) from None
    if evaluation.crossval is not None:
        raise UsageError("--nested already tests every speaker once; drop --crossval")
    if data.val_actors:
        raise UsageError(
            "--nested FOLDS chooses each search's validation and test actors; drop --val-actors/--test-actors"
        )


def check_objectives(budget: BudgetOptions) -> None:
    """--objectives (msa.pareto) and what goes with them. Raises UsageError."""
    if not budget.objectives:
        if budget.search == "nsga2":
            raise UsageError("--search nsga2 is a multi-objective sampler: give --objectives too")
        return
    try:
        objectives = parse_objectives(budget.objectives)
    except ObjectiveError as error:
        raise UsageError(str(error)) from None
    if budget.metric != objectives[0] or budget.mode != "max":
        raise UsageError(
            f"--objectives: the search metric is the first objective, {objectives[0]} (max); drop --metric / --mode"
        )
    if budget.scheduler != MULTI_OBJECTIVE_SCHEDULER:
        raise UsageError(
            f"--objectives runs every trial to --max-epochs (--scheduler {MULTI_OBJECTIVE_SCHEDULER}): "
            f"--scheduler {budget.scheduler} would stop or copy trials by {objectives[0]} alone"
        )


def check_epochs(budget: BudgetOptions) -> None:
    """The epoch budget's parts fit together, where they are set. Raises UsageError."""
    if budget.max_epochs is None:
        return
    if budget.grace_period is not None and budget.grace_period > budget.max_epochs:
        raise UsageError(f"--grace-period {budget.grace_period} exceeds --max-epochs {budget.max_epochs}")
    if budget.scheduler in POPULATION_SCHEDULERS and budget.perturbation_interval >= budget.max_epochs:
        raise UsageError(
            f"--perturbation-interval {budget.perturbation_interval} is not below --max-epochs {budget.max_epochs}: no member would ever exploit another"
        )


def check_population(budget: BudgetOptions) -> None:
    """--scheduler pbt / pb2: a population that can exploit at least once. Raises UsageError."""
    if budget.perturbation_interval < 1:
        raise UsageError(
            f"--perturbation-interval must be at least 1 epoch, got {budget.perturbation_interval}"
        )
    if budget.scheduler not in POPULATION_SCHEDULERS:
        return
    if budget.num_samples < 2:
        raise UsageError(f"--scheduler {budget.scheduler} needs a population: --num-samples of at least 2")
    if budget.scheduler == "pb2" and not installed("sklearn"):
        raise UsageError("--scheduler pb2 needs scikit-learn: pip install -e '.[pb2]'")


def check_resources(resources: ResourceOptions) -> None:
    """Raises UsageError for resources no trial can run with."""
    if resources.cpus_per_trial <= 0:
        raise UsageError(f"--cpus-per-trial must be positive, got {resources.cpus_per_trial}")
    gpus = resources.gpus_per_trial
    if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise UsageError(f"--gpus-per-trial must be a fraction in (0, 1] or a whole number, got {gpus}")
    if resources.max_failures < 0:
        raise UsageError(f"--max-failures must be at least 0, got {resources.max_failures}")
    if resources.max_concurrent is not None and resources.max_concurrent < 1:
        raise UsageError(f"--max-concurrent must be at least 1, got {resources.max_concurrent}")
    if gpus > 0 and resources.address is None and local_gpu_count() == 0:
        raise UsageError(
            f"--gpus-per-trial {gpus}: this machine has no CUDA GPU (drop the flag to run on CPUs)"
        )


def _tuple_if_list(value):
    """JSON gives lists where the options hold tuples."""
    return tuple(value) if isinstance(value, list) else value


def looks_like_path(value: str) -> bool:
    """A local file or folder, not a weights name, hub id or URL."""
    if value.startswith(("http://", "https://")):
        return False
    return value.startswith((".", "/", "~")) or value.endswith((".pth", ".pt"))


def local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_storage(output: OutputOptions) -> None:
    """A local storage root must be writable; a URI's scheme must be one pyarrow knows."""
    if is_uri(output.storage):
        import pyarrow.fs

        try:
            pyarrow.fs.FileSystem.from_uri(output.storage)
        except Exception as error:  # pyarrow raises several types for unknown schemes or credentials
            raise UsageError(f"--storage {output.storage}: {str(error).splitlines()[0]}") from None
        return
    root = Path(output.storage).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".msa-write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UsageError(
            f"--storage {output.storage}: not a writable folder ({error.strerror or error})"
        ) from None


def read_stored_options(output: OutputOptions) -> str:
    """The text of STORAGE/NAME/msa_args.json, local or behind a URI. Raises OSError."""
    return read_experiment_file(output.storage, output.name, ARGS_FILE)


def read_experiment_file(storage: str, name: str, file: str) -> str:
    """The text of STORAGE/NAME/FILE, local or behind a URI. Raises OSError (FileNotFoundError)."""
    if is_uri(storage):
        fs, path = remote_filesystem(storage)
        with fs.open_input_stream(f"{path.rstrip('/')}/{name}/{file}") as handle:
            return handle.read().decode()
    return (Path(storage).expanduser() / name / file).read_text()

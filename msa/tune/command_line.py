"""``msa search``'s flags (alias ``python tune_main.py``), and the resource flags ``msa crossval`` shares.

The data's flags are msa.data.arguments' groups, shared with ``msa prepare`` and ``msa baseline``.
Defaults live in the option groups of ``msa.tune.options``; None here means "not given", so
``SearchOptions.from_namespace`` can tell a flag given from a default.
"""

from __future__ import annotations

import argparse

from msa.data.arguments import (
    add_actor_arguments,
    add_cache_argument,
    add_classes_argument,
    add_data_arguments,
    add_decoding_arguments,
)
from msa.data.folds import PRESETS
from msa.experiment_dir import TRIAL_METRICS
from msa.features import ENTRY_DTYPES
from msa.pareto import ACCURACY_OBJECTIVES, COST_OBJECTIVES
from msa.tune.options import (
    MULTI_OBJECTIVE_SCHEDULER,
    SCHEDULERS,
    SEARCHERS,
    SMOKE_DEFAULTS,
    BudgetOptions,
    DataOptions,
    OutputOptions,
    ResourceOptions,
)

PROG = "tune_main.py"  # the seed's entry, still an alias of msa search
RESOURCES = "resources"  # argument group title


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The flags; defaults live in the option groups (None here means "not given")."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Hyperparameter search for audio-visual emotion recognition (Ray Tune, ASHA + Optuna).",
    )
    data, budget, output = DataOptions(), BudgetOptions(), OutputOptions()
    p.add_argument("--space", help="search space name (see --list-spaces)")
    p.add_argument("--list-spaces", action="store_true", help="print every space with a one-line description")
    add_data_arguments(p, without="the embedded sample", given_only=True)
    add_cache_argument(p)
    add_classes_argument(p, given_only=True)
    add_actor_arguments(p, given_only=True)
    add_decoding_arguments(p, given_only=True)
    group = p.add_argument_group("frozen-prefix features")
    group.add_argument(
        "--no-feature-cache",
        action="store_true",
        default=None,
        help="compute frozen layers in every step instead of once per clip (slower; for comparison)",
    )
    group.add_argument(
        "--audio-features",
        choices=ENTRY_DTYPES,
        help="how the audio branch's cached frozen-prefix features are stored: float16 halves its tables, "
        f"probabilities within 1e-4 of float32's (default {data.audio_features})",
    )
    group = p.add_argument_group("search")
    group.add_argument("--num-samples", type=int, help=f"trials (default {budget.num_samples})")
    group.add_argument(
        "--max-epochs",
        type=int,
        help="epochs per trial, ASHA's max_t (default: by the training set's size, 8 on the sample)",
    )
    group.add_argument(
        "--grace-period",
        type=int,
        help="ASHA's minimum epochs before stopping a trial (default 2, or --max-epochs if fewer)",
    )
    group.add_argument(
        "--scheduler",
        choices=SCHEDULERS,
        help=f"asha (default), fifo, or population-based training: pbt, pb2 ({MULTI_OBJECTIVE_SCHEDULER} with --objectives)",
    )
    group.add_argument(
        "--reduction-factor",
        type=int,
        help=f"ASHA keeps about 1 / this of the trials at each rung (default {budget.reduction_factor})",
    )
    group.add_argument(
        "--perturbation-interval",
        type=int,
        metavar="EPOCHS",
        help=f"pbt / pb2: epochs between exploits (default {budget.perturbation_interval})",
    )
    group.add_argument(
        "--search",
        choices=SEARCHERS,
        help="Optuna TPE (seeded; default; multi-objective with --objectives), random search, "
        "or nsga2: Optuna's NSGA-II (with --objectives only)",
    )
    group.add_argument(
        "--time-budget", type=float, help="stop starting and running trials after this many seconds"
    )
    group.add_argument("--metric", choices=TRIAL_METRICS, help=f"default {budget.metric}")
    group.add_argument("--mode", choices=("max", "min"), help="default: min for losses, max otherwise")
    group.add_argument(
        "--objectives",
        metavar="SCORE,COST[,COST]",
        help=f"multi-objective search: maximise SCORE ({', '.join(ACCURACY_OBJECTIVES)}) while minimising "
        f"each COST ({', '.join(COST_OBJECTIVES)}), e.g. val_f1,latency_ms; summary.json keeps the Pareto "
        f"front. Every trial runs --max-epochs (--scheduler {MULTI_OBJECTIVE_SCHEDULER}: ASHA prunes on one metric)",
    )
    add_resource_arguments(p)
    group = p.add_argument_group("output")
    group.add_argument("--storage", help=f"results root, local path or URI (default {output.storage})")
    group.add_argument("--name", help="experiment name (default <space>-<timestamp>)")
    group.add_argument(
        "--resume", action="store_true", default=None, help="continue the interrupted experiment STORAGE/NAME"
    )
    p.add_argument(
        "--seed",
        type=int,
        help=f"seeds the actor split, the folds, the searcher and the trials (default {budget.seed})",
    )
    p.add_argument(
        "--pretrained",
        help="pretrained backbones: auto (default) finds or downloads them, falling back to random weights only on the embedded sample; on never falls back; off trains from scratch",
    )
    p.add_argument(
        "--video-weights",
        help="ResNet-18 weights: a torchvision weights name, an http(s) URL or a local .pth file (default IMAGENET1K_V1)",
    )
    p.add_argument(
        "--audio-weights",
        help="speech encoder (wav2vec 2.0, HuBERT, WavLM): a Hugging Face hub id[@revision] or a local save_pretrained folder (default facebook/wav2vec2-base)",
    )
    add_tracking_arguments(p)
    p.add_argument(
        "--crossval",
        metavar="FOLDS",
        help=f"after the search, cross-validate its best config by actor: {', '.join(PRESETS)} or K folds (as msa crossval --folds)",
    )
    add_nested_arguments(p)
    smoke = SMOKE_DEFAULTS
    p.add_argument(
        "--smoke-test",
        action="store_true",
        default=None,
        help=f"tiny models, {smoke['frames']} frames of {smoke['image_size']} px, {smoke['num_samples']} trials "
        f"x {smoke['max_epochs']} epochs (flags given win): a check that everything runs",
    )
    return p


def add_nested_arguments(parser: argparse.ArgumentParser) -> None:
    """--nested and --inner-folds (msa search and msa crossval)."""
    parser.add_argument(
        "--nested",
        metavar="FOLDS",
        help=f"nested cross-validation: a whole search per outer fold ({', '.join(PRESETS)} or K folds) on its "
        "other speakers only, its best trial tested once on the fold's speakers",
    )
    parser.add_argument(
        "--inner-folds",
        type=int,
        help="inner validation splits per outer fold: 1 (default; the fold's validation actors) is what is implemented",
    )


def add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tracking")
    group.add_argument(
        "--optuna-storage",
        metavar="URL|default",
        help="persist the Optuna study in an RDB (default: sqlite in the experiment directory) to watch it with optuna-dashboard",
    )
    group.add_argument(
        "--wandb",
        metavar="PROJECT",
        help="log one Weights & Biases run per trial into PROJECT (offline without an API key)",
    )
    group.add_argument("--wandb-group", metavar="GROUP", help="W&B group of the runs (default: --name)")
    group.add_argument(
        "--mlflow",
        nargs="?",
        const="default",
        metavar="URI",
        help="log to MLflow: a parent run, one nested run per trial (default store: sqlite in the experiment directory)",
    )
    group.add_argument(
        "--mlflow-experiment", metavar="NAME", help="MLflow experiment of the runs (default msa-<space>)"
    )


def add_resource_arguments(parser: argparse.ArgumentParser) -> None:
    """The resource flags (msa search and msa crossval)."""
    resources = ResourceOptions()
    group = parser.add_argument_group(RESOURCES)
    group.add_argument(
        "--cpus-per-trial",
        type=float,
        help=f"CPUs each trial reserves; its torch threads are the whole ones (default {resources.cpus_per_trial:g})",
    )
    group.add_argument("--gpus-per-trial", type=float, help="fractions allowed, e.g. 0.5 (default 0)")
    group.add_argument(
        "--max-concurrent", type=int, help="concurrent trials (default: what fits the resources)"
    )
    group.add_argument(
        "--max-failures",
        type=int,
        help=f"retries of a crashed trial, from its last checkpoint (default {resources.max_failures})",
    )
    group.add_argument(
        "--address", help="join a running Ray cluster (auto or HOST:PORT) instead of starting one"
    )

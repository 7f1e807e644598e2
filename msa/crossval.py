"""``msa crossval STORAGE/NAME`` (alias ``python -m msa.crossval``): cross-validate a search's best configuration by actor.

    msa crossval ray_results/demo --folds 4            # 4 gender-balanced folds, any actors
    msa crossval ~/runs/multimodal --folds ravdess6    # the published 6-fold protocol (actors 1-24)
    msa crossval ray_results/demo --folds 4 --resume   # continue an interrupted run
    msa crossval ray_results/demo --folds 4 --config best.json --epochs 12
    msa crossval ray_results/demo --nested 4           # nested: a whole search per outer fold

The data, classes, frames, weights and seed are the search's (its msa_args.json); the
configuration is its best trial's (summary.json) unless ``--config`` gives one. Each fold trains
the configuration from scratch on its training actors, picks its epoch on its validation actors
and is tested once on its test actors. Writes ``crossval.json`` into the experiment directory
(or ``--out``). Arguments and data are checked before Ray starts (msa.tune.inputs.run_before_ray):
a problem exits 2 with one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from msa.pareto import add_pick_argument
from msa.tune.environment import set_tune_defaults

set_tune_defaults()  # before anything imports Ray

from msa.data import is_uri, remote_filesystem  # noqa: E402
from msa.data.folds import PRESETS, check_folds_arg  # noqa: E402
from msa.experiment_dir import (  # noqa: E402
    ARGS_FILE,
    CROSSVAL_PREFIX,
    NESTED_FILE,
    NESTED_PREFIX,
    PARAMS_FILE,
    STATE_PREFIX,
    SUMMARY_FILE,
    crossval_folder,
    outer_search_folder,
)
from msa.pareto import ObjectiveError, pick  # noqa: E402
from msa.tune.command_line import add_nested_arguments, add_resource_arguments  # noqa: E402
from msa.tune.inputs import InputRequest, Inputs, run_before_ray  # noqa: E402
from msa.tune.options import (  # noqa: E402
    CrossvalOptions,
    EvaluationOptions,
    OutputOptions,
    ResourceOptions,
    SearchOptions,
    UsageError,
    read_experiment_file,
)

PROG = "python -m msa.crossval"


@dataclass(frozen=True)
class CrossvalRequest(InputRequest):
    """The search's options as the folds need them, and what to cross-validate."""

    cv: CrossvalOptions
    config: dict  # the configuration each fold trains
    experiment: str  # STORAGE/NAME


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Cross-validate a search's best configuration by actor (folds as Ray Tune trials).",
    )
    parser.add_argument(
        "experiment", help="the search's directory STORAGE/NAME (a local path or a storage URI)"
    )
    parser.add_argument(
        "--folds",
        default=CrossvalOptions.folds,
        help=f"{', '.join(PRESETS)} (published protocols; all 24 actors) or K gender-balanced folds (default {CrossvalOptions.folds})",
    )
    parser.add_argument(
        "--config",
        help="the configuration to cross-validate: a JSON file or JSON text (default: the best trial's)",
    )
    parser.add_argument("--trial", help="cross-validate this trial folder's configuration instead")
    add_pick_argument(parser, "the configuration")
    parser.add_argument("--epochs", type=int, help="epochs per fold (default: the search's --max-epochs)")
    parser.add_argument("--out", help="where to write crossval.json (default: in the experiment directory)")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted cross-validation of these folds"
    )
    add_nested_arguments(parser)
    add_resource_arguments(parser)
    return parser


def split_location(experiment: str) -> tuple[str, str]:
    """STORAGE/NAME -> (STORAGE, NAME); a local STORAGE made absolute."""
    experiment = experiment.rstrip("/")
    if is_uri(experiment):
        storage, _, name = experiment.rpartition("/")
        return storage, name
    path = Path(experiment).expanduser().resolve()
    return str(path.parent), path.name


def read_if_present(storage: str, name: str, file: str) -> str | None:
    """The text of STORAGE/NAME/FILE, None when it is missing or unreadable."""
    try:
        return read_experiment_file(storage, name, file)
    except OSError:
        return None


def crossval_exists(storage: str, name: str, folds: str) -> bool:
    """Whether a cross-validation of these folds has saved Ray's experiment state."""
    return state_exists(storage, f"{name}/{CROSSVAL_PREFIX}{folds}")


def state_exists(storage: str, folder: str) -> bool:
    """Whether the Ray experiment STORAGE/FOLDER has saved its state."""
    if is_uri(storage):
        import pyarrow.fs

        fs, root = remote_filesystem(storage)
        selector = pyarrow.fs.FileSelector(f"{root.rstrip('/')}/{folder}", allow_not_found=True)
        return any(info.base_name.startswith(STATE_PREFIX) for info in fs.get_file_info(selector))
    return any((Path(storage) / folder).glob(f"{STATE_PREFIX}*"))


def read_config(args: argparse.Namespace, storage: str, name: str) -> dict:
    """--config (a file or JSON text), --trial's params.json, --pick's entry of summary.json's
    Pareto front, else summary.json's best_config. Raises UsageError."""
    if sum(value is not None for value in (args.config, args.trial, args.pick)) > 1:
        raise UsageError("give one of --config, --trial and --pick")
    if args.config is not None:
        text = args.config if args.config.lstrip().startswith("{") else None
        if text is None:
            try:
                text = Path(args.config).expanduser().read_text()
            except OSError as error:
                raise UsageError(
                    f"--config {args.config}: cannot read it ({error.strerror or error})"
                ) from None
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(
                f"--config {args.config}: not JSON ({error.msg} at line {error.lineno})"
            ) from None
        if not isinstance(config, dict) or "model" not in config:
            raise UsageError(f'--config {args.config}: expected a JSON object with a "model" key')
        return config
    if args.trial is not None:
        params = read_if_present(storage, name, f"{args.trial}/{PARAMS_FILE}")
        if params is None:
            raise UsageError(f"--trial {args.trial}: no {PARAMS_FILE} in {storage}/{name}/{args.trial}")
        return json.loads(params)
    text = read_if_present(storage, name, SUMMARY_FILE)
    summary = json.loads(text) if text else None
    if args.pick is not None:
        if not summary or not summary.get("pareto_front"):
            raise UsageError(
                f"--pick: {storage}/{name}/{SUMMARY_FILE} has no Pareto front (msa search --objectives)"
            )
        try:
            return dict(pick(summary["pareto_front"], args.pick, summary["objectives"])["config"])
        except ObjectiveError as error:
            raise UsageError(str(error)) from None
    if not summary or not summary.get("best_config"):
        raise UsageError(
            f"{storage}/{name}: no {SUMMARY_FILE} with a best trial (has the search finished?); give --config"
        )
    return summary["best_config"]


def config_source(args: argparse.Namespace) -> str:
    """Where read_config found the configuration, for its error messages."""
    for flag in ("config", "trial", "pick"):
        if getattr(args, flag) is not None:
            return f"--{flag}"
    return f"{SUMMARY_FILE} best_config"


def check_config(config: dict, flag: str) -> None:
    from msa.trial import TrialHyperparameters  # here, not at import: it loads torch

    try:
        TrialHyperparameters.from_config(config)
    except (ValueError, KeyError) as error:
        raise UsageError(f"{flag}: {str(error).strip(chr(39))}") from None


def settle(args: argparse.Namespace) -> CrossvalRequest:
    """The cross-validation asked for, from the command line and the search's saved files.
    Raises UsageError / FoldError."""
    storage, name = split_location(args.experiment)
    stored_text = read_if_present(storage, name, ARGS_FILE)
    if stored_text is None:
        raise UsageError(f"{args.experiment}: not an experiment directory (no {ARGS_FILE})")
    stored = SearchOptions.from_json(stored_text)
    given = {key: value for key, value in vars(args).items() if value is not None}
    resources = ResourceOptions(
        **{
            field.name: given[field.name]
            for field in dataclasses.fields(ResourceOptions)
            if field.name in given
        }
    )
    options = dataclasses.replace(
        stored,
        resources=resources,
        output=OutputOptions(storage=storage, name=name),
        # The folds regroup every clip by actor, whatever the search's split was.
        data=dataclasses.replace(stored.data, split="actor", val_actors=(), test_actors=()),
        evaluation=EvaluationOptions(),
    )
    options.check()
    if args.nested is not None:
        return settle_nested(args, options)
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    folds = check_folds_arg(args.folds)
    experiment = f"{storage}/{name}"
    exists = crossval_exists(storage, name, folds)
    if exists and not args.resume:
        raise UsageError(
            f"{crossval_folder(experiment, folds)} exists: add --resume to continue it, or remove that folder"
        )
    if args.resume and not exists:
        raise UsageError(f"--resume: no cross-validation at {crossval_folder(experiment, folds)} to continue")
    config = read_config(args, storage, name)
    check_config(config, config_source(args))
    cv = CrossvalOptions(folds=folds, epochs=args.epochs, out=args.out, resume=args.resume)
    return CrossvalRequest(options, folds, "--folds", cv, config, experiment)


def settle_nested(args: argparse.Namespace, options: SearchOptions) -> CrossvalRequest:
    """--nested FOLDS: a search per outer fold with the experiment's settings (no configuration
    to read: each fold's search chooses its own). Raises UsageError / FoldError."""
    given = [
        flag for flag in ("config", "trial", "pick", "epochs", "out") if getattr(args, flag, None) is not None
    ]
    if given:
        raise UsageError(f"--nested searches each outer fold with the experiment's budget; drop --{given[0]}")
    folds = check_folds_arg(args.nested, "--nested")
    options = dataclasses.replace(
        options, evaluation=EvaluationOptions(nested=folds, inner_folds=args.inner_folds or 1)
    )
    options.check()
    storage, name = options.output.storage, options.output.name
    experiment = f"{storage}/{name}"
    exists = read_if_present(storage, name, NESTED_FILE) is not None or nested_started(storage, name, folds)
    if exists and not args.resume:
        raise UsageError(
            f"{experiment}/{NESTED_FILE} or {NESTED_PREFIX}{folds}/ exists: add --resume to continue it, or remove them"
        )
    if args.resume and not exists:
        raise UsageError(f"--resume: no nested cross-validation in {experiment} to continue")
    cv = CrossvalOptions(folds=folds, resume=args.resume)
    return CrossvalRequest(options, folds, "--nested", cv, {}, experiment)


def nested_started(storage: str, name: str, folds: str) -> bool:
    """Whether the first outer fold's search has saved Ray's experiment state."""
    return state_exists(storage, outer_search_folder(name, folds, 1))


def start_crossval(inputs: Inputs) -> int:
    """Ray up, the folds, Ray down."""
    from msa.tune.crossval import run_crossval_command

    request = inputs.request
    if request.options.evaluation.nested:
        from msa.tune.nested import run_nested_command

        return run_nested_command(
            inputs.options, inputs.data, inputs.weights, request.experiment, request.cv.resume
        )
    return run_crossval_command(
        inputs.options, request.cv, inputs.data, inputs.weights, request.config, request.experiment
    )


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    return run_before_ray(lambda: settle(args), start_crossval)


if __name__ == "__main__":
    sys.exit(main())

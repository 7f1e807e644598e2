"""Run a Ray Tune search over a named space, evaluate the best trial on held-out actors.

    python tune_main.py --space video_transformer            # embedded sample, ASHA + Optuna
    python tune_main.py --list-spaces
    python tune_main.py --space multimodal --data ~/RAVDESS --gpus-per-trial 0.5
    python tune_main.py --space audio_wav2vec --data labels.csv   # path,label,speaker[,gender][,start,end]

Arguments and data are checked before Ray starts: a problem exits 2 with one line.
"""

from __future__ import annotations

import sys

from msa.tune.environment import set_tune_defaults

set_tune_defaults()  # before anything imports Ray

from msa.tune.command_line import build_parser  # noqa: E402
from msa.tune.inputs import INPUT_ERRORS, find_inputs, prepare_inputs  # noqa: E402
from msa.tune.options import SearchOptions  # noqa: E402
from msa.tune.tracking.options import TrackingError  # noqa: E402
from msa.tune.tracking.trackers import start_trackers  # noqa: E402
from search_spaces import SPACES  # noqa: E402


def list_spaces() -> None:
    width = max(len(name) for name in SPACES)
    for space in SPACES.values():
        print(f"{space.name:<{width}}  {space.description}")


def render_report(experiment: str) -> str:
    """report.html's text, for the trackers that keep it (MLflow): what python -m msa.report writes."""
    from msa.analysis.html import report_html

    return report_html(experiment)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_spaces:
        list_spaces()
        return 0
    try:
        options = SearchOptions.from_namespace(args, SPACES)
        options.check()
        if options.output.resume:
            options = options.resumed()
        from msa.tune.weights import resolve_search_weights

        folds = options.evaluation.crossval  # folds the speakers cannot make fail now, not after the search
        found = find_inputs(options, folds, "--crossval")
        weights = resolve_search_weights(
            SPACES[options.space].backbones, options.weights, real_data=options.data.data is not None
        )
        data, report = prepare_inputs(options, found, folds, "--crossval")
        if report is not None:
            options = options.sized_for(len(data.clips("train")))  # the epochs not given
    except INPUT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if not options.resources.address:
        from msa.tune.security import require_token_for_private_ray

        require_token_for_private_ray()  # before Ray is imported: it reads the mode then
    try:  # the trackers before Ray starts: an unreachable MLflow server costs seconds, not a search
        trackers = start_trackers(options, options.experiment_name, render_report)
    except TrackingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from msa.tune.ray_session import print_data
    from msa.tune.run import run_search

    if not options.resources.address:
        print_data(data, report)
    return run_search(options, data, weights, trackers)


if __name__ == "__main__":
    sys.exit(main())

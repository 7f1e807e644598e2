"""``msa search``: run a Ray Tune search over a named space, evaluate the best trial on held-out actors.

    msa search --space video_transformer            # embedded sample, ASHA + Optuna
    msa search --list-spaces
    msa search --space multimodal --data ~/RAVDESS --gpus-per-trial 0.5
    msa search --space audio_wav2vec --data labels.csv   # path,label,speaker[,gender][,start,end]

``python tune_main.py ...``, the seed's entry, is the same command. Arguments and data are
checked before Ray starts (msa.tune.inputs.run_before_ray): a problem exits 2 with one line.
"""

from __future__ import annotations

import sys

from msa.tune.environment import set_tune_defaults

set_tune_defaults()  # before anything imports Ray

from msa.tune.command_line import PROG, build_parser  # noqa: E402
from msa.tune.inputs import EXIT_USAGE, InputRequest, Inputs, run_before_ray  # noqa: E402
from msa.tune.options import SearchOptions  # noqa: E402
from msa.tune.tracking.options import TrackingError  # noqa: E402
from msa.tune.tracking.trackers import start_trackers  # noqa: E402
from search_spaces import SPACES  # noqa: E402

__all__ = ["build_parser", "main"]


def list_spaces() -> None:
    width = max(len(name) for name in SPACES)
    for space in SPACES.values():
        print(f"{space.name:<{width}}  {space.description}")


def render_report(experiment: str) -> str:
    """report.html's text, for the trackers that keep it (MLflow): what msa report writes."""
    from msa.analysis.html import report_html

    return report_html(experiment)


def search_request(args) -> InputRequest:
    """The search's options from its flags (a resumed search's from its msa_args.json), checked;
    the folds of --crossval must be possible. Raises UsageError."""
    options = SearchOptions.from_namespace(args, SPACES)
    options.check()
    if options.output.resume:
        options = options.resumed()
    # folds the speakers cannot make fail now, not after the search
    if options.evaluation.nested:
        return InputRequest(options, options.evaluation.nested, "--nested")
    return InputRequest(options, options.evaluation.crossval, "--crossval")


def start_search(inputs: Inputs) -> int:
    """The trackers, then Ray and the search."""
    options = inputs.options
    try:  # the trackers before Ray starts: an unreachable MLflow server costs seconds, not a search
        trackers = start_trackers(options, options.experiment_name, render_report)
    except TrackingError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    from msa.tune.ray_session import print_data
    from msa.tune.run import run_search

    if not options.resources.address:
        print_data(inputs.data, inputs.report)
    return run_search(options, inputs.data, inputs.weights, trackers)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.list_spaces:
        list_spaces()
        return 0
    return run_before_ray(lambda: search_request(args), start_search)

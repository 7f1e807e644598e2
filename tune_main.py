"""Run a Ray Tune search over a named space, evaluate the best trial on held-out actors.

    python tune_main.py --space video_transformer            # embedded sample, ASHA + Optuna
    python tune_main.py --list-spaces
    python tune_main.py --space multimodal --data ~/RAVDESS --gpus-per-trial 0.5

Arguments and data are checked before Ray starts: a problem exits 2 with one line.
"""

from __future__ import annotations

import os
import sys

# Save the search state every few seconds besides after every trial checkpoint (see
# msa/tune/tuner.py), and do not warn that the latter is frequent: it is meant to be.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

from msa.data.decode import PrepareParams  # noqa: E402
from msa.data.prepare import NoUsableClipsError  # noqa: E402
from msa.data.splits import SplitConfig, SplitError  # noqa: E402
from msa.tune.options import UsageError, experiment_name, load_resumed_args, parse_args, validate  # noqa: E402
from search_spaces import SPACES  # noqa: E402


def list_spaces() -> None:
    width = max(len(name) for name in SPACES)
    for space in SPACES.values():
        print(f"{space.name:<{width}}  {space.description}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_spaces:
        list_spaces()
        return 0
    try:
        validate(args, list(SPACES))
        if args.resume:
            args = load_resumed_args(args)
        from msa.tune.experiment import find_data, prepare_locally, split_data
        from msa.tune.weights import resolve_search_weights, weight_sources

        weights = resolve_search_weights(
            SPACES[args.space].backbones, args.pretrained, weight_sources(args), real_data=args.data is not None
        )

        split = SplitConfig(args.split, args.seed, tuple(args.val_actors), tuple(args.test_actors))
        params = PrepareParams(num_frames=args.frames, image_size=args.image_size)
        data = find_data(args.data, args.cache, params)
        if not args.address:  # on a cluster, the nodes prepare the clips once Ray is up
            data, report = split_data(data, *prepare_locally(data), args.classes, split)
    except (UsageError, FileNotFoundError, NoUsableClipsError, SplitError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if not args.address:
        from msa.tune.security import require_token_for_private_ray

        require_token_for_private_ray()  # before Ray is imported: it reads the mode then
    from msa.tune.run import print_data, run_search

    if not args.address:
        print_data(data, report)
    return run_search(args, data, experiment_name(args), split, weights)


if __name__ == "__main__":
    sys.exit(main())

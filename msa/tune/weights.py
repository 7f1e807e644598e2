"""Pretrained weights for a whole search: resolved once by the driver, shipped to every trial.

The driver finds each backbone the space can use in the standard caches, or downloads it
(``msa.weights``), before Ray starts. What it resolved travels to the trials inside their
settings as a ``msa.weights.WeightsBundle`` (the files' bytes, which Ray's object store hands
to every process on a node without copying), and each node writes the files once into its own
cache (``CACHE/weights/<branch>-<sha256>/``), so worker nodes need no internet, no hub token and
no cache of their own, and every trial on every node loads the same bytes.

Policy (``--pretrained``): ``off`` resolves nothing; ``on`` downloads what is missing and stops
the search if that fails; ``auto`` does the same, except that on the embedded sample it goes on
with random weights after a warning (a search on real data without the weights would answer
another question than the one asked).
"""

from __future__ import annotations

import sys

from msa.tune.options import UsageError, WeightOptions
from msa.weights import (
    DEFAULT_AUDIO_WEIGHTS,
    DEFAULT_VIDEO_WEIGHTS,
    WeightsBundle,
    WeightsUnavailable,
    fetch_weights,
)

FETCH_HINT = {"video": "--video", "audio": "--audio"}


def resolve_search_weights(
    branches: tuple[str, ...], options: WeightOptions, real_data: bool, progress: bool = True
) -> dict[str, WeightsBundle]:
    """Each backbone in ``branches`` ("video", "audio") found or downloaded here, per ``options.pretrained``.

    Raises UsageError (one line naming both ways out) when a backbone cannot be had and the
    search may not go on without it; otherwise prints a warning and leaves it out (random)."""
    mode = options.pretrained
    sources = {
        "video": options.video_weights or DEFAULT_VIDEO_WEIGHTS,
        "audio": options.audio_weights or DEFAULT_AUDIO_WEIGHTS,
    }
    if mode == "off":
        return {}
    bundles = {}
    for branch in branches:
        source = sources[branch]
        try:
            weights = fetch_weights(branch, source, progress=progress)
        except WeightsUnavailable as error:
            reason = str(error)
            if mode == "on" or real_data:
                raise UsageError(
                    f"--pretrained {mode}: {reason}; get them on a connected machine with "
                    f"`msa weights fetch {FETCH_HINT[branch]} {source}` (then copy the cache here), "
                    f"or pass --pretrained off to train from random weights on purpose"
                ) from None
            print(
                f"warning: {reason}; the embedded sample trains the {branch} backbone from RANDOM weights",
                file=sys.stderr,
            )
            continue
        print(
            f"{branch} weights: {source} ({weights.size / 2**20:.1f} MB, sha256 {weights.sha256[:12]}) from {weights.folder}"
        )
        bundles[branch] = WeightsBundle.pack(weights)
    return bundles

"""`msa weights` (alias `python -m msa.weights`): get pretrained backbone weights onto this machine, and list them.

msa weights fetch [--video NAME|URL|PATH] [--audio HUB_ID|PATH] [--no-progress]
msa weights list [--json]

fetch gets what the flags name, or both defaults without a flag (ResNet-18 IMAGENET1K_V1 and
facebook/wav2vec2-base), and prints one line per backbone: branch, source, path, size, sha256.
A backbone that cannot be had prints one `error: ...` line on stderr and the exit status is 2.
list shows what torchvision's and Hugging Face's caches hold (see msa.weights.listing).
"""

import argparse
import json
import sys

from huggingface_hub.utils import logging as hf_logging

from msa.weights import DEFAULT_AUDIO_WEIGHTS, DEFAULT_VIDEO_WEIGHTS, cached_weights, fetch_weights
from msa.weights.listing import describe

MB = 1e6  # bytes
COLUMNS = ("branch", "source", "path", "size", "sha256")
PROG = "python -m msa.weights"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Get pretrained backbone weights onto this machine, and list them."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser(
        "fetch", help="download weights into the standard caches (both defaults without a flag)"
    )
    fetch.add_argument(
        "--video", metavar="NAME|URL|PATH", help=f"ResNet-18 weights (default {DEFAULT_VIDEO_WEIGHTS})"
    )
    fetch.add_argument(
        "--audio", metavar="HUB_ID|PATH", help=f"speech encoder weights (default {DEFAULT_AUDIO_WEIGHTS})"
    )
    fetch.add_argument("--no-progress", action="store_true", help="no progress bars")
    listing = commands.add_parser("list", help="show the cached backbones")
    listing.add_argument(
        "--json", action="store_true", help="print a JSON list of {branch, source, path, size, sha256}"
    )
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    # Our one-line errors say what failed; huggingface_hub's retry warnings would only repeat it.
    hf_logging.set_verbosity_error()
    if args.command == "fetch":
        return _fetch(args.video, args.audio, progress=not args.no_progress)
    try:
        rows = cached_weights()
    except Exception as error:  # a CLI answers with one line, never a traceback
        return _error(error)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows, header=True) if rows else "no cached backbones")
    return 0


def _fetch(video: str | None, audio: str | None, progress: bool) -> int:
    if video is None and audio is None:
        video, audio = DEFAULT_VIDEO_WEIGHTS, DEFAULT_AUDIO_WEIGHTS
    wanted = {"video": video, "audio": audio}
    rows, status = [], 0
    for branch, source in wanted.items():
        if source is None:
            continue
        try:
            rows.append(describe(fetch_weights(branch, source, progress=progress)))
        except Exception as error:  # one line per backbone that failed; the other is still fetched
            status = _error(error)
    if rows:
        print(_table(rows, header=False))
    return status


def _error(error: Exception) -> int:
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"error: {message}", file=sys.stderr)
    return 2


def _table(rows: list[dict], header: bool) -> str:
    cells = [
        [row["branch"], row["source"], row["path"], f"{row['size'] / MB:.1f} MB", row["sha256"]]
        for row in rows
    ]
    if header:
        cells.insert(0, list(COLUMNS))
    widths = [max(len(line[column]) for line in cells) for column in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells
    )


if __name__ == "__main__":
    sys.exit(main())

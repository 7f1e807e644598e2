"""``msa COMMAND [options]``: the one front door (``[project.scripts]`` installs it).

    msa --help                 # the commands
    msa search --list-spaces   # a command's own flags: msa COMMAND --help

Only the command asked for is imported, after the Ray environment is set.
"""

from __future__ import annotations

import argparse
import sys

from msa import __version__
from msa.cli.commands import BY_NAME, COMMANDS
from msa.tune.environment import set_tune_defaults


def build_parser() -> argparse.ArgumentParser:
    width = max(len(command.name) for command in COMMANDS)
    listing = "\n".join(f"  {command.name:<{width}}  {command.summary}" for command in COMMANDS)
    parser = argparse.ArgumentParser(
        prog="msa",
        description="Hyperparameter search for audio-visual emotion recognition, on Ray Tune.",
        epilog=f"commands:\n{listing}\n\nmsa COMMAND --help shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"msa {__version__}")
    parser.add_argument("command", metavar="COMMAND", choices=list(BY_NAME), help="one of the commands below")
    parser.add_argument("args", metavar="...", nargs=argparse.REMAINDER, help="the command's own options")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv:
        parser.error("a COMMAND is required (msa --help lists them)")
    args = parser.parse_args(argv)
    command = BY_NAME[args.command]
    set_tune_defaults()  # before anything imports Ray
    return command.load().main(args.args, prog=command.prog)


if __name__ == "__main__":
    sys.exit(main())

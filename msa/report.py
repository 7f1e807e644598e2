"""``msa report EXPERIMENT_DIR`` (alias ``python -m msa.report``): what a search found, as one self-contained HTML page.

Writes ``EXPERIMENT_DIR/report.html`` (figures embedded as base64 PNG) and each figure as
``EXPERIMENT_DIR/report_<name>.png``. Only the command line lives here; the page is
``msa.analysis.html``'s, with the tables and figures ``analysis/trials.ipynb`` shows.
"""

from __future__ import annotations

import argparse
import sys

from msa.analysis.html import write_report

PROG = "python -m msa.report"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="What a search found, as one self-contained HTML page."
    )
    parser.add_argument("experiment", help="experiment directory STORAGE/NAME, a local path or a storage URI")
    parser.add_argument(
        "--colour-by", help="hyperparameter that colours the learning curves (default: the most important)"
    )
    parser.add_argument(
        "--no-val",
        action="store_true",
        help="skip re-evaluating the best checkpoint on the validation actors",
    )
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        written = write_report(args.experiment, evaluate_val=not args.no_val, colour_by=args.colour_by)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())

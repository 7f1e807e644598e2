"""``python -m msa.report EXPERIMENT_DIR``: what a search found, as one self-contained HTML page.

Writes ``EXPERIMENT_DIR/report.html`` (figures embedded as base64 PNG) and each figure as
``EXPERIMENT_DIR/report_<name>.png``. Only the command line lives here; the page is
``msa.analysis.html``'s, with the tables and figures ``analysis/trials.ipynb`` shows.
"""

from __future__ import annotations

import argparse
import sys

from msa.analysis.html import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m msa.report", description=__doc__.splitlines()[0].split(": ", 1)[1]
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
    args = parser.parse_args(argv)
    try:
        written = write_report(args.experiment, evaluate_val=not args.no_val, colour_by=args.colour_by)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())

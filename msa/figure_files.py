"""How every figure msa saves is written: the report's PNGs (msa.analysis) and predict's
timeline plot (msa.predict) at one resolution, with tight margins on a white background, so
they look alike wherever they are shown. It saves the matplotlib Figure it is handed and
imports nothing itself, so it sits below every layer that draws."""

from __future__ import annotations

DPI = 110  # dots per inch: a report figure 10 inches wide is 1,100 px, legible without zooming
BACKGROUND = "white"  # not transparent: the figures are read on dark pages and viewers too


def save_figure(fig, target, format: str) -> None:
    """Write ``fig`` (a matplotlib Figure) to ``target`` (a path or a binary file object) in
    ``format`` ("png", "svg", "pdf")."""
    fig.savefig(target, format=format, dpi=DPI, bbox_inches="tight", facecolor=BACKGROUND)

"""What the figures share: trial colours by a parameter or by how trials ended, axis helpers,
and PNG bytes. msa.analysis.figures draws with these."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from msa.analysis.experiment import Experiment
from msa.analysis.importance import (
    Importances,
    is_log_scale,
    is_numeric_param,
    searched_params,
)
from msa.analysis.tables import CHANCE_METRICS, OUTCOMES, num_classes
from msa.analysis.trials import CONFIG_PREFIX
from msa.figure_files import save_figure

# How a trial ended (msa.analysis.tables.OUTCOMES): colour and marker, the same in every figure.
OUTCOME_STYLE = dict(
    zip(OUTCOMES, [("#2f9e44", "o"), ("#e8590c", "v"), ("#c92a2a", "X"), ("#1c7ed6", ">"), ("#868e96", ".")])
)
RUNG_OUTCOME_STYLE = {  # rung_outcomes' outcome -> the trial outcome it looks like
    "continued": OUTCOME_STYLE["finished"],
    "stopped": OUTCOME_STYLE["stopped early"],
    "errored": OUTCOME_STYLE["errored"],
    "running": OUTCOME_STYLE["running"],
}
EVALUATOR_NAMES = {
    "PedAnova": "PED-ANOVA",
    "Fanova": "fANOVA",
    "MeanDecreaseImpurity": "mean decrease in impurity",
}
MISSING_COLOUR = "#adb5bd"  # a trial without the colouring parameter (it did not apply)
MAX_CATEGORIES = 8  # an integer parameter with more distinct values is coloured on a scale
ITERATIONS_SPACE = "video_iterations"  # its models are the seed's five video iterations
ITERATION_LABEL_WIDTH = 24  # characters per line of an iteration's tick label


# ----------------------------------------------------------------------------- helpers


@dataclass
class ParamColours:
    """A colour per trial for one hyperparameter, with the legend or colour bar explaining it."""

    param: str | None
    colours: dict[str, tuple]  # trial -> RGBA
    handles: list[Line2D] = field(default_factory=list)  # categorical values
    mappable: ScalarMappable | None = None  # a continuous scale

    def explain(self, fig: Figure, axes) -> None:
        if self.mappable is not None:
            fig.colorbar(self.mappable, ax=axes, label=self.param, shrink=0.9)
        elif self.handles:
            fig.legend(handles=self.handles, title=self.param, loc="outside right upper", fontsize="small")


def param_colours(experiment: Experiment, param: str | None) -> ParamColours:
    """Categorical colours for strings, booleans and integers with few values; a viridis scale
    (logarithmic where is_log_scale) for floats. Grey where the parameter did not apply."""
    trials = experiment.trials
    if param is None:
        return ParamColours(None, {trial: colormaps["tab10"](0) for trial in trials["trial"]})
    values, name = trials[param], param.removeprefix(CONFIG_PREFIX)
    continuous = is_numeric_param(values) and (
        not pd.api.types.is_integer_dtype(values.dtype) or values.nunique() > MAX_CATEGORIES
    )
    if continuous:
        present = values.dropna().to_numpy(float)
        norm_type = LogNorm if is_log_scale(values) else Normalize
        norm = (
            norm_type(present.min(), present.max())
            if present.min() < present.max()
            else Normalize(present.min() - 1, present.max() + 1)
        )
        mappable = ScalarMappable(norm=norm, cmap="viridis")
        colours = {
            t: MISSING_COLOUR if pd.isna(v) else mappable.to_rgba(float(v))
            for t, v in zip(trials["trial"], values)
        }
        return ParamColours(name, colours, mappable=mappable)
    choices = sorted(values.dropna().unique(), key=lambda v: (isinstance(v, str), v))
    palette = {choice: colormaps["tab10"](i % 10) for i, choice in enumerate(choices)}
    colours = {t: MISSING_COLOUR if pd.isna(v) else palette[v] for t, v in zip(trials["trial"], values)}
    handles = [Line2D([], [], color=palette[c], lw=2.5, label=str(c)) for c in choices]
    if values.isna().any():
        handles.append(Line2D([], [], color=MISSING_COLOUR, lw=2.5, label="n/a"))
    return ParamColours(name, colours, handles=handles)


def default_colour_param(experiment: Experiment, importances: Importances | None) -> str | None:
    """The model when several were tried (the question a head-to-head asks); else the most
    important parameter that every trial has (a conditional one would leave grey curves); else
    the first searched parameter."""
    searched = searched_params(experiment)
    universal = [column for column in searched if experiment.trials[column].notna().all()]
    model = f"{CONFIG_PREFIX}model"
    if model in universal and experiment.trials[model].nunique() > 1:
        return model
    for name in importances.values if importances is not None else ():
        if CONFIG_PREFIX + name in universal:
            return CONFIG_PREFIX + name
    return (universal or searched or [None])[0]


def outcome_handles(outcomes) -> list[Line2D]:
    """Legend entries for the trial outcomes present: marker shapes, in grey."""
    present = set(outcomes)
    return [
        Line2D([], [], ls="", marker=marker, color="#495057", markersize=7, label=name)
        for name, (_, marker) in OUTCOME_STYLE.items()
        if name in present
    ]


def mark_chance(ax, experiment: Experiment, metric: str) -> None:
    classes = num_classes(experiment)
    if metric in CHANCE_METRICS and classes:
        ax.axhline(1 / classes, color="#868e96", ls=":", lw=1)
        ax.annotate(
            "chance",
            (1, 1 / classes),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize="x-small",
            color="#868e96",
        )


def integer_epochs(ax, last: int) -> None:
    ax.set_xlim(0.7, max(last, 1) + 0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)


def log_axis(ax, values: np.ndarray) -> None:
    """A log x axis with three ticks of one significant digit across the values (matplotlib's
    own labels overlap when the values span less than two decades)."""
    ax.set_xscale("log")
    ticks = sorted({float(f"{tick:.1g}") for tick in np.geomspace(np.nanmin(values), np.nanmax(values), 3)})
    ax.set_xticks(ticks, [f"{tick:g}" for tick in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    save_figure(fig, buffer, "png")
    return buffer.getvalue()

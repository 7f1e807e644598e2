"""The figures of the notebook and the report, as plain matplotlib ``Figure`` objects (no
pyplot state, so this runs headless). Each returns None when the experiment has nothing to
show yet. Trials are marked the same way in every figure: by how they ended (OUTCOME_STYLE).
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from msa.analysis.experiment import Confusion, Experiment
from msa.analysis.importance import (
    Importances,
    compare_choices,
    is_log_scale,
    is_numeric_param,
    searched_params,
)
from msa.analysis.plotting import (
    EVALUATOR_NAMES,
    ITERATION_LABEL_WIDTH,
    ITERATIONS_SPACE,
    OUTCOME_STYLE,
    RUNG_OUTCOME_STYLE,
    integer_epochs,
    log_axis,
    mark_chance,
    outcome_handles,
    param_colours,
)
from msa.analysis.rungs import asha_rungs, reduction_factor, rung_outcomes, survival
from msa.analysis.tables import label, outcome
from msa.analysis.trials import CONFIG_PREFIX
from search_spaces import get_space

# ----------------------------------------------------------------------------- figures


def plot_learning_curves(experiment: Experiment, colour_by: str | None = None) -> Figure | None:
    """Train loss, val loss and the search metric per epoch, one line per trial coloured by
    ``colour_by`` (a config column; None: default_colour_param), its end marked by how the
    trial ended; dotted verticals at ASHA's rungs."""
    epochs = experiment.epochs
    if epochs.empty:
        return None
    colour_by = (
        colour_by if colour_by is None or colour_by.startswith(CONFIG_PREFIX) else CONFIG_PREFIX + colour_by
    )
    colours = param_colours(experiment, colour_by)
    metrics = list(dict.fromkeys(["train_loss", "val_loss", experiment.metric]))
    if len(metrics) < 3:
        metrics.append("val_acc")
    trials = experiment.trials.set_index("trial")
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    axes = fig.subplots(1, len(metrics), sharex=True)
    for ax, metric in zip(axes, metrics):
        for trial, curve in epochs.groupby("trial"):
            colour = colours.colours[trial]
            ax.plot(curve["epoch"], curve[metric], color=colour, lw=1.4, alpha=0.85)
            ax.plot(
                curve["epoch"].iloc[-1],
                curve[metric].iloc[-1],
                ls="",
                color=colour,
                marker=OUTCOME_STYLE[outcome(trials.loc[trial])][1],
                markersize=7,
                markeredgecolor="#212529",
                markeredgewidth=0.5,
            )
        for rung in asha_rungs(experiment):
            ax.axvline(rung, color="#adb5bd", ls=":", lw=1)
        mark_chance(ax, experiment, metric)
        ax.set(title=label(metric), xlabel="epoch", ylabel=label(metric))
        ax.grid(alpha=0.25)
        integer_epochs(ax, experiment.max_epochs)
    reported = experiment.trials[experiment.trials["epochs"] > 0]
    axes[-1].legend(
        handles=outcome_handles(reported.apply(outcome, axis=1)),
        title="trial ended",
        fontsize="small",
        loc="best",
    )
    colours.explain(fig, axes)
    rungs = asha_rungs(experiment)
    rung_text = f"; dotted: ASHA rungs at epoch {', '.join(map(str, rungs))}" if rungs else ""
    fig.suptitle(
        f"Learning curves of {epochs['trial'].nunique()} trials, coloured by {colours.param or 'trial'}{rung_text}"
    )
    return fig


def plot_rung_survival(experiment: Experiment) -> Figure | None:
    """Left: how many trials reached each epoch (ASHA's rungs highlighted). Right: each trial's
    metric at each rung, coloured by what happened next."""
    table = survival(experiment)
    if table.empty or experiment.epochs.empty:
        return None
    outcomes = rung_outcomes(experiment)
    fig = Figure(figsize=(13, 4.4) if len(outcomes) else (6.5, 4.4), layout="constrained")
    axes = fig.subplots(1, 2 if len(outcomes) else 1, squeeze=False)[0]
    ax = axes[0]
    bars = ax.bar(
        table["epoch"], table["trials"], color=["#1c7ed6" if rung else "#a5d8ff" for rung in table["rung"]]
    )
    ax.bar_label(bars, fontsize="small")
    ax.set(
        title="Trials still training at each epoch", xlabel="epoch", ylabel="trials that reported the epoch"
    )
    ax.set_ylim(0, table["trials"].max() * 1.15 + 0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    bar_kinds = [
        Line2D([], [], color="#1c7ed6", lw=6, label="ASHA rung"),
        Line2D([], [], color="#a5d8ff", lw=6, label="other epoch"),
    ]
    ax.legend(handles=bar_kinds, fontsize="small", loc="upper right")
    if len(outcomes):
        ax = axes[1]
        rungs = sorted(outcomes["rung"].unique())
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(outcomes))
        positions = outcomes["rung"].map({rung: i for i, rung in enumerate(rungs)}) + jitter
        for name, (colour, marker) in RUNG_OUTCOME_STYLE.items():
            chosen = outcomes["outcome"] == name
            if chosen.any():
                ax.scatter(
                    positions[chosen],
                    outcomes.loc[chosen, experiment.metric],
                    color=colour,
                    marker=marker,
                    s=45,
                    edgecolor="#212529",
                    linewidth=0.4,
                    label=name,
                    zorder=3,
                )
        mark_chance(ax, experiment, experiment.metric)
        ax.set_xticks(range(len(rungs)), [f"epoch {rung}" for rung in rungs])
        ax.set_xlim(-0.5, len(rungs) - 0.5)
        ax.set(
            title=f"{label(experiment.metric)} at each rung "
            f"(ASHA keeps about the best 1/{reduction_factor(experiment)})",
            xlabel="ASHA rung",
            ylabel=label(experiment.metric),
        )
        ax.grid(axis="y", alpha=0.25)
        ax.legend(title="then", fontsize="small", loc="best")
    return fig


def plot_importances(importances: Importances) -> Figure | None:
    """Horizontal bars, most important on top; None when nothing was computed (see notes)."""
    if not importances.values:
        return None
    names, values = list(importances.values)[::-1], list(importances.values.values())[::-1]
    fig = Figure(figsize=(7.5, 0.42 * len(names) + 1.4), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh(names, values, color="#1c7ed6")
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize="small")
    ax.set_xlim(0, max(values) * 1.15 + 1e-9)
    evaluator = EVALUATOR_NAMES.get(importances.evaluator, importances.evaluator)
    target = label(importances.target.removeprefix("best_"))
    ax.set(
        xlabel="importance (sums to 1)",
        title=f"Hyperparameter importance ({evaluator}) for the best {target}\nover {importances.trials} finished trials",
    )
    ax.grid(axis="x", alpha=0.25)
    return fig


def plot_param_scatter(
    experiment: Experiment, importances: Importances | None = None, columns: int = 4
) -> Figure | None:
    """Each searched hyperparameter against the trial's best metric, one panel per parameter
    (most important first), points marked by how the trial ended."""
    target = f"best_{experiment.metric}"
    trials = experiment.trials.dropna(subset=[target])
    params = searched_params(experiment, trials)
    if not params:
        return None
    ranking = {
        CONFIG_PREFIX + name: rank for rank, name in enumerate(importances.values if importances else {})
    }
    params.sort(key=lambda param: ranking.get(param, len(ranking)))
    rows = math.ceil(len(params) / columns)
    fig = Figure(figsize=(3.6 * min(columns, len(params)), 3.0 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, min(columns, len(params)), sharey=True, squeeze=False).ravel()
    outcomes = trials.apply(outcome, axis=1)
    rng = np.random.default_rng(0)
    for ax, param in zip(axes, params):
        values = trials[param]
        if is_numeric_param(values):
            x = values.to_numpy(float, na_value=np.nan)
            if is_log_scale(values):
                log_axis(ax, x)
            else:  # few ticks: learning rates written out in full would overlap
                ax.xaxis.set_major_locator(
                    MaxNLocator(nbins=4, integer=pd.api.types.is_integer_dtype(values.dtype))
                )
        else:
            choices = sorted(values.dropna().unique(), key=str)
            positions = values.map({choice: i for i, choice in enumerate(choices)}).to_numpy(
                float, na_value=np.nan
            )
            # Jitter: equal choices would hide each other.
            x = positions + rng.uniform(-0.15, 0.15, len(values))
            crowded = len(choices) > 3
            ax.set_xticks(
                range(len(choices)),
                [str(c) for c in choices],
                rotation=30 if crowded else 0,
                ha="right" if crowded else "center",
            )
            ax.set_xlim(-0.5, len(choices) - 0.5)
        for name, (colour, marker) in OUTCOME_STYLE.items():
            chosen = (outcomes == name).to_numpy()
            ax.scatter(
                x[chosen],
                trials.loc[chosen, target],
                color=colour,
                marker=marker,
                s=40,
                edgecolor="#212529",
                linewidth=0.4,
            )
        name = param.removeprefix(CONFIG_PREFIX)
        importance = importances.values.get(name) if importances else None
        ax.set_title(
            name + (f"  (importance {importance:.2f})" if importance is not None else ""), fontsize="medium"
        )
        ax.set_xlabel(name)
        ax.grid(alpha=0.25)
        mark_chance(ax, experiment, experiment.metric)
    for ax in axes[len(params) :]:
        ax.set_visible(False)
    for ax in axes[:: min(columns, len(params))]:
        ax.set_ylabel(f"best {label(experiment.metric)}")
    fig.legend(
        handles=outcome_handles(outcomes), title="trial ended", loc="outside right upper", fontsize="small"
    )
    fig.suptitle(
        "Each hyperparameter against the trial's best metric (a trial has only the parameters that apply to it)"
    )
    return fig


def is_iterations_search(experiment: Experiment) -> bool:
    return experiment.space == ITERATIONS_SPACE and f"{CONFIG_PREFIX}model" in experiment.trials


def iteration_labels() -> dict[str, str]:
    """Model name -> tick label ("1: video_iter1" and its msa.models description, wrapped), in
    the order of the iterations space's models."""
    from msa.models import describe_model  # torch: only for a video_iterations search

    return {
        name: f"{i}: {name}\n"
        + textwrap.fill(describe_model(name).strip().rstrip("."), ITERATION_LABEL_WIDTH)
        for i, name in enumerate(get_space(ITERATIONS_SPACE).models, start=1)
    }


def plot_iterations(experiment: Experiment) -> Figure | None:
    """The seed's five video iterations side by side: every trial's best metric per
    iteration (the best starred), and the learning curve of each iteration's best trial."""
    if not is_iterations_search(experiment):
        return None
    target, param = f"best_{experiment.metric}", f"{CONFIG_PREFIX}model"
    trials = experiment.trials
    table = compare_choices(experiment, param).set_index("model")
    labels = iteration_labels()
    names = list(labels)
    palette = {name: colormaps["tab10"](i) for i, name in enumerate(names)}
    fig = Figure(figsize=(15, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.25, 1])
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        group = trials[(trials[param] == name).fillna(False)].dropna(subset=[target])
        if group.empty:
            left.annotate(
                "not tried", (i, 0.5), xycoords=("data", "axes fraction"), ha="center", color="#868e96"
            )
            continue
        for _, trial in group.iterrows():
            left.scatter(
                i + rng.uniform(-0.12, 0.12),
                trial[target],
                color=palette[name],
                marker=OUTCOME_STYLE[outcome(trial)][1],
                s=45,
                edgecolor="#212529",
                linewidth=0.4,
                zorder=3,
            )
        best = table.loc[name]
        left.scatter(i, best["best"], marker="*", s=260, color=palette[name], edgecolor="#212529", zorder=4)
        left.annotate(
            f"{best['best']:.3f}",
            (i, best["best"]),
            xytext=(10, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
        )
        curve = experiment.epochs[experiment.epochs["trial"] == best["best_trial"]]
        right.plot(
            curve["epoch"],
            curve[experiment.metric],
            color=palette[name],
            lw=2,
            marker="o",
            markersize=4,
            label=f"{i + 1}: {best['best_trial']}",
        )
    left.set_xticks(range(len(names)), [labels[name] for name in names], fontsize="small")
    left.set_xlim(-0.5, len(names) - 0.5)
    left.set(
        title=f"Best {label(experiment.metric)} of every trial, per iteration (star: the best)",
        ylabel=f"best {label(experiment.metric)}",
    )
    plotted = trials.dropna(subset=[target])
    left.legend(
        handles=outcome_handles(plotted.apply(outcome, axis=1)),
        title="trial ended",
        fontsize="small",
        loc="best",
    )
    right.set(
        title="Learning curve of each iteration's best trial", xlabel="epoch", ylabel=label(experiment.metric)
    )
    right.legend(title="iteration: trial", fontsize="small", loc="best")
    integer_epochs(right, experiment.max_epochs)
    for ax in (left, right):
        ax.grid(alpha=0.25)
        mark_chance(ax, experiment, experiment.metric)
    return fig


def plot_confusion_matrices(matrices: list[Confusion]) -> Figure | None:
    """The matrices side by side, each drawn by msa.train.figures.draw_confusion: normalised
    per true class (rows sum to 1), with the counts beneath."""
    from msa.train.figures import confusion_side, draw_confusion  # msa.train imports torch: only when drawn

    if not matrices:
        return None
    side = confusion_side(len(matrices[0].labels))
    fig = Figure(figsize=(side * len(matrices) + 1.4, side + 0.3), layout="constrained")
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    for ax, matrix in zip(axes, matrices):
        image = draw_confusion(ax, matrix.counts, matrix.labels, matrix.title)
    fig.colorbar(image, ax=axes, label="fraction of the true class", shrink=0.8)
    fig.suptitle("Best checkpoint: confusion matrices, normalised per true class (counts in brackets)")
    return fig

"""``python -m msa.report EXPERIMENT_DIR``: what a search found, as one self-contained HTML page.

Writes ``EXPERIMENT_DIR/report.html`` (figures embedded as base64 PNG) and each figure as
``EXPERIMENT_DIR/report_<name>.png``, for people without Jupyter and for CI artefacts. The
tables and figures are the ones ``analysis/trials.ipynb`` shows: both call the functions
here, on the frames of ``msa.results``. Figures are plain matplotlib ``Figure`` objects (no
pyplot state), so this runs headless.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter

from msa.results import (
    ASHA_REDUCTION_FACTOR,
    CONFIG_PREFIX,
    DataUnavailable,
    Experiment,
    Importances,
    asha_rungs,
    compare_choices,
    is_log_scale,
    is_numeric_param,
    load_best_model,
    load_experiment,
    param_importances,
    rebuild_val_evaluation,
    rung_outcomes,
    searched_params,
    survival,
)

REPORT_FILE = "report.html"
FIGURE_PREFIX = "report_"  # report_<name>.png beside report.html
DPI = 110
NO_EPOCHS = "no trial has reported an epoch yet"
LABELS = {
    "val_acc": "val accuracy", "val_f1": "val macro-F1", "val_uar": "val UAR", "val_loss": "val loss",
    "train_acc": "train accuracy", "train_loss": "train loss", "lr": "learning rate",
}
CHANCE_METRICS = ("val_acc", "val_uar", "train_acc")  # where 1 / classes is the chance level
CLASSES = {"all8": 8, "seed4": 4}  # --classes -> number of classes
# How a trial ended: colour and marker, the same in every figure.
OUTCOME_STYLE = {
    "finished": ("#2f9e44", "o"),
    "stopped early": ("#e8590c", "v"),
    "errored": ("#c92a2a", "X"),
    "running": ("#1c7ed6", ">"),
    "pending": ("#868e96", "."),
}
RUNG_OUTCOME_STYLE = {  # rung_outcomes' outcome -> the trial outcome it looks like
    "continued": OUTCOME_STYLE["finished"],
    "stopped": OUTCOME_STYLE["stopped early"],
    "errored": OUTCOME_STYLE["errored"],
    "running": OUTCOME_STYLE["running"],
}
EVALUATOR_NAMES = {"PedAnova": "PED-ANOVA", "Fanova": "fANOVA", "MeanDecreaseImpurity": "mean decrease in impurity"}
MISSING_COLOUR = "#adb5bd"  # a trial without the colouring parameter (it did not apply)
MAX_CATEGORIES = 8  # an integer parameter with more distinct values is coloured on a scale
ITERATIONS_SPACE = "video_iterations"
ITERATION_LABELS = {
    "video_iter1": "1: CNN from scratch\n+ transformer",
    "video_iter2": "2: frozen ResNet-18\n+ mean",
    "video_iter3": "3: frozen ResNet-18\n+ transformer",
    "video_iter4": "4: ResNet-18 layer4\ntrainable + transformer",
    "video_iter5": "5: ResNet-18 all\ntrainable + transformer",
}


# ----------------------------------------------------------------------------- tables


def outcome(trial: pd.Series) -> str:
    """finished / stopped early / errored / running / pending."""
    if trial["status"] == "ERROR":
        return "errored"
    if trial["status"] == "TERMINATED":
        return "stopped early" if trial["stopped_early"] else "finished"
    return "running" if trial["epochs"] > 0 else "pending"


def num_classes(experiment: Experiment) -> int | None:
    test = (experiment.summary or {}).get("test") or {}
    return len(test["labels"]) if test.get("labels") else CLASSES.get(experiment.args.get("classes"))


def overview(experiment: Experiment) -> pd.DataFrame:
    """The search in a few lines: what was searched, how trials ended, how good the best is."""
    summary, trials = experiment.summary or {}, experiment.trials
    counts = trials["status"].value_counts().to_dict()
    stopped = int(trials["stopped_early"].sum())
    rows = {
        "experiment": experiment.files.location,
        "space": experiment.space,
        "state": "finished" if experiment.finished else "not finished (running, or interrupted: no summary.json yet)",
        "trials": f"{len(trials)}: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        + (f" ({stopped} of them stopped early)" if stopped else ""),
        "metric": f"{experiment.metric} ({experiment.mode}), up to {experiment.max_epochs} epochs per trial",
        "best trial": experiment.best_trial or "none yet",
    }
    if summary.get("best_val"):
        val = summary["best_val"]
        rows["best, val actors"] = (f"accuracy {val['val_acc']:.3f}, macro-F1 {val['val_f1']:.3f}, UAR {val['val_uar']:.3f} "
                                    f"(epoch {val.get('epoch')}, actors {summary['data']['actors']['val']})")
    if summary.get("test"):
        test = summary["test"]
        rows["best, test actors"] = (f"accuracy {test['accuracy']:.3f}, macro-F1 {test['f1_macro']:.3f}, UAR {test['uar']:.3f} "
                                     f"(actors {summary['data']['actors']['test']}, never seen by any trial)")
    if num_classes(experiment):
        rows["chance"] = f"{1 / num_classes(experiment):.3f} ({num_classes(experiment)} classes)"
    return pd.DataFrame({"": list(rows), "value": list(rows.values())})


def trial_table(experiment: Experiment) -> pd.DataFrame:
    """One row per trial, best first: how it ended, its best metrics and its configuration."""
    trials = experiment.trials
    metric = f"best_{experiment.metric}"
    table = pd.DataFrame({
        "trial": trials["trial"],
        "outcome": trials.apply(outcome, axis=1),
        "epochs": trials["epochs"],
        "best epoch": trials["best_epoch"],
        LABELS.get(experiment.metric, experiment.metric): trials[metric],
        **{LABELS[m]: trials[f"best_{m}"] for m in ("val_f1", "val_uar", "val_loss") if m != experiment.metric},
        "seconds": trials["time_total_s"],
        **{param.removeprefix(CONFIG_PREFIX): trials[param] for param in experiment.params},
    })
    if trials["error"].notna().any():
        table["error"] = trials["error"]
    return table.sort_values(LABELS.get(experiment.metric, experiment.metric), ascending=experiment.mode == "min",
                             na_position="last", ignore_index=True)


def pretrained_table(experiment: Experiment) -> pd.DataFrame:
    """Trials per model and the pretrained weights they loaded (the first 12 hex digits of their
    sha256; "random init" where the model has no such backbone or the search had no weights)."""
    trials = experiment.trials
    model = trials.get(f"{CONFIG_PREFIX}model", pd.Series(["?"] * len(trials)))
    frame = pd.DataFrame({"model": model.fillna("?")})
    for branch, backbone in (("video", "ResNet-18"), ("audio", "speech encoder")):
        digests = trials.get(f"pretrained_{branch}_sha256", pd.Series([None] * len(trials)))
        frame[f"{branch} weights ({backbone})"] = [
            weights_label(loaded, digest) for loaded, digest in zip(trials[f"pretrained_{branch}"], digests)
        ]
    return frame.value_counts().rename("trials").reset_index()


def weights_label(loaded, digest) -> str:
    if pd.isna(loaded):
        return "not reported"
    if not loaded:
        return "random init"
    return f"loaded, sha256 {digest[:12]}" if isinstance(digest, str) and digest else "loaded"


def pretrained_note(experiment: Experiment) -> str:
    args, summary = experiment.args, experiment.summary or {}
    sources = ", ".join(f"{key} {args[key]}" for key in ("video_weights", "audio_weights") if args.get(key)) or "the default sources"
    best = summary.get("pretrained")
    best_text = ""
    if best:
        described = []
        for branch in ("video", "audio"):
            record = best[branch]
            if isinstance(record, bool):  # searches before per-branch records
                described.append(f"{branch} weights: {weights_label(record, None)}")
            elif record["loaded"]:
                described.append(f"{branch} weights: {record['source']} (sha256 {record['sha256'][:12]})")
            else:
                described.append(f"{branch} weights: random init")
        best_text = "; the best trial's " + ", ".join(described)
    return f"--pretrained {args.get('pretrained', '?')} with {sources}{best_text}."


# ----------------------------------------------------------------------------- figure helpers


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
        norm = norm_type(present.min(), present.max()) if present.min() < present.max() else Normalize(present.min() - 1, present.max() + 1)
        mappable = ScalarMappable(norm=norm, cmap="viridis")
        colours = {t: MISSING_COLOUR if pd.isna(v) else mappable.to_rgba(float(v)) for t, v in zip(trials["trial"], values)}
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
    return [Line2D([], [], ls="", marker=marker, color="#495057", markersize=7, label=name)
            for name, (_, marker) in OUTCOME_STYLE.items() if name in present]


def mark_chance(ax, experiment: Experiment, metric: str) -> None:
    if metric in CHANCE_METRICS and num_classes(experiment):
        ax.axhline(1 / num_classes(experiment), color="#868e96", ls=":", lw=1)
        ax.annotate("chance", (1, 1 / num_classes(experiment)), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize="x-small", color="#868e96")


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
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- figures


def plot_learning_curves(experiment: Experiment, colour_by: str | None = None) -> Figure | None:
    """Train loss, val loss and the search metric per epoch, one line per trial coloured by
    ``colour_by`` (a config column; None: default_colour_param), its end marked by how the
    trial ended; dotted verticals at ASHA's rungs."""
    epochs = experiment.epochs
    if epochs.empty:
        return None
    colour_by = colour_by if colour_by is None or colour_by.startswith(CONFIG_PREFIX) else CONFIG_PREFIX + colour_by
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
            ax.plot(curve["epoch"].iloc[-1], curve[metric].iloc[-1], ls="", color=colour,
                    marker=OUTCOME_STYLE[outcome(trials.loc[trial])][1], markersize=7, markeredgecolor="#212529", markeredgewidth=0.5)
        for rung in asha_rungs(experiment):
            ax.axvline(rung, color="#adb5bd", ls=":", lw=1)
        mark_chance(ax, experiment, metric)
        ax.set(title=LABELS.get(metric, metric), xlabel="epoch", ylabel=LABELS.get(metric, metric))
        ax.grid(alpha=0.25)
        integer_epochs(ax, experiment.max_epochs)
    reported = experiment.trials[experiment.trials["epochs"] > 0]
    axes[-1].legend(handles=outcome_handles(reported.apply(outcome, axis=1)), title="trial ended", fontsize="small", loc="best")
    colours.explain(fig, axes)
    rungs = asha_rungs(experiment)
    rung_text = f"; dotted: ASHA rungs at epoch {', '.join(map(str, rungs))}" if rungs else ""
    fig.suptitle(f"Learning curves of {epochs['trial'].nunique()} trials, coloured by {colours.param or 'trial'}{rung_text}")
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
    bars = ax.bar(table["epoch"], table["trials"], color=["#1c7ed6" if rung else "#a5d8ff" for rung in table["rung"]])
    ax.bar_label(bars, fontsize="small")
    ax.set(title="Trials still training at each epoch", xlabel="epoch", ylabel="trials that reported the epoch")
    ax.set_ylim(0, table["trials"].max() * 1.15 + 0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    bar_kinds = [Line2D([], [], color="#1c7ed6", lw=6, label="ASHA rung"), Line2D([], [], color="#a5d8ff", lw=6, label="other epoch")]
    ax.legend(handles=bar_kinds, fontsize="small", loc="upper right")
    if len(outcomes):
        ax = axes[1]
        rungs = sorted(outcomes["rung"].unique())
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(outcomes))
        positions = outcomes["rung"].map({rung: i for i, rung in enumerate(rungs)}) + jitter
        for name, (colour, marker) in RUNG_OUTCOME_STYLE.items():
            chosen = outcomes["outcome"] == name
            if chosen.any():
                ax.scatter(positions[chosen], outcomes.loc[chosen, experiment.metric], color=colour, marker=marker, s=45,
                           edgecolor="#212529", linewidth=0.4, label=name, zorder=3)
        mark_chance(ax, experiment, experiment.metric)
        ax.set_xticks(range(len(rungs)), [f"epoch {rung}" for rung in rungs])
        ax.set_xlim(-0.5, len(rungs) - 0.5)
        ax.set(title=f"{LABELS.get(experiment.metric, experiment.metric)} at each rung "
                     f"(ASHA keeps about the best 1/{ASHA_REDUCTION_FACTOR})",
               xlabel="ASHA rung", ylabel=LABELS.get(experiment.metric, experiment.metric))
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
    target = LABELS.get(importances.target.removeprefix("best_"), importances.target)
    ax.set(xlabel="importance (sums to 1)",
           title=f"Hyperparameter importance ({evaluator}) for the best {target}\nover {importances.trials} finished trials")
    ax.grid(axis="x", alpha=0.25)
    return fig


def plot_param_scatter(experiment: Experiment, importances: Importances | None = None, columns: int = 4) -> Figure | None:
    """Each searched hyperparameter against the trial's best metric, one panel per parameter
    (most important first), points marked by how the trial ended."""
    target = f"best_{experiment.metric}"
    trials = experiment.trials.dropna(subset=[target])
    params = searched_params(experiment, trials)
    if not params:
        return None
    ranking = {CONFIG_PREFIX + name: rank for rank, name in enumerate((importances.values if importances else {}))}
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
                ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=pd.api.types.is_integer_dtype(values.dtype)))
        else:
            choices = sorted(values.dropna().unique(), key=str)
            positions = values.map({choice: i for i, choice in enumerate(choices)}).to_numpy(float, na_value=np.nan)
            x = positions + rng.uniform(-0.15, 0.15, len(values))  # jitter: equal choices would hide each other
            crowded = len(choices) > 3
            ax.set_xticks(range(len(choices)), [str(c) for c in choices], rotation=30 if crowded else 0,
                          ha="right" if crowded else "center")
            ax.set_xlim(-0.5, len(choices) - 0.5)
        for name, (colour, marker) in OUTCOME_STYLE.items():
            chosen = (outcomes == name).to_numpy()
            ax.scatter(x[chosen], trials.loc[chosen, target], color=colour, marker=marker, s=40, edgecolor="#212529", linewidth=0.4)
        name = param.removeprefix(CONFIG_PREFIX)
        importance = importances.values.get(name) if importances else None
        ax.set_title(name + (f"  (importance {importance:.2f})" if importance is not None else ""), fontsize="medium")
        ax.set_xlabel(name)
        ax.grid(alpha=0.25)
        mark_chance(ax, experiment, experiment.metric)
    for ax in axes[len(params):]:
        ax.set_visible(False)
    for ax in axes[::min(columns, len(params))]:
        ax.set_ylabel(f"best {LABELS.get(experiment.metric, experiment.metric)}")
    fig.legend(handles=outcome_handles(outcomes), title="trial ended", loc="outside right upper", fontsize="small")
    fig.suptitle("Each hyperparameter against the trial's best metric (a trial has only the parameters that apply to it)")
    return fig


def is_iterations_search(experiment: Experiment) -> bool:
    return experiment.space == ITERATIONS_SPACE and f"{CONFIG_PREFIX}model" in experiment.trials


def plot_iterations(experiment: Experiment) -> Figure | None:
    """The seed's five video iterations side by side: every trial's best metric per
    iteration (the best starred), and the learning curve of each iteration's best trial."""
    if not is_iterations_search(experiment):
        return None
    target, param = f"best_{experiment.metric}", f"{CONFIG_PREFIX}model"
    trials = experiment.trials
    table = compare_choices(experiment, param).set_index("model")
    names = list(ITERATION_LABELS)
    palette = {name: colormaps["tab10"](i) for i, name in enumerate(names)}
    fig = Figure(figsize=(15, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.25, 1])
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        group = trials[(trials[param] == name).fillna(False)].dropna(subset=[target])
        if group.empty:
            left.annotate("not tried", (i, 0.5), xycoords=("data", "axes fraction"), ha="center", color="#868e96")
            continue
        for _, trial in group.iterrows():
            left.scatter(i + rng.uniform(-0.12, 0.12), trial[target], color=palette[name], marker=OUTCOME_STYLE[outcome(trial)][1], s=45,
                         edgecolor="#212529", linewidth=0.4, zorder=3)
        best = table.loc[name]
        left.scatter(i, best["best"], marker="*", s=260, color=palette[name], edgecolor="#212529", zorder=4)
        left.annotate(f"{best['best']:.3f}", (i, best["best"]), xytext=(10, 0), textcoords="offset points", va="center", fontsize="small")
        curve = experiment.epochs[experiment.epochs["trial"] == best["best_trial"]]
        right.plot(curve["epoch"], curve[experiment.metric], color=palette[name], lw=2, marker="o", markersize=4,
                   label=f"{ITERATION_LABELS[name].split(':')[0]}: {best['best_trial']}")
    left.set_xticks(range(len(names)), [ITERATION_LABELS[name] for name in names], fontsize="small")
    left.set_xlim(-0.5, len(names) - 0.5)
    left.set(title=f"Best {LABELS.get(experiment.metric, experiment.metric)} of every trial, per iteration (star: the best)",
             ylabel=f"best {LABELS.get(experiment.metric, experiment.metric)}")
    plotted = trials.dropna(subset=[target])
    left.legend(handles=outcome_handles(plotted.apply(outcome, axis=1)), title="trial ended", fontsize="small", loc="best")
    right.set(title="Learning curve of each iteration's best trial", xlabel="epoch",
              ylabel=LABELS.get(experiment.metric, experiment.metric))
    right.legend(title="iteration: trial", fontsize="small", loc="best")
    integer_epochs(right, experiment.max_epochs)
    for ax in (left, right):
        ax.grid(alpha=0.25)
        mark_chance(ax, experiment, experiment.metric)
    return fig


@dataclass(frozen=True)
class Confusion:
    title: str
    labels: list[str]
    counts: np.ndarray  # rows = true class, columns = predicted


def confusion_matrices(experiment: Experiment, evaluate_val: bool = True) -> tuple[list[Confusion], list[str]]:
    """The best checkpoint's confusion matrices -> ([val, test] where available, notes on what
    is missing and why). Val is recomputed (msa.results.rebuild_val_evaluation); test is
    summary.json's, evaluated once when the search finished."""
    matrices, notes, summary = [], [], experiment.summary or {}
    actors = summary.get("data", {}).get("actors", {})
    if not evaluate_val:
        notes.append("validation matrix skipped (evaluate_val=False)")
    elif experiment.best_trial is None:
        notes.append("validation matrix: no trial has reported an epoch yet")
    else:
        try:
            model, extra = load_best_model(experiment)
            val = rebuild_val_evaluation(experiment, model)
            matrices.append(Confusion(
                f"validation actors {actors.get('val', '')}: accuracy {val['accuracy']:.3f}\n"
                f"epoch {extra['epoch']} of {experiment.best_trial}",
                list(extra["labels"]), np.asarray(val["confusion_matrix"])))
        except (DataUnavailable, FileNotFoundError) as error:
            notes.append(f"validation matrix not shown: {error}")
    test = summary.get("test")
    if test:
        matrices.append(Confusion(f"test actors {actors.get('test', '')}: accuracy {test['accuracy']:.3f}\nnever seen by any trial",
                                  list(test["labels"]), np.asarray(test["confusion_matrix"])))
    else:
        notes.append("test matrix not available: summary.json (written when the search finishes) has no test evaluation")
    return matrices, notes


def plot_confusion_matrices(matrices: list[Confusion]) -> Figure | None:
    """Each matrix normalised per true class (rows sum to 1), with the counts beneath."""
    if not matrices:
        return None
    side = max(0.55 * len(matrices[0].labels), 3.2) + 1.4  # inches per matrix, labels included
    fig = Figure(figsize=(side * len(matrices) + 1.4, side + 0.3), layout="constrained")
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    for ax, matrix in zip(axes, matrices):
        counts = matrix.counts
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for (i, j), rate in np.ndenumerate(rates):
            if counts[i, j] or i == j:
                ax.text(j, i, f"{rate:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize="x-small",
                        color="white" if rate > 0.55 else "#212529")
        ax.set_xticks(range(len(matrix.labels)), matrix.labels, rotation=40, ha="right")
        ax.set_yticks(range(len(matrix.labels)), matrix.labels)
        ax.set(xlabel="predicted", ylabel="true", title=matrix.title)
        ax.title.set_fontsize("medium")
    fig.colorbar(image, ax=axes, label="fraction of the true class", shrink=0.8)
    fig.suptitle("Best checkpoint: confusion matrices, normalised per true class (counts in brackets)")
    return fig


# ----------------------------------------------------------------------------- the report


@dataclass
class Section:
    title: str
    intro: str  # what to look at
    parts: list[str] = field(default_factory=list)  # HTML fragments


@dataclass
class Report:
    title: str
    sections: list[Section]
    figures: dict[str, bytes]  # name -> PNG

    def html(self) -> str:
        nav = " · ".join(f'<a href="#s{i}">{html.escape(s.title)}</a>' for i, s in enumerate(self.sections))
        body = "\n".join(
            f'<section id="s{i}"><h2>{html.escape(s.title)}</h2><p class="intro">{html.escape(s.intro)}</p>\n'
            + "\n".join(s.parts) + "</section>"
            for i, s in enumerate(self.sections)
        )
        return HTML_PAGE.format(title=html.escape(self.title), nav=nav, body=body, generated=time.strftime("%Y-%m-%d %H:%M"))


HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1.5em; color: #212529; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ border-bottom: 1px solid #dee2e6; padding-bottom: 0.2em; margin-top: 2em; }}
nav, .meta {{ color: #495057; }} .intro {{ color: #343a40; max-width: 70em; }}
.note {{ background: #fff9db; border-left: 4px solid #fab005; padding: 0.4em 0.8em; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 0.8em 0; }}
th, td {{ padding: 0.25em 0.6em; border-bottom: 1px solid #e9ecef; text-align: left; white-space: nowrap; }}
th {{ background: #f1f3f5; }} .scroll {{ overflow-x: auto; }}
img {{ max-width: 100%; height: auto; display: block; margin: 0.8em 0; }}
</style></head>
<body><h1>{title}</h1><p class="meta">generated {generated} by python -m msa.report</p>
<nav>{nav}</nav>
{body}
</body></html>
"""


def cell_text(value) -> str:
    """Three significant digits for floats; a dash where a value does not apply (<NA>, NaN)."""
    if value is None or (not isinstance(value, (str, tuple, list)) and pd.isna(value)):
        return "–"
    return f"{value:.3g}" if isinstance(value, (float, np.floating)) else str(value)


def table_html(frame: pd.DataFrame) -> str:
    return '<div class="scroll">' + frame.astype(object).map(cell_text).to_html(index=False, border=0) + "</div>"


def note_html(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def build_report(experiment: Experiment, evaluate_val: bool = True, colour_by: str | None = None) -> Report:
    """Every section of the notebook, with its figures rendered to PNG."""
    figures: dict[str, bytes] = {}

    def figure_html(name: str, fig: Figure | None, alt: str, empty: str | None = None) -> str:
        """The figure embedded (and kept for its PNG file); ``empty`` says why there is none."""
        if fig is None:
            return note_html(empty) if empty else ""
        figures[name] = png(fig)
        encoded = base64.b64encode(figures[name]).decode()
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'

    importances = param_importances(experiment)
    colour_by = colour_by or default_colour_param(experiment, importances)
    sections = [
        Section("Overview", "What was searched, how the trials ended, and how good the best checkpoint is on the "
                "validation actors (which chose it) and on the test actors (which nothing saw before).",
                [table_html(overview(experiment))]),
        Section("Trials", "Best first. 'stopped early' trials were cut by ASHA at a rung; their metrics are at fewer epochs.",
                [table_html(trial_table(experiment))]),
        Section("Learning curves", "Do the losses still fall at the last epoch (train longer), does val loss rise while train "
                "loss falls (overfitting), and does the colouring hyperparameter separate good from bad curves?",
                [figure_html("learning_curves", plot_learning_curves(experiment, colour_by), "learning curves", NO_EPOCHS)]),
        Section("ASHA rung survival", "How many trials ASHA let through each rung, and whether those it stopped were "
                "really worse at the rung than those it kept.",
                [figure_html("rung_survival", plot_rung_survival(experiment), "rung survival", NO_EPOCHS)]),
        Section("Which hyperparameters mattered", "Importance is a hint, not a verdict, with few trials; check it against "
                "the scatter plots: a parameter matters when its good values cluster.",
                [*(note_html(n) for n in importances.notes),
                 figure_html("importance", plot_importances(importances), "importance"),
                 figure_html("param_scatter", plot_param_scatter(experiment, importances), "per-parameter scatter",
                             "no hyperparameter took more than one value in the trials that reported an epoch")]),
    ]
    if is_iterations_search(experiment):
        sections.append(Section("The seed's five video iterations", "Which of the seed's designs wins when each gets its own "
                                "tuned optimiser settings, and by how much over the others.",
                                [table_html(compare_choices(experiment, f"{CONFIG_PREFIX}model")),
                                 figure_html("iterations", plot_iterations(experiment), "iterations")]))
    matrices, notes = confusion_matrices(experiment, evaluate_val)
    sections += [
        Section("Best model: confusion matrices", "Which emotions are confused with which; compare val with test: a much "
                "better val than test means the search fitted the validation actors.",
                [*(note_html(n) for n in notes),
                 figure_html("confusion_matrices", plot_confusion_matrices(matrices), "confusion matrices")]),
        Section("Pretrained weights", "Backbones start from the weights the search resolved before it began (found in the "
                "caches or downloaded, then shipped to every trial); a run without them trains its backbones from random weights.",
                [f"<p>{html.escape(pretrained_note(experiment))}</p>", table_html(pretrained_table(experiment))]),
    ]
    return Report(f"msa search {experiment.name} ({experiment.space})", sections, figures)


def write_report(location: str, evaluate_val: bool = True, colour_by: str | None = None) -> list[str]:
    """Write report.html and the PNGs into the experiment directory -> the paths written.
    PNGs of an earlier report that this one has no figure for (yet) are removed."""
    experiment = load_experiment(location)
    report = build_report(experiment, evaluate_val, colour_by)
    pngs = {f"{FIGURE_PREFIX}{name}.png": data for name, data in report.figures.items()}
    for name in experiment.files.listdir():
        if name.startswith(FIGURE_PREFIX) and name.endswith(".png") and name not in pngs:
            experiment.files.delete(name)
    written = [experiment.files.write_bytes(name, data) for name, data in pngs.items()]
    return [experiment.files.write_bytes(REPORT_FILE, report.html().encode()), *written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msa.report", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("experiment", help="experiment directory STORAGE/NAME, a local path or a storage URI")
    parser.add_argument("--colour-by", help="hyperparameter that colours the learning curves (default: the most important)")
    parser.add_argument("--no-val", action="store_true", help="skip re-evaluating the best checkpoint on the validation actors")
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

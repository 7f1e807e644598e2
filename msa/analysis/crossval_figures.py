"""The cross-validation figures of the notebook and the report (crossval.json, see
msa.analysis.crossval): plain matplotlib ``Figure`` objects, None when there is nothing to show."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from msa.analysis.baselines import BASELINE_SETS
from msa.analysis.crossval import actors_text, completed, fold_baseline
from msa.experiment_dir import finite

# Bars of the configuration's test metrics per fold, and the baselines' accuracy as markers.
FOLD_BARS = {"accuracy": ("accuracy (WAR)", "#1c7ed6"), "uar": ("UAR", "#74c0fc")}
BASELINE_MARKERS = dict(zip(BASELINE_SETS, [("#e8590c", "o"), ("#2f9e44", "s"), ("#862e9c", "D")]))
BAR_WIDTH = 0.36


def crossval_folds_figure(cv: Mapping) -> Figure | None:
    """Accuracy (WAR) and UAR on each fold's test actors as bars, their means over the
    completed folds as dashed lines with a ±std band, each classical baseline's accuracy per
    fold as markers side by side over the accuracy bar, chance dotted; failed folds are marked as such.
    None when no fold completed."""
    folds = cv["folds"]
    done = [i for i, fold in enumerate(folds) if completed(fold)]
    if not done:
        return None
    fig = Figure(figsize=(max(8.5, 1.25 * len(folds) + 5.0), 4.6), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(len(folds), dtype=float)
    handles = []
    for offset, (key, (name, colour)) in zip((-BAR_WIDTH / 2, BAR_WIDTH / 2), FOLD_BARS.items()):
        values = [float(folds[i][key]) for i in done]
        bars = ax.bar(positions[done] + offset, values, BAR_WIDTH, color=colour, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize="x-small", padding=2)
        mean, std = finite(cv["mean"].get(key)), finite(cv["std"].get(key))
        handles.append(bars)
        if mean is None:
            continue
        line = ax.axhline(mean, color=colour, ls="--", lw=1.6, label=f"mean {name} {mean:.3f}")
        if std is not None:
            ax.axhspan(mean - std, mean + std, color=colour, alpha=0.15, lw=0)
            line.set_label(f"mean {name} {mean:.3f} ± {std:.3f}")
        handles.append(line)
    # Side by side over the accuracy bar, so that equal accuracies do not hide one another.
    marker_offsets = np.linspace(-0.8, 0.8, len(BASELINE_MARKERS)) * BAR_WIDTH / 2 - BAR_WIDTH / 2
    for (name, (colour, marker)), marker_offset in zip(BASELINE_MARKERS.items(), marker_offsets):
        points = [
            (positions[i] + marker_offset, record["accuracy"])
            for i, fold in enumerate(folds)
            if (record := fold_baseline(fold, name)) and finite(record.get("accuracy")) is not None
        ]
        if points:
            x, y = zip(*points)
            ax.scatter(x, y, color=colour, marker=marker, s=42, edgecolor="#212529", lw=0.5, zorder=3)
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="",
                    color=colour,
                    marker=marker,
                    markeredgecolor="#212529",
                    label=f"baseline {name} accuracy",
                )
            )
    for i, fold in enumerate(folds):
        if i not in done:
            ax.annotate(
                fold["status"].lower() if fold["status"] != "TERMINATED" else "no test metrics",
                (positions[i], 0.04),
                ha="center",
                rotation=90,
                fontsize="small",
                color="#c92a2a",
            )
    labels = cv.get("labels") or []
    if labels:
        ax.axhline(1 / len(labels), color="#868e96", ls=":", lw=1)
        handles.append(Line2D([], [], color="#868e96", ls=":", label=f"chance ({len(labels)} classes)"))
    ax.set_xticks(
        positions, [f"fold {fold['fold']}\ntest {actors_text(fold['test_actors'])}" for fold in folds]
    )
    ax.set_xlim(-0.6, len(folds) - 0.4)
    ax.set_ylim(0, 1.05)
    ax.set(ylabel="on the fold's test actors")
    ax.grid(axis="y", alpha=0.25)
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    model = cv["config"].get("model", "the configuration")
    ax.set_title(
        f"Cross-validation of {model}: {cv['folds_completed']} of {cv['folds_total']} folds "
        f"(--folds {cv['folds_preset']})\neach scored on its held-out test actors",
        fontsize="medium",
    )
    return fig


def crossval_confusion_figure(cv: Mapping) -> Figure | None:
    """The completed folds' test confusion matrices summed (rows true), normalised per true
    class, counts beneath (msa.train.figures' drawing); None when it holds no clip."""
    from msa.train.figures import confusion_figure  # msa.train imports torch: only when drawn

    counts = cv.get("pooled_confusion_matrix")
    if counts is None or not np.asarray(counts).size or not np.asarray(counts).sum():
        return None
    counts = np.asarray(counts, dtype=int)
    accuracy = np.trace(counts) / counts.sum()
    return confusion_figure(
        counts,
        cv["labels"],
        f"Pooled over {cv['folds_completed']} folds' test actors ({counts.sum()} clips): "
        f"accuracy {accuracy:.3f}\nnormalised per true class (counts in brackets)",
    )

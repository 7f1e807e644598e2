"""A multi-objective search's Pareto front (``msa search --objectives``): every trial as a
point, the front highlighted, and the front as a table.

Each trial is its best epoch by the first objective, with that epoch's costs (they are the same
every epoch). The front is summary.json's once the search has finished (the trials ``--pick``
chooses from); before that, msa.pareto's rule on the trials so far.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from msa.analysis.experiment import Experiment
from msa.analysis.trials import CONFIG_PREFIX
from msa.pareto import objective_modes, pareto_front

MAX_LABEL_CHARS = 22  # a model name on the scatter, shortened beyond this
FRONT_COLOUR, OTHER_COLOUR = "#d9480f", "#adb5bd"


def objectives_of(experiment: Experiment) -> tuple[str, ...]:
    """The search's --objectives; () for a single-objective search."""
    return tuple(experiment.args.get("objectives") or (experiment.summary or {}).get("objectives") or ())


def trial_points(experiment: Experiment) -> pd.DataFrame:
    """One row per trial with its objectives finite at some epoch: trial, model, epoch, the
    objectives, and on_front."""
    objectives = objectives_of(experiment)
    columns = ["trial", "model", "epoch", *objectives, "on_front"]
    epochs = experiment.epochs
    if not objectives or epochs.empty or not set(objectives) <= set(epochs):
        return pd.DataFrame(columns=columns)
    scored = epochs.dropna(subset=list(objectives))
    if scored.empty:
        return pd.DataFrame(columns=columns)
    first = objectives[0]
    best = scored.loc[scored.groupby("trial")[first].idxmax()]  # the first of equals: the earliest epoch
    models = experiment.trials.set_index("trial").get(f"{CONFIG_PREFIX}model")
    rows = [
        {
            "trial": row["trial"],
            "model": models.get(row["trial"], "") if models is not None else "",
            "epoch": int(row["epoch"]),
            **{name: float(row[name]) for name in objectives},
        }
        for _, row in best.iterrows()
    ]
    summary_front = (experiment.summary or {}).get("pareto_front")
    if summary_front is not None:
        on_front = {entry["trial"] for entry in summary_front}
    else:
        positions = pareto_front(rows, objectives, objective_modes(objectives))
        on_front = {rows[i]["trial"] for i in positions}
    frame = pd.DataFrame([{**row, "on_front": row["trial"] in on_front} for row in rows], columns=columns)
    return frame.sort_values([first, *objectives[1:]], ascending=[False, *[True] * (len(objectives) - 1)])


def front_table(experiment: Experiment) -> pd.DataFrame:
    """The Pareto-optimal trials, best first objective first."""
    points = trial_points(experiment)
    return points[points["on_front"].astype(bool)].drop(columns="on_front").reset_index(drop=True)


def plot_front(experiment: Experiment) -> Figure | None:
    """The first objective against the second, every trial a point labelled with its model, the
    front highlighted and joined; None without two objectives or a scored trial."""
    objectives = objectives_of(experiment)
    points = trial_points(experiment)
    if len(objectives) < 2 or points.empty:
        return None
    score, cost = objectives[0], objectives[1]
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    front = points[points["on_front"].astype(bool)].sort_values(cost)
    others = points[~points["on_front"].astype(bool)]
    ax.scatter(others[cost], others[score], color=OTHER_COLOUR, label="other trials", zorder=2)
    # A staircase, not straight joins: between two front trials the best score a budget buys is
    # the cheaper trial's, nothing in between was found.
    ax.step(front[cost], front[score], "-o", where="post", color=FRONT_COLOUR, label="Pareto front", zorder=3)
    for _, row in points.iterrows():
        name = str(row["model"])
        label = name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 1] + "…"
        ax.annotate(label, (row[cost], row[score]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"{cost} (lower is better)")
    ax.set_ylabel(f"{score} at the trial's best epoch (higher is better)")
    extra = f"; also minimised: {', '.join(objectives[2:])} (the table)" if len(objectives) > 2 else ""
    ax.set_title(f"{len(front)} of {len(points)} trials on the Pareto front{extra}", fontsize=10)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return fig

"""A population-based search (--scheduler pbt | pb2): who copied whom, and how each member's
hyperparameters moved over the epochs."""

from __future__ import annotations

import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from msa.analysis.experiment import Experiment
from msa.analysis.trials import CONFIG_PREFIX
from msa.experiment_dir import (
    COPIED_FROM,
    MUTABLE_HYPERPARAMETERS,
    POPULATION_SCHEDULERS,
    lineage,
    trial_folder,
)


def is_population_search(experiment: Experiment) -> bool:
    return experiment.args.get("scheduler") in POPULATION_SCHEDULERS


def copies(experiment: Experiment) -> pd.DataFrame:
    """One row per exploit: trial (the member that copied), epoch (its first epoch on the
    donor's weights), donor (the trial folder it copied)."""
    epochs = experiment.epochs
    if COPIED_FROM not in epochs:
        return pd.DataFrame(columns=["trial", "epoch", "donor"])
    rows = epochs[epochs[COPIED_FROM].fillna("").astype(str) != ""]
    return pd.DataFrame(
        {
            "trial": rows["trial"].to_numpy(),
            "epoch": rows["epoch"].astype(int).to_numpy(),
            "donor": [trial_folder(donor) for donor in rows[COPIED_FROM]],
        }
    )


def best_lineage(experiment: Experiment) -> pd.DataFrame:
    """The epochs that made the best member's weights (msa.experiment_dir.lineage): epoch,
    trial (whose run trained it) and the configuration it trained with."""
    best = (experiment.summary or {}).get("best_trial")
    if not best:
        return pd.DataFrame(columns=["epoch", "trial"])
    histories = {}
    for folder, group in experiment.epochs.groupby("trial"):
        histories[folder] = [
            {
                "epoch": int(row["epoch"]),
                COPIED_FROM: trial_folder(row[COPIED_FROM])
                if isinstance(row.get(COPIED_FROM), str) and row[COPIED_FROM]
                else "",
                **{key: row[key] for key in group if key.startswith(CONFIG_PREFIX)},
            }
            for _, row in group.iterrows()
        ]
    return pd.DataFrame(lineage(histories, best))


def plot_lineage(experiment: Experiment) -> Figure | None:
    """Each member's epochs as a line, an arrow where it took over another's checkpoint, and
    the best member's inherited path drawn thick."""
    if not is_population_search(experiment) or experiment.epochs.empty:
        return None
    members = sorted(experiment.epochs["trial"].unique())
    row = {trial: index for index, trial in enumerate(members)}
    fig = Figure(figsize=(10, 0.45 * len(members) + 1.6), layout="constrained")
    ax = fig.subplots()
    palette = colormaps["tab10"]
    for trial, group in experiment.epochs.groupby("trial"):
        epochs = sorted(group["epoch"].astype(int))
        ax.plot(
            epochs,
            [row[trial]] * len(epochs),
            "o-",
            color=palette(row[trial] % 10),
            markersize=3,
            linewidth=1,
        )
    for _, copy in copies(experiment).iterrows():
        if copy["donor"] in row:
            ax.annotate(
                "",
                xy=(copy["epoch"], row[copy["trial"]]),
                xytext=(copy["epoch"] - 1, row[copy["donor"]]),
                arrowprops={"arrowstyle": "->", "color": "#495057", "linewidth": 1},
            )
    path = best_lineage(experiment)
    if not path.empty:
        ax.plot(path["epoch"], [row[t] for t in path["trial"]], "-", color="#212529", linewidth=3, alpha=0.35)
    ax.set_yticks(range(len(members)), members)
    ax.set_xlabel("epoch")
    ax.set_title(
        "Population: arrows = a member takes over another's checkpoint; thick = the best member's lineage"
    )
    return fig


def plot_hyperparameter_paths(experiment: Experiment) -> Figure | None:
    """Each explored hyperparameter per epoch, one line per member (log scale for learning
    rates and weight decay), the best member's inherited path thick."""
    if not is_population_search(experiment) or experiment.epochs.empty:
        return None
    epochs = experiment.epochs
    names = [
        n
        for n in MUTABLE_HYPERPARAMETERS
        if f"{CONFIG_PREFIX}{n}" in epochs and epochs[f"{CONFIG_PREFIX}{n}"].nunique() > 1
    ]
    if not names:
        return None
    fig = Figure(figsize=(5 * len(names), 3.8), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    path = best_lineage(experiment)
    palette = colormaps["tab10"]
    members = sorted(epochs["trial"].unique())
    for ax, name in zip(axes, names):
        column = f"{CONFIG_PREFIX}{name}"
        for index, trial in enumerate(members):
            group = epochs[epochs["trial"] == trial].sort_values("epoch")
            ax.plot(group["epoch"], group[column], ".-", color=palette(index % 10), linewidth=1, label=trial)
        if column in path:
            ax.plot(
                path["epoch"],
                path[column],
                "-",
                color="#212529",
                linewidth=3,
                alpha=0.35,
                label="best lineage",
            )
        if name != "dropout" and name != "pool_dropout":
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(name)
    axes[-1].legend(fontsize="x-small", loc="best")
    return fig


def schedule_table(experiment: Experiment) -> pd.DataFrame | None:
    """summary.json's schedule: the best member's hyperparameters at each epoch."""
    schedule = (experiment.summary or {}).get("schedule")
    return pd.DataFrame(schedule) if schedule else None

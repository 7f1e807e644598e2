"""ASHA's rungs: where trials were compared, how many went on, and what happened to each."""

from __future__ import annotations

import math

import pandas as pd

from msa.analysis.experiment import Experiment
from msa.experiment_dir import DEFAULT_REDUCTION_FACTOR

RUNG_OUTCOMES = ("continued", "stopped", "errored", "running")


def asha_rungs(experiment: Experiment) -> list[int]:
    """The epochs at which ASHA compared trials: Ray's milestones grace_period * r**k below
    max_epochs, r the --reduction-factor ([] for the other schedulers)."""
    args = experiment.args
    if args.get("scheduler", "asha") != "asha" or not args.get("grace_period"):
        return []
    grace, top, factor = args["grace_period"], experiment.max_epochs, reduction_factor(experiment)
    count = int(math.log(top / grace) / math.log(factor) + 1)
    return [grace * factor**k for k in range(count) if grace * factor**k < top]


def reduction_factor(experiment: Experiment) -> int:
    """--reduction-factor (searches saved before the flag used the default)."""
    return int(experiment.args.get("reduction_factor") or DEFAULT_REDUCTION_FACTOR)


def survival(experiment: Experiment) -> pd.DataFrame:
    """One row per epoch 1..max_epochs. Columns: epoch, trials (that reported that epoch),
    rung (True at an ASHA rung)."""
    reached = experiment.trials["epochs"].to_numpy()
    rungs = set(asha_rungs(experiment))
    epochs = range(1, max(experiment.max_epochs, int(reached.max(initial=0))) + 1)
    return pd.DataFrame(
        {
            "epoch": list(epochs),
            "trials": [int((reached >= epoch).sum()) for epoch in epochs],
            "rung": [epoch in rungs for epoch in epochs],
        }
    )


def rung_outcomes(experiment: Experiment) -> pd.DataFrame:
    """One row per ASHA rung and trial that reached it. Columns: rung (epoch), trial, the
    search metric at that epoch (named as the metric), outcome (one of RUNG_OUTCOMES):
    "continued" (trained past the rung), "stopped" (TERMINATED there: ASHA stopped it),
    "errored" or "running"."""
    epochs, trials = experiment.epochs, experiment.trials.set_index("trial")
    rows = []
    for rung in asha_rungs(experiment):
        at_rung = epochs[epochs["epoch"] == rung]
        for trial, value in zip(at_rung["trial"], at_rung[experiment.metric]):
            row = trials.loc[trial]
            if row["epochs"] > rung:
                outcome = "continued"
            else:
                outcome = {"TERMINATED": "stopped", "ERROR": "errored"}.get(row["status"], "running")
            rows.append({"rung": rung, "trial": trial, experiment.metric: value, "outcome": outcome})
    return pd.DataFrame(rows, columns=["rung", "trial", experiment.metric, "outcome"])

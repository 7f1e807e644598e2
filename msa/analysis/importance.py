"""Which hyperparameters were searched, which mattered, and how the choices of one compare."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd

from msa.analysis.experiment import Experiment
from msa.analysis.trials import CONFIG_PREFIX, best_trial_position
from search_spaces import CHOICE_LABELS  # where one is present, ``model`` was not searched

MIN_TRIALS_FOR_IMPORTANCE = 4
TOP_TRIALS_FOR_IMPORTANCE = 5  # PED-ANOVA contrasts the best trials with all; its docs advise 5 at least
# A positive float parameter is taken as log-scaled (a learning rate, a weight decay) when its
# values span this factor and spread more evenly on a log axis than on a linear one.
LOG_SCALE_SPAN = 10.0


def searched_params(experiment: Experiment, trials: pd.DataFrame | None = None) -> list[str]:
    """Configuration columns that vary across ``trials`` (default: all), without
    ``config/model`` where a choice label (``trunk``, ``audio_layers``, ``audio_body``) decided it."""
    trials = experiment.trials if trials is None else trials
    labelled = any(f"{CONFIG_PREFIX}{label}" in trials for label in CHOICE_LABELS)
    return [
        column
        for column in experiment.params
        if trials[column].nunique(dropna=True) > 1 and not (labelled and column == f"{CONFIG_PREFIX}model")
    ]


def is_numeric_param(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def is_log_scale(values: pd.Series) -> bool:
    """Whether a float parameter looks log-scaled (see LOG_SCALE_SPAN)."""
    if not is_numeric_param(values) or pd.api.types.is_integer_dtype(values.dtype):
        return False
    present = values.dropna().to_numpy(float)
    if len(present) < 2 or present.min() <= 0 or present.max() / present.min() < LOG_SCALE_SPAN:
        return False
    return unevenness(np.log(present)) < unevenness(present)


def unevenness(values: np.ndarray) -> float:
    """Kolmogorov distance between the values, rescaled to [0, 1], and an even spread."""
    scaled = np.sort((values - values.min()) / (values.max() - values.min()))
    steps = np.arange(len(scaled) + 1) / len(scaled)
    return float(max(np.max(steps[1:] - scaled), np.max(scaled - steps[:-1])))


def python_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def infer_distribution(values: pd.Series) -> optuna.distributions.BaseDistribution:
    """An Optuna distribution covering the values a parameter took: integers -> IntDistribution,
    floats -> FloatDistribution (log where is_log_scale), anything else (strings, booleans,
    mixed types) -> CategoricalDistribution. Ranges are the observed ones: the space's own
    bounds are not stored in the experiment."""
    present = values.dropna()
    if pd.api.types.is_integer_dtype(present.dtype) and not pd.api.types.is_bool_dtype(present.dtype):
        return optuna.distributions.IntDistribution(int(present.min()), int(present.max()))
    if is_numeric_param(present):
        return optuna.distributions.FloatDistribution(
            float(present.min()), float(present.max()), log=is_log_scale(present)
        )
    choices = sorted({python_value(v) for v in present}, key=lambda v: (type(v).__name__, str(v)))
    return optuna.distributions.CategoricalDistribution(choices)


@dataclass(frozen=True)
class Importances:
    """Hyperparameter importances of one evaluator (empty ``values`` when not computed)."""

    values: dict[str, float]  # parameter (without CONFIG_PREFIX) -> importance, summing to 1, largest first
    evaluator: str
    target: str  # the trial frame column whose values were explained
    trials: int  # how many trials it used
    notes: tuple[str, ...]  # why nothing was computed, or Optuna's caveats about the result


def param_importances(
    experiment: Experiment, evaluator: optuna.importance.BaseImportanceEvaluator | None = None
) -> Importances:
    """Importance of each searched hyperparameter for the best search metric a trial reached,
    by an Optuna importance evaluator over an in-memory study built from the TERMINATED
    trials (finished or stopped early; errored and running trials are left out).

    The default evaluator is PED-ANOVA (no scikit-learn needed, conditional parameters
    handled): it measures how differently each parameter is distributed among the best
    trials (here the top TOP_TRIALS_FOR_IMPORTANCE at least, 10% on large searches) than among
    all. Pass ``optuna.importance.FanovaImportanceEvaluator()`` for fANOVA where scikit-learn
    is installed. A parameter that only some trials have is given only to those trials.
    """
    target = f"best_{experiment.metric}"
    trials = experiment.trials[
        (experiment.trials["status"] == "TERMINATED") & experiment.trials[target].notna()
    ]
    count = len(trials)
    if evaluator is None:
        quantile = min(0.5, max(0.1, TOP_TRIALS_FOR_IMPORTANCE / max(count, 1)))
        evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
    name = type(evaluator).__name__.removesuffix("ImportanceEvaluator")

    def result(values: dict[str, float], *notes: str) -> Importances:
        return Importances(values, name, target, count, tuple(notes))

    if count < MIN_TRIALS_FOR_IMPORTANCE:
        return result(
            {},
            f"importance needs at least {MIN_TRIALS_FOR_IMPORTANCE} finished trials; this search has {count}",
        )
    params = searched_params(experiment, trials)
    if not params:
        return result({}, "no hyperparameter took more than one value in the finished trials")
    study = quiet_study("maximize" if experiment.mode == "max" else "minimize")
    distributions = {param: infer_distribution(trials[param]) for param in params}
    for _, row in trials.iterrows():
        present = {param: python_value(row[param]) for param in params if not pd.isna(row[param])}
        study.add_trial(
            optuna.trial.create_trial(
                params=present,
                distributions={param: distributions[param] for param in present},
                value=float(row[target]),
            )
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = optuna.importance.get_param_importances(study, evaluator=evaluator, params=params)
    # All equal: PED-ANOVA's answer when its best trials are all trials.
    if len(values) > 1 and len(set(values.values())) == 1:
        return result(
            {},
            f"the best trials cannot be told apart from the others (ties in {target}): no parameter stands out",
        )
    notes = sorted({str(w.message).replace("`", "") for w in caught})
    return result({param.removeprefix(CONFIG_PREFIX): value for param, value in values.items()}, *notes)


def quiet_study(direction: str) -> optuna.Study:
    """An in-memory study, created without Optuna's INFO line."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.create_study(direction=direction)
    finally:
        optuna.logging.set_verbosity(verbosity)


def compare_choices(experiment: Experiment, param: str) -> pd.DataFrame:
    """One row per value of a categorical configuration column (e.g. ``config/model``).
    Columns: the value (named as the parameter without prefix), trials, finished (TERMINATED),
    best / median (of the trials' best search metric), most_epochs, best_trial (by the
    best-trial rule, msa.experiment_dir.ranking_key)."""
    target = f"best_{experiment.metric}"
    rows = []
    for value, group in experiment.trials.groupby(param, sort=True):
        position = best_trial_position(group, experiment.metric, experiment.mode)
        best = None if position is None else group.iloc[position]
        scored = group[target].dropna()
        rows.append(
            {
                param.removeprefix(CONFIG_PREFIX): value,
                "trials": len(group),
                "finished": int((group["status"] == "TERMINATED").sum()),
                "best": None if best is None else best[target],
                "median": scored.median() if len(scored) else None,
                "most_epochs": int(group["epochs"].max()),
                "best_trial": None if best is None else best["trial"],
            }
        )
    return pd.DataFrame(rows)

"""The tables of the notebook and the report: the search in a few lines, the trials, the weights."""

from __future__ import annotations

import pandas as pd

from msa.analysis.experiment import Experiment
from msa.analysis.pretrained import describe_pretrained_branches, weights_label
from msa.analysis.trials import CONFIG_PREFIX, best_epoch_rows
from msa.experiment_dir import TRIAL_OUTCOMES, ranking_key

# How people read the metrics (the frames keep the reported names).
LABELS = {
    "val_acc": "val accuracy",
    "val_f1": "val macro-F1",
    "val_uar": "val UAR",
    "val_loss": "val loss",
    "train_acc": "train accuracy",
    "train_loss": "train loss",
    "lr": "learning rate",
}
CHANCE_METRICS = ("val_acc", "val_uar", "train_acc")  # where 1 / classes is the chance level
OUTCOMES = TRIAL_OUTCOMES  # how a trial ended (the trial frame's outcome column)


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def outcome(trial: pd.Series) -> str:
    """One of OUTCOMES for a row of the trial frame."""
    return trial["outcome"]


def num_classes(experiment: Experiment) -> int | None:
    """Classes of the search: summary.json's test labels (None before the search has finished:
    the classes depend on the data, which msa_args.json names but does not hold)."""
    test = (experiment.summary or {}).get("test") or {}
    return len(test["labels"]) if test.get("labels") else None


def overview(experiment: Experiment) -> pd.DataFrame:
    """The search in a few lines: what was searched, how trials ended, how good the best is."""
    summary, trials = experiment.summary or {}, experiment.trials
    counts = trials["status"].value_counts().to_dict()
    stopped = int(trials["stopped_early"].sum())
    rows = {
        "experiment": experiment.files.location,
        "space": experiment.space,
        "state": "finished"
        if experiment.finished
        else "not finished (running, or interrupted: no summary.json yet)",
        "trials": f"{len(trials)}: "
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        + (f" ({stopped} of them stopped early)" if stopped else ""),
        "metric": f"{experiment.metric} ({experiment.mode}), up to {experiment.max_epochs} epochs per trial",
        "best trial": experiment.best_trial or "none yet",
    }
    if summary.get("best_val"):
        val = summary["best_val"]
        rows["best, val actors"] = (
            f"accuracy {val['val_acc']:.3f}, macro-F1 {val['val_f1']:.3f}, UAR {val['val_uar']:.3f} "
            f"(epoch {val.get('epoch')}, actors {summary['data']['actors']['val']})"
        )
    if summary.get("test"):
        test = summary["test"]
        rows["best, test actors"] = (
            f"accuracy {test['accuracy']:.3f}, macro-F1 {test['f1_macro']:.3f}, UAR {test['uar']:.3f} "
            f"(actors {summary['data']['actors']['test']}, never seen by any trial)"
        )
    classes = num_classes(experiment)
    if classes:
        rows["chance"] = f"{1 / classes:.3f} ({classes} classes)"
    return pd.DataFrame({"": list(rows), "value": list(rows.values())})


def trial_table(experiment: Experiment) -> pd.DataFrame:
    """One row per trial, best first (by the best-trial rule, each trial at its best epoch): how it
    ended, its best metrics and its configuration."""
    trials = experiment.trials
    metric = f"best_{experiment.metric}"
    table = pd.DataFrame(
        {
            "trial": trials["trial"],
            "outcome": trials.apply(outcome, axis=1),
            "epochs": trials["epochs"],
            "best epoch": trials["best_epoch"],
            label(experiment.metric): trials[metric],
            **{
                LABELS[m]: trials[f"best_{m}"]
                for m in ("val_f1", "val_uar", "val_loss")
                if m != experiment.metric
            },
            "seconds": trials["time_total_s"],
            **{param.removeprefix(CONFIG_PREFIX): trials[param] for param in experiment.params},
        }
    )
    if trials["error"].notna().any():
        table["error"] = trials["error"]
    rows = best_epoch_rows(trials, experiment.metric)
    order = sorted(range(len(rows)), key=lambda i: ranking_key(rows[i], experiment.metric, experiment.mode))
    return table.iloc[order].reset_index(drop=True)


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


def pretrained_note(experiment: Experiment) -> str:
    args, summary = experiment.args, experiment.summary or {}
    sources = (
        ", ".join(f"{key} {args[key]}" for key in ("video_weights", "audio_weights") if args.get(key))
        or "the default sources"
    )
    best = summary.get("pretrained")
    best_text = f"; the best trial's {describe_pretrained_branches(best)}" if best else ""
    return f"--pretrained {args.get('pretrained', '?')} with {sources}{best_text}."

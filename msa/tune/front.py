"""summary.json's Pareto front of a multi-objective search (``--objectives``), and its lines
in the printed summary.

Each trial is one point: its best kept checkpoint by the first objective (the best-trial rule,
msa.experiment_dir.ranking_key), with that epoch's objectives; the costs (msa.trial.costs) are
the same every epoch. The front is msa.pareto's, best first objective first.
"""

from __future__ import annotations

from pathlib import Path

from msa.experiment_dir import CHECKPOINT_FILE, has_metric, ranking_key
from msa.pareto import objective_modes, pareto_front
from msa.tune.options import BudgetOptions

FRONT_KEYS = ("objectives", "pareto_front")  # summary.json's keys (None in a single-objective search)


def trial_points(results, objectives: tuple[str, ...]) -> list[dict]:
    """One point per trial with a kept checkpoint whose objectives are all finite: the trial
    folder, its model, the epoch, the objectives, the configuration and the checkpoint file
    (relative to the experiment directory, as msa.analysis.best_checkpoint names it)."""
    points = []
    for result in results:
        candidates = [
            (checkpoint, metrics)
            for checkpoint, metrics in (result.best_checkpoints or [])
            if all(has_metric(metrics, name) for name in objectives)
        ]
        if not candidates:
            continue
        checkpoint, metrics = min(candidates, key=lambda c: ranking_key(c[1], objectives[0], "max"))
        trial = Path(result.path).name
        points.append(
            {
                "trial": trial,
                "model": result.config.get("model"),
                "epoch": metrics.get("epoch"),
                "objectives": {name: metrics[name] for name in objectives},
                "config": dict(result.config),
                "checkpoint": f"{trial}/{Path(checkpoint.path).name}/{CHECKPOINT_FILE}",
            }
        )
    return points


def front_summary(results, budget: BudgetOptions) -> dict:
    """summary.json's ``objectives`` and ``pareto_front`` (both None without --objectives)."""
    objectives = budget.objectives
    if not objectives:
        return dict.fromkeys(FRONT_KEYS)
    points = trial_points(results, objectives)
    modes = objective_modes(objectives)
    front = [points[i] for i in pareto_front([p["objectives"] for p in points], objectives, modes)]
    front.sort(key=lambda p: (-p["objectives"][objectives[0]], *(p["objectives"][n] for n in objectives[1:])))
    return {"objectives": list(objectives), "pareto_front": front}


def front_lines(summary: dict, experiment: str) -> list[str]:
    """The printed summary's Pareto front, one trial a line (nothing for one objective)."""
    objectives, front = summary.get("objectives"), summary.get("pareto_front")
    if not objectives:
        return []
    lines = [
        f"Pareto front ({len(front)} of {summary['num_trials']} trials; maximise {objectives[0]}, minimise the rest):"
    ]
    for entry in front:
        values = "  ".join(f"{name} {entry['objectives'][name]:.4g}" for name in objectives)
        lines.append(f"  {entry['trial']}  {values}  {entry['model']}")
    if front:
        lines.append(
            f'pick one:   msa export {experiment} --pick "{objectives[1]}<VALUE" --format onnx --out model.onnx'
        )
    return lines

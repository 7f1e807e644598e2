"""Several objectives at once: the objectives a search may trade, which trials are
Pareto-optimal, and picking one trial of a front under constraints.

    objectives = parse_objectives("val_f1,latency_ms")        # ("val_f1", "latency_ms")
    modes = objective_modes(objectives)                       # ("max", "min")
    on_front = pareto_front(points, objectives, modes)        # positions of the non-dominated points
    entry = pick(summary["pareto_front"], "latency_ms<50", objectives)

A multi-objective search (``msa search --objectives``) maximises its first objective, a
validation score, and minimises the others, what running the model costs (msa.trial.costs
measures them). summary.json's ``pareto_front`` (msa.tune.front) and the report's front
(msa.analysis.front) both come from ``pareto_front`` here, and ``msa predict / export /
crossval --pick`` all choose with ``pick``. Pure Python: no torch, no Ray, no pandas.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from msa.experiment_dir import finite

ACCURACY_OBJECTIVES = ("val_acc", "val_f1", "val_uar")  # the first objective, maximised
COST_OBJECTIVES = ("latency_ms", "params", "size_mb")  # the others, minimised (msa.trial.costs)
OBJECTIVES = ACCURACY_OBJECTIVES + COST_OBJECTIVES
MIN_OBJECTIVES, MAX_OBJECTIVES = 2, 3
COMPARISONS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
CONSTRAINT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


class ObjectiveError(ValueError):
    """Bad --objectives or --pick text, or no trial meeting --pick (one line)."""


def parse_objectives(text: str | Sequence[str]) -> tuple[str, ...]:
    """--objectives "val_f1,latency_ms" (or a list of names) -> the names, checked: two or
    three, the first one of ACCURACY_OBJECTIVES, the others distinct COST_OBJECTIVES.
    Raises ObjectiveError."""
    names = tuple(part.strip() for part in text.split(",")) if isinstance(text, str) else tuple(text)
    flag = f"--objectives {','.join(names)}"
    if not MIN_OBJECTIVES <= len(names) <= MAX_OBJECTIVES:
        raise ObjectiveError(
            f"{flag}: give {MIN_OBJECTIVES} or {MAX_OBJECTIVES} objectives, got {len(names)}"
        )
    first, costs = names[0], names[1:]
    if first not in ACCURACY_OBJECTIVES:
        raise ObjectiveError(
            f"{flag}: the first objective is the score maximised, one of {', '.join(ACCURACY_OBJECTIVES)}; got {first!r}"
        )
    for name in costs:
        if name not in COST_OBJECTIVES:
            raise ObjectiveError(
                f"{flag}: the objectives after the first are costs minimised, from {', '.join(COST_OBJECTIVES)}; got {name!r}"
            )
    if len(set(costs)) != len(costs):
        raise ObjectiveError(f"{flag}: an objective is named twice")
    return names


def objective_modes(objectives: Sequence[str]) -> tuple[str, ...]:
    """The first objective is maximised, the others minimised."""
    return ("max",) + ("min",) * (len(objectives) - 1)


def _vector(point: Mapping, objectives: Sequence[str], modes: Sequence[str]) -> tuple[float, ...] | None:
    """The point's objectives turned so that lower is better; None when one is missing or not finite."""
    values = [finite(point.get(name)) for name in objectives]
    if any(value is None for value in values):
        return None
    return tuple(-value if mode == "max" else value for value, mode in zip(values, modes, strict=True))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Lower-is-better vectors: ``a`` is no worse than ``b`` anywhere and better somewhere."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_front(points: Sequence[Mapping], objectives: Sequence[str], modes: Sequence[str]) -> list[int]:
    """Positions (in input order) of the ``points`` no other point dominates, each objective in
    its mode's direction. Equal points do not dominate each other: all of them stay. A point
    with a missing or non-finite objective (NaN) is on no front and dominates nothing."""
    vectors = [_vector(point, objectives, modes) for point in points]
    scored = [(i, v) for i, v in enumerate(vectors) if v is not None]
    return [i for i, v in scored if not any(dominates(w, v) for _, w in scored)]


@dataclass(frozen=True)
class Constraint:
    """One ``NAME OP NUMBER`` of --pick."""

    name: str
    op: str
    value: float

    def holds(self, objectives: Mapping) -> bool:
        value = finite(objectives.get(self.name))
        return value is not None and COMPARISONS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


def parse_constraints(text: str, names: Sequence[str]) -> list[Constraint]:
    """--pick "latency_ms<50,size_mb<=20" -> the constraints, each on one of ``names`` (the
    search's objectives). Raises ObjectiveError."""
    constraints = []
    for part in text.split(","):
        match = CONSTRAINT.match(part)
        if not match:
            raise ObjectiveError(
                f"--pick {text!r}: {part.strip()!r} is not NAME<NUMBER (or <=, >, >=); e.g. latency_ms<50"
            )
        name, op, value = match.groups()
        if name not in names:
            raise ObjectiveError(
                f"--pick {text!r}: {name} is not an objective of this search ({', '.join(names)})"
            )
        constraints.append(Constraint(name, op, float(value)))
    return constraints


def pick(front: Sequence[Mapping], text: str, objectives: Sequence[str]) -> Mapping:
    """The entry of ``front`` (summary.json's pareto_front: each with an ``objectives`` map)
    with the best first objective among those meeting every constraint of ``text``; ties go to
    the lower costs, in the objectives' order. Raises ObjectiveError when the text is bad or no
    entry meets it."""
    constraints = parse_constraints(text, objectives)
    meeting = [entry for entry in front if all(c.holds(entry["objectives"]) for c in constraints)]
    if not meeting:
        ranges = ", ".join(_range(front, name) for name in {c.name: None for c in constraints})
        raise ObjectiveError(f"--pick {text!r}: no trial of the Pareto front meets it ({ranges})")
    modes = objective_modes(objectives)
    return min(meeting, key=lambda entry: _vector(entry["objectives"], objectives, modes) or (float("inf"),))


def _range(front: Sequence[Mapping], name: str) -> str:
    values = [v for v in (finite(entry["objectives"].get(name)) for entry in front) if v is not None]
    return (
        f"{name} on the front: {min(values):.4g} to {max(values):.4g}"
        if values
        else f"no {name} on the front"
    )


def add_pick_argument(parser, chooses: str) -> None:
    """The ``--pick CONSTRAINTS`` flag of the commands that take a trial (predict, export,
    crossval); ``chooses`` says what it picks ("the trial", "the configuration")."""
    parser.add_argument(
        "--pick",
        metavar="CONSTRAINTS",
        help=f"a multi-objective search: {chooses} of its Pareto front with the best first objective meeting "
        'CONSTRAINTS, e.g. "latency_ms<50" or "latency_ms<50,size_mb<=20"',
    )

"""Classes: which of a dataset's labels a search trains on (``--classes``), and their order.

The dataset declares its vocabulary (and any class presets it publishes, such as RAVDESS's
``seed4``); nothing else in msa lists emotions. ``--classes`` is

- ``all`` (the default): every label of the vocabulary that the data has, in its order;
- a preset name of the dataset (``all8``, ``seed4`` on RAVDESS);
- a subset, comma-separated: ``angry,happy,sad,neutral`` (the classes in that order);
- a mapping that groups labels, inline JSON or a ``.json`` file: ``{"negative": ["angry", "sad"],
  "positive": "happy"}`` (the classes in the mapping's order).

Every label named must exist in the data, or the one unknown is named in a DatasetError. Labels
no class takes are dropped. The class order is fixed here and recorded downstream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from msa.data.datasets.records import DatasetError

ALL = "all"
MIN_CLASSES = 2


@dataclass(frozen=True)
class LabelSet:
    name: str
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def index(self, label: str) -> int | None:
        """Class index of a label, or None when this set excludes it."""
        return self.labels.index(label) if label in self.labels else None


@dataclass(frozen=True)
class ClassMap:
    """The classes of a search and the dataset labels each one takes."""

    classes: tuple[str, ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # (class, its labels), in class order

    def class_of(self, label: str) -> str | None:
        """The class a dataset label belongs to, or None when no class takes it."""
        return next((name for name, labels in self.groups if label in labels), None)

    @classmethod
    def identity(cls, labels: Sequence[str]) -> ClassMap:
        return cls(tuple(labels), tuple((label, (label,)) for label in labels))


def class_map(
    spec: str,
    present: Sequence[str],
    presets: Mapping[str, Sequence[str]] | None = None,
    dataset: str = "the data",
) -> ClassMap:
    """The classes ``spec`` (a --classes value) names, over the labels ``present`` in the data
    (in vocabulary order). Raises DatasetError naming an unknown label or a bad mapping."""
    presets = presets or {}
    spec = spec.strip()
    if spec == ALL:
        chosen = ClassMap.identity(present)
    elif spec in presets:
        chosen = ClassMap.identity(presets[spec])
    elif spec.startswith("{") or spec.lower().endswith(".json"):
        chosen = ClassMap(*_groups(_read_mapping(spec)))
    else:
        labels = tuple(part.strip() for part in spec.split(",") if part.strip())
        if len(labels) == 1 and labels[0] not in present:
            choices = ", ".join([ALL, *presets]) if presets else ALL
            raise DatasetError(
                f"--classes {spec}: neither a label of {dataset} ({', '.join(present)}) nor one of its presets ({choices})"
            )
        if len(set(labels)) != len(labels):
            raise DatasetError(f"--classes {spec}: a label is named twice")
        chosen = ClassMap.identity(labels)
    for _, labels in chosen.groups:
        for label in labels:
            if label not in present:
                raise DatasetError(
                    f"--classes {spec}: unknown label {label!r}; {dataset} has {', '.join(present)}"
                )
    if len(chosen.classes) < MIN_CLASSES:
        raise DatasetError(
            f"--classes {spec}: at least {MIN_CLASSES} classes are needed, got {len(chosen.classes)}"
        )
    return chosen


def _read_mapping(spec: str) -> dict:
    try:
        text = spec if spec.startswith("{") else Path(spec).expanduser().read_text()
        mapping = json.loads(text)
    except OSError as error:
        raise DatasetError(f"--classes {spec}: cannot read it ({error.strerror or error})") from None
    except ValueError as error:
        raise DatasetError(f"--classes {spec}: not valid JSON ({error})") from None
    if not isinstance(mapping, dict) or not mapping:
        raise DatasetError(f"--classes {spec}: expected a JSON object of class -> label(s)")
    return mapping


def _groups(mapping: dict) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
    groups, taken = [], {}
    for name, labels in mapping.items():
        labels = (labels,) if isinstance(labels, str) else labels
        if not isinstance(labels, list | tuple) or not labels or not all(isinstance(x, str) for x in labels):
            raise DatasetError(f"--classes: class {name!r} must map to a label or a list of labels")
        for label in labels:
            if label in taken:
                raise DatasetError(f"--classes: label {label!r} is in both {taken[label]!r} and {name!r}")
            taken[label] = name
        groups.append((str(name), tuple(labels)))
    return tuple(name for name, _ in groups), tuple(groups)

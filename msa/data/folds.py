"""Actor-disjoint cross-validation folds: the published RAVDESS protocols and K seeded folds.

A fold names its test actors, the validation actors that choose the epoch to test (taken from
the actors the fold does not test, never from its test actors) and trains on every other
actor::

    folds = make_folds("ravdess6", actors=RAVDESS_ACTORS)
    folds[0]                       # Fold(number=1, train=(9, ..., 24), val=(5, 6, 7, 8), test=(1, 2, 3, 4))
    fold_data(trial_data, folds[0])  # the same clips, regrouped into that fold's parts

Presets (``PRESETS``) fix their test actors as published; where the publication names no
validation actors, a fold validates on the next fold's test actors (the last on the first's),
so every fold keeps its validation and test actors disjoint and each actor is tested once.
``K`` (an integer) deals the speakers present, on any dataset, into K gender-balanced folds (where
genders are known) in a seeded order, validating the same way. The presets are RAVDESS's: on
another dataset they are refused, naming the dataset they belong to.

Nested cross-validation searches on each fold's ``search_data``: its training and validation
clips only, so the search never holds a clip of the fold's test speakers.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from msa.data.datasets import RAVDESS_ACTORS, RAVDESS_DATASETS, SpeakerId
from msa.data.datasets.records import MALE
from msa.data.experiment import TrialData
from msa.data.splits import PARTS, SplitConfig, SplitError, split_actors, split_clips

MIN_FOLDS = 3  # a test, a validation and at least one training fold


class FoldError(ValueError):
    """Folds that cannot be made on this data: reported as one line, exit status 2."""


@dataclass(frozen=True)
class Fold:
    number: int  # 1-based, as tables show it
    train: tuple[SpeakerId, ...]
    val: tuple[SpeakerId, ...]
    test: tuple[SpeakerId, ...]


@dataclass(frozen=True)
class Preset:
    """A published protocol: its test actors per fold and, where it has them, validation actors."""

    protocol: str  # one line for tables and crossval.json
    test: tuple[tuple[int, ...], ...]
    val: tuple[tuple[int, ...], ...] | None = None  # None: each fold validates on the next fold's test actors


def _consecutive(size: int, count: int, start: int = 1) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(range(start + i * size, start + (i + 1) * size)) for i in range(count))


PRESETS = {
    "ravdess6": Preset(
        "6 folds of 4 consecutive actors (1-4, ..., 21-24), as HiCMAE (Information Fusion 2024)",
        test=_consecutive(4, 6),
    ),
    "chumachenko5": Preset(
        "5 folds: test 1-4 / val 5-8, ..., test 17-20 / val 21-24, the rest train, as Chumachenko et al. (ICPR 2022)",
        test=_consecutive(4, 5),
        val=_consecutive(4, 5, start=5),
    ),
    "lunajimenez5": Preset(
        "5 folds with the test actors of Luna-Jimenez et al. (Applied Sciences 2022)",
        test=(
            (2, 5, 14, 15, 16),
            (3, 6, 7, 13, 18),
            (10, 11, 12, 19, 20),
            (8, 17, 21, 23, 24),
            (1, 4, 9, 22),
        ),
    ),
}


def check_folds_arg(text: str, flag: str = "--folds") -> str:
    """A --folds value: a preset name or a whole number of folds (at least MIN_FOLDS). Raises
    FoldError, naming ``flag``."""
    if text in PRESETS:
        return text
    if text.isdigit() and int(text) >= MIN_FOLDS:
        return str(int(text))
    raise FoldError(f"{flag} {text}: use one of {', '.join(PRESETS)} or a number of folds K >= {MIN_FOLDS}")


def protocol(folds_arg: str) -> str:
    """One line describing the folds of a --folds value."""
    if folds_arg in PRESETS:
        return PRESETS[folds_arg].protocol
    return f"{folds_arg} speaker-disjoint folds of the speakers present, gender-balanced where known, seeded"


def suggested_folds(dataset: str, speakers: Iterable[SpeakerId]) -> str | None:
    """The published 6-fold protocol on all of RAVDESS's actors, else 4 folds (3 on 3 speakers);
    None where fewer than MIN_FOLDS speakers cannot be folded."""
    present = tuple(sorted(set(speakers)))
    if dataset in RAVDESS_DATASETS and present == RAVDESS_ACTORS:
        return "ravdess6"
    return str(min(4, len(present))) if len(present) >= MIN_FOLDS else None


def make_folds(
    folds_arg: str,
    actors: Iterable[SpeakerId],
    seed: int = 0,
    flag: str = "--folds",
    dataset: str = "ravdess",
    genders: dict[SpeakerId, str | None] | None = None,
) -> list[Fold]:
    """The folds of a --folds value over the speakers (``actors``) of ``dataset`` in the data;
    ``genders`` balance K folds (a speaker missing from it: gender unknown). Raises FoldError,
    naming ``flag``."""
    folds_arg = check_folds_arg(folds_arg, flag)
    actors = sorted(set(actors))
    if folds_arg in PRESETS:
        preset = PRESETS[folds_arg]
        if dataset not in RAVDESS_DATASETS:
            raise FoldError(
                f"{flag} {folds_arg} is a RAVDESS protocol ({', '.join(RAVDESS_DATASETS)}); the data is "
                f"{dataset}: use {flag} K for K speaker-disjoint folds"
            )
        if tuple(actors) != RAVDESS_ACTORS:
            missing = sorted(set(RAVDESS_ACTORS) - set(actors))
            extra = sorted(set(actors) - set(RAVDESS_ACTORS))
            everyone = _ranges(RAVDESS_ACTORS)
            problem = (
                f"lacks actors {_ranges(missing)}" if missing else f"has actors {extra} beyond {everyone}"
            )
            raise FoldError(
                f"{flag} {folds_arg} needs RAVDESS's actors {everyone}, but the data {problem}; "
                f"use {flag} K for K gender-balanced folds of the actors present"
            )
        tests, vals = preset.test, preset.val
    else:
        if int(folds_arg) > len(actors):
            raise FoldError(
                f"{flag} {folds_arg}: the data has only {len(actors)} speakers ({_ranges(actors)})"
            )
        tests = balanced_groups(actors, int(folds_arg), seed, genders or {})
        vals = None
    if vals is None:
        vals = tests[1:] + tests[:1]
    return [
        Fold(number, tuple(a for a in actors if a not in set(val) | set(test)), tuple(val), tuple(test))
        for number, (test, val) in enumerate(zip(tests, vals, strict=True), start=1)
    ]


def balanced_groups(
    actors: Sequence[SpeakerId], count: int, seed: int, genders: dict[SpeakerId, str | None]
) -> tuple[tuple[SpeakerId, ...], ...]:
    """``actors`` dealt into ``count`` groups whose sizes, and numbers of male and of other
    speakers, differ by at most one; which speaker goes where is the seeded draw."""
    rng = random.Random(seed)
    males = [a for a in actors if genders.get(a) == MALE]
    females = [a for a in actors if genders.get(a) != MALE]
    rng.shuffle(males)
    rng.shuffle(females)
    groups: list[list[SpeakerId]] = [[] for _ in range(count)]
    # The others continue the deal where the males stopped, so group sizes stay within one.
    for position, actor in enumerate(males + females):
        groups[position % count].append(actor)
    return tuple(tuple(sorted(group)) for group in groups)


def fold_data(data: TrialData, fold: Fold) -> TrialData:
    """``data``'s clips (all of its parts) regrouped into the fold's train, val and test parts.
    Raises SplitError when the fold's training actors lack a class."""
    items = [item for part in PARTS for item in data.parts[part]]
    records = [item.record for item in items]
    split = SplitConfig("actor", val_actors=fold.val, test_actors=fold.test)
    parts = split_clips(records, split, data.labels)
    return replace(
        data,
        parts={part: [items[i] for i in parts[part]] for part in PARTS},
        actors=split_actors(records, parts),
    )


def search_data(data: TrialData) -> TrialData:
    """A fold's clips (``fold_data``'s) as its nested search sees them: the train and val parts
    as they are, no test part. A search on it cannot read a clip of the fold's test speakers,
    not even to cache its features: they are not in the data it is given."""
    return replace(data, parts={**data.parts, "test": []}, actors={**data.actors, "test": []})


def folds_of(
    data: TrialData, folds_arg: str, seed: int = 0, flag: str = "--folds"
) -> list[tuple[Fold, TrialData]]:
    """Every fold of a --folds value over ``data``'s actors, with its clips. Raises FoldError
    (folds the actors cannot make) or SplitError (a fold's training actors lack a class)."""
    if not data_actors(data):
        raise FoldError(f"{flag} {folds_arg}: the data names no speakers, so no fold can keep them apart")
    folds = make_folds(folds_arg, data_actors(data), seed, flag, data.dataset, data_genders(data))
    regrouped = []
    for fold in folds:
        try:
            regrouped.append((fold, fold_data(data, fold)))
        except SplitError as error:
            raise SplitError(
                f"{flag} {folds_arg}: fold {fold.number}: {error}{_sparse_classes(data)}"
            ) from None
    return regrouped


def _sparse_classes(data: TrialData) -> str:
    """Where a class has clips of few speakers, say so: a fold that holds them all out cannot
    train on it."""
    speakers: dict[str, set] = {label: set() for label in data.labels}
    for part in PARTS:
        for item in data.parts[part]:
            speakers[item.record.label].add(item.record.speaker)
    fewest = min(data.labels, key=lambda label: len(speakers[label]))
    count = len(speakers[fewest])
    return f" ({fewest} has clips of {count} speaker{'s' if count != 1 else ''} only)" if count <= 3 else ""


def data_actors(data: TrialData) -> list[SpeakerId]:
    """Every speaker with a clip in ``data``."""
    return sorted({item.record.speaker for part in PARTS for item in data.parts[part]} - {None})


def data_genders(data: TrialData) -> dict[SpeakerId, str | None]:
    """Each speaker's gender (None: unknown)."""
    return {item.record.speaker: item.record.gender for part in PARTS for item in data.parts[part]}


def _ranges(actors: Iterable[SpeakerId]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"; string ids are listed as they are."""
    actors = sorted(actors)
    if not all(isinstance(actor, int) for actor in actors):
        return ", ".join(map(str, actors))
    spans: list[list[int]] = []
    for actor in actors:
        if spans and actor == spans[-1][1] + 1:
            spans[-1][1] = actor
        else:
            spans.append([actor, actor])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)

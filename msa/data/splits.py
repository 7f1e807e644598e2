"""Train / val / test splits.

``actor`` (the default) is speaker-independent: no speaker appears in two parts, each part is
balanced between male and other speakers where genders are known, and every class is present
in train. ``random`` is stratified by class over clips; it leaks speakers and repetitions
between the parts and exists to reproduce the seed project's numbers and for data that names
no speakers. (The flags keep RAVDESS's word for speakers: actors.)
"""

from __future__ import annotations

import argparse
import math
import random
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from msa.data.datasets.records import MALE, ClipRecord, SpeakerId

SPLIT_METHODS = ("actor", "random")
PARTS = ("train", "val", "test")
HELD_OUT_FRACTION = 1 / 6  # of actors (or clips) in each of val and test: 24 actors -> 16/4/4
MAX_SPLIT_ATTEMPTS = 200


class SplitError(ValueError):
    pass


@dataclass(frozen=True)
class SplitConfig:
    method: str = "actor"
    seed: int = 0
    val_actors: tuple[SpeakerId, ...] = ()
    test_actors: tuple[SpeakerId, ...] = ()

    def __post_init__(self):
        if self.method not in SPLIT_METHODS:
            raise SplitError(f"unknown split {self.method!r}; choose from {', '.join(SPLIT_METHODS)}")
        if (self.val_actors or self.test_actors) and self.method != "actor":
            raise SplitError("explicit val/test actors need --split actor")


def actor_list(text: str) -> tuple[SpeakerId, ...]:
    """ "3,4" -> (3, 4), "spk1,spk2" -> ("spk1", "spk2"): an argparse type for flags naming
    speakers (--val-actors, --test-actors). Numbers are int ids, as the datasets give them."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated speaker ids like 3,4, got {text!r}")
    if all(part.isdigit() for part in parts):
        return tuple(sorted({int(part) for part in parts}))
    return tuple(sorted(set(parts)))


def split_clips(
    records: Sequence[ClipRecord], config: SplitConfig, required_labels: Sequence[str]
) -> dict[str, list[int]]:
    """Indices into ``records`` for each part, sorted. ``required_labels`` must all appear in train."""
    if config.method == "random":
        return _random_split(records, config.seed)
    actors = actor_split(records, config, required_labels)
    return {part: [i for i, record in enumerate(records) if record.speaker in actors[part]] for part in PARTS}


def actor_split(
    records: Sequence[ClipRecord], config: SplitConfig, required_labels: Sequence[str]
) -> dict[str, list[SpeakerId]]:
    """Speaker ids for each part. Explicit val/test speakers win; otherwise a seeded draw that
    is gender-balanced in every part and has every required label in train."""
    labels_by_actor: dict[SpeakerId, set[str]] = defaultdict(set)
    genders: dict[SpeakerId, str | None] = {}
    for record in records:
        labels_by_actor[record.speaker].add(record.label)
        genders[record.speaker] = record.gender
    actors = sorted(labels_by_actor)

    if config.val_actors or config.test_actors:
        split = _explicit_split(actors, config)
    else:
        split = _seeded_split(actors, genders, config.seed, labels_by_actor, set(required_labels))
    missing = set(required_labels) - set().union(*(labels_by_actor[a] for a in split["train"]))
    if missing:
        raise SplitError(f"train speakers {split['train']} have no clips of {', '.join(sorted(missing))}")
    return split


def _explicit_split(actors: list[int], config: SplitConfig) -> dict[str, list[int]]:
    val, test = set(config.val_actors), set(config.test_actors)
    unknown = (val | test) - set(actors)
    if unknown:
        raise SplitError(f"speakers {sorted(unknown, key=str)} have no clips in the data (present: {actors})")
    if val & test:
        raise SplitError(f"speakers {sorted(val & test, key=str)} are in both --val-actors and --test-actors")
    if not val or not test:
        raise SplitError("give both --val-actors and --test-actors")
    train = [a for a in actors if a not in val | test]
    if not train:
        raise SplitError("no speaker left for training after --val-actors and --test-actors")
    return {"train": train, "val": sorted(val), "test": sorted(test)}


def held_out_count(num_actors: int) -> int:
    return max(1, math.ceil(num_actors * HELD_OUT_FRACTION))


def _seeded_split(
    actors: list[SpeakerId],
    genders: dict[SpeakerId, str | None],
    seed: int,
    labels_by_actor: dict[SpeakerId, set[str]],
    required: set[str],
) -> dict[str, list[SpeakerId]]:
    k = held_out_count(len(actors))
    if len(actors) < 2 * k + 1:
        raise SplitError(f"a speaker split needs at least 3 speakers; the data has {len(actors)}: {actors}")
    rng = random.Random(seed)
    for _ in range(MAX_SPLIT_ATTEMPTS):
        # Balanced between male and other speakers (female, another gender, or unknown).
        males = [a for a in actors if genders[a] == MALE]
        females = [a for a in actors if genders[a] != MALE]
        rng.shuffle(males)
        rng.shuffle(females)
        val = _draw_balanced(k, males, females, rng)
        test = _draw_balanced(k, males, females, rng)
        train = sorted(males + females)
        if required <= set().union(*(labels_by_actor[a] for a in train)):
            return {"train": train, "val": sorted(val), "test": sorted(test)}
    raise SplitError(f"no actor split with every class in train after {MAX_SPLIT_ATTEMPTS} draws")


def _draw_balanced(
    k: int, males: list[SpeakerId], females: list[SpeakerId], rng: random.Random
) -> list[SpeakerId]:
    """Pop k actors, half of each gender; an odd one out (or a shortage) is taken from the
    gender with more actors left, ties broken by the rng."""
    drawn = []
    for i in range(k):
        if i % 2 == 0:
            prefer_male = len(males) > len(females) or (len(males) == len(females) and rng.random() < 0.5)
        else:
            prefer_male = not prefer_male
        source = males if (prefer_male and males) or not females else females
        drawn.append(source.pop())
    return drawn


def _random_split(records: Sequence[ClipRecord], seed: int) -> dict[str, list[int]]:
    warnings.warn(
        "--split random leaks speakers and repetitions between train, val and test: its numbers "
        "are not speaker-independent and overstate how a model does on new speakers",
        UserWarning,
        stacklevel=3,
    )
    by_emotion: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        by_emotion[record.label].append(index)
    rng = random.Random(seed)
    parts: dict[str, list[int]] = {part: [] for part in PARTS}
    for emotion in sorted(by_emotion):
        indices = by_emotion[emotion]
        rng.shuffle(indices)
        held_out = round(len(indices) * HELD_OUT_FRACTION)
        parts["val"] += indices[:held_out]
        parts["test"] += indices[held_out : 2 * held_out]
        parts["train"] += indices[2 * held_out :]
    return {part: sorted(indices) for part, indices in parts.items()}


def split_actors(records: Sequence[ClipRecord], parts: dict[str, list[int]]) -> dict[str, list[SpeakerId]]:
    """The speakers present in each part (they overlap only under the random split)."""
    return {part: sorted({records[i].speaker for i in indices} - {None}) for part, indices in parts.items()}

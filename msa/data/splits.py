"""Train / val / test splits.

``actor`` (the default) is speaker-independent: no actor appears in two parts, each part is
balanced between male (odd) and female (even) actors, and every class is present in train.
``random`` is stratified by emotion over clips; it leaks actors and repetitions between the
parts and exists only to reproduce the seed project's numbers.
"""

from __future__ import annotations

import argparse
import math
import random
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from msa.data.ravdess import ClipName

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
    val_actors: tuple[int, ...] = ()
    test_actors: tuple[int, ...] = ()

    def __post_init__(self):
        if self.method not in SPLIT_METHODS:
            raise SplitError(f"unknown split {self.method!r}; choose from {', '.join(SPLIT_METHODS)}")
        if (self.val_actors or self.test_actors) and self.method != "actor":
            raise SplitError("explicit val/test actors need --split actor")


def actor_list(text: str) -> tuple[int, ...]:
    """ "3,4" -> (3, 4): an argparse type for flags naming actors (--val-actors, --test-actors)."""
    try:
        actors = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated actor ids like 3,4, got {text!r}"
        ) from None
    if not actors or min(actors) < 1:
        raise argparse.ArgumentTypeError(f"expected positive actor ids like 3,4, got {text!r}")
    return actors


def split_clips(
    names: Sequence[ClipName], config: SplitConfig, required_emotions: Sequence[int]
) -> dict[str, list[int]]:
    """Indices into ``names`` for each part, sorted. ``required_emotions`` (RAVDESS codes) must
    all appear in train."""
    if config.method == "random":
        return _random_split(names, config.seed)
    actors = actor_split(names, config, required_emotions)
    return {part: [i for i, name in enumerate(names) if name.actor in actors[part]] for part in PARTS}


def actor_split(
    names: Sequence[ClipName], config: SplitConfig, required_emotions: Sequence[int]
) -> dict[str, list[int]]:
    """Actor ids for each part. Explicit val/test actors win; otherwise a seeded draw that is
    gender-balanced in every part and has every required emotion in train."""
    emotions_by_actor: dict[int, set[int]] = defaultdict(set)
    for name in names:
        emotions_by_actor[name.actor].add(name.emotion)
    actors = sorted(emotions_by_actor)

    if config.val_actors or config.test_actors:
        split = _explicit_split(actors, config)
    else:
        split = _seeded_split(actors, config.seed, emotions_by_actor, set(required_emotions))
    missing = set(required_emotions) - set().union(*(emotions_by_actor[a] for a in split["train"]))
    if missing:
        raise SplitError(f"train actors {split['train']} have no clips of emotion codes {sorted(missing)}")
    return split


def _explicit_split(actors: list[int], config: SplitConfig) -> dict[str, list[int]]:
    val, test = set(config.val_actors), set(config.test_actors)
    unknown = (val | test) - set(actors)
    if unknown:
        raise SplitError(f"actors {sorted(unknown)} have no clips in the data (present: {actors})")
    if val & test:
        raise SplitError(f"actors {sorted(val & test)} are in both --val-actors and --test-actors")
    if not val or not test:
        raise SplitError("give both --val-actors and --test-actors")
    train = [a for a in actors if a not in val | test]
    if not train:
        raise SplitError("no actor left for training after --val-actors and --test-actors")
    return {"train": train, "val": sorted(val), "test": sorted(test)}


def held_out_count(num_actors: int) -> int:
    return max(1, math.ceil(num_actors * HELD_OUT_FRACTION))


def _seeded_split(
    actors: list[int], seed: int, emotions_by_actor: dict[int, set[int]], required: set[int]
) -> dict[str, list[int]]:
    k = held_out_count(len(actors))
    if len(actors) < 2 * k + 1:
        raise SplitError(f"an actor split needs at least 3 actors; the data has {len(actors)}: {actors}")
    rng = random.Random(seed)
    for _ in range(MAX_SPLIT_ATTEMPTS):
        males = [a for a in actors if a % 2 == 1]
        females = [a for a in actors if a % 2 == 0]
        rng.shuffle(males)
        rng.shuffle(females)
        val = _draw_balanced(k, males, females, rng)
        test = _draw_balanced(k, males, females, rng)
        train = sorted(males + females)
        if required <= set().union(*(emotions_by_actor[a] for a in train)):
            return {"train": train, "val": sorted(val), "test": sorted(test)}
    raise SplitError(f"no actor split with every class in train after {MAX_SPLIT_ATTEMPTS} draws")


def _draw_balanced(k: int, males: list[int], females: list[int], rng: random.Random) -> list[int]:
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


def _random_split(names: Sequence[ClipName], seed: int) -> dict[str, list[int]]:
    warnings.warn(
        "--split random leaks actors and repetitions between train, val and test; "
        "use it only to reproduce the seed project (its numbers are not speaker-independent)",
        UserWarning,
        stacklevel=3,
    )
    by_emotion: dict[int, list[int]] = defaultdict(list)
    for index, name in enumerate(names):
        by_emotion[name.emotion].append(index)
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


def split_actors(names: Sequence[ClipName], parts: dict[str, list[int]]) -> dict[str, list[int]]:
    """The actors present in each part (they overlap only under the random split)."""
    return {part: sorted({names[i].actor for i in indices}) for part, indices in parts.items()}

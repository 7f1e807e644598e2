import itertools

import pytest

from msa.data.datasets.ravdess import EMOTIONS, ClipName
from msa.data.datasets.records import ClipRecord
from msa.data.splits import SplitConfig, SplitError, actor_list, actor_split, split_actors, split_clips

ALL_EMOTIONS = EMOTIONS  # the labels every train part must have


def clips_of(actors, emotions=range(1, 9), statements=(1, 2)):
    """Records of RAVDESS clips (emotion codes), as the RAVDESS adapter makes them."""
    return [
        ClipName(1, 1, e, 1, s, 1, a).record() for a, e, s in itertools.product(actors, emotions, statements)
    ]


def males(actors):
    return sum(a % 2 for a in actors)


@pytest.mark.parametrize(
    "num_actors, sizes", [(24, (16, 4, 4)), (8, (4, 2, 2)), (6, (4, 1, 1)), (3, (1, 1, 1))]
)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_actor_split_properties(num_actors, sizes, seed):
    names = clips_of(range(1, num_actors + 1))
    split = actor_split(names, SplitConfig(seed=seed), ALL_EMOTIONS)
    assert tuple(len(split[p]) for p in ("train", "val", "test")) == sizes
    assert set(split["train"]).isdisjoint(split["val"]) and set(split["train"]).isdisjoint(split["test"])
    assert set(split["val"]).isdisjoint(split["test"])
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(1, num_actors + 1))
    for part in split.values():
        assert abs(2 * males(part) - len(part)) <= 1, f"part {part} is not gender-balanced"
    assert split == actor_split(names, SplitConfig(seed=seed), ALL_EMOTIONS), "deterministic from the seed"


def test_different_seeds_give_different_splits():
    names = clips_of(range(1, 25))
    splits = {tuple(actor_split(names, SplitConfig(seed=s), ALL_EMOTIONS)["test"]) for s in range(10)}
    assert len(splits) > 5


def test_any_subset_of_actors():
    names = clips_of([2, 5, 9, 14, 17, 22])
    split = actor_split(names, SplitConfig(seed=3), ALL_EMOTIONS)
    assert sorted(sum(split.values(), [])) == [2, 5, 9, 14, 17, 22]


def test_every_class_present_in_train():
    # Actor 1 is the only one with "surprised" clips: it must end up in train.
    names = clips_of(range(1, 9), emotions=range(1, 8)) + clips_of([1], emotions=[8])
    for seed in range(20):
        assert 1 in actor_split(names, SplitConfig(seed=seed), ALL_EMOTIONS)["train"]


def test_explicit_actors():
    names = clips_of(range(1, 9))
    split = actor_split(names, SplitConfig(val_actors=(3, 4), test_actors=(7, 8)), ALL_EMOTIONS)
    assert split == {"train": [1, 2, 5, 6], "val": [3, 4], "test": [7, 8]}
    parts = split_clips(names, SplitConfig(val_actors=(3, 4), test_actors=(7, 8)), ALL_EMOTIONS)
    assert split_actors(names, parts) == split


@pytest.mark.parametrize(
    "val, test, message",
    [((3,), (3,), "both"), ((30,), (4,), "no clips"), ((3,), (), "both --val-actors and --test-actors")],
)
def test_bad_explicit_actors(val, test, message):
    with pytest.raises(SplitError, match=message):
        actor_split(clips_of(range(1, 9)), SplitConfig(val_actors=val, test_actors=test), ALL_EMOTIONS)


def test_too_few_actors():
    with pytest.raises(SplitError, match="at least 3 speakers"):
        actor_split(clips_of([1, 2]), SplitConfig(), ALL_EMOTIONS)


def test_random_split_is_stratified_and_warns():
    names = clips_of(range(1, 9))
    with pytest.warns(UserWarning, match="leaks speakers"):
        parts = split_clips(names, SplitConfig(method="random", seed=0), ALL_EMOTIONS)
    assert sorted(sum(parts.values(), [])) == list(range(len(names)))
    for emotion in ALL_EMOTIONS:
        counts = [sum(names[i].label == emotion for i in parts[p]) for p in ("train", "val", "test")]
        assert counts == [10, 3, 3]  # 16 clips each: round(16 / 6) = 3 held out per part
    with pytest.warns(UserWarning):
        assert parts == split_clips(names, SplitConfig(method="random", seed=0), ALL_EMOTIONS)


def test_unknown_method():
    with pytest.raises(SplitError, match="unknown split"):
        SplitConfig(method="speaker")


def test_string_speakers_and_unknown_genders():
    """A manifest's speakers: string ids, no genders; the split is still speaker-disjoint."""
    records = [
        ClipRecord(label, f"spk{speaker}", None) for speaker in range(1, 7) for label in ("angry", "happy")
    ]
    split = actor_split(records, SplitConfig(seed=1), ("angry", "happy"))
    assert sorted(sum(split.values(), [])) == [f"spk{n}" for n in range(1, 7)]
    assert all(len(split[part]) == 1 for part in ("val", "test"))


def test_actor_list_reads_numbers_and_names():
    assert actor_list("4,3") == (3, 4)
    assert actor_list("spk2, spk1") == ("spk1", "spk2")

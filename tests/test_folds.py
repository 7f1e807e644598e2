"""Cross-validation folds: the published presets as published, K balanced folds, disjoint parts."""

from collections import Counter

import pytest

from msa.data.folds import (
    PRESETS,
    RAVDESS_ACTORS,
    FoldError,
    check_folds_arg,
    data_actors,
    fold_data,
    make_folds,
)
from msa.data.splits import SplitError


def assert_disjoint_and_complete(folds, actors):
    for fold in folds:
        train, val, test = set(fold.train), set(fold.val), set(fold.test)
        assert train and val and test
        assert not (train & val or train & test or val & test), fold
        assert train | val | test == set(actors), fold


@pytest.mark.parametrize("preset", ["ravdess6", "lunajimenez5"])
def test_presets_test_every_actor_exactly_once(preset):
    folds = make_folds(preset, RAVDESS_ACTORS)
    assert_disjoint_and_complete(folds, RAVDESS_ACTORS)
    assert sorted(a for fold in folds for a in fold.test) == list(RAVDESS_ACTORS)
    # Without published validation actors, a fold validates on the next fold's test actors.
    for fold, following in zip(folds, folds[1:] + folds[:1]):
        assert fold.val == following.test


def test_ravdess6_is_six_folds_of_four_consecutive_actors():
    folds = make_folds("ravdess6", RAVDESS_ACTORS)
    assert [fold.test for fold in folds] == [tuple(range(s, s + 4)) for s in (1, 5, 9, 13, 17, 21)]
    assert all(len(fold.train) == 16 for fold in folds)


def test_lunajimenez5_matches_the_published_test_actors():
    folds = make_folds("lunajimenez5", RAVDESS_ACTORS)
    assert [fold.test for fold in folds] == [
        (2, 5, 14, 15, 16),
        (3, 6, 7, 13, 18),
        (10, 11, 12, 19, 20),
        (8, 17, 21, 23, 24),
        (1, 4, 9, 22),
    ]


def test_chumachenko5_as_published_actors_21_to_24_only_validate():
    folds = make_folds("chumachenko5", RAVDESS_ACTORS)
    assert_disjoint_and_complete(folds, RAVDESS_ACTORS)
    assert [(fold.test, fold.val) for fold in folds] == [
        ((1, 2, 3, 4), (5, 6, 7, 8)),
        ((5, 6, 7, 8), (9, 10, 11, 12)),
        ((9, 10, 11, 12), (13, 14, 15, 16)),
        ((13, 14, 15, 16), (17, 18, 19, 20)),
        ((17, 18, 19, 20), (21, 22, 23, 24)),
    ]
    tested = {a for fold in folds for a in fold.test}
    assert tested == set(range(1, 21))
    assert all({21, 22, 23, 24} <= set(fold.val) or {21, 22, 23, 24} <= set(fold.train) for fold in folds)


@pytest.mark.parametrize(
    "k, actors", [(3, range(1, 5)), (4, range(1, 9)), (5, range(1, 25)), (6, range(3, 20))]
)
def test_k_folds_are_gender_balanced_and_test_every_actor_once(k, actors):
    actors = list(actors)
    genders = {a: "male" if a % 2 else "female" for a in actors}  # RAVDESS's rule
    folds = make_folds(str(k), actors, seed=7, genders=genders)
    assert len(folds) == k
    assert_disjoint_and_complete(folds, actors)
    assert Counter(a for fold in folds for a in fold.test) == Counter(actors)
    sizes = [len(fold.test) for fold in folds]
    males = [sum(a % 2 for a in fold.test) for fold in folds]
    females = [len(fold.test) - m for fold, m in zip(folds, males)]
    for counts in (sizes, males, females):
        assert max(counts) - min(counts) <= 1, (counts, folds)


def test_k_folds_follow_the_seed():
    assert make_folds("4", range(1, 25), seed=1) == make_folds("4", range(1, 25), seed=1)
    assert make_folds("4", range(1, 25), seed=1) != make_folds("4", range(1, 25), seed=2)


def test_a_named_preset_on_data_lacking_actors_says_which():
    with pytest.raises(
        FoldError, match=r"ravdess6 needs RAVDESS's actors 1-24, but the data lacks actors 9-24"
    ):
        make_folds("ravdess6", range(1, 9))


@pytest.mark.parametrize("bad", ["2", "0", "six", "ravdess7", "-3"])
def test_bad_folds_values_are_refused(bad):
    with pytest.raises(FoldError, match=f"--folds {bad}"):
        check_folds_arg(bad)


def test_more_folds_than_actors_is_refused():
    with pytest.raises(FoldError, match="only 4 speakers"):
        make_folds("5", range(1, 5))


def test_presets_list_the_published_protocols():
    assert set(PRESETS) == {"ravdess6", "chumachenko5", "lunajimenez5"}


def test_fold_data_regroups_every_clip_by_the_fold(tiny_trial_data):
    actors = data_actors(tiny_trial_data)
    all_clips = sorted(item.key for items in tiny_trial_data.parts.values() for item in items)
    for fold in make_folds("3", actors):
        data = fold_data(tiny_trial_data, fold)
        assert sorted(item.key for items in data.parts.values() for item in items) == all_clips
        for part, wanted in (("train", fold.train), ("val", fold.val), ("test", fold.test)):
            assert {item.record.speaker for item in data.parts[part]} == set(wanted)
            assert data.actors[part] == sorted(wanted)


def test_fold_data_refuses_training_actors_without_a_class(tiny_trial_data):
    from dataclasses import replace

    from msa.data.folds import Fold

    actors = data_actors(tiny_trial_data)
    train_actor = actors[0]
    items = {
        part: [
            item
            for item in items
            if not (item.record.speaker == train_actor and item.record.label == tiny_trial_data.labels[0])
        ]
        for part, items in tiny_trial_data.parts.items()
    }
    data = replace(tiny_trial_data, parts=items)
    fold = Fold(1, (train_actor,), (actors[1],), tuple(actors[2:]))
    with pytest.raises(SplitError, match=f"no clips of {tiny_trial_data.labels[0]}"):
        fold_data(data, fold)


def test_presets_belong_to_ravdess():
    with pytest.raises(
        FoldError, match=r"--folds ravdess6 is a RAVDESS protocol .* the data is crema-d: use --folds K"
    ):
        make_folds("ravdess6", RAVDESS_ACTORS, dataset="crema-d")
    assert len(make_folds("ravdess6", RAVDESS_ACTORS, dataset="ravdess-audio")) == 6


def test_k_folds_of_named_speakers_with_unknown_genders():
    speakers = [f"spk{n:02d}" for n in range(1, 8)]
    folds = make_folds("3", speakers, seed=1, dataset="manifest")
    assert_disjoint_and_complete(folds, speakers)
    assert sorted(len(fold.test) for fold in folds) == [2, 2, 3]


def test_a_class_of_one_speaker_cannot_be_folded(tiny_trial_data):
    from dataclasses import replace

    from msa.data.folds import folds_of

    label, keeper = tiny_trial_data.labels[0], data_actors(tiny_trial_data)[0]
    items = {
        part: [item for item in items if item.record.label != label or item.record.speaker == keeper]
        for part, items in tiny_trial_data.parts.items()
    }
    with pytest.raises(SplitError, match=rf"--folds 3: fold \d: .*\({label} has clips of 1 speaker only\)"):
        folds_of(replace(tiny_trial_data, parts=items), "3")


@pytest.mark.parametrize("folds_arg", ["3", "4"])
def test_a_nested_search_holds_no_clip_of_its_outer_test_speakers(tiny_trial_data, folds_arg):
    """Each outer fold's search_data (what its trials are given) has the fold's training and
    validation clips and not one clip of its test speakers; across the outer folds every
    speaker is tested exactly once."""
    from msa.data.folds import folds_of, search_data

    tested = Counter()
    for fold, data in folds_of(tiny_trial_data, folds_arg):
        searched = search_data(data)
        speakers = {item.record.speaker for items in searched.parts.values() for item in items}
        assert not speakers & set(fold.test), fold
        assert searched.parts["test"] == [] and searched.actors["test"] == []
        assert searched.parts["train"] == data.parts["train"] and searched.parts["val"] == data.parts["val"]
        assert {item.record.speaker for item in data.parts["test"]} == set(fold.test)  # kept for the one test
        tested.update(fold.test)
    assert tested == Counter(data_actors(tiny_trial_data))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_nested_presets_hold_each_outer_test_group_out_of_its_search(preset):
    """The presets' outer folds as published: their test groups, and a search on the rest."""
    folds = make_folds(preset, RAVDESS_ACTORS)
    assert [fold.test for fold in folds] == list(PRESETS[preset].test)
    for fold in folds:
        assert not set(fold.test) & (set(fold.train) | set(fold.val))

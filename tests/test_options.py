"""SearchOptions: the command line typed, grouped, saved and read back for --resume."""

import json

import pytest

from msa.tune.command_line import build_parser
from msa.tune.options import DataOptions, SearchOptions, UsageError
from msa.tune.tracking.options import TrackingError, optuna_storage_url
from search_spaces import SPACES


def parse(*argv: str) -> SearchOptions:
    return SearchOptions.from_namespace(
        build_parser().parse_args(["--space", "video_transformer", *argv]), SPACES
    )


def test_defaults_and_groups():
    options = parse()
    assert options.data == DataOptions() and options.data.frames == 16 and options.data.feature_cache
    assert (
        options.budget.num_samples,
        options.budget.max_epochs,
        options.budget.metric,
        options.budget.mode,
    ) == (8, 8, "val_acc", "max")
    assert options.resources.cpus_per_trial == 1.0 and options.resources.threads == 1
    assert options.output.storage == "./ray_results" and options.weights.pretrained == "auto"


def test_smoke_test_defaults_yield_to_given_flags():
    options = parse("--smoke-test", "--max-epochs", "3")
    assert options.smoke_test and options.budget.max_epochs == 3 and options.budget.num_samples == 2
    assert (options.data.frames, options.data.image_size) == (4, 32)


def test_mode_follows_a_loss_metric_unless_given():
    assert parse("--metric", "val_loss").budget.mode == "min"
    assert parse("--metric", "val_loss", "--mode", "max").budget.mode == "max"


def test_json_round_trip_keeps_uris_strings_and_tuples():
    options = parse(
        "--data",
        "gs://bucket/RAVDESS",
        "--storage",
        "s3://b/msa",
        "--val-actors",
        "3,4",
        "--test-actors",
        "5,6",
        "--no-feature-cache",
        "--cpus-per-trial",
        "2",
        "--video-weights",
        "https://x/resnet18-abcd1234.pth",
    )
    flat = options.to_json()
    assert (
        flat["data"] == "gs://bucket/RAVDESS"
        and flat["no_feature_cache"] is True
        and flat["val_actors"] == [3, 4]
    )
    again = SearchOptions.from_json(json.dumps(flat))
    assert again == options
    assert (
        again.data.data == "gs://bucket/RAVDESS"
        and again.data.val_actors == (3, 4)
        and not again.data.feature_cache
    )


def test_a_run_saved_before_newer_flags_reads_with_defaults():
    """msa_args.json of an older msa: no no_feature_cache / pretrained keys, a list_spaces key."""
    saved = {
        "space": "audio_wav2vec",
        "list_spaces": False,
        "data": "file:///data/RAVDESS",
        "max_epochs": 5,
        "metric": "val_f1",
    }
    options = SearchOptions.from_json(json.dumps(saved))
    assert options.space == "audio_wav2vec" and options.data.data == "file:///data/RAVDESS"
    assert (
        options.data.feature_cache and options.weights.pretrained == "auto" and options.budget.mode == "max"
    )


def test_unknown_saved_key_is_an_error():
    with pytest.raises(UsageError, match="unknown option.*frobnicate"):
        SearchOptions.from_json(json.dumps({"space": "video_transformer", "frobnicate": 1}))


def test_resume_takes_the_saved_search_and_this_runs_resources(tmp_path):
    saved = parse(
        "--data",
        "file:///data/RAVDESS",
        "--max-epochs",
        "6",
        "--seed",
        "7",
        "--cpus-per-trial",
        "1",
        "--storage",
        str(tmp_path),
        "--name",
        "exp",
    )
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "msa_args.json").write_text(json.dumps(saved.to_json()))
    resumed = parse(
        "--resume", "--name", "exp", "--storage", str(tmp_path), "--cpus-per-trial", "2", "--max-epochs", "99"
    ).resumed()
    assert resumed.data.data == "file:///data/RAVDESS", "a storage URI stays a URI"
    assert (resumed.budget.max_epochs, resumed.budget.seed) == (6, 7), "the search is the saved one"
    assert resumed.resources.cpus_per_trial == 2 and resumed.output.resume, (
        "resources and output are this run's"
    )


def test_resume_keeps_the_saved_crossval_and_adds_a_new_one(tmp_path):
    saved = parse("--crossval", "4", "--storage", str(tmp_path), "--name", "exp")
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "msa_args.json").write_text(json.dumps(saved.to_json()))
    again = parse("--resume", "--name", "exp", "--storage", str(tmp_path)).resumed()
    assert again.evaluation.crossval == "4", "the interrupted run's --crossval still follows the search"
    other = parse("--resume", "--name", "exp", "--storage", str(tmp_path), "--crossval", "ravdess6").resumed()
    assert other.evaluation.crossval == "ravdess6"


@pytest.mark.parametrize("value", ["2", "seven", "ravdess"])
def test_bad_crossval_values_are_refused(value):
    with pytest.raises(UsageError, match=f"--crossval {value}: use one of ravdess6"):
        parse("--crossval", value).check()


def test_optuna_storage_default_lives_in_the_experiment(tmp_path):
    options = parse("--optuna-storage", "default", "--storage", str(tmp_path), "--name", "exp")
    options.check()
    url = optuna_storage_url(options.tracking, options.output.storage, "exp")
    assert url == f"sqlite:///{tmp_path.resolve() / 'exp' / 'optuna.db'}"
    assert optuna_storage_url(parse().tracking, "runs", "exp") is None, "in memory unless asked"


@pytest.mark.parametrize(
    "value, storage, message",
    [
        ("nonsense", None, "--optuna-storage nonsense: not an SQLAlchemy URL"),
        (
            "sqlite:////no/such/folder/optuna.db",
            None,
            "--optuna-storage sqlite:////no/such/folder/optuna.db: no folder",
        ),
        ("default", "gs://bucket/runs", "--optuna-storage default keeps its store beside a local --storage"),
    ],
)
def test_bad_optuna_storage_is_refused(value, storage, message, tmp_path):
    flags = ["--optuna-storage", value, "--storage", storage or str(tmp_path)]
    options = parse(*flags)
    if storage and storage.startswith("gs://"):  # (check() would first ask gcs for credentials)
        with pytest.raises(TrackingError, match=message):
            optuna_storage_url(options.tracking, options.output.storage, "exp")
    else:
        with pytest.raises(UsageError, match=message):
            options.check()


def test_split_config_takes_the_seed_and_actors():
    split = parse("--seed", "3", "--val-actors", "1,2", "--test-actors", "3,4").split
    assert (split.method, split.seed, split.val_actors, split.test_actors) == ("actor", 3, (1, 2), (3, 4))


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--pretrained", "maybe"), "--pretrained must be one of auto, on, off"),
        (("--grace-period", "3", "--max-epochs", "2"), "exceeds --max-epochs"),
        (("--gpus-per-trial", "1.5"), "--gpus-per-trial must be a fraction"),
    ],
)
def test_check_raises_one_line(flags, message, tmp_path):
    with pytest.raises(UsageError, match=message) as error:
        parse(*flags, "--storage", str(tmp_path)).check()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--scheduler", "pbt", "--num-samples", "1"],
            "--scheduler pbt needs a population: --num-samples of at least 2",
        ),
        (
            ["--scheduler", "pb2", "--max-epochs", "4", "--perturbation-interval", "4"],
            "--perturbation-interval 4 is not below --max-epochs 4",
        ),
        (["--perturbation-interval", "0"], "--perturbation-interval must be at least 1 epoch"),
        (["--reduction-factor", "1"], "--reduction-factor must be at least 2"),
        (
            ["--scheduler", "pbt", "--optuna-storage", "default"],
            "--optuna-storage keeps an Optuna search's study",
        ),
    ],
)
def test_bad_population_and_asha_flags_are_refused(flags, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        parse(*flags, "--storage", str(tmp_path)).check()


def test_pb2_without_scikit_learn_names_the_extra(monkeypatch, tmp_path):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "sklearn" else find_spec(name)
    )
    with pytest.raises(UsageError, match=r"--scheduler pb2 needs scikit-learn: pip install -e '\.\[pb2\]'"):
        parse("--scheduler", "pb2", "--storage", str(tmp_path)).check()
    parse("--scheduler", "pbt", "--storage", str(tmp_path)).check()

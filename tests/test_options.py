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
    ) == (8, None, "val_acc", "max"), "epochs: set by the training set's size (sized_for)"
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


def test_audio_features_round_trip_through_json_and_resume(tmp_path):
    assert parse().data.audio_features == "float32"
    saved = parse("--audio-features", "float16", "--storage", str(tmp_path), "--name", "exp")
    flat = saved.to_json()
    assert flat["audio_features"] == "float16"
    assert SearchOptions.from_json(json.dumps(flat)) == saved
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "msa_args.json").write_text(json.dumps(flat))
    resumed = parse("--resume", "--name", "exp", "--storage", str(tmp_path)).resumed()
    assert resumed.data.audio_features == "float16", "trials of a resumed search read the same tables"
    # Without the cache the flag has nothing to store, and is no error.
    parse("--no-feature-cache", "--audio-features", "float16", "--storage", str(tmp_path)).check()


def test_unknown_audio_features_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse("--audio-features", "bfloat16")
    assert "--audio-features: invalid choice" in capsys.readouterr().err
    saved = {**parse("--storage", str(tmp_path)).to_json(), "audio_features": "int8"}
    with pytest.raises(UsageError, match="--audio-features must be one of float32, float16, got 'int8'"):
        SearchOptions.from_json(json.dumps(saved)).check()


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
    assert options.data.audio_features == "float32", "what trials stored before the flag existed"


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


def test_the_epoch_budget_follows_the_training_set_unless_given():
    sample, ravdess = parse().sized_for(64).budget, parse().sized_for(960).budget
    assert (sample.max_epochs, sample.grace_period) == (8, 2), "the embedded sample: as before"
    assert (ravdess.max_epochs, ravdess.grace_period) == (24, 2), "all of RAVDESS: 960 training clips"
    given = parse("--max-epochs", "5", "--grace-period", "3").sized_for(960).budget
    assert (given.max_epochs, given.grace_period) == (5, 3), "flags win"
    assert parse("--max-epochs", "1").sized_for(960).budget.grace_period == 1, "grace fits max_t"
    with pytest.raises(UsageError, match="--grace-period 10 exceeds --max-epochs 8"):
        parse("--grace-period", "10").sized_for(64)
    pbt = parse("--scheduler", "pbt", "--perturbation-interval", "10")
    pbt.check()  # max_t unknown yet
    assert pbt.sized_for(960).budget.max_epochs == 24
    with pytest.raises(UsageError, match="--perturbation-interval 10 is not below --max-epochs 8"):
        pbt.sized_for(64)
    sized = parse().sized_for(960)
    assert SearchOptions.from_json(json.dumps(sized.to_json())).budget == sized.budget, "saved resolved"


def test_the_crop_is_a_data_option_that_reaches_the_decoding_parameters():
    assert parse().prepare_params.crop == "fixed"
    options = parse("--crop", "face", "--frames", "8")
    assert (options.prepare_params.crop, options.prepare_params.num_frames) == ("face", 8)
    saved = SearchOptions.from_json(json.dumps(options.to_json()))
    assert saved.prepare_params == options.prepare_params, "msa_args.json keeps it (--resume, msa.crossval)"
    assert SearchOptions.from_json(json.dumps({"space": "video_transformer"})).data.crop == "fixed"

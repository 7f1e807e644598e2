"""The search's documented defaults, written out here by hand: a default changed in the code
(the seed from 0 to 1 once went unnoticed) fails these tests, on a fresh command line and on a
resumed experiment whose msa_args.json predates the option (every key but the space missing).

The values are what the CLI reference (docs: Reference > Commands) and --help state; changing
one is a change for every user's results and must change this table too.
"""

import json

import pytest

from msa.cli.reference import render_reference
from msa.tune.command_line import build_parser
from msa.tune.options import SearchOptions
from search_spaces import SPACES

SPACE = "video_transformer"

# Field of SearchOptions (group, name) -> the documented default.
DOCUMENTED = {
    ("data", "data"): None,  # the embedded sample
    ("data", "dataset"): "auto",
    ("data", "cache"): None,  # $MSA_CACHE or ~/.cache/msa
    ("data", "classes"): "all",
    ("data", "split"): "actor",
    ("data", "val_actors"): (),
    ("data", "test_actors"): (),
    ("data", "frames"): 16,
    ("data", "image_size"): 112,
    ("data", "crop"): "fixed",
    ("data", "feature_cache"): True,
    ("data", "audio_features"): "float32",
    ("budget", "num_samples"): 8,
    ("budget", "max_epochs"): None,  # by the training set's size
    ("budget", "grace_period"): None,
    ("budget", "reduction_factor"): 3,
    ("budget", "perturbation_interval"): 2,
    ("budget", "time_budget"): None,
    ("budget", "scheduler"): "asha",
    ("budget", "search"): "optuna",
    ("budget", "metric"): "val_acc",
    ("budget", "mode"): "max",
    ("budget", "seed"): 0,
    ("budget", "objectives"): (),  # one objective: --metric
    ("resources", "cpus_per_trial"): 1.0,
    ("resources", "gpus_per_trial"): 0.0,
    ("resources", "max_concurrent"): None,
    ("resources", "max_failures"): 2,
    ("resources", "address"): None,
    ("output", "storage"): "./ray_results",
    ("output", "resume"): False,
    ("weights", "pretrained"): "auto",
    ("weights", "video_weights"): None,  # IMAGENET1K_V1
    ("weights", "audio_weights"): None,  # facebook/wav2vec2-base
    ("evaluation", "crossval"): None,
    ("evaluation", "nested"): None,
    ("evaluation", "inner_folds"): 1,
    ("tracking", "optuna_storage"): None,
    ("tracking", "wandb"): None,
    ("tracking", "mlflow"): None,
}
# The defaults the reference states in words, as the flag's help ends: "(default X)".
STATED = {
    "--dataset": "auto",
    "--classes": "all",
    "--split": "actor",
    "--frames": "16",
    "--image-size": "112",
    "--crop": "fixed",
    "--audio-features": "float32",
    "--num-samples": "8",
    "--reduction-factor": "3",
    "--perturbation-interval": "2",
    "--seed": "0",
    "--cpus-per-trial": "1",
    "--gpus-per-trial": "0",
    "--max-failures": "2",
    "--storage": "./ray\\_results",
}


def documented_values(options: SearchOptions) -> dict:
    return {(group, name): getattr(getattr(options, group), name) for group, name in DOCUMENTED}


def test_every_option_has_its_documented_default_on_a_fresh_command_line():
    options = SearchOptions.from_namespace(build_parser().parse_args(["--space", SPACE]), SPACES)
    assert documented_values(options) == DOCUMENTED
    assert options.space == SPACE and not options.smoke_test


def test_the_table_covers_every_search_option():
    """A new option gets its documented default here too."""
    options = SearchOptions(space=SPACE)
    fields = {
        (group, name)
        for group in ("data", "budget", "resources", "output", "weights", "evaluation", "tracking")
        for name in vars(getattr(options, group))
    }
    assert fields - set(DOCUMENTED) <= {
        ("output", "name"),
        ("tracking", "wandb_group"),
        ("tracking", "mlflow_experiment"),
    }


def test_a_resumed_experiment_saved_without_the_keys_takes_the_documented_defaults(tmp_path):
    """msa_args.json of an older msa holding only the space: every missing key is the default."""
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "msa_args.json").write_text(json.dumps({"space": SPACE}))
    assert documented_values(SearchOptions.from_json(json.dumps({"space": SPACE}))) == DOCUMENTED
    argv = ["--space", SPACE, "--resume", "--name", "old", "--storage", str(tmp_path)]
    resumed = SearchOptions.from_namespace(build_parser().parse_args(argv), SPACES).resumed()
    expected = {**DOCUMENTED, ("output", "storage"): str(tmp_path), ("output", "resume"): True}
    assert documented_values(resumed) == expected


@pytest.mark.parametrize("key", ["seed", "num_samples", "frames", "scheduler", "no_feature_cache"])
def test_one_missing_key_of_a_resumed_experiment_is_the_documented_default(key, tmp_path):
    saved = SearchOptions(space=SPACE).to_json() | {"seed": 7, "num_samples": 3, "frames": 4}
    saved |= {"scheduler": "fifo", "no_feature_cache": True}
    del saved[key]
    options = SearchOptions.from_json(json.dumps(saved))
    group, name = {
        "seed": ("budget", "seed"),
        "num_samples": ("budget", "num_samples"),
        "frames": ("data", "frames"),
        "scheduler": ("budget", "scheduler"),
        "no_feature_cache": ("data", "feature_cache"),
    }[key]
    assert getattr(getattr(options, group), name) == DOCUMENTED[group, name]


def test_the_reference_states_the_documented_defaults():
    section = render_reference().split("## `msa search`", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("`")[1].split()[0]: line for line in section.splitlines() if line.startswith("| `--")}
    for flag, value in STATED.items():
        assert f"default {value})" in rows[flag] or f"default {value};" in rows[flag], rows[flag]

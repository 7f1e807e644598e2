"""Every registered space samples configurations that build a model and train a step."""

import pytest
import torch

from msa.models import create_model
from msa.train import OptimConfig, build_optimizer
from msa.trial import TrialHyperparameters
from search_spaces import SPACES, sample_config
from search_spaces.scale import SearchScale

SEEDS = range(6)


def tiny_batch(model):
    batch = {
        "video": torch.randint(0, 256, (2, 3, 3, 32, 32), dtype=torch.uint8),
        "video_mask": torch.tensor([[True, True, True], [True, True, False]]),
        "audio": torch.randn(2, 4000) * 0.1,
        "audio_mask": torch.ones(2, 4000, dtype=torch.bool),
    }
    return {key: batch[key] for key in model.input_keys}


@pytest.mark.parametrize("name", list(SPACES))
def test_space_configs_build_and_train(name):
    space = SPACES[name]
    assert space.description and len(space.description.splitlines()) == 1
    models = set()
    for seed in SEEDS:
        config = sample_config(space, seed)
        hp = TrialHyperparameters.from_config(config)
        models.add(hp.model)
        model, loaded = create_model(hp.model, 4, "off", **hp.overrides(smoke_test=True))
        assert [record["loaded"] for record in loaded.values()] == [False, False], (
            "pretrained='off' loads nothing"
        )
        optim = hp.optim_config(steps_per_epoch=3)
        assert isinstance(optim, OptimConfig)
        optimizer = build_optimizer(model, optim)
        logits = model(**tiny_batch(model))
        assert logits.shape == (2, 4)
        logits.sum().backward()
        optimizer.step()
    assert models and models <= set(space.models), "the space draws only models it declares"


def test_parameters_exist_only_where_they_apply():
    seen = [sample_config(SPACES["video_iterations"], seed) for seed in range(40)]
    for config in seen:
        trainable_trunk = config["model"] in ("video_iter4", "video_iter5")
        assert ("backbone_lr" in config) == trainable_trunk, config
        assert ("d_model" in config) == (config["model"] != "video_iter2"), config
        assert ("warmup_epochs" in config) == (config["schedule"] != "constant"), config
    assert {c["model"] for c in seen} == {f"video_iter{i}" for i in range(1, 6)}
    for config in (sample_config(SPACES["multimodal"], seed) for seed in range(20)):
        assert ("head_hidden" in config) == (config["head"] == "mlp")


def test_unknown_config_key_is_an_error():
    with pytest.raises(ValueError, match="d_modle"):
        TrialHyperparameters.from_config({"model": "video_iter3", "d_modle": 64})


@pytest.mark.parametrize("name", list(SPACES))
def test_declared_models_are_exactly_those_the_space_draws(name):
    """What msa.tune.cluster precomputes frozen features for: no model missing, none extra."""
    drawn = {sample_config(SPACES[name], seed)["model"] for seed in range(60)}
    assert drawn == set(SPACES[name].models)


@pytest.mark.parametrize(
    "scale, sizes",
    [
        (SearchScale(64, accelerator=False), (4, 8)),  # the embedded sample: 8-16 steps per epoch
        (SearchScale(64, accelerator=True), (4, 8)),
        (SearchScale(960, accelerator=False), (4, 8, 16)),  # all of RAVDESS on CPU cores
        (SearchScale(960, accelerator=True), (8, 16, 32)),  # ... on GPUs: 30-120 steps per epoch
        (SearchScale(20, accelerator=True), (4,)),  # tiny: never below the smallest batch
    ],
)
def test_batch_sizes_follow_the_training_set_and_device(scale, sizes):
    assert scale.batch_sizes() == sizes
    assert all(scale.train_clips // size >= 5 or size == 4 for size in sizes), "an epoch keeps its steps"
    drawn = {sample_config(SPACES[name], seed, scale)["batch_size"] for name in SPACES for seed in range(8)}
    assert drawn == set(sizes), "every space draws exactly these"

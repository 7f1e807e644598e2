"""Population-based training without Ray: the population, its bounds, explore, and the exact
exploit (a member continues from a donor's state with its own hyperparameters)."""

import random

import pytest
import torch

from msa.experiment_dir import MUTABLE_HYPERPARAMETERS
from msa.train import load_checkpoint, save_checkpoint
from msa.trial import TrialSettings, restore_run, run_epoch, setup_trial
from msa.tune.population import Bounds, explore, initial_members
from search_spaces.scale import SearchScale

DONOR = {
    "model": "video_iter4",
    "d_model": 64,
    "num_layers": 1,
    "num_heads": 2,
    "dropout": 0.1,
    "lr": 1e-3,
    "backbone_lr": 1e-5,
    "weight_decay": 1e-4,
    "batch_size": 4,
    "schedule": "cosine",
    "warmup_epochs": 0.5,
}


def test_members_come_from_the_space_with_its_ranges_as_bounds():
    members, bounds = initial_members("video_transformer", 6, seed=0, scale=SearchScale())
    again, _ = initial_members("video_transformer", 6, seed=0, scale=SearchScale())
    assert members == again, "seeded"
    assert len({str(sorted(m.items())) for m in members}) == 6
    assert {m["model"] for m in members} <= {"video_iter3", "video_iter4", "video_iter5"}
    # What every member has and may change while training; a frozen trunk has no backbone_lr.
    assert set(bounds) <= set(MUTABLE_HYPERPARAMETERS) and {"lr", "weight_decay", "dropout"} <= set(bounds)
    assert bounds["lr"] == Bounds(1e-4, 3e-3, log=True) and bounds["dropout"] == Bounds(0.0, 0.4, log=False)


def test_explore_perturbs_or_resamples_within_the_bounds_and_nothing_else():
    bounds = {"lr": Bounds(1e-4, 3e-3, log=True), "dropout": Bounds(0.0, 0.4, log=False)}
    rng = random.Random(0)
    config = {**DONOR, "lr": 2.9e-3, "dropout": 0.39}
    seen = set()
    for _ in range(200):
        explored = explore(config, bounds, rng)
        assert {k: v for k, v in explored.items() if k not in bounds} == {
            k: v for k, v in config.items() if k not in bounds
        }
        assert 1e-4 <= explored["lr"] <= 3e-3 and 0.0 <= explored["dropout"] <= 0.4
        seen.add(round(explored["lr"] / config["lr"], 6))
    assert {round(0.8, 6), round(3e-3 / 2.9e-3, 6)} <= seen, "x0.8, and x1.2 clipped to the bound"
    assert len(seen) > 10, "and resampled values"


@pytest.fixture
def settings(tiny_trial_data):
    return TrialSettings(data=tiny_trial_data, max_epochs=3, smoke_test=True, progress=False)


def test_a_member_continues_exactly_from_the_donor_with_its_own_hyperparameters(settings, tmp_path):
    device = torch.device("cpu")
    donor = setup_trial(DONOR, settings, device)
    try:
        run_epoch(donor, 1, seed=0)
        path = save_checkpoint(
            tmp_path / "checkpoint.pt",
            donor.model,
            epoch=1,
            optimizer=donor.optimizer.state_dict(),
            scheduler=donor.scheduler.state_dict(),
        )
    finally:
        donor.close()
    explored = {**DONOR, "lr": 2e-3, "backbone_lr": 3e-5, "weight_decay": 5e-2, "dropout": 0.3}
    member = setup_trial(explored, settings, device)
    try:
        state = load_checkpoint(path)
        assert restore_run(member, state) == 2, "it goes on at the donor's next epoch"
        for name, tensor in member.model.state_dict().items():
            assert torch.equal(tensor, state["model_state"][name]), name
        saved = state["extra"]["optimizer"]
        steps = member.scheduler.last_epoch
        assert steps == state["extra"]["scheduler"]["last_epoch"] > 0
        multiplier = member.scheduler.lr_lambdas[0](steps)
        for group, saved_group in zip(member.optimizer.param_groups, saved["param_groups"]):
            backbone = group["name"].startswith("backbone")
            base = explored["backbone_lr"] if backbone else explored["lr"]
            assert group["lr"] == pytest.approx(base * multiplier) and group["lr"] != saved_group["lr"]
            decay = 0.0 if group["name"].endswith("_no_decay") else explored["weight_decay"]
            assert group["weight_decay"] == decay
        for index, moments in member.optimizer.state_dict()["state"].items():
            assert torch.equal(moments["exp_avg"], saved["state"][index]["exp_avg"]), (
                "moments are the donor's"
            )
        dropouts = [m.p for m in member.model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
        assert dropouts and set(dropouts) == {0.3}
        # and the next step uses them: one step moves the lr along the schedule from the new base
        run_epoch(member, 2, seed=0)
        group = member.optimizer.param_groups[0]
        base = explored["backbone_lr"] if group["name"].startswith("backbone") else explored["lr"]
        assert group["lr"] == pytest.approx(
            base * member.scheduler.lr_lambdas[0](member.scheduler.last_epoch)
        )
    finally:
        member.close()


def test_a_plain_resume_changes_no_hyperparameter(settings, tmp_path):
    run = setup_trial(DONOR, settings, torch.device("cpu"))
    try:
        run_epoch(run, 1, seed=0)
        before = [(g["lr"], g["weight_decay"]) for g in run.optimizer.param_groups]
        state = {
            "model_state": run.model.state_dict(),
            "extra": {
                "epoch": 1,
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
            },
        }
        restore_run(run, state)
        assert [(g["lr"], g["weight_decay"]) for g in run.optimizer.param_groups] == before
    finally:
        run.close()

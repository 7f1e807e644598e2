"""The function trainable run in-process, with Ray's report/checkpoint calls captured."""

import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray.tune import Checkpoint

from msa.experiment_dir import CHECKPOINT_FILE
from msa.train import CheckpointError, model_from_checkpoint
from msa.trial import TrialSettings
from msa.tune import trainable
from msa.tune.trainable import train_trial

REQUIRED = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "val_uar", "lr")
CONFIG = {
    "model": "video_iter3",
    "trunk": "frozen",
    "d_model": 64,
    "num_layers": 1,
    "num_heads": 2,
    "dropout": 0.1,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "batch_size": 4,
    "schedule": "inverse_sqrt",
    "warmup_epochs": 0.5,
}


class CapturedTune:
    """Stands in for ray.tune inside the trainable: keeps each reported checkpoint folder."""

    Checkpoint = Checkpoint

    def __init__(self, keep: Path, resume_from: Path | None = None, trial_id: str = "trial"):
        self.keep, self.resume_from, self.reports, self.trial_id = keep, resume_from, [], trial_id

    def get_context(self):
        return SimpleNamespace(get_trial_id=lambda: self.trial_id)

    def get_checkpoint(self):
        return Checkpoint.from_directory(str(self.resume_from)) if self.resume_from else None

    def report(self, metrics, checkpoint=None):
        folder = None
        if checkpoint is not None:
            folder = self.keep / f"epoch_{metrics['epoch']}"
            shutil.copytree(checkpoint.path, folder)
        self.reports.append((dict(metrics), folder))


@pytest.fixture
def run_trial(tiny_trial_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    runs = iter(range(100))

    def run(max_epochs, resume_from=None, config=CONFIG, feature_cache=True, trial_id="trial"):
        keep = tmp_path / f"run_{next(runs)}"
        keep.mkdir()
        captured = CapturedTune(keep, resume_from, trial_id)
        monkeypatch.setattr(trainable, "tune", captured)
        settings = TrialSettings(
            data=tiny_trial_data,
            max_epochs=max_epochs,
            smoke_test=True,
            feature_cache=feature_cache,
            progress=False,
        )
        train_trial(dict(config), settings)
        return captured.reports

    return run


def test_trial_reports_every_metric_and_a_loadable_checkpoint(run_trial, tmp_path, tiny_trial_data):
    reports = run_trial(max_epochs=2)
    assert [m["epoch"] for m, _ in reports] == [1, 2]
    for metrics, _ in reports:
        assert set(REQUIRED) <= set(metrics)
        assert all(math.isfinite(metrics[k]) for k in REQUIRED)
        assert 0 <= metrics["val_acc"] <= 1 and metrics["pretrained_video"] is False
    model, extra = model_from_checkpoint(reports[0][1] / CHECKPOINT_FILE)  # the first is always full
    assert extra["epoch"] == 1 and extra["labels"] == list(tiny_trial_data.labels)
    assert extra["preprocessing"]["crop"] == "fixed" and extra["preprocessing"]["num_frames"] == 4, (
        "how its clips were decoded"
    )
    assert model.config.video.d_model == 16, "--smoke-test shrinks the transformer"
    assert list(tmp_path.glob("tensorboard/events.out.tfevents.*")), "TensorBoard events in the trial folder"


def test_resumed_trial_continues_at_the_next_epoch(run_trial):
    first = run_trial(max_epochs=3)
    resumed = run_trial(max_epochs=3, resume_from=first[0][1])
    assert [m["epoch"] for m, _ in resumed] == [2, 3]
    # Same seed, same data order, same state: the resumed epochs repeat the uninterrupted run.
    for (a, _), (b, _) in zip(first[1:], resumed):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["lr"] == pytest.approx(b["lr"])


def test_a_trial_that_takes_over_another_checkpoint_says_whose(run_trial):
    """PBT's exploit: a member restarted from a donor's checkpoint records the donor once."""
    donor = run_trial(max_epochs=1, trial_id="donor")
    explored = {**CONFIG, "lr": 2e-3, "dropout": 0.3}
    member = run_trial(max_epochs=3, resume_from=donor[-1][1], config=explored, trial_id="member")
    assert [m["epoch"] for m, _ in member] == [2, 3]
    assert [m["copied_from"] for m, _ in member] == ["donor", ""]
    assert all(m["copied_from"] == "" for m, _ in donor)
    resumed = run_trial(max_epochs=3, resume_from=member[0][1], config=explored, trial_id="member")
    assert resumed[0][0]["copied_from"] == "", "its own checkpoint: no copy"


def test_frozen_trunk_trains_from_cached_features_like_without(run_trial):
    cached = run_trial(max_epochs=2)
    uncached = run_trial(max_epochs=2, feature_cache=False)
    assert [m["cached_video"] for m, _ in cached] == [True, True]
    assert [m["cached_video"] for m, _ in uncached] == [False, False]
    assert cached[0][0]["feature_seconds"] >= 0 and cached[1][0]["feature_seconds"] == 0
    for (a, _), (b, _) in zip(cached, uncached):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)


def test_augmented_video_is_not_served_from_the_cache(run_trial):
    augmented = run_trial(max_epochs=1, config={**CONFIG, "video_augment": True})
    assert augmented[0][0]["cached_video"] is False
    plain = run_trial(max_epochs=1)
    assert plain[0][0]["cached_video"] is True
    assert augmented[0][0]["train_loss"] != pytest.approx(plain[0][0]["train_loss"], rel=1e-6)


def test_rung_score_breaks_accuracy_ties_by_loss_only():
    from msa.experiment_dir import rung_score

    def score(acc, loss, mode="max", metric="val_acc"):
        return rung_score({"val_acc": acc, "val_loss": loss}, metric, mode)

    assert score(0.25, 1.5) > score(0.25, 2.0)  # a tie goes to the lower loss
    assert score(0.28125, 50.0) > score(0.25, 0.01)  # one clip in 32 outweighs any loss
    assert score(0.25, 1.5, mode="min") < score(0.25, 2.0, mode="min")
    assert rung_score({"val_loss": 1.7}, "val_loss", "min") == 1.7


def test_checkpoints_leave_out_the_frozen_trunk_unless_they_may_be_the_best(run_trial, monkeypatch):
    """Epochs that cannot be the trial's best checkpoint keep only the trainable weights; a
    trial resumed from one repeats the uninterrupted run (its trunk is rebuilt the same)."""
    calls = []

    def first_epoch_only(metrics, earlier, metric, mode):
        calls.append((metrics["epoch"], len(earlier)))
        return not earlier

    monkeypatch.setattr(trainable, "can_be_best", first_epoch_only)
    first = run_trial(max_epochs=3)
    assert calls == [(1, 0), (2, 1), (3, 2)], "asked every epoch, with the scores of those before"
    sizes = [(folder / CHECKPOINT_FILE).stat().st_size for _, folder in first]
    assert sizes[1] < sizes[0] / 20 and sizes[2] < sizes[0] / 20, f"no ResNet-18 in epochs 2, 3: {sizes}"
    model_from_checkpoint(first[0][1] / CHECKPOINT_FILE)  # the full one rebuilds alone
    with pytest.raises(CheckpointError, match="holds only the trainable weights"):
        model_from_checkpoint(first[1][1] / CHECKPOINT_FILE)
    resumed = run_trial(max_epochs=3, resume_from=first[1][1])
    assert [m["epoch"] for m, _ in resumed] == [3]
    assert resumed[0][0]["train_loss"] == pytest.approx(first[2][0]["train_loss"], rel=1e-6)
    assert resumed[0][0]["val_loss"] == pytest.approx(first[2][0]["val_loss"], rel=1e-6)

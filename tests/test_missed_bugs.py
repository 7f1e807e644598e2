"""Unit tests for rules that end-to-end runs on the tiny sample cannot tell apart: the test
evaluation reads the test actors, checkpoints never unpickle code, warm-up is converted from
epochs to steps, the searcher knows the search's epoch budget, and the slot arithmetic."""

import pytest
import torch

from msa.train import save_checkpoint
from msa.train.checkpoint import CheckpointError, load_checkpoint


def test_the_test_evaluation_reads_exactly_the_test_actors(tiny_sample, tmp_path, monkeypatch):
    """Unequal val (one actor) and test (two actors) parts: val and test cannot be confused."""
    from msa.data.decode import PrepareParams
    from msa.data.experiment import prepare_experiment_data
    from msa.data.splits import SplitConfig
    from msa.models import create_model, tiny_overrides
    from msa.trial import evaluation

    split = SplitConfig(val_actors=(3,), test_actors=(2, 4))
    data, _ = prepare_experiment_data(
        tiny_sample,
        tmp_path / "cache",
        "seed4",
        split,
        PrepareParams(num_frames=4, image_size=32),
        progress=False,
    )
    model, _ = create_model("video_iter1", len(data.labels), **tiny_overrides("video_iter1"))
    checkpoint = save_checkpoint(tmp_path / "checkpoint.pt", model, epoch=1)
    seen = []

    class RecordingDataset(evaluation.ClipDataset):
        def __init__(self, clips, *args, **kwargs):
            seen.extend(clips)
            super().__init__(clips, *args, **kwargs)

    monkeypatch.setattr(evaluation, "ClipDataset", RecordingDataset)
    test = evaluation.evaluate_test_actors(checkpoint, data, seed=0, threads=1)
    assert sorted({clip.record.speaker for clip in seen}) == [2, 4] and len(seen) == 8
    assert sum(map(sum, test["confusion_matrix"])) == 8, "every test clip once, no validation clip"


class SideEffect:
    """A pickle payload that runs code when unpickled (writes a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("force_unsafe_env", [False, True])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch, force_unsafe_env):
    """weights_only=True, even where TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 asks torch for full pickle.
    torch reads the variable at each load (torch.serialization.load), so setting it here is as
    good as a process started with it."""
    path, marker = tmp_path / "evil.pt", tmp_path / "side-effect"
    torch.save({"model_state": {}, "config": {}, "extra": SideEffect(marker), "format": 1}, path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1" if force_unsafe_env else "0")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists(), "unpickling ran code"


def test_warmup_is_given_in_epochs_and_applied_in_steps():
    from msa.trial import TrialHyperparameters

    hp = TrialHyperparameters.from_config(
        {"model": "video_iter2", "lr": 1e-3, "schedule": "cosine", "warmup_epochs": 1.5}
    )
    assert hp.optim_config(steps_per_epoch=7).warmup_steps == 11  # ceil(1.5 * 7)
    assert hp.optim_config(steps_per_epoch=40).warmup_steps == 60


def test_the_searcher_is_told_the_searchs_epoch_budget():
    from msa.tune.options import BudgetOptions
    from msa.tune.tuner import build_searcher, build_trial_scheduler

    budget = BudgetOptions(max_epochs=5, grace_period=2)
    assert build_searcher("video_transformer", budget).max_epochs == 5
    assert build_trial_scheduler(budget)._max_t == 5


def test_concurrency_counts_cpus_gpus_and_memory():
    from msa.tune.options import ResourceOptions
    from msa.tune.tuner import TRIAL_MEMORY_ESTIMATE, concurrency, tpe_startup_trials

    cpu_only = ResourceOptions(cpus_per_trial=2)
    assert concurrency({"CPU": 8}, cpu_only, num_samples=16) == 4
    assert concurrency({"CPU": 8}, cpu_only, num_samples=3) == 3, "never more than the trials"
    assert concurrency({"CPU": 8, "memory": 2.5 * TRIAL_MEMORY_ESTIMATE}, cpu_only, num_samples=16) == 2
    half_gpu = ResourceOptions(cpus_per_trial=1, gpus_per_trial=0.5)
    assert concurrency({"CPU": 16, "GPU": 2}, half_gpu, num_samples=16) == 4
    assert concurrency({"CPU": 1, "GPU": 0}, half_gpu, num_samples=16) == 1, "at least one"
    assert [tpe_startup_trials(n) for n in (1, 8, 30, 100)] == [1, 2, 10, 10]


def test_cluster_slots_interleave_nodes_by_capacity():
    from msa.tune.cluster import interleaved, trial_slots

    assert interleaved({"a": 3, "b": 2}) == ["a", "b", "a", "b", "a"]
    assert interleaved({}) == []
    node = {"Resources": {"CPU": 8, "GPU": 1}}
    assert trial_slots(node, cpus=2, gpus=0) == 4
    assert trial_slots(node, cpus=1, gpus=0.5) == 2
    assert trial_slots({"Resources": {"CPU": 0}}, cpus=1, gpus=0) == 0, "a head with CPU: 0 runs nothing"

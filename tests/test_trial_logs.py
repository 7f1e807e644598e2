"""A trial started again from a checkpoint keeps the rows Ray's driver had not yet copied to
storage: msa's callback against Ray's own JSON logger, with no Ray process."""

import json
from pathlib import Path

import pyarrow.fs
from ray.tune.logger import JsonLoggerCallback

from msa.tune.trial_logs import KeepTrialLogs


class StagedTrial:
    """What Ray's JSON logger and KeepTrialLogs read of a trial: a staging folder on the
    driver, a folder in storage, and whether there is a checkpoint to start again from."""

    def __init__(self, root: Path):
        self.local_path = str(root / "staging" / "trial_0")
        self.path = str(root / "storage" / "trial_0")
        storage = {"storage_filesystem": pyarrow.fs.LocalFileSystem(), "trial_fs_path": self.path}
        self.storage = type("Storage", (), storage)()
        self.config = {"lr": 0.1}
        self.checkpoint = None
        self.init_local_path()

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


def epochs(folder: str) -> list[int]:
    lines = (Path(folder) / "result.json").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


def run_and_restart(tmp_path, callbacks) -> StagedTrial:
    """Two epochs, storage synced after the first only, then a start from a checkpoint."""
    trial = StagedTrial(tmp_path)
    Path(trial.path).mkdir(parents=True)
    for callback in callbacks:
        callback.on_trial_start(0, [trial], trial)
    logger = callbacks[-1]
    logger.on_trial_result(1, [trial], trial, {"epoch": 1})
    (Path(trial.path) / "result.json").write_bytes((Path(trial.local_path) / "result.json").read_bytes())
    logger.on_trial_result(2, [trial], trial, {"epoch": 2})
    trial.checkpoint = "epoch 2"  # paused with a checkpoint, and now started again
    for callback in callbacks:
        callback.on_trial_start(3, [trial], trial)
    logger.on_trial_result(3, [trial], trial, {"epoch": 3})
    return trial


def test_rays_logger_alone_loses_the_rows_storage_lacks(tmp_path):
    # The failure KeepTrialLogs exists for: should Ray fix it, this test says so.
    assert epochs(run_and_restart(tmp_path, [JsonLoggerCallback()]).local_path) == [1, 3]


def test_a_restarted_trial_keeps_every_row(tmp_path):
    trial = run_and_restart(tmp_path, [KeepTrialLogs(), JsonLoggerCallback()])
    assert epochs(trial.local_path) == [1, 2, 3]


def test_a_first_start_copies_nothing(tmp_path):
    trial = StagedTrial(tmp_path)
    (Path(trial.local_path) / "result.json").write_text('{"epoch": 1}\n')
    KeepTrialLogs().on_trial_start(0, [trial], trial)
    assert not Path(trial.path).exists()

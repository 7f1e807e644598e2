"""A trial's result.json keeps every row when Ray restarts the trial.

Ray's loggers write a trial's rows into the driver's staging folder, which the driver copies to
the experiment's storage every few seconds (with each experiment checkpoint). When a trial starts again from a checkpoint
(a population scheduler pausing a member while others wait, the member taking over another's
checkpoint, a retry after a crash), Ray's JSON logger first copies the storage's result.json
back over the staging one: every row written since the last copy is lost, and with it the
epochs that msa's summaries, lineage plots and PBT schedules read. This callback, which Ray
runs before its own loggers, copies the staging rows to storage first.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs
from ray.tune import Callback
from ray.tune.result import EXPR_PROGRESS_FILE, EXPR_RESULT_FILE

TRIAL_LOGS = (EXPR_RESULT_FILE, EXPR_PROGRESS_FILE)


class KeepTrialLogs(Callback):
    """Before a trial with a checkpoint starts again, its staged logs replace storage's copy.

    Must come before Ray's logger callbacks (Ray appends its own after the ones it is given).
    A driver started afresh (``--resume``) has no staged logs: storage's copy is then the one."""

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        if not trial.checkpoint:
            return  # a first start: Ray restores nothing
        for name in TRIAL_LOGS:
            staged = Path(trial.local_path, name)
            if staged.is_file():
                pyarrow.fs.copy_files(
                    staged.as_posix(),
                    Path(trial.storage.trial_fs_path, name).as_posix(),  # where Ray's logger reads
                    destination_filesystem=trial.storage.storage_filesystem,
                )

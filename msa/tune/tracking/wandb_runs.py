"""Weights & Biases: one run per trial, grouped by search, and a summary run with the result.

Trial runs are Ray's ``WandbLoggerCallback``'s: a logging actor per trial, placed on the
driver's node (so worker nodes need neither wandb's key nor its network), given
``WANDB_API_KEY`` through its runtime environment, logging every reported metric with the
epoch as step and the trial's configuration as the run's config. This module adds the trial's
outcome to its run's summary, and ``log_summary_run`` records the search's test result.

Without a key the runs are written offline (``wandb sync`` uploads them later): each trial's in
``STORAGE/NAME/trial_<id>/wandb/offline-run-*``, the summary run's in
``STORAGE/NAME/wandb_summary/wandb/offline-run-*``. Run ids are Ray's trial ids and
``--resume`` passes ``resume="allow"``, so a resumed trial continues the same run.
"""

from __future__ import annotations

import os
import re
import urllib.error
from pathlib import Path

from ray.air.integrations.wandb import WandbLoggerCallback, _QueueItem, _WandbLoggingActor

from msa.experiment_dir import trial_folder, trial_outcome
from msa.tune.tracking.values import search_result

OUTCOME_KEY = "msa_outcome"  # a queue item holding the trial's end, for its run's summary
SUMMARY_JOB = "search-summary"  # the summary run's job_type


class TrialLoggingActor(_WandbLoggingActor):
    """Ray's logging process of one trial, which also writes how the trial ended (outcome,
    stopped_early, epochs) into its run's summary, and steps by epoch."""

    def run(self):
        os.environ["WANDB_START_METHOD"] = "thread"  # a Ray actor: no forking
        if self.kwargs.get("dir"):
            os.makedirs(self.kwargs["dir"], exist_ok=True)
        run = self._wandb.init(*self.args, **self.kwargs)
        run.config.trial_log_path = self._logdir
        while True:
            item_type, item = self.queue.get()
            if item_type == _QueueItem.END:
                break
            if item_type == _QueueItem.CHECKPOINT:
                self._handle_checkpoint(item)
            elif OUTCOME_KEY in item:
                run.summary.update(item[OUTCOME_KEY])
            else:
                log, config_update = self._handle_result(item)
                try:
                    run.config.update(config_update, allow_val_change=True)
                    run.log(log, step=int(item.get("epoch") or log.get("training_iteration")))
                except urllib.error.HTTPError as error:  # a few missing points beat a failed trial
                    print(f"warning: W&B did not take a result: {error}")
        run.finish()


class WandbTrialRuns(WandbLoggerCallback):
    """Tune's W&B callback with the trial's outcome at its end (pickled with the Tuner)."""

    _logger_actor_cls = TrialLoggingActor

    def __init__(self, project: str, group: str, mode: str, max_epochs: int, experiment: str | None):
        import wandb

        # wandb.init's own arguments: offline or online, continue the trial's run on --resume,
        # and no banner per trial in the search's console.
        super().__init__(
            project=project,
            group=group,
            mode=mode,
            resume="allow",
            reinit="finish_previous",  # Ray's reinit=True, as wandb now spells it
            settings=wandb.Settings(silent=True),
        )
        self.max_epochs = max_epochs
        self.experiment = experiment  # a local experiment folder: each trial's runs go into its own

    def _start_logging_actor(self, trial, exclude_results, **wandb_init_kwargs):
        # Straight into the trial's folder of a local experiment: Ray's default, its driver-side
        # staging folder, reaches the experiment only when Ray syncs it, possibly mid-write.
        if self.experiment is not None:
            wandb_init_kwargs["dir"] = str(Path(self.experiment) / trial_folder(trial.trial_id))
        super()._start_logging_actor(trial, exclude_results, **wandb_init_kwargs)

    def log_trial_end(self, trial, failed: bool = False):
        if trial in self._trial_queues:
            last = trial.last_result or {}
            epochs = int(last.get("epoch") or last.get("training_iteration", 0))
            outcome = trial_outcome("ERROR" if failed else "TERMINATED", epochs, self.max_epochs)
            end = {"outcome": outcome, "stopped_early": outcome == "stopped early", "epochs": epochs}
            self._trial_queues[trial].put((_QueueItem.RESULT, {OUTCOME_KEY: end}))
        super().log_trial_end(trial, failed)


def summary_run_id(name: str) -> str:
    """A W&B run id for the search ``name`` (ids may not hold / \\ # ? % :)."""
    return re.sub(r"[/\\#?%:\s]", "-", name) + "-summary"


def log_summary_run(project: str, group: str, mode: str, folder: Path, name: str, summary: dict) -> None:
    """The search's result as one more run of the group: the best configuration as its config;
    test, best-val and baseline metrics, the best trial and trial counts as its summary."""
    import wandb

    folder.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=project,
        group=group,
        name=f"{name} (summary)",
        id=summary_run_id(name),
        job_type=SUMMARY_JOB,
        mode=mode,
        dir=str(folder),
        resume="allow",
        config=summary.get("best_config") or {},
        settings=wandb.Settings(silent=True),
    )
    run.summary.update(
        {
            **search_result(summary),
            "best_trial": summary.get("best_trial"),
            "num_trials": summary.get("num_trials"),
            **{f"trials_{status}": count for status, count in summary.get("trials_by_status", {}).items()},
        }
    )
    run.finish()

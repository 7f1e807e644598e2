"""The trackers a search asked for: started before Ray, logging during it, closed at its end.

    trackers = start_trackers(options, name, render_report)   # before Ray; TrackingError: exit 2
    tune.RunConfig(callbacks=trackers.callbacks(max_epochs))  # per-trial runs, from the driver
    trackers.finish(summary, experiment)                      # the search's result on each tracker

A tracker that fails after the search started costs a warning, never the search's results.
(The Optuna study needs nothing here: the searcher keeps it in its storage.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from msa.data import is_uri
from msa.data.media import first_line
from msa.experiment_dir import WANDB_SUMMARY_DIR
from msa.tune.options import SearchOptions
from msa.tune.tracking.options import (
    DEFAULT,
    TrackingError,
    mlflow_artifact_location,
    mlflow_experiment_name,
    mlflow_tracking_uri,
    wandb_mode,
)

if TYPE_CHECKING:  # imported when used: it imports MLflow
    from msa.tune.tracking.mlflow_runs import MLflowSearch

ReportRenderer = Callable[[str], str]  # experiment location -> report.html's text


@dataclass(frozen=True)
class WandbTarget:
    project: str
    group: str
    mode: str  # "online" or "offline"
    summary_folder: Path  # where the summary run writes its files
    experiment: Path | None  # a local experiment folder (trial runs go into its trial folders)
    sync_command: str  # what uploads offline runs


@dataclass
class Trackers:
    name: str  # the search's
    wandb: WandbTarget | None = None
    mlflow: MLflowSearch | None = None
    render_report: ReportRenderer | None = None

    def callbacks(self, max_epochs: int) -> list:
        """Tune logger callbacks: one run per trial in each tracker."""
        callbacks = []
        if self.wandb is not None:
            from msa.tune.tracking.wandb_runs import WandbTrialRuns

            target = self.wandb
            callbacks.append(
                WandbTrialRuns(
                    target.project,
                    target.group,
                    target.mode,
                    max_epochs,
                    str(target.experiment) if target.experiment else None,
                )
            )
        if self.mlflow is not None:
            callbacks.append(self.mlflow.callback(max_epochs))
        return callbacks

    def finish(self, summary: dict, experiment: str) -> None:
        """The search's result (summary.json) on each tracker; MLflow also gets report.html."""
        if self.wandb is not None:
            from msa.tune.tracking.wandb_runs import log_summary_run

            target = self.wandb
            warn_on_failure(
                "W&B",
                lambda: log_summary_run(
                    target.project, target.group, target.mode, target.summary_folder, self.name, summary
                ),
            )
        if self.mlflow is not None:
            warn_on_failure("MLflow", lambda: self.mlflow.finish(summary, self.report(experiment)))

    def report(self, experiment: str) -> str | None:
        if self.render_report is None:
            return None
        try:
            return self.render_report(experiment)
        except Exception as error:  # the report is an extra: its failure leaves the metrics logged
            print(f"warning: report.html for MLflow failed: {first_line(error)}", file=sys.stderr)
            return None

    def where(self) -> list[str]:
        """Console lines: where each tracker shows the search."""
        lines = []
        if self.mlflow is not None:
            lines.append(
                f"mlflow:      mlflow ui --backend-store-uri {self.mlflow.tracking_uri}   (run {self.name})"
                if not self.mlflow.tracking_uri.startswith(("http://", "https://"))
                else f"mlflow:      {self.mlflow.tracking_uri}   (run {self.name})"
            )
        if self.wandb is not None:
            lines.append(
                f"wandb:       {self.wandb.sync_command}   (offline runs)"
                if self.wandb.mode == "offline"
                else f"wandb:       project {self.wandb.project}, group {self.wandb.group}"
            )
        return lines

    def interrupted(self) -> None:
        if self.mlflow is not None:
            warn_on_failure("MLflow", self.mlflow.interrupted)


def start_trackers(
    options: SearchOptions, name: str, render_report: ReportRenderer | None = None
) -> Trackers:
    """What --wandb and --mlflow ask for, ready before Ray starts: W&B's mode chosen (offline
    without a key, said in one line), MLflow's parent run found (--resume) or created.
    Raises TrackingError when the MLflow store cannot be reached."""
    tracking, storage = options.tracking, options.output.storage
    trackers = Trackers(name, render_report=render_report)
    if tracking.wandb is not None:
        mode = wandb_mode()
        # The driver's callback checks the mode in the environment, and local logging actors inherit it.
        os.environ["WANDB_MODE"] = mode
        if is_uri(storage):  # the runs are written where the driver stages the trials' files
            experiment = None
            summary_folder = Path.cwd() / WANDB_SUMMARY_DIR
            sync = f"wandb sync --sync-all   (in each trial's local folder, and in {summary_folder})"
        else:
            experiment = Path(storage).expanduser().resolve() / name
            summary_folder = experiment / WANDB_SUMMARY_DIR
            sync = f"wandb sync {experiment}/*/wandb/offline-run-*"
        trackers.wandb = WandbTarget(
            tracking.wandb, tracking.wandb_group or name, mode, summary_folder, experiment, sync
        )
        if mode == "offline":
            print(
                f"W&B: no API key (WANDB_API_KEY or wandb login): runs are written offline; upload them with\n  {sync}"
            )
        else:
            print(f"W&B: project {tracking.wandb}, group {trackers.wandb.group} ({mode})")
    uri = mlflow_tracking_uri(tracking, storage, name)
    if uri is not None:
        from msa.tune.tracking.mlflow_runs import MLflowSearch

        if tracking.mlflow == DEFAULT:  # the store lives in the experiment folder, made before Ray does
            (Path(storage).expanduser() / name).mkdir(parents=True, exist_ok=True)
        experiment_name = mlflow_experiment_name(tracking, options.space)
        try:
            trackers.mlflow = MLflowSearch.start(
                uri,
                experiment_name,
                mlflow_artifact_location(tracking, storage, name),
                name,
                options.to_json(),
                resume=options.output.resume,
            )
        except RuntimeError as error:
            raise TrackingError(str(error)) from None
        print(f"MLflow: run {name} in experiment {experiment_name} at {uri}")
    return trackers


def warn_on_failure(tracker: str, log: Callable[[], None]) -> None:
    try:
        log()
    except Exception as error:  # a tracker's outage must not cost the search its results
        print(f"warning: {tracker} did not record the search's result: {first_line(error)}", file=sys.stderr)

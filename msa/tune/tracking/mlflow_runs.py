"""MLflow: one parent run per search, a nested run per trial, written from the driver.

    MLflow experiment (--mlflow-experiment, default msa-<space>)
        run NAME                 tags msa.experiment=NAME; params: the search's flags;
                                 metrics test_*, best_*, baseline_*; artifacts summary.json, report.html
            run trial_<id>       tags mlflow.parentRunId, msa.trial_id, msa.model, outcome, stopped_early;
                                 params: the trial's configuration; every reported metric, step = epoch

Every call runs in the driver (Tune's callbacks do), so trainables never need the tracking URI
or credentials. Runs are found again by their tags, so ``--resume`` logs into the same parent
and trial runs: an epoch redone after a crash is logged again at the same step.
"""

from __future__ import annotations

import logging
import os
import re
import time
from contextlib import contextmanager

from ray.tune.logger import LoggerCallback

from msa.experiment_dir import trial_outcome
from msa.tune.tracking.values import flat_params, numeric, search_result

EXPERIMENT_TAG = "msa.experiment"  # the parent run's: the search's name
TRIAL_TAG = "msa.trial_id"  # a trial run's: Ray's trial id
PARENT_TAG = "mlflow.parentRunId"  # what MLflow's UI nests runs by
PROBE_TIMEOUT = 10  # seconds: an unreachable tracking server fails the start within about this
# Ray's bookkeeping in each result, and the configuration (the run's params): not metrics.
NOT_METRICS = frozenset(
    {
        "training_iteration",
        "timestamp",
        "time_since_restore",
        "iterations_since_restore",
        "pid",
        "done",
        "config",
    }
)


@contextmanager
def environment(**values: str):
    """MLflow's settings are environment variables, read at each call: set some for a while."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class MLflowSearch:
    """The search's parent run: found or created by ``start``, closed by ``finish``."""

    def __init__(self, tracking_uri: str, experiment_id: str, run_id: str):
        from mlflow import MlflowClient

        self.tracking_uri, self.experiment_id, self.run_id = tracking_uri, experiment_id, run_id
        self.client = MlflowClient(tracking_uri)

    @classmethod
    def start(
        cls,
        tracking_uri: str,
        experiment: str,
        artifact_location: str | None,
        name: str,
        params: dict,
        resume: bool,
    ) -> MLflowSearch:
        """The parent run of search ``name`` in the MLflow ``experiment`` (created with
        ``artifact_location`` if new): with ``resume`` the one an earlier run of the search
        made, else a new one. Raises RuntimeError naming the URI when the store cannot be used."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        for logger in ("mlflow.store.db.utils", "alembic"):  # their INFO lines on creating a store
            logging.getLogger(logger).setLevel(logging.WARNING)
        client = MlflowClient(tracking_uri)
        try:
            # MLflow's HTTP client retries for minutes by default: fail fast while starting.
            with environment(
                MLFLOW_HTTP_REQUEST_MAX_RETRIES="1", MLFLOW_HTTP_REQUEST_TIMEOUT=str(PROBE_TIMEOUT)
            ):
                found = client.get_experiment_by_name(experiment)
                experiment_id = (
                    found.experiment_id
                    if found is not None
                    else client.create_experiment(experiment, artifact_location=artifact_location)
                )
                parent = cls.find_parent(client, experiment_id, name) if resume else None
                if parent is None:
                    run_id = client.create_run(
                        experiment_id, run_name=name, tags={EXPERIMENT_TAG: name}
                    ).info.run_id
                    client.log_batch(run_id, params=params_of(flat_params(params)))
                else:
                    run_id = parent
                    client.update_run(run_id, status="RUNNING")
        except (MlflowException, OSError) as error:
            raise RuntimeError(f"--mlflow {tracking_uri}: {store_problem(error)}") from None
        return cls(tracking_uri, experiment_id, run_id)

    @staticmethod
    def find_parent(client, experiment_id: str, name: str) -> str | None:
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{EXPERIMENT_TAG}` = '{name}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def callback(self, max_epochs: int) -> MLflowTrialRuns:
        return MLflowTrialRuns(self.tracking_uri, self.experiment_id, self.run_id, max_epochs)

    def finish(self, summary: dict, report_html: str | None) -> None:
        """The search's result on the parent run: test, best-val and baseline metrics, the best
        trial as tags, summary.json and report.html as artifacts; FINISHED (FAILED without a
        best trial)."""
        metrics = search_result(summary)
        tags = {
            "best_trial": str(summary.get("best_trial")),
            "best_model": str((summary.get("best_config") or {}).get("model")),
        }
        self.client.log_batch(self.run_id, metrics=metrics_of(metrics, step=0), tags=tags_of(tags))
        self.client.log_dict(self.run_id, summary, "summary.json")
        if report_html is not None:
            self.client.log_text(self.run_id, report_html, "report.html")
        self.client.set_terminated(self.run_id, "FINISHED" if summary.get("best_trial") else "FAILED")

    def interrupted(self) -> None:
        self.client.set_terminated(self.run_id, "KILLED")


def store_problem(error: BaseException) -> str:
    """A short reason an MLflow store refused the start (its exceptions carry whole responses)."""
    text = " ".join(str(error).split())
    if "Connection refused" in text or "NewConnectionError" in text or "Max retries exceeded" in text:
        return "no MLflow tracking server answers there (is `mlflow server` running?)"
    code = re.search(r"error code (\d+)", text)
    if code:
        return f"not an MLflow tracking server (HTTP {code.group(1)} from its REST API)"
    return text[:200] or type(error).__name__


class MLflowTrialRuns(LoggerCallback):
    """Tune's logger callback: one run per trial, nested under the search's parent run.

    Pickled with the Tuner (``--resume`` restores it from tuner.pkl), so it holds only the URI
    and ids; the client is made in ``setup``, in the driver."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, max_epochs: int):
        self.tracking_uri, self.experiment_id = tracking_uri, experiment_id
        self.parent_run_id, self.max_epochs = parent_run_id, max_epochs
        self._client = None
        self._runs: dict[str, str] = {}  # Ray trial id -> MLflow run id

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None, "_runs": {}}

    def setup(self, *args, **kwargs) -> None:
        from mlflow import MlflowClient

        self._client = MlflowClient(self.tracking_uri)

    def run_of(self, trial) -> str:
        """The trial's run: cached, else found by its tags (a resumed search), else created."""
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        found = self._client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TRIAL_TAG}` = '{trial.trial_id}' and tags.`{PARENT_TAG}` = '{self.parent_run_id}'",
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
            self._client.update_run(run_id, status="RUNNING")
        else:
            tags = {
                PARENT_TAG: self.parent_run_id,
                TRIAL_TAG: trial.trial_id,
                "msa.model": str(trial.config.get("model")),
            }
            run_id = self._client.create_run(self.experiment_id, run_name=str(trial), tags=tags).info.run_id
            self._client.log_batch(run_id, params=params_of(flat_params(trial.config)))
        self._runs[trial.trial_id] = run_id
        return run_id

    def log_trial_start(self, trial) -> None:
        self.run_of(trial)

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        values = numeric({key: value for key, value in result.items() if key not in NOT_METRICS})
        step = int(result.get("epoch") or result.get("training_iteration", iteration))
        self._client.log_batch(self.run_of(trial), metrics=metrics_of(values, step))

    def log_trial_end(self, trial, failed: bool = False) -> None:
        last = trial.last_result or {}
        epochs = int(last.get("epoch") or last.get("training_iteration", 0))
        outcome = trial_outcome("ERROR" if failed else "TERMINATED", epochs, self.max_epochs)
        tags = {
            "outcome": outcome,
            "stopped_early": str(outcome == "stopped early").lower(),
            "epochs": str(epochs),
        }
        run_id = self.run_of(trial)
        self._client.log_batch(run_id, tags=tags_of(tags))
        with environment(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true"):  # no link per trial in the console
            self._client.set_terminated(run_id, "FAILED" if failed else "FINISHED")


def params_of(values: dict[str, str]) -> list:
    from mlflow.entities import Param

    return [Param(key, value) for key, value in values.items()]


def tags_of(values: dict[str, str]) -> list:
    from mlflow.entities import RunTag

    return [RunTag(key, value) for key, value in values.items()]


def metrics_of(values: dict[str, float], step: int) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)  # ms
    return [Metric(key, value, now, step) for key, value in values.items()]

"""The tracking flags (--optuna-storage, --wandb, --mlflow), checked before Ray starts.

Nothing here imports Ray, W&B or MLflow: a missing package is found by name, so a flag used
without its extra costs milliseconds and names the extra to install. Problems raise
``TrackingError``, which ``msa.tune.options`` reports as a usage error (exit 2).
"""

from __future__ import annotations

import importlib.util
import netrc
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from msa.data import is_uri
from msa.experiment_dir import MLFLOW_ARTIFACTS_DIR, MLFLOW_DB_FILE, OPTUNA_DB_FILE

DEFAULT = "default"  # --optuna-storage / --mlflow: a store inside the experiment directory
WANDB_HOST = "api.wandb.ai"  # where `wandb login` keeps its key in ~/.netrc (unless WANDB_BASE_URL)
# The package each tracking flag needs, and the extra (pip install 'msa[EXTRA]') that brings it.
EXTRAS = {"wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}


class TrackingError(ValueError):
    """A tracking flag that cannot be used: one line, exit status 2."""


@dataclass(frozen=True)
class TrackingOptions:
    """Where else the search is recorded, besides its experiment directory."""

    # An SQLAlchemy URL (sqlite:///PATH, postgresql://...) or "default" (sqlite in the
    # experiment directory) that persists the Optuna study, for optuna-dashboard; None: in memory.
    optuna_storage: str | None = None
    wandb: str | None = None  # the W&B project of one run per trial; None: no W&B
    wandb_group: str | None = None  # None: the experiment's name
    # An MLflow tracking URI (http(s)://..., sqlite:///PATH, file:///PATH) or "default" (sqlite
    # in the experiment directory); None: no MLflow.
    mlflow: str | None = None
    mlflow_experiment: str | None = None  # None: msa-<space>


def check_tracking(tracking: TrackingOptions, storage: str, name: str) -> None:
    """Every tracking check that needs no server: flags that belong together, the packages, the
    URLs. Raises TrackingError."""
    if tracking.wandb_group is not None and tracking.wandb is None:
        raise TrackingError("--wandb-group needs --wandb PROJECT")
    if tracking.mlflow_experiment is not None and tracking.mlflow is None:
        raise TrackingError("--mlflow-experiment needs --mlflow")
    if tracking.wandb is not None and not re.fullmatch(r"[\w.-]+", tracking.wandb):
        raise TrackingError(f"--wandb {tracking.wandb!r}: a W&B project name (letters, digits, . _ -)")
    for flag, value in (("wandb", tracking.wandb), ("mlflow", tracking.mlflow)):
        package, extra = EXTRAS[flag]
        if value is not None and not installed(package):
            raise TrackingError(
                f"--{flag} needs the {package} package: pip install -e '.[{extra}]' (or '.[tracking]' for every tracker)"
            )
    optuna_storage_url(tracking, storage, name)
    mlflow_tracking_uri(tracking, storage, name)


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def in_experiment(flag: str, storage: str, name: str, file: str) -> Path:
    """STORAGE/NAME/FILE, for a store kept beside the search (a local --storage only)."""
    if is_uri(storage):
        raise TrackingError(
            f"--{flag} default keeps its store beside a local --storage, not {storage}; give the store's own URL"
        )
    return Path(storage).expanduser().resolve() / name / file


def optuna_storage_url(tracking: TrackingOptions, storage: str, name: str) -> str | None:
    """--optuna-storage as an SQLAlchemy URL ("default": sqlite:///STORAGE/NAME/optuna.db for
    the experiment ``name``); None for the in-memory study. Raises TrackingError."""
    value = tracking.optuna_storage
    if value is None:
        return None
    if value == DEFAULT:
        return f"sqlite:///{in_experiment('optuna-storage', storage, name, OPTUNA_DB_FILE)}"
    from sqlalchemy.engine import make_url  # Optuna's own dependency
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        raise TrackingError(
            f"--optuna-storage {value}: not an SQLAlchemy URL (e.g. sqlite:///PATH/optuna.db) or default"
        ) from None
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        if not Path(url.database).expanduser().parent.is_dir():
            raise TrackingError(f"--optuna-storage {value}: no folder {Path(url.database).parent}")
    return value


def mlflow_tracking_uri(tracking: TrackingOptions, storage: str, name: str) -> str | None:
    """--mlflow as a tracking URI ("default": sqlite:///STORAGE/NAME/mlflow.db); None without
    the flag. Raises TrackingError for a URI MLflow cannot use."""
    value = tracking.mlflow
    if value is None:
        return None
    if value == DEFAULT:
        return f"sqlite:///{in_experiment('mlflow', storage, name, MLFLOW_DB_FILE)}"
    parsed = urlparse(value)
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise TrackingError(f"--mlflow {value}: no host in the URL")
        return value
    if parsed.scheme == "sqlite" or parsed.scheme == "file":
        folder = Path(parsed.path).parent if parsed.scheme == "sqlite" else Path(parsed.path)
        if parsed.scheme == "sqlite" and not value.startswith("sqlite:///"):
            raise TrackingError(f"--mlflow {value}: write sqlite:///PATH (three slashes)")
        if not folder.is_dir():
            raise TrackingError(f"--mlflow {value}: no folder {folder}")
        return value
    if parsed.scheme in ("postgresql", "mysql", "mssql", "databricks"):
        return value
    raise TrackingError(
        f"--mlflow {value}: give a tracking URI (http(s)://HOST:PORT, sqlite:///PATH, file:///PATH) or nothing for a store in the experiment"
    )


def mlflow_artifact_location(tracking: TrackingOptions, storage: str, name: str) -> str | None:
    """Where a new MLflow experiment keeps its artifacts: STORAGE/NAME/mlartifacts for the
    default store; None (the server's or store's own choice) otherwise."""
    if tracking.mlflow != DEFAULT:
        return None
    return in_experiment("mlflow", storage, name, MLFLOW_ARTIFACTS_DIR).as_uri()


def mlflow_experiment_name(tracking: TrackingOptions, space: str) -> str:
    return tracking.mlflow_experiment or f"msa-{space}"


def wandb_has_key() -> bool:
    """An API key in the environment, or `wandb login`'s in ~/.netrc (read without the network)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", f"https://{WANDB_HOST}")).hostname or WANDB_HOST
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    """ "online" with a key, else "offline" (runs written locally, for `wandb sync`); WANDB_MODE wins."""
    return os.environ.get("WANDB_MODE") or ("online" if wandb_has_key() else "offline")

"""The data layer: where files are (sources), what they are (datasets: RAVDESS, its audio-only
set, CREMA-D, manifests, label folders), classes, decoding, the prepared-clip cache, splits,
folds, loaders and the embedded sample. Never imports models or Ray."""

import datetime
import os
from pathlib import Path

GCS_RETRY_LIMIT = (
    30  # seconds; pyarrow's default (15 min) makes a bad URI or missing credentials look like a hang
)


def default_cache_dir() -> Path:
    """Where prepared clips, features and the embedded sample live: $MSA_CACHE or ~/.cache/msa."""
    return Path(os.environ.get("MSA_CACHE") or Path.home() / ".cache" / "msa").expanduser()


def is_uri(location: str | os.PathLike) -> bool:
    """A storage URI (gs://, s3://, file://, ...) read through pyarrow's filesystems, not a path."""
    return "://" in str(location)


def remote_filesystem(uri: str):
    """(pyarrow filesystem, path in it) for a storage URI; GCS gives up retrying after
    GCS_RETRY_LIMIT (its options come from the URI's query string otherwise)."""
    import pyarrow.fs

    filesystem, path = pyarrow.fs.FileSystem.from_uri(uri)
    if isinstance(filesystem, pyarrow.fs.GcsFileSystem) and "?" not in uri:
        filesystem = pyarrow.fs.GcsFileSystem(retry_time_limit=datetime.timedelta(seconds=GCS_RETRY_LIMIT))
    return filesystem, path

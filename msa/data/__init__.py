"""RAVDESS data layer: file discovery, labels, splits, decoding, the prepared-clip cache,
datasets and the embedded sample. Never imports models or Ray."""

import os
from pathlib import Path

SAMPLE_RATE = 16_000  # Hz, what wav2vec 2.0 expects


def default_cache_dir() -> Path:
    """Where prepared clips, features and the embedded sample live: $MSA_CACHE or ~/.cache/msa."""
    return Path(os.environ.get("MSA_CACHE") or Path.home() / ".cache" / "msa").expanduser()


def is_uri(location: str | os.PathLike) -> bool:
    """A storage URI (gs://, s3://, file://, ...) read through pyarrow's filesystems, not a path."""
    return "://" in str(location)

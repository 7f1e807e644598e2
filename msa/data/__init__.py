"""RAVDESS data layer: file discovery, labels, splits, decoding, the prepared-clip cache,
datasets and the embedded sample. Never imports models or Ray."""

import os
from pathlib import Path

SAMPLE_RATE = 16_000  # Hz, what wav2vec 2.0 expects


def default_cache_dir() -> Path:
    """Where prepared clips, features and the embedded sample live: $MSA_CACHE or ~/.cache/msa."""
    return Path(os.environ.get("MSA_CACHE") or Path.home() / ".cache" / "msa").expanduser()

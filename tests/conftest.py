import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the tests' media helpers

REPO = Path(__file__).resolve().parents[1]
REAL_CLIPS = REPO.parent / "shared" / "ravdess-real"


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"

"""Writing a file so that readers see the old one or the whole new one, never a part.

    with atomic_path(out) as tmp:   # a unique name beside ``out``: same filesystem
        write(tmp)                   # anything; raising here leaves ``out`` as it was
    # ``out`` is now the new file (os.replace), and ``tmp`` is gone either way

One mechanism for the outputs of the commands (exported models, prediction files, checkpoints).
Imports nothing of msa, so any layer may use it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (its folder created) that replaces ``path`` when the block
    ends without an error; it is removed whatever happens. Unlike mkstemp's, the file the block
    writes gets the usual permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)

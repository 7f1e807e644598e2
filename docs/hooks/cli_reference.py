"""MkDocs hook: ``reference/cli.md``, generated at build time from the commands' argparse parsers.

The page is never written by hand: ``on_files`` adds it from ``msa.cli.reference.render_reference``,
which also backs ``tests/test_msa_command.py`` (no flag may be missing from it).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = "reference/cli.md"


def on_files(files, config):
    from mkdocs.structure.files import File

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # msa/ and search_spaces/ of this checkout
    from msa.cli.reference import render_reference

    files.append(File.generated(config, PAGE, content=render_reference()))
    return files

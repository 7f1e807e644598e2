"""The one-way layering, enforced: data, weights -> models -> features / train -> tune -> tune_main.

Each package may import only from the layers below it; only msa.tune imports Ray.
"""

import ast
from pathlib import Path

import pytest

from conftest import REPO

# Top-level modules each package must never import.
FORBIDDEN = {
    "msa/data": ("msa.models", "msa.train", "msa.tune", "msa.weights", "ray", "search_spaces", "transformers"),
    # Getting weights onto a machine sits below the models that load them.
    "msa/weights": ("msa.data", "msa.models", "msa.train", "msa.tune", "msa.features", "ray", "search_spaces"),
    "msa/models": ("msa.data", "msa.train", "msa.tune", "ray", "search_spaces"),
    "msa/train": ("msa.data", "msa.tune", "ray", "search_spaces"),
    "msa/features.py": ("msa.train", "msa.tune", "ray", "search_spaces"),
    "search_spaces": ("msa", "ray"),
    # Analysis reads experiment directories, with Ray long gone.
    "msa/results.py": ("ray",),
    "msa/report.py": ("ray",),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_layers_import_only_downwards(package):
    root = REPO / package
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    assert files
    for path in files:
        for module in imported_modules(path):
            for forbidden in FORBIDDEN[package]:
                assert not (module == forbidden or module.startswith(forbidden + ".")), f"{path.relative_to(REPO)} imports {module}"


def test_only_the_tune_layer_reports_to_ray():
    for path in sorted((REPO / "msa").rglob("*.py")):
        text = path.read_text()
        if "tune.report(" in text or "get_checkpoint(" in text:
            assert path.parent.name == "tune", path

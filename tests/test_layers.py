"""The one-way layering, enforced:

    audio_format -> data, weights -> models -> features, train -> trial -> tune -> tune_main
                                                          train -> baseline (beside trial)
                                               experiment_dir -> analysis (report, export -> predict)

Each package may import only from the layers below it; only msa.tune imports Ray. Nothing
imports msa.predict, the top layer beside msa.report; only it imports msa.export (to load a
model as the export does).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

# Top-level modules each package must never import.
FORBIDDEN = {
    "msa/data": (
        "msa.models",
        "msa.train",
        "msa.tune",
        "msa.weights",
        "ray",
        "search_spaces",
        "transformers",
    ),
    # Getting weights onto a machine sits below the models that load them.
    "msa/weights": (
        "msa.data",
        "msa.models",
        "msa.train",
        "msa.tune",
        "msa.features",
        "ray",
        "search_spaces",
    ),
    "msa/models": ("msa.data", "msa.train", "msa.tune", "ray", "search_spaces"),
    "msa/train": ("msa.data", "msa.tune", "ray", "search_spaces"),
    "msa/features.py": ("msa.train", "msa.tune", "ray", "search_spaces"),
    "msa/audio_format.py": ("msa.data", "msa.models", "msa.weights", "torch"),
    # Writing a file atomically: below every layer that writes outputs.
    "msa/atomic.py": ("msa.data", "msa.models", "msa.train", "msa.weights", "msa.features", "torch", "ray"),
    # One trial, without Ray: what the Ray adapter (msa.tune.trainable) and benchmarks call.
    "msa/trial": ("msa.tune", "ray", "msa.analysis", "msa.report"),
    # The classical baseline, beside trial: clips and metrics only, no model, no Ray.
    "msa/baseline": ("msa.tune", "ray", "msa.models", "msa.analysis", "msa.report", "search_spaces"),
    "search_spaces": ("msa", "ray"),
    # The experiment directory's contract, shared by the search and the analysis: below both.
    "msa/experiment_dir.py": ("ray", "msa.tune", "msa.analysis", "pandas"),
    # The search and the cross-validation never read results through the analysis layer.
    "msa/tune": ("msa.analysis", "msa.report"),
    # The cross-validation's command line reaches Ray only through msa.tune, after its
    # environment (msa.tune.environment, msa.tune.security) is set.
    "msa/crossval.py": ("ray", "msa.analysis", "msa.report"),
    # Analysis reads experiment directories, with Ray long gone.
    "msa/analysis": ("ray", "msa.tune"),
    "msa/report.py": ("ray", "msa.tune"),
    # python -m msa.predict classifies recordings with a trained model: beside report, no search.
    "msa/predict": ("ray", "msa.tune", "msa.report", "msa.crossval"),
    # python -m msa.export writes a tuned model as ONNX / TorchScript: beside report, no search.
    "msa/export": ("ray", "msa.tune", "msa.trial", "msa.report", "msa.crossval", "search_spaces"),
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
                assert not (module == forbidden or module.startswith(forbidden + ".")), (
                    f"{path.relative_to(REPO)} imports {module}"
                )


def test_nothing_imports_the_predict_command():
    paths = [*(REPO / "msa").rglob("*.py"), *(REPO / "search_spaces").rglob("*.py"), REPO / "tune_main.py"]
    for path in sorted(paths):
        if (REPO / "msa" / "predict") not in path.parents:
            for module in imported_modules(path):
                assert not (module == "msa.predict" or module.startswith("msa.predict.")), (
                    f"{path.relative_to(REPO)} imports {module}"
                )


def test_only_predict_imports_the_export():
    """msa.export is a command at the top, like msa.report: only msa.predict, above it, loads
    models through it."""
    for path in [REPO / "tune_main.py", *sorted((REPO / "msa").rglob("*.py"))]:
        if {REPO / "msa" / "export", REPO / "msa" / "predict"} & set(path.parents):
            continue
        for module in imported_modules(path):
            assert not (module == "msa.export" or module.startswith("msa.export.")), (
                f"{path.relative_to(REPO)} imports {module}"
            )


def test_only_the_tune_layer_reports_to_ray():
    for path in sorted((REPO / "msa").rglob("*.py")):
        text = path.read_text()
        if "tune.report(" in text or "get_checkpoint(" in text:
            assert path.parent.name == "tune", path


def test_analysis_imports_no_ray():
    """Reading a search never imports Ray, not even through a module it imports."""
    modules = [
        "msa.experiment_dir",
        "msa.analysis",
        "msa.report",
        "msa.export",
        "msa.export.__main__",
        "msa.predict.__main__",
        "msa.predict.classifier",
    ]
    code = f"import sys; import {', '.join(modules)}; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

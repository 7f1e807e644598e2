"""The one-way layering, and no import circle between any two modules.

The layer picture is docs/explanation/architecture.md (``ARCHITECTURE``): each package there
imports only from the layers below it, and FORBIDDEN below is what that means, file by file.
A test checks that the page names every layer FORBIDDEN lists, so the two cannot drift apart.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

ARCHITECTURE = REPO / "docs" / "explanation" / "architecture.md"

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
    # How every figure file is written: below the analysis and predict, which both save figures.
    "msa/figure_files.py": ("msa", "matplotlib", "torch", "ray"),
    # One trial, without Ray: what the Ray adapter (msa.tune.trainable) and benchmarks call.
    "msa/trial": ("msa.tune", "ray", "msa.analysis", "msa.report"),
    # The classical baseline, beside trial: clips and metrics only, no model, no Ray.
    "msa/baseline": ("msa.tune", "ray", "msa.models", "msa.analysis", "msa.report", "search_spaces"),
    # The spaces read the model registry and the schedule names from below them (when a space
    # is drawn, not at import: see test_the_spaces_import_without_torch_or_ray); nothing above.
    "search_spaces": (
        "ray",
        "torch",
        "msa.trial",
        "msa.baseline",
        "msa.tune",
        "msa.crossval",
        "msa.prepare",
        "msa.analysis",
        "msa.report",
        "msa.export",
        "msa.predict",
        "msa.cli",
    ),
    # The experiment directory's contract, shared by the search and the analysis: below both.
    "msa/experiment_dir.py": ("ray", "msa.tune", "msa.analysis", "pandas"),
    # The search and the cross-validation never read results through the analysis layer.
    "msa/tune": ("msa.analysis", "msa.report"),
    # The cross-validation's command line reaches Ray only through msa.tune, after its
    # environment (msa.tune.environment, msa.tune.security) is set.
    "msa/crossval.py": ("ray", "msa.analysis", "msa.report"),
    # Preparing a dataset into the cache: data, features and weights, no search.
    "msa/prepare.py": ("ray", "msa.tune", "msa.trial", "msa.analysis", "msa.report"),
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


def test_only_commands_import_the_msa_command():
    """msa.cli is the top layer: what it runs never imports it back (tune_main.py and a package's
    __main__ may, being the command under another name)."""
    for path in sorted((REPO / "msa").rglob("*.py")):
        if (REPO / "msa" / "cli") in path.parents or path.name == "__main__.py":
            continue
        for module in imported_modules(path):
            assert not (module == "msa.cli" or module.startswith("msa.cli.")), (
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


# ----------------------------------------------------------------------------- no import circle

CIRCLE_ROOTS = ("msa", "search_spaces")  # the packages whose modules must form no circle


def package_modules(repo: Path, roots=CIRCLE_ROOTS) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (its file, whether it is a package's __init__)."""
    modules = {}
    for root in roots:
        for path in sorted((repo / root).rglob("*.py")):
            parts = path.relative_to(repo).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def module_imports(name: str, path: Path, is_package: bool, known) -> dict[str, int]:
    """The modules of ``known`` that module ``name`` imports -> the line of the first import.

    Every import counts, inside functions too: a circle is still a circle when one side imports
    late. Relative imports are resolved; ``from pkg import name`` is an import of the submodule
    pkg.name where there is one, else of pkg. An import of a.b.c that is not a module of ours
    counts as one of its closest enclosing module. Importing a submodule runs its packages'
    __init__ too, but that is not counted: every submodule would otherwise be in a circle with
    a package that re-exports it.
    """
    imported = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                imported.setdefault(target, node.lineno)
    return imported


def import_graph(repo: Path, roots=CIRCLE_ROOTS) -> dict[str, dict[str, int]]:
    modules = package_modules(repo, roots)
    return {
        name: module_imports(name, path, is_package, modules) for name, (path, is_package) in modules.items()
    }


def strongly_connected(graph: dict[str, dict]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module, each sorted."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in stack:
                lowest[module] = min(lowest[module], index[imported])
        if lowest[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return components


def one_circle(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """A shortest way round the component from its first module back to it: [a, b, ..., a]."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while start not in came_from:
        following = []
        for module in frontier:
            for imported in graph[module]:
                if imported in members and imported not in came_from:
                    came_from[imported] = module
                    following.append(imported)
        frontier = following
    circle = [start]
    while circle[-1] != start or len(circle) == 1:
        circle.append(came_from[circle[-1]])
    return circle[::-1]


def describe_circle(graph: dict[str, dict[str, int]], circle: list[str]) -> str:
    return (
        " -> ".join(
            f"{module} (line {graph[module][following]})" for module, following in zip(circle, circle[1:])
        )
        + f" -> {circle[-1]}"
    )


def test_no_import_circle_between_modules():
    graph = import_graph(REPO)
    circles = [
        describe_circle(graph, one_circle(graph, component)) for component in strongly_connected(graph)
    ]
    assert not circles, "import circles (give what they share one owner below them):\n" + "\n".join(circles)


def test_the_circle_search_sees_circles_hidden_in_functions(tmp_path):
    """A late import inside a function, a relative import and ``from pkg import module`` all
    close a circle; imports of a package's own __init__ by its submodules do not."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg.a import A\n")
    (package / "a.py").write_text("from pkg.sub import b\nA = 1\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def late():\n    from ..c import C\n    return C\n")
    (package / "c.py").write_text("import pkg\nfrom . import a\nC = 2\n")
    (package / "d.py").write_text("from pkg import A\n")  # through the __init__ only: no circle
    graph = import_graph(tmp_path, roots=("pkg",))
    assert graph["pkg.sub.b"] == {"pkg.c": 2}
    assert graph["pkg.c"] == {"pkg": 1, "pkg.a": 2}
    assert strongly_connected(graph) == [["pkg", "pkg.a", "pkg.c", "pkg.sub.b"]]
    assert one_circle(graph, ["pkg", "pkg.a", "pkg.c", "pkg.sub.b"]) == [
        "pkg",
        "pkg.a",
        "pkg.sub.b",
        "pkg.c",
        "pkg",
    ]
    (package / "c.py").write_text("C = 2\n")
    assert strongly_connected(import_graph(tmp_path, roots=("pkg",))) == []


# ----------------------------------------------------------------------------- the picture


def layer_picture() -> str:
    """The code block under the architecture page's "## Layers" heading."""
    section = ARCHITECTURE.read_text().split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def test_the_architecture_page_draws_every_layer():
    """Every layer FORBIDDEN constrains, and every package and module at the top of msa/, has
    its place in the one layer picture: a new layer cannot be added without drawing it."""
    top = [
        path.relative_to(REPO).as_posix()
        for path in (REPO / "msa").iterdir()
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.name not in ("__init__.py", "__main__.py"))
    ]
    picture = layer_picture()
    missing = [
        layer
        for layer in sorted({*FORBIDDEN, *top})
        if not re.search(rf"(?<![\w/.]){re.escape(layer)}(?![\w.])", picture)
    ]
    assert not missing, f"{ARCHITECTURE.relative_to(REPO)}'s layer picture lacks {', '.join(missing)}"


def test_the_spaces_import_without_torch_or_ray():
    """search_spaces is imported by the command lines' --help and by the analysis: it reads
    msa.models and msa.train only when a space is drawn, so importing it loads neither torch
    (seconds) nor Ray."""
    code = (
        "import sys, search_spaces; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch', 'transformers'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

"""The documentation site's reference pages against the code that owns what they describe.

- reference/spaces.md is generated (docs/hooks/spaces_reference.py): every registered space is on it;
- reference/models.md names every registered model configuration;
- reference/environment.md lists every environment variable msa reads;
- reference/files.md documents exactly the keys the owners write: summary.json, result.json lines,
  the baseline block, crossval.json, checkpoints, export metadata and predict's CSV / JSON, each
  produced here by its owner's own writer from a two-epoch trial on the tiny sample (no Ray).

A schema section of files.md is a heading with an id (``## summary.json {#summary-json}``) over
a table whose first column is a key path in a code span: ``test.accuracy``, ``folds[].epoch``
(``[]``: each element of a list), ``pretrained.<branch>.loaded`` (``<...>``: one of a known set).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SECTION = re.compile(r"^#{2,4} .*\{#([a-z0-9-]+)\}\s*$")
KEY_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|")
SOURCES = ("msa", "search_spaces", "tune_main.py", "Makefile", "cluster", "analysis/trials.ipynb")


def page(name: str) -> str:
    return (DOCS / name).read_text()


def documented_keys(text: str) -> dict[str, set[str]]:
    """{section id: the key paths in the first column of its tables}."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        heading = SECTION.match(line)
        if heading:
            current = sections.setdefault(heading.group(1), set())
        elif line.startswith("#"):
            current = None
        elif current is not None and (row := KEY_ROW.match(line)):
            current.add(row.group(1))
    return sections


def key_paths(value, prefix: str = "", opaque=(), placeholders=None) -> set[str]:
    """Every key path of a JSON-like ``value`` (the intermediate ones too), in files.md's notation.

    ``opaque``: paths whose insides are documented elsewhere or are free-form (a configuration, a
    {trial: error} map). ``placeholders``: {path: (name, keys)}: a child in ``keys`` is written
    ``<name>``."""
    placeholders = placeholders or {}
    paths = {prefix} if prefix else set()
    if prefix in opaque:
        return paths
    if isinstance(value, dict):
        name, members = placeholders.get(prefix, (None, ()))
        for key, child in value.items():
            shown = f"<{name}>" if key in members else key
            paths |= key_paths(child, f"{prefix}.{shown}" if prefix else shown, opaque, placeholders)
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for item in value:
            paths |= key_paths(item, f"{prefix}[]", opaque, placeholders)
    return paths


# ----------------------------------------------------------------------------- generated and listed pages


def load_spaces_hook():
    spec = importlib.util.spec_from_file_location("spaces_reference", DOCS / "hooks" / "spaces_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_the_spaces_page_shows_every_registered_space_and_its_parameters():
    from search_spaces import SPACES, sample_config

    text = load_spaces_hook().render_spaces()
    headings = re.findall(r"^## `(\w+)` \{#\1\}$", text, flags=re.MULTILINE)
    assert headings == list(SPACES), "one section per registered space, in the registry's order"
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    for name, space in SPACES.items():
        (section,) = [s for s in sections if s.startswith(f"`{name}`")]
        for model in space.models:
            assert f"`{model}`" in section, (name, model)
        drawn = {row for row in re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)}
        for seed in range(5):  # what Optuna itself draws is on the page
            config = sample_config(space, seed)
            assert set(config) - {"model"} <= drawn | {"model"}, (name, set(config) - drawn)


def test_the_models_page_names_every_registered_model():
    from msa.models import list_models

    text = page("reference/models.md")
    missing = [name for name in list_models() if f"`{name}`" not in text]
    assert not missing, f"reference/models.md lacks {missing}"


def read_variables() -> tuple[set[str], set[str]]:
    """(every MSA_* name in the sources, every variable msa's Python reads by a literal name)."""
    msa_names, read = set(), set()
    accessors = re.compile(
        r"(?:environ\.get|environ\.setdefault|getenv|environ)\(?\[?\s*\"([A-Z][A-Z0-9_]+)\""
    )
    for source in SOURCES:
        path = REPO / source
        files = (
            [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and p.suffix != ".pyc"]
        )
        for file in files:
            text = file.read_text(errors="ignore")
            msa_names |= set(re.findall(r"\bMSA_[A-Z0-9_]+", text))
            if file.suffix == ".py":
                read |= set(accessors.findall(text))
    return msa_names, read


def test_the_environment_page_lists_every_variable_msa_reads():
    from msa.tune import security

    msa_names, read = read_variables()
    assert {"MSA_CACHE", "MSA_EXPERIMENT"} <= msa_names, "the scan finds the variables it must"
    text = page("reference/environment.md")
    names = msa_names | read | {security.AUTH_MODE, security.AUTH_TOKEN}
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"reference/environment.md lacks {missing}"


# ----------------------------------------------------------------------------- the experiment directory


def test_the_files_page_names_every_file_of_the_experiment_directory():
    from msa import experiment_dir

    text = page("reference/files.md")
    names = {
        name: value
        for name, value in vars(experiment_dir).items()
        if isinstance(value, str) and re.search(r"(_FILE|_DIR|_PREFIX|_SUFFIX|^ERROR_[A-Z]+)$", name)
    }
    assert len(names) >= 15, "the scan finds experiment_dir's file names"
    missing = {name: value for name, value in names.items() if value not in text}
    assert not missing, f"reference/files.md lacks {missing}"
    for metric in experiment_dir.TRIAL_METRICS:
        assert f"`{metric}`" in text


class CapturedTune:
    """Stands in for ray.tune inside the trainable: keeps each reported metrics and checkpoint."""

    def __init__(self, keep: Path):
        from ray.tune import Checkpoint

        self.Checkpoint, self.keep, self.reports = Checkpoint, keep, []

    def get_context(self):
        return SimpleNamespace(get_trial_id=lambda: "doc00001")

    def get_checkpoint(self):
        return None

    def report(self, metrics, checkpoint=None):
        folder = self.keep / f"checkpoint_{metrics['epoch']:06d}"
        shutil.copytree(checkpoint.path, folder)
        self.reports.append((dict(metrics), folder))


# multimodal: both branches, so every per-branch key is written
TRIAL_CONFIG = {
    "model": "multimodal_iter2",
    "head": "linear",
    "pool_dropout": 0.1,
    "lr": 1e-3,
    "backbone_lr": 1e-4,
    "weight_decay": 1e-4,
    "batch_size": 4,
    "schedule": "constant",
}


@pytest.fixture(scope="module")
def written(tiny_trial_data, tmp_path_factory):
    """What the owners write for a two-epoch trial of TRIAL_CONFIG on the tiny sample: the
    reported epochs, the checkpoint, summary.json, crossval.json, the export metadata and the
    predict outputs (each from its owner's own function; Ray's result objects are stand-ins)."""
    import pandas

    from msa.baseline import baseline_for
    from msa.data.folds import Fold
    from msa.experiment_dir import CHECKPOINT_FILE
    from msa.export.source import from_checkpoint
    from msa.export.write import build_metadata
    from msa.predict.timeline import WindowPrediction, write_output
    from msa.train import load_checkpoint
    from msa.trial import TrialSettings
    from msa.trial.evaluation import evaluate_test_actors
    from msa.tune import trainable
    from msa.tune.crossval_file import FoldOutcome, crossval_payload
    from msa.tune.options import BudgetOptions, SearchOptions
    from msa.tune.summary import summarise

    work = tmp_path_factory.mktemp("written")
    trial = work / "trial_doc00001"
    trial.mkdir()
    captured = CapturedTune(trial)
    settings = TrialSettings(
        data=tiny_trial_data, max_epochs=2, smoke_test=True, progress=False, measure_latency=True
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(trial)
        patch.setattr(trainable, "tune", captured)
        trainable.train_trial(dict(TRIAL_CONFIG), settings)
    reports = captured.reports
    checkpoint_file = reports[0][1] / CHECKPOINT_FILE  # the first epoch's is always whole

    history = pandas.DataFrame(
        [
            {**metrics, "trial_id": "doc00001", **{f"config/{k}": v for k, v in TRIAL_CONFIG.items()}}
            for metrics, _ in reports
        ]
    )
    result = SimpleNamespace(
        path=str(trial),
        error=None,
        config=dict(TRIAL_CONFIG),
        metrics={**reports[-1][0], "trial_id": "doc00001"},
        best_checkpoints=[
            (captured.Checkpoint.from_directory(str(folder)), {**metrics, "trial_id": "doc00001"})
            for metrics, folder in reports[:1]
        ],
        metrics_dataframe=history,
    )
    test = evaluate_test_actors(checkpoint_file, tiny_trial_data, seed=0, threads=1)
    baseline = baseline_for(tiny_trial_data)
    options = SearchOptions("multimodal", budget=BudgetOptions(scheduler="pbt"))  # with its schedule
    summary = summarise([result], options, tiny_trial_data, test, weights={}, baseline=baseline)
    two_objectives = BudgetOptions(objectives=("val_f1", "latency_ms"), metric="val_f1", scheduler="fifo")
    front_summary = summarise(
        [result], SearchOptions("multimodal", budget=two_objectives), tiny_trial_data, test, weights={}
    )

    fold = Fold(1, (1, 2), (3,), (4,))
    outcome = FoldOutcome(fold, "trial_doc00001", "TERMINATED", None, reports[0][0], test, baseline)
    crossval = crossval_payload(
        [outcome, outcome],  # two folds: a standard deviation
        experiment=str(work),
        space="multimodal",
        folds="2",
        protocol="two folds",
        seed=0,
        epochs=2,
        metric="val_acc",
        mode="max",
        labels=list(tiny_trial_data.labels),
        config=dict(TRIAL_CONFIG),
        pretrained=summary["pretrained"],
    )
    source = from_checkpoint(checkpoint_file)
    metadata = build_metadata(source, *source.prepare_params())

    labels = ["happy", "sad"]
    windows = [
        WindowPrediction(0.0, 3.0, (0.7, 0.3), "audio+video"),
        WindowPrediction(1.0, 4.0, (), "no face"),
    ]
    csv_header = write_output(work / "out.csv", labels, windows).read_text().splitlines()[0].split(",")
    import json

    predict_json = json.loads(write_output(work / "out.json", labels, windows).read_text())
    return SimpleNamespace(
        reports=reports,
        checkpoint=load_checkpoint(checkpoint_file),
        summary=summary,
        front_summary=front_summary,
        baseline=baseline,
        crossval=crossval,
        metadata=metadata,
        csv_header=csv_header,
        predict_json=predict_json,
    )


@pytest.fixture(scope="module")
def files_page() -> dict[str, set[str]]:
    return documented_keys(page("reference/files.md"))


def assert_documented(files_page, section: str, written: set[str], only_sometimes: set[str] = frozenset()):
    """The section documents every key written, and nothing else but ``only_sometimes`` (keys
    written in cases the tiny trial does not reach, named by their owners)."""
    documented = files_page[section]
    assert written <= documented, f"files.md #{section} lacks {sorted(written - documented)}"
    gone = documented - written - set(only_sometimes)
    assert not gone, f"files.md #{section} documents keys nothing writes: {sorted(gone)}"


def test_summary_json_is_documented_key_for_key(written, files_page):
    from msa.experiment_dir import MUTABLE_HYPERPARAMETERS
    from msa.models import BACKBONE_BRANCHES
    from msa.pareto import OBJECTIVES

    paths = set()
    for summary in (written.summary, written.front_summary):  # one objective (pbt), and two
        paths |= key_paths(
            summary,
            opaque={"trials_by_status", "best_config", "errors", "stopped_non_finite", "baseline"}
            | {"pareto_front[].config"},
            placeholders={
                "pretrained": ("branch", BACKBONE_BRANCHES),
                "schedule[]": ("hyperparameter", MUTABLE_HYPERPARAMETERS),
                "pareto_front[].objectives": ("objective", OBJECTIVES),
            },
        )
    assert "schedule[].<hyperparameter>" in paths and "test.confusion_matrix" in paths
    assert "pareto_front[].objectives.<objective>" in paths
    assert_documented(files_page, "summary-json", paths)


def test_result_json_lines_are_documented_key_for_key(written, files_page):
    from msa.analysis.trials import RAY_BOOKKEEPING
    from msa.experiment_dir import TRIAL_METRICS

    reported = set().union(*(metrics for metrics, _ in written.reports))
    assert set(TRIAL_METRICS) <= reported
    # stop_reason: only on the epoch whose loss was not finite (msa.tune.trainable)
    assert_documented(files_page, "result-json", reported, only_sometimes={"stop_reason"})
    ray_keys = files_page["result-json-ray"]
    assert RAY_BOOKKEEPING <= ray_keys, (
        f"files.md #result-json-ray lacks {sorted(RAY_BOOKKEEPING - ray_keys)}"
    )


def test_the_baseline_block_is_documented_key_for_key(written, files_page):
    from msa.experiment_dir import BASELINE_FEATURE_SETS

    paths = key_paths(
        written.baseline,
        opaque={f"<set>.{key}" for key in ("confusion_matrix",)},
        placeholders={"": ("set", BASELINE_FEATURE_SETS)},
    )
    assert "<set>.accuracy" in paths
    # error: the whole block when the baseline failed (msa.tune.summary.run_baseline)
    assert_documented(files_page, "baseline-block", paths, only_sometimes={"error"})


def test_crossval_json_is_documented_key_for_key(written, files_page):
    from msa.experiment_dir import BASELINE_FEATURE_SETS
    from msa.models import BACKBONE_BRANCHES

    paths = key_paths(
        written.crossval,
        opaque={"config", "folds[].baseline", "baseline.<set>.mean", "baseline.<set>.std"},
        placeholders={
            "pretrained": ("branch", BACKBONE_BRANCHES),
            "baseline": ("set", BASELINE_FEATURE_SETS),
        },
    )
    assert "folds[].uar" in paths and "std.uar" in paths
    assert_documented(files_page, "crossval-json", paths)


def test_nested_json_is_documented_key_for_key(written, files_page):
    from dataclasses import replace

    from msa.data.folds import Fold
    from msa.experiment_dir import BASELINE_FEATURE_SETS
    from msa.tune.nested_file import COMPLETED, OuterOutcome, nested_payload, outer_json, pending_json

    first = OuterOutcome(
        Fold(1, (1, 2), (3,), (4,)),
        COMPLETED,
        trials=2,
        best_trial="trial_doc00001",
        best_config=dict(TRIAL_CONFIG),
        inner=written.reports[0][0],
        test=written.summary["test"],
        baseline=written.baseline,
        seconds=12.0,
        features_computed=8,
        feature_seconds=0.5,
    )
    rows = [
        outer_json(first),
        outer_json(replace(first, fold=Fold(2, (2, 3), (4,), (1,)))),
        pending_json(Fold(3, (3, 4), (1,), (2,))),
    ]
    nested = nested_payload(
        rows,  # two completed folds (a standard deviation) and one pending
        experiment="doc",
        space="multimodal",
        folds="3",
        protocol="three folds",
        seed=0,
        metric="val_acc",
        mode="max",
        labels=list(written.summary["test"]["labels"]),
        budget={
            "num_samples": 2,
            "max_epochs": 2,
            "grace_period": 1,
            "scheduler": "asha",
            "search": "optuna",
            "time_budget": None,
        },
    )
    paths = key_paths(
        nested,
        opaque={
            "outer_folds[].best_config",
            "outer_folds[].baseline",
            "baseline.<set>.mean",
            "baseline.<set>.std",
        },
        placeholders={
            "baseline": ("set", BASELINE_FEATURE_SETS),
            "agreement": ("hyperparameter", TRIAL_CONFIG),
        },
    )
    assert "outer_folds[].uar" in paths and "agreement.<hyperparameter>.share" in paths
    assert_documented(files_page, "nested-json", paths)


def test_checkpoints_are_documented_key_for_key(written, files_page):
    from msa.models import BACKBONE_BRANCHES
    from msa.train.checkpoint import FROZEN_OMITTED

    paths = key_paths(
        written.checkpoint,
        opaque={
            "model_config",
            "model_state",
            "extra.metrics",
            "extra.optimizer",
            "extra.scheduler",
            "extra.earlier_scores",
        },
        placeholders={"extra.pretrained": ("branch", BACKBONE_BRANCHES)},
    )
    assert "extra.preprocessing.crop" in paths
    # frozen_omitted: only in a trainable-only checkpoint (an epoch that cannot be its trial's best)
    assert_documented(files_page, "checkpoints", paths, only_sometimes={FROZEN_OMITTED})


def test_export_metadata_is_documented_key_for_key(written, files_page):
    paths = key_paths(written.metadata, opaque={"inputs", "model_config", "val_metrics"})
    assert {"labels", "min_audio_samples", "num_frames"} <= paths
    assert_documented(files_page, "export-metadata", paths)
    assert_documented(files_page, "export-inputs", set(written.metadata["inputs"]))
    assert written.metadata["input_names"] == list(written.metadata["inputs"])


def test_predict_outputs_are_documented_column_for_column(written, files_page):
    from msa.predict.timeline import CSV_COLUMNS

    assert written.csv_header == [*CSV_COLUMNS, "happy", "sad"]
    assert_documented(files_page, "predict-csv", {*CSV_COLUMNS, "<label>"})
    paths = key_paths(written.predict_json, opaque={"items[].probabilities"})
    assert_documented(files_page, "predict-json", paths)


def test_live_json_lines_are_documented_key_for_key(files_page):
    import io
    import json

    from msa.predict.live_output import JsonLines, LiveRow
    from msa.predict.timeline import WindowPrediction

    stream = io.StringIO()
    prediction = WindowPrediction(0.0, 3.0, (0.7, 0.3), "audio+video")
    JsonLines(["happy", "sad"], stream).write(LiveRow(0.0, 3.0, None, prediction, 0.25))
    line = json.loads(stream.getvalue())
    assert_documented(files_page, "predict-live", set(line))

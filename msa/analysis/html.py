"""The report: every section of the notebook as one self-contained HTML page.

``write_report(EXPERIMENT_DIR)`` (what ``msa report`` runs) writes
``EXPERIMENT_DIR/report.html`` (figures embedded as base64 PNG) and each figure as
``EXPERIMENT_DIR/report_<name>.png``, for people without Jupyter and for CI artefacts. The
tables and figures are the ones ``analysis/trials.ipynb`` shows: both call msa.analysis.
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from msa.analysis.baselines import baseline_comparison
from msa.analysis.crossval import (
    CROSSVAL_COMMAND,
    CROSSVAL_FILE,
    crossval_comparison,
    crossval_notes,
    crossval_overview,
    crossval_table,
)
from msa.analysis.crossval_figures import crossval_confusion_figure, crossval_folds_figure
from msa.analysis.experiment import Experiment, confusion_matrices, load_experiment
from msa.analysis.figures import (
    is_iterations_search,
    plot_confusion_matrices,
    plot_importances,
    plot_iterations,
    plot_learning_curves,
    plot_param_scatter,
    plot_rung_survival,
)
from msa.analysis.front import front_table, objectives_of, plot_front
from msa.analysis.importance import compare_choices, param_importances
from msa.analysis.nested import (
    NESTED_COMMAND,
    agreement_table,
    load_nested,
    nested_comparison,
    nested_notes,
    nested_table,
)
from msa.analysis.plotting import default_colour_param, png
from msa.analysis.population import (
    copies,
    is_population_search,
    plot_hyperparameter_paths,
    plot_lineage,
    schedule_table,
)
from msa.analysis.tables import overview, pretrained_note, pretrained_table, trial_table
from msa.analysis.trials import CONFIG_PREFIX
from msa.experiment_dir import FIGURE_PREFIX, NESTED_FILE, REPORT_FILE

NO_EPOCHS = "no trial has reported an epoch yet"


@dataclass(frozen=True)
class Section:
    """One heading of the page, what to look at, and its tables and figures."""

    title: str
    intro: str  # what to look at
    parts: list[str] = field(default_factory=list)  # HTML fragments


@dataclass(frozen=True)
class Report:
    """The page and its figures."""

    title: str
    sections: list[Section]
    figures: dict[str, bytes]  # name -> PNG

    def html(self) -> str:
        nav = " · ".join(f'<a href="#s{i}">{html.escape(s.title)}</a>' for i, s in enumerate(self.sections))
        body = "\n".join(
            f'<section id="s{i}"><h2>{html.escape(s.title)}</h2><p class="intro">{html.escape(s.intro)}</p>\n'
            + "\n".join(s.parts)
            + "</section>"
            for i, s in enumerate(self.sections)
        )
        return HTML_PAGE.format(
            title=html.escape(self.title), nav=nav, body=body, generated=time.strftime("%Y-%m-%d %H:%M")
        )


HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1.5em; color: #212529; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ border-bottom: 1px solid #dee2e6; padding-bottom: 0.2em; margin-top: 2em; }}
nav, .meta {{ color: #495057; }} .intro {{ color: #343a40; max-width: 70em; }}
.note {{ background: #fff9db; border-left: 4px solid #fab005; padding: 0.4em 0.8em; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 0.8em 0; }}
th, td {{ padding: 0.25em 0.6em; border-bottom: 1px solid #e9ecef; text-align: left; white-space: nowrap; }}
th {{ background: #f1f3f5; }} .scroll {{ overflow-x: auto; }}
img {{ max-width: 100%; height: auto; display: block; margin: 0.8em 0; }}
</style></head>
<body><h1>{title}</h1><p class="meta">generated {generated} by msa report</p>
<nav>{nav}</nav>
{body}
</body></html>
"""


def cell_text(value) -> str:
    """Three significant digits for floats; a dash where a value does not apply (<NA>, NaN)."""
    if value is None or (not isinstance(value, (str, tuple, list)) and pd.isna(value)):
        return "–"
    return f"{value:.3g}" if isinstance(value, (float, np.floating)) else str(value)


def table_html(frame: pd.DataFrame) -> str:
    return (
        '<div class="scroll">' + frame.astype(object).map(cell_text).to_html(index=False, border=0) + "</div>"
    )


def note_html(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def baseline_parts(experiment: Experiment) -> list[str]:
    """The table "test actors: best trial vs classical baselines" with its caption and notes."""
    comparison = baseline_comparison(experiment)
    parts = ["<h3>test actors: best trial vs classical baselines</h3>"]
    if comparison.caption:
        parts.append(f"<p>{html.escape(comparison.caption)}.</p>")
    parts += [note_html(note) for note in comparison.notes]
    if not comparison.table.empty:
        parts.append(table_html(comparison.table))
    return parts


def crossval_section(experiment: Experiment, figure_html) -> Section | None:
    """The cross-validation of crossval.json; None when the experiment has none."""
    title = "Cross-validation"
    try:
        cv = experiment.crossval
    except ValueError as error:
        return Section(title, f"{CROSSVAL_FILE} could not be read.", [note_html(str(error))])
    if cv is None:
        return None
    return Section(
        title,
        "One configuration trained once per fold of actors and scored on the fold's held-out actors: "
        "how much the test result of one split owes to which actors it held out, and whether the "
        "classical baselines, fitted per fold on the same actors, do as well.",
        [
            table_html(crossval_overview(cv)),
            *(note_html(note) for note in crossval_notes(cv)),
            "<h3>mean ± std over the folds: the configuration and the classical baselines</h3>",
            table_html(crossval_comparison(cv)),
            "<h3>per fold</h3>",
            table_html(crossval_table(cv)),
            figure_html(
                "crossval_folds", crossval_folds_figure(cv), "cross-validation folds", "no fold completed"
            ),
            figure_html(
                "crossval_confusion",
                crossval_confusion_figure(cv),
                "pooled confusion matrix",
                "no completed fold: no pooled confusion matrix",
            ),
        ],
    )


def front_section(experiment: Experiment, figure_html) -> Section:
    """--objectives: the trials' accuracy against their cost, the Pareto front and its table."""
    objectives = objectives_of(experiment)
    front = front_table(experiment)
    pick = f'msa export {experiment.name} --pick "{objectives[1]}<VALUE" --format onnx --out model.onnx'
    return Section(
        "Pareto front",
        f"Maximising {objectives[0]} while minimising {', '.join(objectives[1:])}: no trial on the front is beaten "
        "on every objective by another. Every trial ran every epoch (FIFO), each shown at its best epoch by "
        f"{objectives[0]}; the latency is timed on the trial's own device beside the other trials. "
        f"Choose one with --pick, e.g. {pick}.",
        [
            figure_html("pareto_front", plot_front(experiment), "Pareto front", NO_EPOCHS),
            table_html(front) if not front.empty else note_html(NO_EPOCHS),
        ],
    )


def nested_section(experiment: Experiment) -> Section | None:
    """Nested vs non-nested cross-validation vs the baselines; None without nested.json."""
    title = "Nested cross-validation"
    try:
        nested = load_nested(experiment.files)
        cv = experiment.crossval if nested is not None else None
    except ValueError as error:
        return Section(title, "nested.json or crossval.json could not be read.", [note_html(str(error))])
    if nested is None:
        return None
    return Section(
        title,
        "A whole search per outer fold, on the fold's other speakers only, its best trial tested once "
        "on the fold: the recipe's score on speakers that neither training nor the choice of "
        f"configuration saw ({nested['protocol']}). The non-nested cross-validation chose one "
        "configuration on validation actors that some folds then test on; the gap is its optimism.",
        [
            *(note_html(note) for note in nested_notes(nested, cv)),
            "<h3>mean ± std over the outer folds</h3>",
            table_html(nested_comparison(nested, cv)),
            "<h3>per outer fold</h3>",
            table_html(nested_table(nested, cv)),
            "<h3>how much the folds' chosen configurations agree</h3>",
            table_html(agreement_table(nested)),
        ],
    )


def population_section(experiment: Experiment, figure_html) -> Section:
    """--scheduler pbt / pb2: the lineage, the hyperparameter paths and the best member's schedule."""
    schedule = schedule_table(experiment)
    exploits = len(copies(experiment))
    return Section(
        "Population-based training",
        f"Every {experiment.args.get('perturbation_interval')} epochs the bottom quarter of the population took over "
        f"a top-quarter member's checkpoint and explored its hyperparameters ({exploits} exploits). "
        "Did the best lineage pass through several members, and where did its learning rate go?",
        [
            figure_html("lineage", plot_lineage(experiment), "population lineage", NO_EPOCHS),
            figure_html(
                "hyperparameter_paths",
                plot_hyperparameter_paths(experiment),
                "hyperparameters over epochs",
                "no explored hyperparameter changed",
            ),
            table_html(schedule) if schedule is not None else note_html("no schedule in summary.json yet"),
        ],
    )


def build_report(experiment: Experiment, evaluate_val: bool = True, colour_by: str | None = None) -> Report:
    """Every section of the notebook, with its figures rendered to PNG."""
    figures: dict[str, bytes] = {}

    def figure_html(name: str, fig: Figure | None, alt: str, empty: str | None = None) -> str:
        """The figure embedded (and kept for its PNG file); ``empty`` says why there is none."""
        if fig is None:
            return note_html(empty) if empty else ""
        figures[name] = png(fig)
        encoded = base64.b64encode(figures[name]).decode()
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'

    importances = param_importances(experiment)
    colour_by = colour_by or default_colour_param(experiment, importances)
    sections = [
        Section(
            "Overview",
            "What was searched, how the trials ended, and how good the best checkpoint is on the "
            "validation actors (which chose it) and on the test actors (which nothing saw before).",
            [table_html(overview(experiment)), *baseline_parts(experiment)],
        ),
        Section(
            "Trials",
            "Best first. 'stopped early' trials were cut by ASHA at a rung; their metrics are at fewer epochs.",
            [table_html(trial_table(experiment))],
        ),
        Section(
            "Learning curves",
            "Do the losses still fall at the last epoch (train longer), does val loss rise while train "
            "loss falls (overfitting), and does the colouring hyperparameter separate good from bad curves?",
            [
                figure_html(
                    "learning_curves",
                    plot_learning_curves(experiment, colour_by),
                    "learning curves",
                    NO_EPOCHS,
                )
            ],
        ),
        population_section(experiment, figure_html)
        if is_population_search(experiment)
        else Section(
            "ASHA rung survival",
            "How many trials ASHA let through each rung, and whether those it stopped were "
            "really worse at the rung than those it kept.",
            [figure_html("rung_survival", plot_rung_survival(experiment), "rung survival", NO_EPOCHS)],
        ),
        Section(
            "Which hyperparameters mattered",
            "Importance is a hint, not a verdict, with few trials; check it against "
            "the scatter plots: a parameter matters when its good values cluster.",
            [
                *(note_html(n) for n in importances.notes),
                figure_html("importance", plot_importances(importances), "importance"),
                figure_html(
                    "param_scatter",
                    plot_param_scatter(experiment, importances),
                    "per-parameter scatter",
                    "no hyperparameter took more than one value in the trials that reported an epoch",
                ),
            ],
        ),
    ]
    if is_iterations_search(experiment):
        sections.append(
            Section(
                "The seed's five video iterations",
                "Which of the seed's designs wins when each gets its own "
                "tuned optimiser settings, and by how much over the others.",
                [
                    table_html(compare_choices(experiment, f"{CONFIG_PREFIX}model")),
                    figure_html("iterations", plot_iterations(experiment), "iterations"),
                ],
            )
        )
    if objectives_of(experiment):
        sections.insert(1, front_section(experiment, figure_html))
    matrices, notes = confusion_matrices(experiment, evaluate_val)
    sections += [
        Section(
            "Best model: confusion matrices",
            "Which emotions are confused with which; compare val with test: a much "
            "better val than test means the search fitted the validation actors.",
            [
                *(note_html(n) for n in notes),
                figure_html("confusion_matrices", plot_confusion_matrices(matrices), "confusion matrices"),
            ],
        ),
        Section(
            "Pretrained weights",
            "Backbones start from the weights the search resolved before it began (found in the "
            "caches or downloaded, then shipped to every trial); a run without them trains its backbones from random weights.",
            [f"<p>{html.escape(pretrained_note(experiment))}</p>", table_html(pretrained_table(experiment))],
        ),
    ]
    crossval = crossval_section(experiment, figure_html)
    if crossval is None:
        sections[0].parts.append(
            f"<p>No cross-validation of this search ({CROSSVAL_FILE}): "
            f"<code>{html.escape(CROSSVAL_COMMAND)}</code> makes one.</p>"
        )
    else:
        sections.append(crossval)
    nested = nested_section(experiment)
    if nested is None:
        sections[0].parts.append(
            f"<p>No nested cross-validation ({NESTED_FILE}): <code>{html.escape(NESTED_COMMAND)}</code> makes one.</p>"
        )
    else:
        sections.append(nested)
    return Report(f"msa search {experiment.name} ({experiment.space})", sections, figures)


def report_html(location: str, evaluate_val: bool = True) -> str:
    """report.html's text for the experiment at ``location``, written nowhere (a tracker's artifact)."""
    return build_report(load_experiment(location), evaluate_val).html()


def write_report(location: str, evaluate_val: bool = True, colour_by: str | None = None) -> list[str]:
    """Write report.html and the PNGs into the experiment directory -> the paths written.
    PNGs of an earlier report that this one has no figure for (yet) are removed."""
    experiment = load_experiment(location)
    report = build_report(experiment, evaluate_val, colour_by)
    pngs = {f"{FIGURE_PREFIX}{name}.png": data for name, data in report.figures.items()}
    for name in experiment.files.listdir():
        if name.startswith(FIGURE_PREFIX) and name.endswith(".png") and name not in pngs:
            experiment.files.delete(name)
    written = [experiment.files.write_bytes(name, data) for name, data in pngs.items()]
    return [experiment.files.write_bytes(REPORT_FILE, report.html().encode()), *written]

"""Analysing a search from its experiment directory alone (no Ray): the frames, the tables,
the figures and the HTML report that ``analysis/trials.ipynb`` and ``python -m msa.report`` show.

    from msa import analysis
    experiment = analysis.load_experiment("ray_results/video_transformer-20260101-120000")
    analysis.trial_table(experiment)                 # a pandas frame
    analysis.plot_learning_curves(experiment)        # a matplotlib Figure

Modules, each using the ones above it; the directory's file names, metrics and the best-trial
rule come from ``msa.experiment_dir``:

- ``files``: ExperimentFiles, a directory's files, local or behind a storage URI
- ``trials``: what each trial folder says (TrialRecord, status rules), the trial and epoch frames
- ``baselines``: the classical baselines of summary.json beside the best trial's test result
- ``pretrained``: the pretrained weights a trial loaded, as text
- ``crossval``: crossval.json (python -m msa.crossval) read, checked and tabulated
- ``experiment``: Experiment, load_experiment, the best checkpoint and model, the val rebuild,
  the confusion matrices
- ``crossval_figures``: crossval.json's figures
- ``rungs``: ASHA's rungs, survival per epoch, what happened at each rung
- ``importance``: searched parameters, their importance, the choices of one compared
- ``tables``, ``figures``: what the notebook and the report show
- ``html``: the report page (build_report, write_report)
"""

from msa.analysis.baselines import BASELINE_SETS, BaselineComparison, baseline_comparison
from msa.analysis.crossval import (
    CROSSVAL_FILE,
    crossval_comparison,
    crossval_notes,
    crossval_overview,
    crossval_table,
    load_crossval,
)
from msa.analysis.crossval_figures import crossval_confusion_figure, crossval_folds_figure
from msa.analysis.experiment import (
    Confusion,
    DataUnavailable,
    Experiment,
    best_checkpoint,
    confusion_matrices,
    load_best_model,
    load_experiment,
    rebuild_val_evaluation,
)
from msa.analysis.figures import (
    is_iterations_search,
    plot_confusion_matrices,
    plot_importances,
    plot_iterations,
    plot_learning_curves,
    plot_param_scatter,
    plot_rung_survival,
)
from msa.analysis.files import ExperimentFiles
from msa.analysis.html import Report, build_report, write_report
from msa.analysis.importance import (
    Importances,
    compare_choices,
    infer_distribution,
    param_importances,
    searched_params,
)
from msa.analysis.plotting import default_colour_param
from msa.analysis.population import (
    best_lineage,
    copies,
    is_population_search,
    plot_hyperparameter_paths,
    plot_lineage,
    schedule_table,
)
from msa.analysis.rungs import asha_rungs, rung_outcomes, survival
from msa.analysis.tables import outcome, overview, pretrained_note, pretrained_table, trial_table
from msa.analysis.trials import CONFIG_PREFIX, TrialRecord, epochs_frame, trials_frame

__all__ = [
    "BASELINE_SETS",
    "CROSSVAL_FILE",
    "BaselineComparison",
    "CONFIG_PREFIX",
    "Confusion",
    "DataUnavailable",
    "Experiment",
    "ExperimentFiles",
    "Importances",
    "Report",
    "TrialRecord",
    "asha_rungs",
    "baseline_comparison",
    "best_checkpoint",
    "build_report",
    "compare_choices",
    "confusion_matrices",
    "crossval_comparison",
    "crossval_confusion_figure",
    "crossval_folds_figure",
    "crossval_notes",
    "crossval_overview",
    "crossval_table",
    "default_colour_param",
    "epochs_frame",
    "infer_distribution",
    "is_iterations_search",
    "load_best_model",
    "load_crossval",
    "load_experiment",
    "outcome",
    "overview",
    "param_importances",
    "plot_confusion_matrices",
    "plot_importances",
    "plot_iterations",
    "plot_learning_curves",
    "plot_param_scatter",
    "plot_rung_survival",
    "best_lineage",
    "copies",
    "is_population_search",
    "plot_hyperparameter_paths",
    "plot_lineage",
    "schedule_table",
    "pretrained_note",
    "pretrained_table",
    "rebuild_val_evaluation",
    "rung_outcomes",
    "searched_params",
    "survival",
    "trial_table",
    "trials_frame",
    "write_report",
]

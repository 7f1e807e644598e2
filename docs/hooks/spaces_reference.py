"""MkDocs hook: ``reference/spaces.md``, generated at build time from the search-space registry.

The page is never written by hand: ``on_files`` adds it from ``render_spaces()``, which reads
``search_spaces.SPACES`` (name, description, backbones, models, epoch factor), the batch sizes
and epoch budgets of ``search_spaces.scale``, and the choices each space samples. A space
added, removed or changed shows on the next build; ``tests/test_docs.py`` renders it too.

The choices are read without Optuna: a space is a define-by-run function of a trial, so it is
called with a stand-in trial that records every ``suggest_*`` call and answers from a plan.
Starting from the first value of everything, each value of each decision is tried in turn, and
a plan that makes the space suggest another set of parameters is explored the same way. A
parameter that appears on only some paths of a model is shown with the decision that gates it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = "reference/spaces.md"
SMALL_INT_RANGE = 6  # integer ranges at most this wide are tried value by value, wider ones at their ends
SCALE_SCAN_CLIPS = 4096  # training-set sizes scanned for the scale table: past every threshold of scale.py
# Where a training-set size of the scale table comes from (clips, example).
SCALE_EXAMPLES = (
    (64, "the embedded sample (4 training actors x 16 clips)"),
    (180, "3 RAVDESS training actors (60 clips each)"),
    (480, "8 RAVDESS training actors"),
    (960, "all of RAVDESS (16 of its 24 actors)"),
)


def on_files(files, config):
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render_spaces()))
    return files


# ----------------------------------------------------------------------------- reading a space


@dataclass(frozen=True)
class Suggestion:
    """One ``suggest_*`` call: its kind and what it may return."""

    kind: str  # "categorical", "int" or "float"
    choices: tuple = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False

    def values_to_try(self) -> tuple:
        if self.kind == "categorical":
            return self.choices
        if self.kind == "int" and self.high - self.low <= SMALL_INT_RANGE:
            return tuple(range(int(self.low), int(self.high) + 1))
        return (self.low, self.high)

    def describe(self) -> str:
        if self.kind == "categorical":
            return ", ".join(f"`{choice}`" for choice in self.choices)
        integer = " (integers)" if self.kind == "int" else ""
        return f"{self.low:g} to {self.high:g}{', log scale' if self.log else ''}{integer}"


class RecordingTrial:
    """Stands in for an Optuna trial: answers each suggestion from ``plan`` (else its first
    value) and records what was suggested, in order."""

    def __init__(self, plan: dict):
        self.plan, self.suggested, self.params = plan, {}, {}

    def _answer(self, name: str, suggestion: Suggestion):
        self.suggested[name] = suggestion
        self.params[name] = self.plan.get(name, suggestion.values_to_try()[0])
        return self.params[name]

    def suggest_categorical(self, name, choices):
        return self._answer(name, Suggestion("categorical", tuple(choices)))

    def suggest_int(self, name, low, high, step=1, log=False):
        return self._answer(name, Suggestion("int", low=low, high=high, log=log))

    def suggest_float(self, name, low, high, step=None, log=False):
        return self._answer(name, Suggestion("float", low=low, high=high, log=log))


@dataclass(frozen=True)
class Run:
    """One call of a space's function: what it suggested, the values it drew, the model."""

    suggested: dict[str, Suggestion]
    params: dict
    model: str


def explore(space, scale) -> list[Run]:
    """The runs of the space's function the exploration makes (see the module doc)."""
    runs, seen, queue = [], set(), [{}]
    while queue:
        base = RecordingTrial(queue.pop(0))
        space.define(base, scale)
        for name, suggestion in list(base.suggested.items()):
            for value in suggestion.values_to_try():
                trial = RecordingTrial({**base.params, name: value})
                constants = space.define(trial, scale) or {}
                run = Run(trial.suggested, trial.params, constants.get("model", trial.params.get("model")))
                runs.append(run)
                if (run.model, frozenset(run.params)) not in seen:
                    seen.add((run.model, frozenset(run.params)))
                    queue.append(run.params)
    return runs


def gate(parameter: str, runs: list[Run]) -> str | None:
    """The one decision whose value decides whether ``parameter`` appears among ``runs`` (one
    model's), as "when NAME is V" text; None when no single decision does."""
    decisions = {name: s for run in runs for name, s in run.suggested.items() if s.kind != "float"}
    for name, suggestion in decisions.items():
        with_it = {run.params[name] for run in runs if name in run.params and parameter in run.params}
        without = {run.params[name] for run in runs if name in run.params and parameter not in run.params}
        if name == parameter or not with_it or not without or with_it & without:
            continue
        if suggestion.kind == "int":
            return f"when `{name}` > {max(without)}" if max(without) < min(with_it) else None
        return f"when `{name}` is " + " or ".join(f"`{v}`" for v in suggestion.choices if v in with_it)
    return None


def parameter_rows(space, scale) -> list[tuple[str, str, str]]:
    """(parameter, its values, the models it is drawn for) for each parameter the space draws."""
    by_model: dict[str, list[Run]] = {model: [] for model in space.models}
    for run in explore(space, scale):
        by_model[run.model].append(run)
    names = list(dict.fromkeys(name for runs in by_model.values() for run in runs for name in run.suggested))
    rows = []
    for name in names:
        values, where = {}, {}  # model -> its values' description, its condition ("" for always)
        for model, runs in by_model.items():
            present = [run for run in runs if name in run.params]
            if present:
                values[model] = present[0].suggested[name].describe()
                where[model] = "" if len(present) == len(runs) else gate(name, runs) or "on some paths"
        rows.append((name, _per_model(values, space.models), _per_model(where, space.models, drawn_for=True)))
    return rows


def _per_model(text: dict[str, str], models: tuple[str, ...], drawn_for: bool = False) -> str:
    """``text`` by model, said once when every model of the space has the same."""
    if len(set(text.values())) == 1 and (len(text) == len(models) or not drawn_for):
        (same,) = set(text.values())
        if not drawn_for:
            return same
        return ("every model" if len(models) > 1 else f"`{models[0]}`") + (f", {same}" if same else "")
    groups: dict[str, list[str]] = {}
    for model, value in text.items():
        groups.setdefault(value, []).append(f"`{model}`")
    if drawn_for:
        return "; ".join(", ".join(group) + (f" {value}" if value else "") for value, group in groups.items())
    return "; ".join(f"{', '.join(group)}: {value}" for value, group in groups.items())


# ----------------------------------------------------------------------------- the page


def render_spaces() -> str:
    """The page's Markdown, from the registry as it is now."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # search_spaces/ is a top-level package of the checkout
    from search_spaces import SPACES, scale

    lines = [
        "# Search spaces",
        "",
        "<!-- Generated by docs/hooks/spaces_reference.py from search_spaces.SPACES when the site is built. -->",
        "",
        "A space is what `msa search --space NAME` draws each trial's configuration from. Spaces are",
        "define-by-run Optuna functions (`search_spaces/`, one registry), so a parameter exists in a trial",
        "only where it applies: no backbone learning rate for a frozen backbone, no warm-up length for a",
        "constant schedule, no transformer width for a model without a transformer. `msa search --list-spaces`",
        "prints the names and descriptions. This page is generated from the registry when the site is built.",
        "",
        "| space | what it searches | models it can choose | pretrained backbones | epoch budget |",
        "|---|---|---|---|---|",
    ]
    for space in SPACES.values():
        models = ", ".join(f"`{model}`" for model in space.models)
        backbones = ", ".join(space.backbones) or "none: trained from scratch"
        budget = (
            "as the table below" if space.epoch_factor == 1 else f"{space.epoch_factor} x the table's epochs"
        )
        lines.append(
            f"| [`{space.name}`](#{space.name}) | {space.description} | {models} | {backbones} | {budget} |"
        )
    lines += [
        "",
        "The models are on [Models](models.md). A space's *pretrained backbones* are what `--pretrained on` must",
        "find before the search starts (`msa weights fetch` downloads them; see",
        "[Environment variables](environment.md) for the caches they live in).",
        "",
        "Every space also draws `lr` (the new layers' learning rate), `backbone_lr` (only where a pretrained",
        "backbone trains), `weight_decay`, `batch_size` (below) and the per-step `schedule`: `constant`,",
        "`inverse_sqrt` (warm-up + inverse square root) or `cosine` (warm-up + cosine), with `warmup_epochs`",
        "for the last two. Population-based training (`--scheduler pbt|pb2`) draws its initial members from",
        "the same functions and then changes only `lr`, `backbone_lr`, `weight_decay`, `dropout` and",
        "`pool_dropout` where a member has them.",
        "",
        "## Sized for the data and the device {#scale}",
        "",
        "Batch sizes and epochs mean different things on the embedded sample's 64 training clips and on",
        "RAVDESS's ~960: batches of 4 and 8 give a RAVDESS epoch 120-240 steps and starve a GPU, batches of",
        "64 give the sample one step per epoch. So a space's `batch_size` choices are powers of two from",
        f"{scale.MIN_BATCH} up to the largest batch that still gives an epoch {scale.MIN_STEPS_PER_EPOCH} steps,",
        f"at most {scale.MAX_BATCH_CPU} on CPUs and {scale.MAX_BATCH_GPU} with `--gpus-per-trial` (32 x 16 frames",
        "of a trainable ResNet-18 fit a quarter of a 16 GB T4 under bf16), the largest "
        f"{scale.BATCH_CHOICES} of them.",
        "Without `--max-epochs` / `--grace-period` the epoch budget follows the training set once the data is",
        "split (and is saved in `msa_args.json`, so `--resume` and `msa crossval` keep it): the first rung",
        "stays at 2 epochs (spaces search warm-ups of up to 2 epochs), and longer trials let the best",
        "configurations converge where an epoch holds more clips. A space's epoch factor multiplies",
        "`--max-epochs`, not the grace period (`search_spaces/scale.py`).",
        "",
        "| training clips | example | batch sizes, CPU | batch sizes, GPU | `--max-epochs` | `--grace-period` | "
        "ASHA rungs (r 3) |",
        "|---|---|---|---|---|---|---|",
    ]
    for first, last, (cpu, gpu, (epochs, grace)) in scale_rows():
        clips = f"< {last + 1}" if first == 0 else (f">= {first}" if last is None else f"{first}-{last}")
        examples = "; ".join(text for n, text in SCALE_EXAMPLES if n >= first and (last is None or n <= last))
        lines.append(
            f"| {clips} | {examples or '-'} | {_listed(cpu)} | {_listed(gpu)} | {epochs} | {grace} | "
            f"{_listed(rungs(grace, epochs))} |"
        )
    at_sample = scale.SearchScale()
    for space in SPACES.values():
        factor = f"; epoch factor {space.epoch_factor}" if space.epoch_factor != 1 else ""
        lines += [
            "",
            f"## `{space.name}` {{#{space.name}}}",
            "",
            f"What it searches: {space.description}. Models: {', '.join(f'`{m}`' for m in space.models)}; pretrained backbones: "
            f"{', '.join(space.backbones) or 'none'}{factor}.",
            "",
            "| parameter | values (`batch_size`: on the embedded sample, on CPUs) | drawn for |",
            "|---|---|---|",
            *(
                f"| `{name}` | {values} | {where} |"
                for name, values, where in parameter_rows(space, at_sample)
            ),
        ]
    return "\n".join(lines) + "\n"


def scale_rows() -> list[tuple[int, int | None, tuple]]:
    """(first clip count, last or None, (CPU batch sizes, GPU batch sizes, (max epochs, grace)))
    for each range of training-set sizes over which search_spaces.scale chooses the same."""
    from search_spaces.scale import SearchScale, epoch_budget

    def choices(clips: int) -> tuple:
        return (
            SearchScale(clips, accelerator=False).batch_sizes(),
            SearchScale(clips, accelerator=True).batch_sizes(),
            epoch_budget(clips),
        )

    rows, first = [], 0
    for clips in range(1, SCALE_SCAN_CLIPS + 1):
        if choices(clips) != choices(first):
            rows.append((first, clips - 1, choices(first)))
            first = clips
    return rows + [(first, None, choices(first))]


def rungs(grace: int, max_epochs: int) -> list[int]:
    """ASHA's rungs at the default reduction factor: grace x r^k below max_epochs."""
    from msa.experiment_dir import DEFAULT_REDUCTION_FACTOR

    found, rung = [], grace
    while rung < max_epochs:
        found.append(rung)
        rung *= DEFAULT_REDUCTION_FACTOR
    return found


def _listed(values) -> str:
    return ", ".join(str(value) for value in values)

"""Every ``msa`` command: its name, the module that holds its command line, and its older alias.

Each module holds ``build_parser(prog)`` and ``main(argv, prog) -> exit status``; ``msa NAME``
and the alias run that same code, only the program name in usage and errors differs. Modules
are named by string and imported when a command runs (``Command.load``), so ``msa --help``
imports none of them, and the Ray environment is set before one imports Ray.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Command:
    name: str  # msa NAME
    module: str  # where build_parser(prog) and main(argv, prog) live
    alias: str  # the form that predates msa, which still works
    summary: str  # one line for msa --help

    @property
    def prog(self) -> str:
        return f"msa {self.name}"

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    def parser(self, prog: str | None = None) -> argparse.ArgumentParser:
        return self.load().build_parser(prog or self.prog)


COMMANDS = (
    Command(
        "search",
        "msa.cli.search",
        "python tune_main.py",
        "search a space of models and hyperparameters with Ray Tune; test the best trial",
    ),
    Command(
        "prepare",
        "msa.prepare",
        "python -m msa.prepare",
        "read a dataset, check and prepare every clip into the cache; inspect the cache",
    ),
    Command(
        "crossval",
        "msa.crossval",
        "python -m msa.crossval",
        "cross-validate a search's best configuration on speaker-disjoint folds",
    ),
    Command(
        "report",
        "msa.report",
        "python -m msa.report",
        "what a search found, as one HTML page with its figures",
    ),
    Command(
        "predict",
        "msa.predict.__main__",
        "python -m msa.predict",
        "annotate recordings with emotions, per subtitle cue or sliding window",
    ),
    Command(
        "export",
        "msa.export.__main__",
        "python -m msa.export",
        "export a tuned model to ONNX or TorchScript, checked against PyTorch",
    ),
    Command(
        "baseline",
        "msa.baseline.__main__",
        "python -m msa.baseline",
        "the classical baseline (MFCC, frame statistics, logistic regression) on the same split",
    ),
    Command(
        "weights",
        "msa.weights.__main__",
        "python -m msa.weights",
        "fetch pretrained backbone weights onto this machine, or list them",
    ),
    Command(
        "models",
        "msa.models.__main__",
        "python -m msa.models",
        "every named model configuration with its parameter counts",
    ),
    Command(
        "sample",
        "msa.data.sample.__main__",
        "python -m msa.data.sample",
        "write the embedded sample, a RAVDESS-sized one, or its clips in another dataset's layout",
    ),
)
BY_NAME = {command.name: command for command in COMMANDS}

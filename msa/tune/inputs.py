"""The data a search or a cross-validation runs on, settled before Ray starts.

``msa search`` and ``msa crossval`` both go through ``run_before_ray``, the one place of this
sequence: their own options (``InputRequest``), then ``settle_inputs``: read the corpus
(``--data``, ``--dataset``), say what was detected, refuse a space whose models need video on
audio files and check that the folds asked for can be made (``find_inputs``: no clip decoded yet,
so these cost seconds), find or download the pretrained weights, then prepare and split the
clips (``prepare_inputs``; with ``--address`` the cluster's nodes do) and size the epochs not
given for the training set. Every problem is one of ``INPUT_ERRORS``: one line, exit status 2.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from msa.data.datasets import FIXED_CROP_DATASET, DatasetError, fixed_crop_dataset
from msa.data.experiment import FoundData, TrialData, find_data, prepare_locally, split_data
from msa.data.folds import FoldError, folds_of, make_folds
from msa.data.prepare import NoUsableClipsError, PrepareReport
from msa.data.splits import SplitError
from msa.tune.options import SearchOptions, UsageError

if TYPE_CHECKING:
    from msa.weights import WeightsBundle

INPUT_ERRORS = (UsageError, FileNotFoundError, DatasetError, NoUsableClipsError, SplitError, FoldError)
EXIT_USAGE = 2  # a bad argument or unusable input


@dataclass(frozen=True)
class InputRequest:
    """What a command asks of the data: its options, checked, and the folds (a --folds value
    every fold of which must be possible; None: none) with the flag that gave them."""

    options: SearchOptions
    folds: str | None
    folds_flag: str


@dataclass(frozen=True)
class Inputs:
    """The settled inputs: ``data`` prepared and split here (TrialData, with its ``report``), or
    with ``--address`` found only (FoundData, ``report`` None: the cluster's nodes prepare it);
    ``weights``: the backbones every trial loads; ``options``: the request's, the epochs not
    given sized for the training set where it is known."""

    request: InputRequest
    options: SearchOptions
    data: FoundData | TrialData
    report: PrepareReport | None
    weights: dict[str, WeightsBundle]


def settle_inputs(request: InputRequest) -> Inputs:
    """The data found and checked, the weights resolved, the clips prepared and split, the epochs
    sized. Raises one of INPUT_ERRORS."""
    # Here, not at import: msa.weights loads huggingface_hub, seconds a bad flag need not wait.
    from msa.tune.weights import resolve_search_weights
    from search_spaces import SPACES

    options = request.options
    found = find_inputs(options, request.folds, request.folds_flag)
    weights = resolve_search_weights(
        SPACES[options.space].backbones, options.weights, real_data=options.data.data is not None
    )
    data, report = prepare_inputs(options, found, request.folds, request.folds_flag)
    if report is not None:
        options = options.sized_for(len(data.clips("train")))
    return Inputs(request, options, data, report, weights)


def run_before_ray(read: Callable[[], InputRequest], run: Callable[[Inputs], int]) -> int:
    """A command that starts Ray: ``read`` its options (raising one of INPUT_ERRORS), settle its
    inputs, set the private Ray's token, then ``run`` -> its exit status. A problem before Ray
    starts is one line on stderr and exit status 2."""
    try:
        inputs = settle_inputs(read())
    except INPUT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not inputs.options.resources.address:
        from msa.tune.security import require_token_for_private_ray

        require_token_for_private_ray()  # before Ray is imported: it reads the mode then
    return run(inputs)


def space_modalities(space: str) -> set[str]:
    """The inputs (video, audio) that some model of the space reads."""
    from msa.models import model_config  # here, not at import: msa.models loads torch and torchvision
    from search_spaces import SPACES

    return {branch for name in SPACES[space].models for branch in model_config(name).branches}


def check_space_fits_data(space: str, found: FoundData) -> None:
    """A space whose models read video cannot run on audio files. Raises UsageError."""
    corpus = found.corpus
    if "video" in space_modalities(space) and not corpus.has_video:
        from search_spaces import SPACES

        audio_spaces = [name for name in SPACES if space_modalities(name) == {"audio"}]
        audio_files = sum(1 for item in corpus.included if not item.record.has_video)
        raise UsageError(
            f"--space {space} needs video, but --data {found.location.root} has no video "
            f"({corpus.title}: {audio_files} of {len(corpus.included)} clips are audio files); "
            f"spaces for audio: {', '.join(audio_spaces)}"
        )


def note_crop(options: SearchOptions, found: FoundData) -> None:
    """Say so when the fixed crop, framed for one dataset, is about to cut the frames of another."""
    corpus = found.corpus
    if "video" not in space_modalities(options.space) or options.data.crop != "fixed" or not found.items:
        return
    if fixed_crop_dataset(found.items[0].source.filename) is None:
        print(
            f"note: --crop fixed is framed for {FIXED_CROP_DATASET}'s clips; "
            f"for {corpus.title}'s consider --crop face"
        )


def find_inputs(options: SearchOptions, folds: str | None, folds_flag: str) -> FoundData:
    """The corpus found (nothing decoded yet), checked against the space and the ``folds`` (a
    --folds value every fold of which must be possible). Prints what was detected. Raises one
    of INPUT_ERRORS."""
    data = options.data
    found = find_data(data.data, data.cache, options.prepare_params, dataset=data.dataset)
    print(found.corpus.describe())
    for note in found.corpus.notes:
        print(f"note: {note}")
    check_space_fits_data(options.space, found)
    note_crop(options, found)
    if folds:
        if not found.corpus.has_speakers:
            raise FoldError(
                f"{folds_flag} {folds}: the data ({found.corpus.title}) names no speakers, and folds keep speakers "
                "apart; give a manifest with a speaker column"
            )
        seed, corpus = options.budget.seed, found.corpus
        make_folds(folds, found.actors, seed, folds_flag, corpus.dataset, found.genders)
    return found


def prepare_inputs(
    options: SearchOptions, found: FoundData, folds: str | None, folds_flag: str
) -> tuple[FoundData | TrialData, PrepareReport | None]:
    """With ``--address``: ``found`` as it is (the cluster's nodes prepare it once Ray is up);
    else prepared and split here -> (TrialData, its report), every fold of ``folds`` checked to
    have every class in its training speakers. Raises one of INPUT_ERRORS."""
    if options.resources.address:
        return found, None
    with warnings.catch_warnings(record=True) as caught:  # --split random's: one line, not a code excerpt
        warnings.simplefilter("always", UserWarning)
        trial_data, report = split_data(found, *prepare_locally(found), options.data.classes, options.split)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if folds:
        folds_of(trial_data, folds, options.budget.seed, folds_flag)
    return trial_data, report

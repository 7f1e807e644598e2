"""Named search spaces: ``SPACES[name]`` holds a define-by-run function and a description.

A space's function suggests hyperparameters on an Optuna trial, given the search's
:class:`~search_spaces.scale.SearchScale` (training-set size and device, which size the batch
choices), and returns the constants the trial also needs (at least ``model``, the named
configuration in ``msa.models``). Fixed parts of a search (classes, split, frames, image size)
come from the command line, not from here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import optuna

from search_spaces import audio, model_facts, multimodal, spectrogram, video
from search_spaces.scale import SearchScale

DefineByRun = Callable[[optuna.Trial, SearchScale], dict | None]


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    define: DefineByRun
    # Every named model configuration it can choose (msa.models; their frozen prefixes are precomputed).
    models: tuple[str, ...]
    # Multiplies the default epoch budget (search_spaces.scale.epoch_budget): models trained from
    # scratch need more epochs than heads over pretrained features.
    epoch_factor: int = 1

    def at_scale(self, scale: SearchScale) -> Callable[[optuna.Trial], dict | None]:
        """The define-by-run function Optuna calls, for a search at ``scale``."""
        return functools.partial(self.define, scale=scale)

    @property
    def backbones(self) -> tuple[str, ...]:
        """Pretrained backbones its models can use (what --pretrained on must find), as their
        configurations in msa.models say."""
        return model_facts.backbones(self.models)


SPACES: dict[str, SearchSpace] = {}

# Config keys that label a categorical choice a space turned into the constant ``model``
# (video_transformer's trunk, audio_wav2vec's layers, audio_spectrogram's body): kept for
# analysis, not model settings.
CHOICE_LABELS = ("trunk", "audio_layers", "audio_body")
SCRATCH_EPOCH_FACTOR = 3


def register(
    name: str,
    description: str,
    define: DefineByRun,
    models: tuple[str, ...],
    epoch_factor: int = 1,
) -> None:
    if name in SPACES:
        raise ValueError(f"search space {name!r} is registered twice")
    SPACES[name] = SearchSpace(name, description, define, tuple(models), epoch_factor)


register(
    "video_scratch",
    "seed iteration 1: small CNN from scratch + transformer over frames",
    video.video_scratch,
    ("video_iter1",),
)
register(
    "video_resnet_avg",
    "seed iteration 2: frozen ResNet-18 + mean over frames + linear",
    video.video_resnet_avg,
    ("video_iter2",),
)
register(
    "video_transformer",
    "ResNet-18 (frozen / last two children / all trainable) + transformer",
    video.video_transformer,
    tuple(video.TRUNK_CHOICES.values()),
)
register(
    "video_iterations",
    "the seed's five video iterations as one categorical choice, head to head",
    video.video_iterations,
    video.VIDEO_ITERATIONS,
)
register(
    "audio_wav2vec",
    "wav2vec 2.0 with frozen / last 2 / all transformer layers trainable",
    audio.audio_wav2vec,
    tuple(audio.AUDIO_CHOICES.values()),
)
register(
    "audio_spectrogram",
    "log-mel CNN / CRNN / transformer from scratch, augmentation searched (no downloaded weights)",
    spectrogram.audio_spectrogram,
    tuple(spectrogram.BODY_MODELS.values()),
    epoch_factor=SCRATCH_EPOCH_FACTOR,
)
register(
    "multimodal",
    "the seed's two final video + audio configurations (or video_iter2 + the log-mel CNN), fusion-head choices",
    multimodal.multimodal,
    multimodal.MULTIMODAL_MODELS,
)


def get_space(name: str) -> SearchSpace:
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown space {name!r}; valid spaces: {', '.join(SPACES)}") from None


def sample_config(space: SearchSpace, seed: int = 0, scale: SearchScale = SearchScale()) -> dict:
    """One configuration drawn from a space, outside Ray (for tests and inspection)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trial = study.ask()
    constants = space.define(trial, scale) or {}
    return {**trial.params, **constants}

"""Model configuration: frozen dataclasses that fully describe an architecture.

A checkpoint stores `config_to_dict(model.config)` beside the weights, so a model is rebuilt
from the file alone. Field names are unique across the whole tree, which lets a flat
hyperparameter dict (what a search space produces) override any of them by name.
"""

import dataclasses
import json
import numbers
from dataclasses import dataclass, fields
from typing import Any

from msa.weights import DEFAULT_AUDIO_WEIGHTS, DEFAULT_VIDEO_WEIGHTS, SPEECH_MODEL_TYPES

VIDEO_TRUNKS = ("resnet18", "cnn")
TEMPORAL_MODELS = ("transformer", "mean")
BUILTIN_AUDIO_ARCHS = ("wav2vec2-base", "tiny")  # defined in msa.models.speech_encoders.BUILTIN_ARCHS
ALL_LAYERS = -1  # trainable_layers value: every transformer layer trains, whatever the encoder's depth
HEADS = ("linear", "mlp")
SPECTROGRAM_BODIES = ("cnn", "crnn", "transformer")
POOLINGS = ("meanmax", "stats", "attention")
SPECTROGRAM_NORMS = ("utterance", "global")
WINDOWS_MS = (25, 50)  # log-mel analysis windows; frames hop by msa.models.front_end.HOP_MS
MAX_CONV_CHANNELS = 256  # the spectrogram family's widest conv block
RESNET18_DEPTH = 9  # children of torchvision's ResNet-18 before `fc`


def check_field_types(config) -> None:
    """Check a dataclass's field types, turning numpy scalars and lists (as search spaces and JSON give them)
    into the plain Python types a checkpoint can store."""
    for f in fields(config):
        value = getattr(config, f.name)
        kind = f.type
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            value = int(value) if ok else value
        elif kind is float:
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif kind is str:
            ok = isinstance(value, str)
        elif kind == tuple[int, ...]:
            ok = isinstance(value, (tuple, list)) and all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
            )
            value = tuple(int(v) for v in value) if ok else value
        else:
            continue
        if not ok:
            kind_name = getattr(kind, "__name__", str(kind))
            raise ValueError(f"{type(config).__name__}.{f.name} must be {kind_name}; got {value!r}")
        object.__setattr__(config, f.name, value)


def _check_choice(config, name: str, choices: tuple[str, ...]) -> None:
    if getattr(config, name) not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {getattr(config, name)!r}")


def parse_audio_arch(arch: str) -> dict[str, Any]:
    """A JSON `audio_arch` -> its transformers config dict; a one-line ValueError unless it is a
    JSON object with a supported model_type that the audio branch can run."""
    try:
        config = json.loads(arch)
    except ValueError:
        config = None
    if not isinstance(config, dict):
        shown = arch if len(arch) <= 60 else arch[:57] + "..."
        raise ValueError(
            f"audio_arch must be one of {', '.join(BUILTIN_AUDIO_ARCHS)} or a JSON object holding a transformers "
            f"config (as a checkpoint's config.json); got {shown!r}"
        )
    if config.get("model_type") not in SPEECH_MODEL_TYPES:
        raise ValueError(
            f"audio_arch's model_type must be one of {', '.join(SPEECH_MODEL_TYPES)}; got {config.get('model_type')!r}"
        )
    if config.get("add_adapter"):  # the branch stops at the encoder's layers, so it would be skipped
        raise ValueError("audio_arch: encoders with an output adapter (add_adapter) are not supported")
    return config


@dataclass(frozen=True)
class VideoConfig:
    """Per-frame trunk -> optional temporal transformer -> masked mean over time."""

    trunk: str = "resnet18"  # "resnet18" (pretrainable) or "cnn" (small, trained from scratch)
    trunk_children: int = RESNET18_DEPTH  # resnet18: keep the first N children (9 = up to avgpool)
    trainable_children: int = 0  # resnet18: the last k kept children train; k >= N trains it all
    cnn_channels: tuple[int, ...] = (32, 64, 128)  # cnn: output channels of each conv block
    temporal: str = "transformer"  # "transformer" or "mean" (masked mean of trunk features)
    d_model: int = 256  # transformer width; trunk features are projected to it
    num_layers: int = 3
    num_heads: int = 2
    dim_feedforward: int = 512
    dropout: float = 0.1  # inside the transformer and after the positional encoding
    video_weights: str = DEFAULT_VIDEO_WEIGHTS  # where the ResNet-18 weights come from (see msa.weights)

    def __post_init__(self):
        check_field_types(self)
        _check_choice(self, "trunk", VIDEO_TRUNKS)
        _check_choice(self, "temporal", TEMPORAL_MODELS)
        if not 1 <= self.trunk_children <= RESNET18_DEPTH:
            raise ValueError(f"trunk_children must be in 1..{RESNET18_DEPTH}; got {self.trunk_children}")
        if self.trainable_children < 0:
            raise ValueError(f"trainable_children must be >= 0; got {self.trainable_children}")
        if not self.cnn_channels or min(self.cnn_channels) < 1:
            raise ValueError(f"cnn_channels must be positive channel counts; got {self.cnn_channels}")
        if min(self.d_model, self.num_layers, self.num_heads, self.dim_feedforward) < 1:
            raise ValueError("d_model, num_layers, num_heads and dim_feedforward must be >= 1")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")


@dataclass(frozen=True)
class AudioConfig:
    """A speech encoder (wav2vec 2.0, HuBERT or WavLM; its conv feature encoder always frozen)
    -> masked mean over frames."""

    # The encoder architecture: a name in BUILTIN_AUDIO_ARCHS ("tiny" for tests and smoke runs),
    # or a transformers config as a JSON object (msa.models.audio.arch_from_config(config.json)).
    audio_arch: str = "wav2vec2-base"
    audio_weights: str = DEFAULT_AUDIO_WEIGHTS  # where the encoder weights come from (see msa.weights)
    # The last k transformer layers train; k >= depth, or ALL_LAYERS, trains all above the convs.
    trainable_layers: int = 2
    layer_weighting: bool = False  # pool a softmax-weighted sum of all hidden states, not the last one

    def __post_init__(self):
        check_field_types(self)
        if self.audio_arch not in BUILTIN_AUDIO_ARCHS:
            parse_audio_arch(self.audio_arch)
        if self.trainable_layers < 0 and self.trainable_layers != ALL_LAYERS:
            raise ValueError(
                f"trainable_layers must be >= 0, or ALL_LAYERS ({ALL_LAYERS}); got {self.trainable_layers}"
            )


@dataclass(frozen=True)
class SpectrogramConfig:
    """Log-mel front end -> compact encoder trained from scratch -> pooling over time.

    The front end has no trainable weights (it is the branch's frozen prefix, cached per clip);
    the fields after ``pooling`` shape training only (augmentation of the log-mel, applied in
    training mode and never in evaluation or prediction)."""

    n_mels: int = 64
    window_ms: int = 25  # one of WINDOWS_MS
    spec_norm: str = "utterance"  # per clip and mel band over its real frames, or "global" (batch statistics)
    body: str = "cnn"  # one of SPECTROGRAM_BODIES
    # Conv blocks, each halving time and frequency: base_width channels, doubling per block up to
    # MAX_CONV_CHANNELS (conv_channels). Scalars, so a search (and Ray's population schedulers) sets them as they are.
    base_width: int = 16
    conv_blocks: int = 4
    convs_per_block: int = 1
    rnn_hidden: int = 64  # crnn: units per direction of its bidirectional GRU
    encoder_dim: int = 96  # transformer: width (its feed-forward is twice as wide)
    encoder_layers: int = 2  # transformer
    encoder_heads: int = 4  # transformer
    body_dropout: float = 0.1  # crnn / transformer: on the frame sequence and inside the layers
    pooling: str = "stats"  # one of POOLINGS
    freq_masks: int = 0  # SpecAugment: masks per clip, each up to freq_mask_bands mel bands wide
    freq_mask_bands: int = 8
    time_masks: int = 0  # SpecAugment: masks per clip, each up to time_mask_frames frames wide
    time_mask_frames: int = 20
    gain_db: float = 0.0  # a random gain within +-gain_db per clip
    crop_seconds: float = 0.0  # a random crop of clips longer than this (0: whole clips)

    def __post_init__(self):
        check_field_types(self)
        _check_choice(self, "spec_norm", SPECTROGRAM_NORMS)
        _check_choice(self, "body", SPECTROGRAM_BODIES)
        _check_choice(self, "pooling", POOLINGS)
        if self.window_ms not in WINDOWS_MS:
            raise ValueError(
                f"window_ms must be one of {', '.join(map(str, WINDOWS_MS))}; got {self.window_ms}"
            )
        if not 8 <= self.n_mels <= 256:
            raise ValueError(f"n_mels must be in 8..256; got {self.n_mels}")
        if min(self.base_width, self.conv_blocks) < 1:
            raise ValueError(
                f"base_width and conv_blocks must be >= 1; got {self.base_width}, {self.conv_blocks}"
            )
        if self.n_mels >> self.conv_blocks < 1:
            raise ValueError(f"{self.conv_blocks} conv blocks halve {self.n_mels} mel bands to nothing")
        sizes = ("convs_per_block", "rnn_hidden", "encoder_dim", "encoder_layers", "encoder_heads")
        if min(getattr(self, name) for name in sizes) < 1:
            raise ValueError(f"{', '.join(sizes)} must be >= 1")
        if self.encoder_dim % self.encoder_heads:
            raise ValueError(
                f"encoder_dim ({self.encoder_dim}) must be divisible by encoder_heads ({self.encoder_heads})"
            )
        if not 0.0 <= self.body_dropout < 1.0:
            raise ValueError(f"body_dropout must be in [0, 1); got {self.body_dropout}")
        counts = (self.freq_masks, self.freq_mask_bands, self.time_masks, self.time_mask_frames)
        if min(counts) < 0 or min(self.gain_db, self.crop_seconds) < 0:
            raise ValueError("SpecAugment's mask counts and widths, gain_db and crop_seconds must be >= 0")

    @property
    def conv_channels(self) -> tuple[int, ...]:
        """Each conv block's output channels."""
        return tuple(min(self.base_width * 2**block, MAX_CONV_CHANNELS) for block in range(self.conv_blocks))


AudioBranchConfig = AudioConfig | SpectrogramConfig
# The audio branch's families, by the name a stored config gives them ("family"); configs
# stored before there were two families hold a speech encoder.
AUDIO_FAMILIES = {"speech_encoder": AudioConfig, "spectrogram": SpectrogramConfig}
DEFAULT_AUDIO_FAMILY = "speech_encoder"


@dataclass(frozen=True)
class ModelConfig:
    """Branches (at least one) whose pooled embeddings are concatenated and classified."""

    video: VideoConfig | None = None
    audio: AudioBranchConfig | None = None  # a speech encoder, or a spectrogram model trained from scratch
    num_classes: int = 8
    head: str = "linear"  # "linear", or "mlp": Linear -> GELU -> Dropout -> Linear
    head_hidden: int = 256  # mlp only
    head_dropout: float = 0.0  # mlp only: between its two layers
    pool_dropout: float = 0.0  # on the pooled (concatenated) embedding, before the head

    def __post_init__(self):
        check_field_types(self)
        for name, types in (("video", (VideoConfig,)), ("audio", tuple(AUDIO_FAMILIES.values()))):
            if not isinstance(getattr(self, name), (*types, type(None))):
                kinds = " or ".join(cls.__name__ for cls in types)
                raise ValueError(f"{name} must be a {kinds} or None; got {getattr(self, name)!r}")
        if self.video is None and self.audio is None:
            raise ValueError("a model needs a video branch, an audio branch, or both")
        _check_choice(self, "head", HEADS)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2; got {self.num_classes}")
        if self.head_hidden < 1:
            raise ValueError(f"head_hidden must be >= 1; got {self.head_hidden}")
        for name in ("head_dropout", "pool_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)}")

    @property
    def branches(self) -> dict[str, VideoConfig | AudioBranchConfig]:
        return {name: cfg for name, cfg in (("video", self.video), ("audio", self.audio)) if cfg is not None}


def audio_family(config: AudioBranchConfig) -> str:
    return next(name for name, cls in AUDIO_FAMILIES.items() if isinstance(config, cls))


_BRANCH_NAMES = ("video", "audio")
_TOP_FIELDS = tuple(f.name for f in fields(ModelConfig) if f.name not in _BRANCH_NAMES)


def override_keys(config: ModelConfig) -> tuple[str, ...]:
    """Every flat key `with_overrides` accepts for this config."""
    branch_keys = [f.name for cfg in config.branches.values() for f in fields(cfg)]
    return tuple(sorted(_TOP_FIELDS + tuple(branch_keys)))


def with_overrides(config: ModelConfig, **overrides: Any) -> ModelConfig:
    """A copy of `config` with fields replaced by flat name (e.g. d_model=128, trainable_layers=0).

    A key that names no field of this config's branches raises ValueError listing the valid keys.
    """
    unknown = sorted(set(overrides) - set(override_keys(config)))
    if unknown:
        raise ValueError(
            f"unknown model setting(s) {', '.join(unknown)}; valid keys: {', '.join(override_keys(config))}"
        )
    changes = {k: v for k, v in overrides.items() if k in _TOP_FIELDS}
    for name, branch in config.branches.items():
        own = {k: v for k, v in overrides.items() if k in {f.name for f in fields(branch)}}
        if own:
            changes[name] = dataclasses.replace(branch, **own)
    return dataclasses.replace(config, **changes)


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """Plain dicts/lists/str/int/float/bool/None: loadable with torch.load(weights_only=True)."""
    out = dataclasses.asdict(config)
    for name in _BRANCH_NAMES:
        if out[name] is not None:
            out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in out[name].items()}
    if config.audio is not None:
        out["audio"]["family"] = audio_family(config.audio)
    return out


def _strict_init(cls, data: dict[str, Any]):
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be given as a dict; got {type(data).__name__}")
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(valid))}"
        )
    return cls(**data)


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Inverse of `config_to_dict`; unknown keys at any level raise ValueError."""
    data = dict(data)
    if data.get("video") is not None:
        data["video"] = _strict_init(VideoConfig, data["video"])
    if isinstance(data.get("audio"), dict):
        audio = dict(data["audio"])
        family = audio.pop("family", DEFAULT_AUDIO_FAMILY)
        if family not in AUDIO_FAMILIES:
            raise ValueError(f"unknown audio family {family!r}; valid: {', '.join(AUDIO_FAMILIES)}")
        data["audio"] = _strict_init(AUDIO_FAMILIES[family], audio)
    elif data.get("audio") is not None:
        data["audio"] = _strict_init(AudioConfig, data["audio"])  # its one-line error
    return _strict_init(ModelConfig, data)

"""The audio branch on every supported speech encoder (wav2vec 2.0, HuBERT, WavLM; post-LN and
stable-layer-norm): HF's own outputs, padding, the cached prefix, freezing, configs."""

import json
import math
import re

import pytest
import torch
from transformers import AutoConfig, AutoModel

from msa.models import AudioConfig, ModelConfig, config_from_dict, config_to_dict
from msa.models.audio import AudioBranch, arch_from_config, encoder_config, normalize_waveform
from msa.models.config import ALL_LAYERS
from msa.models.speech_encoders import BRANCH_SETTINGS

DEPTH = 3  # transformer layers: enough for a frozen, a trainable and a middle layer
TINY = dict(
    hidden_size=32,
    num_hidden_layers=DEPTH,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(32, 32, 32, 32),
    conv_kernel=(10, 8, 4, 4),
    conv_stride=(5, 4, 4, 4),  # 320 samples (20 ms) per frame, as the real models
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)
STABLE = dict(do_stable_layer_norm=True, feat_extract_norm="layer")  # the large models' layout
VARIANTS = {
    "wav2vec2": dict(model_type="wav2vec2"),
    "wav2vec2-stable": dict(model_type="wav2vec2", **STABLE),
    "hubert": dict(model_type="hubert", feat_proj_layer_norm=False),
    "hubert-stable": dict(model_type="hubert", **STABLE),
    # Few buckets and a short maximum distance, so 4000-sample clips reach the log-spaced buckets.
    "wavlm": dict(model_type="wavlm", num_buckets=16, max_bucket_distance=32),
    "wavlm-stable": dict(model_type="wavlm", num_buckets=16, max_bucket_distance=32, **STABLE),
}
LENGTHS = (4_000, 2_500)  # samples: 12 and 7 frames
PAD = 1_500  # samples of noise after the longest clip

variants = pytest.mark.parametrize("variant", list(VARIANTS))
# WavLMAttention itself hands torch a boolean key padding mask beside its float position bias.
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")


def hf_config(variant, **overrides):
    settings = {**TINY, **VARIANTS[variant], **overrides}
    return AutoConfig.for_model(settings.pop("model_type"), **settings)


def make_branch(variant, **settings):
    torch.manual_seed(0)
    arch = arch_from_config(hf_config(variant).to_dict())
    return AudioBranch(AudioConfig(audio_arch=arch, **settings)).eval()


def batch(seed=0):
    """Two clips padded with noise (not zeros: the mask must be what hides padding) -> (B, S) x 2."""
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(len(LENGTHS), max(LENGTHS) + PAD, generator=generator)
    mask = torch.arange(audio.shape[1]) < torch.tensor(LENGTHS).unsqueeze(1)
    return audio, mask


def hf_hidden_states(encoder, waveform):
    """HF's hidden states for one clip (1, S): the embedding output, each layer's output but the
    last, then last_hidden_state (after a stable encoder's final norm)."""
    captured = []
    layers = encoder.encoder.layers
    hooks = [layers[0].register_forward_pre_hook(lambda module, args: captured.append(args[0]))]
    hooks += [
        layer.register_forward_hook(
            lambda module, args, out: captured.append(out[0] if isinstance(out, tuple) else out)
        )
        for layer in layers[:-1]
    ]
    try:
        last = encoder(waveform).last_hidden_state
    finally:
        for hook in hooks:
            hook.remove()
    return captured + [last]


@variants
def test_frozen_encoder_gives_hfs_last_hidden_state(variant):
    branch = make_branch(variant, trainable_layers=0)
    audio = torch.randn(1, LENGTHS[0])
    with torch.no_grad():
        ours = branch.frames_from_prefix(
            **branch.frozen_prefix(audio, torch.ones_like(audio, dtype=torch.bool))
        )
        theirs = branch.backbone(normalize_waveform(audio[0])[None]).last_hidden_state
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


@variants
def test_layer_weighting_pools_hfs_hidden_states(variant):
    """One-hot layer weights pick out each hidden state in turn: pre-norm ones before the last,
    the encoder's output last."""
    branch = make_branch(variant, trainable_layers=1, layer_weighting=True)
    audio = torch.randn(1, LENGTHS[0])
    with torch.no_grad():
        prefix = branch.frozen_prefix(audio, torch.ones_like(audio, dtype=torch.bool))
        expected = hf_hidden_states(branch.backbone, normalize_waveform(audio[0])[None])
        assert len(expected) == DEPTH + 1
        for i, state in enumerate(expected):
            branch.layer_weights.fill_(-math.inf)
            branch.layer_weights[i] = 0.0
            torch.testing.assert_close(branch.frames_from_prefix(**prefix), state, atol=1e-5, rtol=1e-4)


@variants
@pytest.mark.parametrize("trainable_layers", [1, ALL_LAYERS])
def test_padding_never_changes_the_embedding(variant, trainable_layers):
    branch = make_branch(variant, trainable_layers=trainable_layers, layer_weighting=True)
    audio, mask = batch()
    with torch.no_grad():
        batched = branch(audio, mask)
        for i, length in enumerate(LENGTHS):
            alone = branch(audio[i : i + 1, :length], mask[i : i + 1, :length])
            torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=1e-4)


@variants
@pytest.mark.parametrize("layer_weighting", [False, True])
@pytest.mark.parametrize("trainable_layers", [0, 1, 2])
def test_cached_prefix_gives_the_same_embedding(variant, trainable_layers, layer_weighting):
    """frozen_prefix -> per-clip entries -> padded again (as the feature cache and the collate
    do) -> forward_from_prefix equals forward."""
    branch = make_branch(variant, trainable_layers=trainable_layers, layer_weighting=layer_weighting)
    audio, mask = batch()
    with torch.no_grad():
        direct = branch(audio, mask)
        entries = branch.prefix_entries(branch.frozen_prefix(audio, mask))
        padded = torch.nn.utils.rnn.pad_sequence(entries, batch_first=True, padding_value=3.0)
        frame_mask = torch.arange(padded.shape[1]) < torch.tensor([len(e) for e in entries]).unsqueeze(1)
        cached = branch.forward_from_prefix(**branch.prefix_from_entries(padded, frame_mask))
    torch.testing.assert_close(cached, direct, atol=1e-5, rtol=1e-4)


@variants
@pytest.mark.parametrize("trainable_layers", [0, 1, 2, DEPTH, ALL_LAYERS])
def test_the_last_k_layers_train_and_the_rest_is_frozen(variant, trainable_layers):
    branch = make_branch(variant, trainable_layers=trainable_layers, layer_weighting=True).train()
    encoder = branch.backbone
    k = DEPTH if trainable_layers == ALL_LAYERS else trainable_layers
    names = {name for name, _ in encoder.named_parameters()}
    if k == DEPTH:
        expected = {name for name in names if not name.startswith("feature_extractor.")}
    else:
        trainable_prefixes = tuple(f"encoder.layers.{i}." for i in range(DEPTH - k, DEPTH))
        if encoder.config.do_stable_layer_norm and k:
            trainable_prefixes += ("encoder.layer_norm.",)
        expected = {name for name in names if name.startswith(trainable_prefixes)}
    assert {name for name, p in encoder.named_parameters() if p.requires_grad} == expected

    # Frozen means frozen: eval mode whatever the caller set, and no gradient.
    for name in branch.frozen_modules:
        assert not any(module.training for module in branch.get_submodule(name).modules()), name
    assert all(layer.training for layer in branch.layers[DEPTH - k :])
    branch(*batch()).sum().backward()
    for name, param in branch.named_parameters():
        assert (param.grad is not None) == param.requires_grad, name
    if encoder.config.do_stable_layer_norm and k == 0:
        assert branch.frozen_modules[-1] == "backbone.encoder.layer_norm"


@variants
def test_a_checkpoint_config_round_trips_through_the_model_config(variant):
    checkpoint = {
        **hf_config(variant).to_dict(),
        "_name_or_path": "someone/some-encoder",
        "architectures": ["SomeModelForCTC"],
        "transformers_version": "4.0.0",
        "torch_dtype": "float32",
    }
    arch = arch_from_config(checkpoint)
    assert json.loads(arch) == json.loads(arch_from_config(hf_config(variant).to_dict()))
    assert "_name_or_path" not in arch and "architectures" not in arch and "transformers_version" not in arch

    config = ModelConfig(audio=AudioConfig(audio_arch=arch))
    restored = config_from_dict(json.loads(json.dumps(config_to_dict(config))))
    assert restored == config

    rebuilt = encoder_config(restored.audio.audio_arch)
    assert arch_from_config(rebuilt.to_dict()) == arch_from_config({**checkpoint, **BRANCH_SETTINGS})
    reference = AutoModel.from_config(hf_config(variant, **BRANCH_SETTINGS))
    encoder = AudioBranch(restored.audio).backbone
    assert type(encoder) is type(reference)
    shapes = {name: tensor.shape for name, tensor in encoder.state_dict().items()}
    assert shapes == {name: tensor.shape for name, tensor in reference.state_dict().items()}


def test_prefix_signature_tells_the_encoders_apart():
    signatures = {
        variant: make_branch(variant, trainable_layers=1).prefix_signature() for variant in VARIANTS
    }
    assert len({json.dumps(s, sort_keys=True, default=str) for s in signatures.values()}) == len(VARIANTS)
    for variant, signature in signatures.items():
        assert signature["encoder"]["model_type"] == VARIANTS[variant]["model_type"]
        assert signature["frozen"][-1] == f"backbone.encoder.layers.{DEPTH - 2}"


@pytest.mark.parametrize(
    "arch, message",
    [
        (
            "wav2vec2-large",
            "audio_arch must be one of wav2vec2-base, tiny or a JSON object holding a transformers config",
        ),
        ('{"model_type": "wav2vec2",', "or a JSON object"),
        ('["wav2vec2"]', "or a JSON object"),
        (
            '{"model_type": "whisper"}',
            "audio_arch's model_type must be one of wav2vec2, hubert, wavlm; got 'whisper'",
        ),
        ('{"hidden_size": 32}', "model_type must be one of wav2vec2, hubert, wavlm; got None"),
        ('{"model_type": "wav2vec2", "add_adapter": true}', "output adapter (add_adapter) are not supported"),
    ],
)
def test_a_bad_audio_arch_is_refused_in_one_line(arch, message):
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        AudioConfig(audio_arch=arch)
    assert "\n" not in str(error.value)


def test_arch_from_config_refuses_other_encoders():
    with pytest.raises(ValueError, match="got 'data2vec-audio'"):
        arch_from_config(AutoConfig.for_model("data2vec-audio").to_dict())

"""msa.models: every named configuration, freezing, normalisation, padding, pretrained weights."""

import dataclasses
import hashlib
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torchvision
from transformers import AutoModel
from weight_servers import closed_port_url, use_hub

from msa.models import (
    AudioConfig,
    EmotionModel,
    ModelConfig,
    PretrainedWeightsUnavailable,
    PretrainedWeightsWarning,
    VideoConfig,
    config_from_dict,
    config_to_dict,
    create_model,
    list_models,
    model_config,
    speech_encoders,
    tiny_overrides,
)
from msa.models.audio import arch_from_config, encoder_config, normalize_waveform
from msa.models.config import BUILTIN_AUDIO_ARCHS
from msa.models.video import IMAGENET_MEAN, IMAGENET_STD
from msa.train.synthetic import random_batch

NAMES = [
    "video_iter1",
    "video_iter2",
    "video_iter3",
    "video_iter4",
    "video_iter5",
    "audio_frozen",
    "audio_last2",
    "audio_all",
    "audio_cnn",
    "audio_crnn",
    "audio_transformer",
    "multimodal_iter1",
    "multimodal_iter2",
    "multimodal_spectrogram",
]
FRAME = 32  # pixels: ResNet-18 still reaches a 1x1 map, and it is quick
CLIP_SAMPLES = 4_000  # 0.25 s at 16 kHz


def tiny(name, **overrides):
    model, _ = create_model(name, num_classes=4, **{**tiny_overrides(name), **overrides})
    return model


def batch(video_lengths=(4, 2), audio_lengths=(CLIP_SAMPLES, 2_500), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return random_batch(list(video_lengths), list(audio_lengths), FRAME, num_classes=4, generator=generator)


def inputs(model, b):
    return {key: b[key] for key in model.input_keys}


def count(params):
    return sum(p.numel() for p in params)


def trainable(module):
    return count(p for p in module.parameters() if p.requires_grad)


# --- registry and configuration ---------------------------------------------------------


def test_registry_holds_the_seed_iterations():
    assert list_models() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_configuration_runs_forward_and_backward(name):
    model = tiny(name).train()
    b = batch()
    logits = model(**inputs(model, b))
    assert logits.shape == (2, 4)
    torch.nn.functional.cross_entropy(logits, b["label"]).backward()
    for param_name, param in model.named_parameters():
        assert (param.grad is not None) == param.requires_grad, param_name


@pytest.mark.parametrize(
    "name, keys",
    [
        ("video_iter3", ("video", "video_mask")),
        ("audio_last2", ("audio", "audio_mask")),
        ("multimodal_iter2", ("video", "video_mask", "audio", "audio_mask")),
    ],
)
def test_input_keys(name, keys):
    assert tiny(name).input_keys == keys


def test_every_audio_arch_is_defined():
    assert set(speech_encoders.BUILTIN_ARCHS) == set(BUILTIN_AUDIO_ARCHS)


def test_flat_override_names_are_unambiguous():
    top = [f.name for f in dataclasses.fields(ModelConfig) if f.name not in ("video", "audio")]
    names = (
        top
        + [f.name for f in dataclasses.fields(VideoConfig)]
        + [f.name for f in dataclasses.fields(AudioConfig)]
    )
    assert len(names) == len(set(names))


def test_overrides_from_a_flat_search_space_dict():
    config = model_config(
        "video_iter3", d_model=128, num_layers=2, num_heads=4, dropout=0.1, trainable_children=2
    )
    assert (config.video.d_model, config.video.num_layers, config.video.trainable_children) == (128, 2, 2)
    assert config.audio is None


def test_unknown_override_lists_valid_keys():
    with pytest.raises(ValueError, match="nonsense.*valid keys:.*d_model"):
        model_config("video_iter3", nonsense=1)
    with pytest.raises(ValueError, match="trainable_layers"):  # an audio setting on a video-only model
        model_config("video_iter3", trainable_layers=1)
    with pytest.raises(ValueError, match="unknown model"):
        model_config("video_iter9")


@pytest.mark.parametrize(
    "overrides",
    [
        {"d_model": 30, "num_heads": 4},
        {"trunk": "vgg"},
        {"dropout": 1.5},
        {"d_model": "128"},
        {"head": "svm"},
    ],
)
def test_invalid_values_raise(overrides):
    with pytest.raises(ValueError):
        model_config("video_iter3", **overrides)


def test_numpy_values_become_plain_python():
    config = model_config("video_iter3", d_model=np.int64(64), dropout=np.float32(0.25), cnn_channels=[4, 8])
    assert type(config.video.d_model) is int and type(config.video.dropout) is float
    assert config.video.cnn_channels == (4, 8)


@pytest.mark.parametrize("name", NAMES)
def test_config_dict_round_trip(name):
    config = model_config(name, **tiny_overrides(name))
    data = config_to_dict(config)
    assert json.loads(json.dumps(data)) == data  # plain containers only
    assert config_from_dict(data) == config


def test_config_from_dict_rejects_unknown_keys():
    data = config_to_dict(model_config("multimodal_iter1"))
    data["audio"]["extra"] = 1
    with pytest.raises(ValueError, match="extra"):
        config_from_dict(data)


# --- freezing: trainable counts at the real backbone sizes (meta device: no memory) ----------


def meta_model(name):
    with torch.device("meta"):
        model, _ = create_model(name, num_classes=8)
    return model


def resnet18_children_params(indices):
    children = list(torchvision.models.resnet18().children())
    return count(p for i in indices for p in children[i].parameters())


def wav2vec2_base():
    with torch.device("meta"):
        return AutoModel.from_config(encoder_config("wav2vec2-base"))


@pytest.mark.parametrize(
    "name, trainable_children",
    [("video_iter2", ()), ("video_iter3", ()), ("video_iter4", (7, 8)), ("video_iter5", range(9))],
)
def test_resnet_trunk_trainable_counts(name, trainable_children):
    trunk = meta_model(name).branches["video"].trunk
    assert count(trunk.parameters()) == resnet18_children_params(range(9))
    assert trainable(trunk) == resnet18_children_params(trainable_children)


def test_audio_trainable_counts():
    reference = wav2vec2_base()
    layers = reference.encoder.layers
    expected = {
        "audio_frozen": 0,
        "audio_last2": count(layers[10].parameters()) + count(layers[11].parameters()),
        "audio_all": count(reference.parameters()) - count(reference.feature_extractor.parameters()),
    }
    for name, value in expected.items():
        model = meta_model(name)
        assert trainable(model.branches["audio"].backbone) == value, name
        assert trainable(model.head) == count(model.head.parameters()) == 768 * 8 + 8


def test_multimodal_concatenates_branch_embeddings():
    model = meta_model("multimodal_iter2")
    assert model.head.in_features == 512 + 768
    mlp = tiny("multimodal_iter1", head="mlp", head_hidden=16, head_dropout=0.2)
    assert isinstance(mlp.head, torch.nn.Sequential) and mlp.head[0].in_features == 16 + 32


def test_frozen_submodules_stay_in_eval_mode():
    model = tiny("multimodal_iter1", trainable_layers=1).train()
    trunk = model.branches["video"].trunk
    assert not trunk.bn1.training and not trunk.layer4.training  # iter3: the whole trunk is frozen
    encoder = model.branches["audio"].backbone
    assert not encoder.feature_extractor.training and not encoder.encoder.layers[0].training
    assert encoder.encoder.layers[1].training
    assert model.branches["video"].temporal.training and model.head.training
    model4 = tiny("video_iter4").train()
    assert (
        not model4.branches["video"].trunk.layer3.training and model4.branches["video"].trunk.layer4.training
    )


def test_frozen_weights_and_batchnorm_statistics_never_change():
    model = tiny("video_iter4")
    trunk = model.branches["video"].trunk
    frozen_before = {k: v.clone() for k, v in trunk.state_dict().items() if not k.startswith("layer4")}
    layer4_before = {k: v.clone() for k, v in trunk.layer4.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    for seed in range(3):
        b = batch(seed=seed)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(**inputs(model, b)), b["label"]).backward()
        optimizer.step()
    for key, value in trunk.state_dict().items():
        if key in frozen_before:
            assert torch.equal(value, frozen_before[key]), key
    assert not torch.equal(
        trunk.layer4.state_dict()["0.bn1.running_mean"], layer4_before["0.bn1.running_mean"]
    )
    assert not torch.equal(trunk.layer4.state_dict()["0.conv1.weight"], layer4_before["0.conv1.weight"])


# --- input transforms -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["video_iter3", "video_iter1"])
def test_trunk_sees_imagenet_normalised_frames(name):
    """The seed fed raw 0..255 pixels to an ImageNet ResNet; the trunk must see (x/255 - mean)/std."""
    model = tiny(name).eval()
    seen = []
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    b = batch(video_lengths=(2, 2))
    b["video"][0] = 255
    b["video"][1] = 0
    model(**inputs(model, b))
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    frames = seen[0].reshape(2, 2, 3, FRAME, FRAME)
    torch.testing.assert_close(frames[0].mean(dim=(0, 2, 3)), (1 - mean) / std)
    torch.testing.assert_close(frames[1].mean(dim=(0, 2, 3)), -mean / std)
    assert frames.dtype == torch.float32


def test_waveform_normalised_per_clip_over_real_samples():
    x = torch.randn(5000) * 0.3 + 0.1
    y = normalize_waveform(x)
    torch.testing.assert_close(y.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(unbiased=False), torch.tensor(1.0), atol=1e-4, rtol=0)


# --- padding invariance (eval mode) -------------------------------------------------------------


def clip(b, index, frames, samples, extra_frames=0, extra_samples=0):
    """Clip `index` of batch `b` alone, cut to its real length and then padded by the extra
    amounts with noise: a mask, not zeros, must be what hides padding."""
    video = torch.randint(0, 256, (1, frames + extra_frames, 3, FRAME, FRAME), dtype=torch.uint8)
    video[0, :frames] = b["video"][index, :frames]
    audio = torch.randn(1, samples + extra_samples)
    audio[0, :samples] = b["audio"][index, :samples]
    return {
        "video": video,
        "video_mask": torch.arange(frames + extra_frames).unsqueeze(0) < frames,
        "audio": audio,
        "audio_mask": torch.arange(samples + extra_samples).unsqueeze(0) < samples,
    }


def assert_padding_invariant(model):
    model.eval()
    lengths = [(4, CLIP_SAMPLES), (2, 2_500)]
    b = batch(*zip(*lengths, strict=True))
    with torch.no_grad():
        batched = model(**inputs(model, b))
        for i, (frames, samples) in enumerate(lengths):
            alone = model(**inputs(model, clip(b, i, frames, samples)))
            padded = model(**inputs(model, clip(b, i, frames, samples, extra_frames=3, extra_samples=3_000)))
            torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_padding_never_changes_the_output(name):
    assert_padding_invariant(tiny(name))


@pytest.mark.parametrize("norm", ["group", "layer"])
@pytest.mark.parametrize("layer_weighting", [False, True])
def test_audio_padding_invariance_for_both_conv_norms(norm, layer_weighting):
    arch = arch_from_config({**speech_encoders.BUILTIN_ARCHS["tiny"], "feat_extract_norm": norm})
    model = tiny("audio_last2", audio_arch=arch, trainable_layers=1, layer_weighting=layer_weighting)
    assert model.branches["audio"].backbone.config.feat_extract_norm == norm
    assert_padding_invariant(model)


def test_why_the_conv_encoder_runs_per_clip():
    """wav2vec2-base's GroupNorm spans the time axis, so batching padded audio through HF's conv
    encoder changes even the real frames; hence the per-clip run."""
    encoder = AutoModel.from_config(encoder_config("tiny")).feature_extractor.eval()
    clip = normalize_waveform(torch.randn(CLIP_SAMPLES))[None]
    padded = torch.cat([clip, torch.zeros(1, 3_000)], dim=1)
    with torch.no_grad():
        alone = encoder(clip)
        batched = encoder(padded)[..., : alone.shape[-1]]
    assert not torch.allclose(alone, batched, atol=1e-3)


def test_audio_mask_must_be_a_prefix():
    model = tiny("audio_frozen").eval()
    b = batch()
    b["audio_mask"][0, 10] = False
    with pytest.raises(ValueError, match="prefix"):
        model(**inputs(model, b))


# --- frozen prefix (to be cached later) ------------------------------------------------------------


@pytest.mark.parametrize("name", ["video_iter3", "audio_last2", "multimodal_iter1"])
def test_frozen_prefix_is_deterministic_and_gradient_free_in_train_mode(name):
    model = tiny(name, dropout=0.5) if name.startswith("video") else tiny(name)
    model.train()
    b = batch()
    first, second = model.frozen_prefix(**inputs(model, b)), model.frozen_prefix(**inputs(model, b))
    for branch, outputs in first.items():
        for key, value in outputs.items():
            assert not value.requires_grad
            assert torch.equal(value, second[branch][key]), (branch, key)


def test_frozen_prefix_shapes():
    b = batch()
    video = tiny("video_iter3").frozen_prefix(video=b["video"], video_mask=b["video_mask"])["video"]
    assert video["frame_features"].shape == (2, 4, 512, 1, 1)
    assert torch.equal(video["video_mask"], b["video_mask"])

    model = tiny("audio_frozen", layer_weighting=True)
    audio = model.frozen_prefix(audio=b["audio"], audio_mask=b["audio_mask"])["audio"]
    frames = model.branches["audio"].backbone._get_feat_extract_output_lengths(
        torch.tensor([CLIP_SAMPLES, 2_500])
    )
    assert audio["hidden_states"].shape == (2, 3, frames[0], 32)  # embedding output + 2 frozen layers
    assert audio["frame_mask"].sum(dim=1).tolist() == frames.tolist()

    conv = tiny("audio_all").frozen_prefix(audio=b["audio"], audio_mask=b["audio_mask"])["audio"]
    assert set(conv) == {"conv_features", "frame_mask"} and conv["conv_features"].shape[-1] == 32


# --- pretrained weights ---------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No cached weights and no hub: msa.models looks only at this machine's caches."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    use_hub(monkeypatch, closed_port_url(), tmp_path / "hf", offline=True)
    return tmp_path


MISSING_AUDIO = "msa-tests/no-such-wav2vec2"  # a hub id that no cache holds
TINY_MULTIMODAL = tiny_overrides("multimodal_iter1")
RANDOM = {"loaded": False, "source": None, "sha256": None}


def test_pretrained_on_fails_fast_naming_what_is_missing(offline):
    with pytest.raises(PretrainedWeightsUnavailable) as error:
        create_model("multimodal_iter1", 8, pretrained="on", audio_weights=MISSING_AUDIO, **TINY_MULTIMODAL)
    message = str(error.value)
    assert "msa weights fetch --video IMAGENET1K_V1" in message and "--video-weights" in message
    assert MISSING_AUDIO in message and "--audio-weights" in message


def test_pretrained_auto_warns_once_and_reports_random_weights(offline):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, loaded = create_model(
            "multimodal_iter1", 8, pretrained="auto", audio_weights=MISSING_AUDIO, **TINY_MULTIMODAL
        )
    assert loaded == {"video": RANDOM, "audio": RANDOM}
    ours = [w for w in caught if issubclass(w.category, PretrainedWeightsWarning)]
    assert len(ours) == 1 and "RANDOM" in str(ours[0].message)


def test_pretrained_off_never_looks(offline):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, loaded = create_model("video_iter3", 8, pretrained="off", video_weights="/no/such/file.pth")
    assert loaded == {"video": RANDOM, "audio": RANDOM}


def test_pretrained_loads_local_files_and_takes_the_encoders_architecture(offline):
    resnet = torchvision.models.resnet18()
    torch.save(resnet.state_dict(), offline / "resnet18.pth")
    arch = arch_from_config({**speech_encoders.BUILTIN_ARCHS["tiny"], "num_hidden_layers": 3})
    encoder = AutoModel.from_config(encoder_config(arch))
    encoder.save_pretrained(offline / "wav2vec2-tiny")
    model, loaded = create_model(
        "multimodal_iter1",
        8,
        pretrained="on",
        video_weights=str(offline / "resnet18.pth"),
        audio_weights=str(offline / "wav2vec2-tiny"),
        **TINY_MULTIMODAL,
    )
    assert loaded["video"] == {
        "loaded": True,
        "source": str(offline / "resnet18.pth"),
        "sha256": hashlib.sha256((offline / "resnet18.pth").read_bytes()).hexdigest(),
    }
    assert loaded["audio"]["loaded"] and loaded["audio"]["source"] == str(offline / "wav2vec2-tiny")
    torch.testing.assert_close(
        model.branches["video"].trunk.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight
    )
    backbone = model.branches["audio"].backbone
    assert len(backbone.encoder.layers) == 3, (
        "the architecture is the weights' own config, not audio_arch='tiny'"
    )
    torch.testing.assert_close(
        backbone.encoder.layers[2].attention.q_proj.weight, encoder.encoder.layers[2].attention.q_proj.weight
    )
    rebuilt = EmotionModel(config_from_dict(config_to_dict(model.config)))
    assert len(rebuilt.branches["audio"].backbone.encoder.layers) == 3, (
        "the checkpoint's config rebuilds it alone"
    )


def test_pretrained_mode_is_checked():
    with pytest.raises(ValueError, match="auto, on, off"):
        create_model("video_iter1", 8, pretrained="yes", **tiny_overrides("video_iter1"))


# --- command line ---------------------------------------------------------------------------------


def test_parameter_table_as_json():
    result = subprocess.run(
        [sys.executable, "-m", "msa.models", "--json"], capture_output=True, text=True, check=True
    )
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == NAMES
    by_name = {row["name"]: row for row in rows}
    assert by_name["video_iter5"]["trainable"] == by_name["video_iter5"]["total"]
    assert by_name["audio_frozen"]["trainable"] == 768 * 2 + 768 * 8 + 8  # frame norm + linear head
    assert all(set(row) == {"name", "total", "trainable"} for row in rows)


def test_speech_weights_missing_a_parameter_are_refused(offline):
    """Expected extras in a checkpoint (pretraining heads) load quietly; a missing tensor does not."""
    from safetensors.torch import load_file, save_file

    folder = offline / "broken-encoder"
    AutoModel.from_config(encoder_config("tiny")).save_pretrained(folder)
    state = load_file(folder / "model.safetensors")
    state["quantizer.codevectors"] = torch.zeros(1, 4, 8)  # a pretraining head: not the encoder's
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    model, loaded = create_model("audio_last2", 8, pretrained="on", audio_weights=str(folder))
    assert loaded["audio"]["loaded"]
    del state["quantizer.codevectors"]
    state.pop(next(key for key in state if key.endswith("layers.1.attention.q_proj.weight")))
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(PretrainedWeightsUnavailable, match="does not fit its own config.json: .*q_proj"):
        create_model("audio_last2", 8, pretrained="on", audio_weights=str(folder))


def test_a_checkpoints_pretrained_record_reads_in_both_formats():
    from msa.models import loaded_record

    record = {"loaded": True, "source": "IMAGENET1K_V1", "sha256": "ab" * 32}
    assert loaded_record(record) is record
    assert loaded_record(True) == {"loaded": True, "source": None, "sha256": None}, (
        "checkpoints before sha256 records"
    )
    assert loaded_record(False) == RANDOM


def test_the_registry_imports_neither_transformers_nor_torchvision():
    # Every trial process and command imports the registry; these two (seconds to import) come
    # only with a model that has a speech encoder or a ResNet trunk.
    code = (
        "import sys, msa.models; "
        "heavy = [m for m in ('transformers', 'torchvision') if m in sys.modules]; "
        "assert not heavy, heavy; "
        "msa.models.create_model('video_iter3', 4, 'off'); "
        "assert 'torchvision' in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

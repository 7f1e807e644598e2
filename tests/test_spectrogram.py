"""The spectrogram audio family (msa.models.spectrogram): padding, sizes, the front end against
torch.stft, its cache key, every augmentation's effect, and that augmentation stays out of
evaluation and prediction."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torchaudio
from conftest import tiny_trained_model

from msa.data.decode import PrepareParams
from msa.data.transforms import NOISE_SNR_SPAN, WaveAugment
from msa.features import FeatureTable
from msa.models import SpectrogramConfig, config_from_dict, config_to_dict, create_model, model_config
from msa.models.config import AudioConfig, ModelConfig
from msa.models.front_end import HOP_SAMPLES, LogMel
from msa.models.layers import MaskedBatchNorm
from msa.models.spectrogram import SpectrogramBranch
from msa.predict.classifier import SpanInputs, TorchClassifier
from msa.train import class_weights, mix_inputs
from search_spaces import SearchScale, get_space, sample_config
from search_spaces.spectrogram import BODY_MODELS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(
    n_mels=16, base_width=4, conv_blocks=2, rnn_hidden=8, encoder_dim=16, encoder_layers=1, encoder_heads=2
)
LENGTHS = [16_000, 9_000, 500, 1]  # samples: one second, shorter, less than a window, one sample


def padded_batch(lengths=LENGTHS, seed=0):
    generator = torch.Generator().manual_seed(seed)
    audio = torch.rand(len(lengths), max(lengths), generator=generator) * 0.2 - 0.1
    mask = torch.arange(max(lengths)) < torch.tensor(lengths).unsqueeze(1)
    return audio, mask


def branch(**fields) -> SpectrogramBranch:
    torch.manual_seed(0)
    return SpectrogramBranch(SpectrogramConfig(**{**TINY, **fields}))


@pytest.mark.parametrize("body", ["cnn", "crnn", "transformer"])
@pytest.mark.parametrize(
    "pooling, spec_norm", [("stats", "utterance"), ("meanmax", "global"), ("attention", "utterance")]
)
def test_padding_changes_no_clips_embedding(body, pooling, spec_norm):
    model = branch(body=body, pooling=pooling, spec_norm=spec_norm, convs_per_block=2).eval()
    audio, mask = padded_batch()
    audio[~mask] = 5.0  # whatever padding holds, only the mask may hide it
    with torch.no_grad():
        together = model(audio, mask)
        alone = torch.cat([model(audio[i : i + 1, :n], mask[i : i + 1, :n]) for i, n in enumerate(LENGTHS)])
    assert together.shape == (len(LENGTHS), model.embed_dim)
    assert torch.isfinite(together).all()
    assert (together - alone).abs().max().item() < 1e-5


def test_training_statistics_ignore_padding():
    norm = MaskedBatchNorm(3)
    x = torch.randn(2, 3, 10)
    mask = torch.arange(10) < torch.tensor([10, 4]).unsqueeze(1)
    padded = x.clone()
    padded[1, :, 4:] = 100.0
    out = norm(padded, mask)
    real = torch.cat([x[0], x[1, :, :4]], dim=1)  # (C, 14)
    expected = (real - real.mean(dim=1, keepdim=True)) / torch.sqrt(
        real.var(dim=1, unbiased=False, keepdim=True) + norm.eps
    )
    assert torch.allclose(out[0], expected[:, :10], atol=1e-5)
    assert torch.allclose(norm.running_mean, 0.1 * real.mean(dim=1), atol=1e-6)


def test_the_front_end_is_torch_stft_with_a_mel_filterbank():
    front_end = LogMel(n_mels=40, window_ms=25)
    audio, mask = padded_batch([8_000])
    log_mel, frame_mask = front_end(audio, mask)
    # torch.stft centres a window shorter than the FFT in it; the front end starts the window
    # at the frame's first sample: the same frames once the audio is shifted by the difference.
    shift = (front_end.n_fft - front_end.window) // 2
    spectrum = torch.stft(
        torch.nn.functional.pad(audio[0], (shift, 0)),
        n_fft=front_end.n_fft,
        hop_length=HOP_SAMPLES,
        win_length=front_end.window,
        window=torch.hann_window(front_end.window),
        center=False,
        return_complex=True,
    )
    expected = torch.log((spectrum.abs() ** 2).T @ front_end.mel + 1e-6)  # power ignores the phase
    frames = (8_000 - front_end.window) // HOP_SAMPLES + 1
    assert frame_mask.sum().item() == frames == expected.shape[0]
    assert torch.allclose(log_mel[0, :frames], expected, atol=1e-3)
    mel = torchaudio.functional.melscale_fbanks(front_end.n_fft // 2 + 1, 0.0, 8000.0, 40, 16_000)
    assert torch.equal(front_end.mel, mel)


def test_parameter_counts_span_the_stated_range():
    counts = {
        name: sum(p.numel() for p in create_model(name, 8)[0].parameters()) for name in BODY_MODELS.values()
    }
    assert all(50_000 <= count <= 500_000 for count in counts.values()), counts
    space = get_space("audio_spectrogram")
    sampled = []
    for seed in range(40):
        config = sample_config(space, seed=seed, scale=SearchScale(train_clips=960))
        overrides = {
            k: config[k]
            for k in (
                "base_width",
                "conv_blocks",
                "convs_per_block",
                "rnn_hidden",
                "encoder_dim",
                "encoder_layers",
                "encoder_heads",
                "n_mels",
            )
            if k in config
        }
        with torch.device("meta"):
            model, _ = create_model(config["model"], 8, **overrides)
        sampled.append(sum(p.numel() for p in model.parameters()))
    assert min(sampled) >= 10_000 and max(sampled) <= 6_000_000, (min(sampled), max(sampled))
    assert max(sampled) / min(sampled) > 20, "depth and width are searched over a wide range"


def test_the_feature_cache_key_is_the_front_ends(tmp_path):
    def table(**fields):
        return FeatureTable.for_branch(branch(**fields), tmp_path).root

    base = table()
    assert table(body="crnn", pooling="meanmax", spec_norm="global", freq_masks=2, gain_db=6.0) == base
    assert table(n_mels=24) != base and table(window_ms=50) != base
    assert base.name.startswith("logmel-")


def test_a_config_round_trips_with_its_family_and_old_configs_hold_a_speech_encoder():
    config = model_config("audio_crnn", num_classes=4, n_mels=40, base_width=8, conv_blocks=2)
    stored = config_to_dict(config)
    assert stored["audio"]["family"] == "spectrogram" and config.audio.conv_channels == (8, 16)
    assert config_from_dict(stored) == config
    old = config_to_dict(ModelConfig(audio=AudioConfig(trainable_layers=0)))
    del old["audio"]["family"]
    assert isinstance(config_from_dict(old).audio, AudioConfig)
    with pytest.raises(ValueError, match="unknown audio family"):
        config_from_dict({**stored, "audio": {**stored["audio"], "family": "mfcc"}})


# ------------------------------------------------------------------ augmentation


def test_crop_keeps_a_window_of_each_long_clip_in_training_only():
    model = branch(crop_seconds=0.2)  # 20 frames
    log_mel = torch.arange(60.0).view(1, 60, 1).expand(2, 60, 16).contiguous()
    mask = torch.arange(60) < torch.tensor([60, 10]).unsqueeze(1)
    torch.manual_seed(3)
    cropped, cropped_mask = model.augment.crop(log_mel, mask)
    assert cropped.shape == (2, 20, 16) and cropped_mask.sum(dim=1).tolist() == [20, 10]
    start = cropped[0, 0, 0].item()
    assert torch.equal(cropped[0, :, 0], torch.arange(start, start + 20)), "a contiguous window"
    assert torch.equal(cropped[1, :10], log_mel[1, :10]), "a short clip is kept whole"


def test_gain_shifts_the_log_mel_by_at_most_its_decibels():
    model = branch(gain_db=6.0)
    log_mel = torch.zeros(200, 5, 16)
    shifted = model.augment.gain(log_mel)
    per_clip = shifted[:, 0, 0]
    assert torch.all(shifted == per_clip.view(-1, 1, 1)), "one gain per clip"
    assert per_clip.abs().max() <= 6.0 * math.log(10) / 10 + 1e-6 and per_clip.std() > 0.3
    # A gain of g dB on the waveform shifts its log-mel by g x ln(10) / 10, as the augmentation does.
    audio, mask = padded_batch([8_000])
    front_end = model.front_end
    log_mel, frame_mask = front_end(audio, mask)
    louder = (front_end(audio * 10 ** (6 / 20), mask)[0] - log_mel)[frame_mask]
    assert torch.allclose(louder, torch.full_like(louder, 6 * math.log(10) / 10), atol=1e-2)


def test_spec_augment_zeroes_bands_and_frames_within_the_clip():
    model = branch(freq_masks=2, freq_mask_bands=4, time_masks=2, time_mask_frames=10)
    x = torch.ones(64, 50, 16)
    mask = torch.arange(50) < torch.tensor([50, 20] * 32).unsqueeze(1)
    out = model.augment.spec_augment(x, mask)
    zero_bands = (out == 0).all(dim=1).sum(dim=1)  # (B,) mel bands masked over all frames
    zero_frames = (out == 0).all(dim=2).sum(dim=1)
    assert zero_bands.max() <= 8 and zero_bands.float().mean() > 1
    assert zero_frames.max() <= 20 and zero_frames.float().mean() > 2
    assert not (out[1::2, 20:] == 0).all(dim=2).any(), "time masks stay inside the clip's real frames"


AUGMENTED = dict(crop_seconds=0.3, gain_db=6.0, freq_masks=2, time_masks=2)


def test_augmentation_changes_training_and_nothing_in_evaluation():
    augmented = branch(**AUGMENTED, spec_norm="global")
    plain = branch(spec_norm="global")
    audio, mask = padded_batch()
    torch.manual_seed(0)
    first = augmented(audio, mask)
    second = augmented(audio, mask)
    assert not torch.allclose(first, second), "training draws new augmentation every step"
    plain.load_state_dict(augmented.state_dict())  # with the running statistics training left
    augmented.eval(), plain.eval()
    with torch.no_grad():
        assert torch.equal(augmented(audio, mask), plain(audio, mask))


def test_prediction_runs_without_augmentation():
    model = tiny_trained_model("audio_cnn", 4)
    augmented_config = dataclasses.replace(
        model.config, audio=dataclasses.replace(model.config.audio, **AUGMENTED)
    )
    plain = tiny_trained_model("audio_cnn", 4)
    augmented, _ = create_model(augmented_config, 4)
    augmented.load_state_dict(plain.state_dict())
    params = PrepareParams()
    audio = np.random.default_rng(0).uniform(-0.1, 0.1, 12_000).astype(np.float32)
    probabilities = [
        TorchClassifier(m.train(), ["a", "b", "c", "d"], params, "test").probabilities(
            SpanInputs(audio=audio)
        )[0]
        for m in (augmented, plain)
    ]
    np.testing.assert_array_equal(*probabilities)


def test_wave_augment_perturbs_speed_and_adds_noise_at_its_snr():
    audio = torch.sin(torch.arange(16_000) * 0.05)
    torch.manual_seed(0)
    lengths = [len(WaveAugment(speed=0.1)({"audio": audio})["audio"]) for _ in range(50)]
    assert 16_000 / 1.1 - 1 <= min(lengths) < 15_500 and 16_500 < max(lengths) <= 16_000 / 0.9 + 1
    snrs = []
    for _ in range(100):
        noisy = WaveAugment(noise_snr_db=10.0)({"audio": audio, "label": 1})["audio"]
        noise = noisy - audio
        if noise.abs().max() > 0:
            snrs.append(10 * math.log10(audio.pow(2).mean() / noise.pow(2).mean()))
    assert 25 <= len(snrs) <= 75, "about half the clips get noise"
    assert 9.5 <= min(snrs) and max(snrs) <= 10 + NOISE_SNR_SPAN + 0.5


def test_mixup_mixes_inputs_and_unites_masks():
    inputs = {
        "audio": torch.tensor([[1.0, 1.0, 0.0], [3.0, 3.0, 3.0]]),
        "audio_mask": torch.tensor([[True, True, False], [True, True, True]]),
    }
    mixed = mix_inputs(inputs, torch.tensor([1, 0]), 0.25)
    assert torch.allclose(mixed["audio"][0], torch.tensor([2.5, 2.5, 2.25]))
    assert mixed["audio_mask"].all()
    with pytest.raises(ValueError, match="video"):
        mix_inputs({"video": torch.zeros(2, 1, dtype=torch.uint8)}, torch.tensor([1, 0]), 0.5)


def test_class_weights_balance_the_classes():
    weights = class_weights([0, 0, 0, 1, 2, 2], 4)
    assert weights[3] == 0 and torch.isclose(weights[0] * 3, weights[1])
    counts = torch.tensor([3.0, 1, 2, 0])
    assert torch.isclose((weights * counts).sum() / counts.sum(), torch.tensor(1.0))

"""Mixed precision, run on a CPU: every registered model's training and evaluation step under
bf16 autocast, with padded clips, from raw inputs and from float32 feature tables.

No GPU has run this project, so the path msa.train.runtime.Precision takes on CUDA (bf16
autocast where the GPU has it) had never executed. Precision("cpu", torch.bfloat16) runs the
same loop code (msa.train.loop's train_one_epoch / evaluate, the model under
`precision.autocast()`) under torch.autocast("cpu", dtype=torch.bfloat16), which casts what
CUDA's bf16 autocast casts: convolutions, linear layers, matrix products and attention. The
two op lists differ elsewhere: CUDA runs layer_norm, group_norm, softmax, sum and exp in
float32, CPU autocast leaves them in the input's dtype (bf16 after a cast op), so these numbers
are if anything less precise than a GPU's. Tiny models (as tests/test_models.py), random
weights, 32 px frames, two clips of different lengths per batch.

The kernels: ATen's own, not oneDNN's. What these tests guard is the models' mixed precision
(which ops autocast casts, the float32 islands, casts and masks), as it will run on a GPU,
where cuDNN and cuBLAS take bf16 inputs, accumulate in float32 and round the result once. On a
CPU, bf16 autocast hands convolutions and matrix products to oneDNN, which picks a kernel by
ISA and shape, and one of them is wrong: on Intel Xeons with AMX (Sapphire/Emerald Rapids,
flags amx_bf16 and avx512_bf16), the bf16 forward of a grouped nn.Conv1d with 2 to 8 channels
per group returns numbers about as large as the result and unrelated to it. wav2vec 2.0's
positional convolution is such a layer in the tiny test encoder (32 channels, 4 groups, kernel
16: 8 per group); real encoders are not (wav2vec2-base: 768, 16, 128: 48 per group). Measured
on a 2-core Xeon with AMX, torch 2.14.1, max |bf16 autocast - float32| / max |float32| of the
layer alone (inputs N(0, 1), 2 x C x 150):

    channels per group   1       2       4         8         16      32 and more
    kernel 16            0.003   0.002   0.9-1.1   1.0-1.2   0.003   0.003
    kernel 128           0.002   1.0     1.0-1.1   0.9-1.3   0.002   0.003
    (0.003: bf16's rounding; Conv2d, the backward pass and ONEDNN_MAX_CPU_ISA=AVX512_CORE are
    all right; it moved these tests' audio and multimodal logits by 0.03 to 0.15)

Minimal reproduction:

    conv = torch.nn.Conv1d(32, 32, 16, groups=4)
    x = torch.randn(2, 32, 150)
    with torch.no_grad():
        expected = conv(x)  # |expected| up to about 2.5
        with torch.autocast("cpu", dtype=torch.bfloat16):
            print((conv(x).float() - expected).abs().max())  # about 3 with AMX, 0.01 without

So each test here runs with oneDNN switched off (`torch.backends.mkldnn.enabled = False`):
ATen's CPU kernels then compute a bf16 convolution or matrix product as the GPU libraries do,
from bf16 operands with float32 accumulation, and they are the same code on every x86 CPU
(their vector width only reorders float32 sums). The logits below came out bit-identical with
ONEDNN_MAX_CPU_ISA set to ALL, AVX512_CORE and AVX2, and within 0.008 (one or two bf16 steps)
of ATen's scalar kernels (ATEN_CPU_CAPABILITY=default). The product never autocasts on a CPU
(msa.train.runtime.Precision: none there), so the faulty kernel is a test machine's problem,
not a user's; the models are unchanged.

Measured with those kernels (torch 2.14.1; |float32 logits| up to 1.7):

    max |logits(bf16 autocast) - logits(float32)|, eval mode, the padded batch below
        video_iter1 0.0050   video_iter2 0.0047   video_iter3/4/5 0.0060   audio_frozen/last2/all
        0.0053   audio_cnn 0.0006   audio_crnn 0.0009   audio_transformer 0.0051
        multimodal_iter1 0.0081   multimodal_iter2 0.0058   multimodal_spectrogram 0.0062
    max |cached logits - uncached logits|, both under autocast, three prepared clips; the
    tables are float32, computed without autocast as msa.trial computes them, so the
    difference is the bf16 rounding of the uncached prefix, which the table does not have
        video_iter2/3/4 0.0039   audio_frozen 0.0078   audio_last2/all 0.0039
        multimodal_iter1 0.0039   multimodal_iter2 0.0078   multimodal_spectrogram 0.0039
    -> LOGIT_ATOL = 3e-2, for both: bf16 keeps 8 significant bits (a rounding of up to 2**-8
       relative per operation, about 3 decimal digits), and 3.7 times the largest measured
       difference leaves room for another CPU's vector width or a GPU's summation order without
       hiding a real error, which moves these logits by tenths (a padding leak: 0.02 to 0.19,
       below). Taking the log-mel front end's float32 island away (autocast left on in
       msa.models.front_end) fails the four spectrogram models here; taking the CRNN's GRU out
       of its island fails audio_crnn's padding test below.

    a clip alone vs the same clip in a batch with a longer clip, noise in its padding
        0.0 exactly for every model (ATen's kernels give each clip's rows the same result
        whatever else is in the batch)
    -> PAD_RTOL = 2**-7: one rounding step of a bf16 logit (the spacing of bf16 numbers is
       2**-8 to 2**-7 of their magnitude), for kernels that block differently by batch size.
       Treating the noise as real frames and samples instead moves the logits by 0.023
       (video_iter2) to 0.19, three to twenty-five times that; pooling over the padding (a
       masked_mean that ignores its mask) by 0.23 to 0.88.

No model needed a fix: masked fills take Python scalars, index_put writes into zeros made in
its values' dtype (x.new_zeros), the positional encoding is cast to the activations' dtype,
and cross-entropy is taken on float32 logits (msa.train.loop).
"""

import math

import numpy as np
import pytest
import torch
from media import ravdess_name, write_clip

from msa.data.dataset import ClipDataset, make_loader
from msa.data.datasets.ravdess import CLASS_PRESETS
from msa.data.decode import PrepareParams
from msa.data.labels import LabelSet
from msa.data.prepare import prepare
from msa.features import FeatureTable, PrefixCachedModel, cache_plan, feature_key
from msa.models import create_model, list_models, tiny_overrides
from msa.train import OptimConfig, Precision, build_optimizer, evaluate, train_one_epoch
from msa.train.synthetic import random_batch

NAMES = list_models()
NUM_CLASSES = 8  # the all8 label set the feature tables' loader uses
FRAME = 32  # pixels
LENGTHS = ((4, 4_000), (2, 2_500))  # (frames, audio samples) per clip: the second one is padded
LOGIT_ATOL = 3e-2  # bf16 autocast vs float32, and cached vs uncached under autocast (see above)
PAD_RTOL, PAD_ATOL = 2**-7, 1e-5  # padded in a batch vs alone, both under autocast (see above)
BF16 = Precision("cpu", torch.bfloat16)


@pytest.fixture(autouse=True)
def aten_kernels():
    """oneDNN off for each test here: ATen's bf16 kernels, the same on every CPU (see above)."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = enabled


def tiny(name, seed=0):
    torch.manual_seed(seed)
    model, _ = create_model(name, NUM_CLASSES, "off", **tiny_overrides(name))
    return model


def padded_batch(seed=0, noise=False):
    """Two clips of different lengths, padded as msa.data's collate pads them (zeros), or
    with noise in the padding, so that only the masks can hide it."""
    generator = torch.Generator().manual_seed(seed)
    frames, samples = zip(*LENGTHS, strict=True)
    batch = random_batch(list(frames), list(samples), FRAME, NUM_CLASSES, generator)
    if noise:
        video, audio = ~batch["video_mask"], ~batch["audio_mask"]
        batch["video"][video] = torch.randint(
            0, 256, batch["video"][video].shape, dtype=torch.uint8, generator=generator
        )
        batch["audio"][audio] = torch.rand(int(audio.sum()), generator=generator) * 2 - 1
    assert not batch["video_mask"].all() and not batch["audio_mask"].all()
    return batch


def inputs(model, batch):
    return {key: batch[key] for key in model.input_keys}


def assert_trains_finitely(model, net, batch):
    """One step of the trial's loop (train_one_epoch, default optimiser settings: AdamW, gradient
    clipping at 1) under bf16 autocast: finite loss, float32 gradients, all finite, on exactly
    the trainable parameters, and finite weights after the step."""
    optimizer = build_optimizer(model, OptimConfig())
    trainable = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    result = train_one_epoch(net, [batch], optimizer, grad_clip=OptimConfig().grad_clip, precision=BF16)
    assert math.isfinite(result["train_loss"]), result
    for name, param in model.named_parameters():
        assert (param.grad is not None) == param.requires_grad, name
        if param.grad is not None:
            assert param.grad.dtype == torch.float32, name  # the weights stay float32 under autocast
            assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient"
            assert torch.isfinite(param).all(), f"{name}: non-finite weight after the step"
    assert any(not torch.equal(p, trainable[n]) for n, p in model.named_parameters() if n in trainable)


def test_precision_takes_a_dtype():
    assert Precision("cpu").dtype is None and not Precision("cpu").scaler.is_enabled()  # the default
    assert BF16.dtype == torch.bfloat16 and not BF16.scaler.is_enabled()
    assert Precision("cpu", torch.float16).scaler.is_enabled()  # float16 needs loss scaling
    assert Precision("cpu", None).dtype is None
    with pytest.raises(ValueError, match="bfloat16"):
        Precision("cpu", torch.float32)


@pytest.mark.parametrize("name", NAMES)
def test_training_and_evaluation_steps_under_bf16_autocast(name):
    model = tiny(name).eval()
    batch = padded_batch()
    with torch.no_grad():
        expected = model(**inputs(model, batch))
        with BF16.autocast():
            got = model(**inputs(model, batch))
    assert got.dtype == torch.bfloat16  # the head ran under autocast
    torch.testing.assert_close(got.float(), expected, atol=LOGIT_ATOL, rtol=0)

    assert_trains_finitely(model, model, batch)
    result = evaluate(model, [padded_batch(seed=1)], NUM_CLASSES, precision=BF16)
    assert math.isfinite(result["loss"]) and not model.training


@pytest.mark.parametrize("name", NAMES)
def test_padding_changes_nothing_under_bf16_autocast(name):
    model = tiny(name).eval()
    batch = padded_batch(noise=True)
    with torch.no_grad(), BF16.autocast():
        batched = model(**inputs(model, batch)).float()
        for i, (frames, samples) in enumerate(LENGTHS):
            alone = {
                "video": batch["video"][i : i + 1, :frames],
                "video_mask": batch["video_mask"][i : i + 1, :frames],
                "audio": batch["audio"][i : i + 1, :samples],
                "audio_mask": batch["audio_mask"][i : i + 1, :samples],
            }
            torch.testing.assert_close(
                batched[i : i + 1],
                model(**inputs(model, alone)).float(),
                atol=PAD_ATOL,
                rtol=PAD_RTOL,
                msg=lambda message, i=i: f"clip {i}: {message}",
            )


# --- the feature cache: float32 tables, read under autocast -------------------------------------


def cached_branches(name):
    with torch.device("meta"):  # no memory, no initialisation: only which branches have a frozen prefix
        model, _ = create_model(name, NUM_CLASSES, "off", **tiny_overrides(name))
    return [branch for branch, how in cache_plan(model).items() if how == "cached"]


CACHED = [name for name in NAMES if cached_branches(name)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three prepared clips of 3, 5 and 6 frames (about 0.1 to 0.27 s of audio): batches pad."""
    root = tmp_path_factory.mktemp("autocast-clips")
    for emotion, actor, frames in [(1, 1, 3), (3, 2, 5), (5, 3, 8)]:
        write_clip(root / f"Actor_{actor:02d}" / ravdess_name(emotion, actor), num_frames=frames)
    params = PrepareParams(num_frames=6, image_size=FRAME)
    return prepare(root, root / "cache", params, workers=1, progress=False).clips


@pytest.mark.parametrize("name", CACHED)
def test_float32_feature_tables_under_bf16_autocast(name, clips, tmp_path):
    model = tiny(name).eval()
    tables = {}
    for branch in cached_branches(name):  # computed as msa.trial does: float32, without autocast
        tables[branch] = FeatureTable.for_branch(model.branches[branch], tmp_path / "cache")
        tables[branch].compute(model.branches[branch], clips, progress=False)
        assert tables[branch].load(clips[0]).dtype == np.float32
    cached = PrefixCachedModel(model, tables)
    labels = LabelSet("all8", CLASS_PRESETS["all8"])
    raw = ClipDataset(clips, labels, list(model.branches))
    fed = ClipDataset(
        clips,
        labels,
        [branch for branch in model.branches if branch not in tables],
        arrays={feature_key(branch): table.load for branch, table in tables.items()},
    )
    raw_batch = next(iter(make_loader(raw, len(clips), shuffle=False)))
    fed_batch = next(iter(make_loader(fed, len(clips), shuffle=False)))
    assert all(not fed_batch[f"{feature_key(branch)}_mask"].all() for branch in tables)  # padded
    with torch.no_grad(), BF16.autocast():
        expected = model(**inputs(model, raw_batch))
        got = cached(**inputs(cached, fed_batch))
    assert got.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), atol=LOGIT_ATOL, rtol=0)

    assert_trains_finitely(model, cached, fed_batch)  # a trial's step from the cache

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

The kernels: float32 inside each bf16 operation, on every CPU. What these tests guard is the
models' mixed precision (which ops autocast casts, the float32 islands, casts and masks), as it
will run on a GPU, where cuDNN and cuBLAS take bf16 operands, accumulate in float32 and round
the result once. On a CPU, bf16 autocast hands convolutions, matrix products and attention to
oneDNN, which picks a kernel by ISA and shape, and one of them is wrong: on Intel Xeons with
AMX (Sapphire/Emerald Rapids, flags amx_bf16 and avx512_bf16), the bf16 forward of a grouped
nn.Conv1d with 2 to 8 channels per group returns numbers about as large as the result and
unrelated to it. wav2vec 2.0's positional convolution is such a layer in the tiny test encoder
(32 channels, 4 groups, kernel 16: 8 per group); real encoders are not (wav2vec2-base: 768, 16,
128: 48 per group). Measured on a 2-core Xeon with AMX, torch 2.14.1, max |bf16 autocast -
float32| / max |float32| of the layer alone (inputs N(0, 1), 2 x C x 150):

    channels per group   1       2       4         8         16      32 and more
    kernel 16            0.003   0.002   0.9-1.1   1.0-1.2   0.003   0.003
    kernel 128           0.002   1.0     1.0-1.1   0.9-1.3   0.002   0.003
    (0.003: bf16's rounding; Conv2d, the backward pass and ONEDNN_MAX_CPU_ISA=AVX512_CORE are
    all right; it moved these tests' audio and multimodal logits by 0.03 to 0.15. Pinning the
    ISA, as conftest did until now, hides it only where the variable is set before anything
    imports torch, and ties the tests to one kernel family)

Minimal reproduction:

    conv = torch.nn.Conv1d(32, 32, 16, groups=4)
    x = torch.randn(2, 32, 150)
    with torch.no_grad():
        expected = conv(x)  # |expected| up to about 2.5
        with torch.autocast("cpu", dtype=torch.bfloat16):
            print((conv(x).float() - expected).abs().max())  # about 3 with AMX, 0.01 without

So every test here runs under Float32Accumulation, a dispatch mode below autocast: each op that
oneDNN would run in bf16 (ONEDNN_BF16_OPS) gets autocast's bf16-rounded operands, widens them
to float32, runs float32 kernels (correct on every CPU; they differ only in the order of
float32 sums) and rounds its result to the dtype the bf16 kernel returns. That is the GPU's
arithmetic, and it keeps everything these tests check: what autocast casts and where the
islands stop it. The logits below differ by at most 0.0078 (one or two bf16 steps, from sums
rounding to the neighbouring bf16 number) between ONEDNN_MAX_CPU_ISA=ALL, AVX2 and ATen's
scalar kernels (ATEN_CPU_CAPABILITY=default). Switching oneDNN off instead (ATen's own bf16
kernels) also works on every CPU, but this module then took 72 s of CPU time instead of 11 on
oneDNN's kernels; under the mode it takes 15. The product never autocasts on a CPU (msa.train.runtime.Precision: none there),
so the faulty kernel is a test machine's problem, not a user's; the models are unchanged.

Measured this way (torch 2.14.1; |float32 logits| up to 1.7):

    max |logits(bf16 autocast) - logits(float32)|, eval mode, the padded batch below
        video_iter1 0.0030   video_iter2 0.0047   video_iter3/4/5 0.0084   audio_frozen/last2/all
        0.0046   audio_cnn 0.0006   audio_crnn 0.0009   audio_transformer 0.0042
        multimodal_iter1 0.0081   multimodal_iter2 0.0058   multimodal_spectrogram 0.0062
    max |cached logits - uncached logits|, both under autocast, three prepared clips; the
    tables are float32, computed without autocast as msa.trial computes them, so the
    difference is the bf16 rounding of the uncached prefix, which the table does not have
        video_iter2/3/4 0.0039   audio_frozen 0.0078   audio_last2/all 0.0039
        multimodal_iter1 0.0039   multimodal_iter2 0.0078   multimodal_spectrogram 0.0039
    -> LOGIT_ATOL = 3e-2, for both: bf16 keeps 8 significant bits (a rounding of up to 2**-8
       relative per operation, about 3 decimal digits), and 3.6 times the largest measured
       difference leaves room for another CPU's vector width or a GPU's summation order without
       hiding a real error, which moves these logits by tenths (a padding leak: 0.02 to 0.19,
       below).

    a clip alone vs the same clip in a batch with a longer clip, noise in its padding
        0.0 exactly for every model (each clip's rows get the same result whatever else is in
        the batch)
    -> PAD_RTOL = 2**-7: one rounding step of a bf16 logit (the spacing of bf16 numbers is
       2**-8 to 2**-7 of their magnitude), for kernels that block differently by batch size.
       Treating the noise as real frames and samples instead moves the logits by 0.023
       (video_iter2) to 0.19, three to twenty-five times that; pooling over the padding (a
       masked_mean that ignores its mask) by 0.23 to 0.88.

Mutations that these tests fail on (tried by hand): LogMel.forward without its autocast-off
block (6 tests fail), the CRNN's GRUs given bf16 frames (2), MaskedBatchNorm's statistics on
bf16 activations (12); and without Float32Accumulation, the AMX fault above (6).

No model needed a fix: masked fills take Python scalars, index_put writes into zeros made in
its values' dtype (x.new_zeros), the positional encoding is cast to the activations' dtype,
and cross-entropy is taken on float32 logits (msa.train.loop).
"""

import copy
import math

import numpy as np
import pytest
import torch
from media import ravdess_name, write_clip
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map, tree_map_only

from msa.data.dataset import ClipDataset, make_loader
from msa.data.datasets.ravdess import CLASS_PRESETS
from msa.data.decode import PrepareParams
from msa.data.labels import LabelSet
from msa.data.prepare import prepare
from msa.features import FeatureTable, PrefixCachedModel, cache_plan, feature_key
from msa.models import create_model, list_models, tiny_overrides
from msa.models.front_end import LogMel
from msa.models.layers import MaskedBatchNorm
from msa.train import OptimConfig, Precision, build_optimizer, evaluate, train_one_epoch
from msa.train.synthetic import random_batch

NAMES = list_models()
NUM_CLASSES = 8  # the all8 label set the feature tables' loader uses
FRAME = 32  # pixels
LENGTHS = ((4, 4_000), (2, 2_500))  # (frames, audio samples) per clip: the second one is padded
LOGIT_ATOL = 3e-2  # bf16 autocast vs float32, and cached vs uncached under autocast (see above)
PAD_RTOL, PAD_ATOL = 2**-7, 1e-5  # padded in a batch vs alone, both under autocast (see above)
BF16 = Precision("cpu", torch.bfloat16)


# The ops CPU autocast runs in bf16 whose kernels oneDNN picks by CPU and shape, as the
# dispatcher sees them (below autocast, so after its casts; with their backward passes).
ONEDNN_BF16_OPS = {
    getattr(torch.ops.aten, name).default
    for name in (
        "convolution",
        "convolution_backward",
        "mm",
        "addmm",
        "bmm",
        "baddbmm",
        "addbmm",
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention_for_cpu_backward",
        "mkldnn_rnn_layer",
        "mkldnn_rnn_layer_backward",
        "_prelu_kernel",
        "_prelu_kernel_backward",
    )
}


class Float32Accumulation(TorchDispatchMode):
    """Each of ONEDNN_BF16_OPS given bf16 operands computes in float32 from them and rounds its
    result to the dtype the bf16 kernel returns: a GPU's bf16 arithmetic, on any CPU (above)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in ONEDNN_BF16_OPS or not any(
            isinstance(leaf, torch.Tensor) and leaf.dtype == torch.bfloat16
            for leaf in tree_leaves((args, kwargs))
        ):
            return func(*args, **kwargs)
        shapes = tree_map_only(torch.Tensor, lambda t: t.to("meta"), (args, kwargs))
        rounded = func(*shapes[0], **shapes[1])  # what the bf16 kernel returns: dtypes only
        wide = tree_map_only(
            torch.Tensor, lambda t: t.float() if t.dtype == torch.bfloat16 else t, (args, kwargs)
        )
        result = func(*wide[0], **wide[1])
        return tree_map(lambda r, m: r.to(m.dtype) if isinstance(r, torch.Tensor) else r, result, rounded)


@pytest.fixture(autouse=True)
def float32_accumulation():
    """Float32Accumulation, and nn.Transformer's layers on their standard path, as on a GPU under
    autocast (on a CPU they take a fused path whose inner products the mode cannot see)."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    with Float32Accumulation():
        yield
    torch.backends.mha.set_fastpath_enabled(fastpath)


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


# --- the float32 islands --------------------------------------------------------------------------

# The layers that run in float32 under autocast (msa.models): the log-mel front end, the CRNN's
# GRUs, MaskedBatchNorm's training statistics.
ISLANDS = (LogMel, nn.GRU, MaskedBatchNorm)


def has_islands(name):
    with torch.device("meta"):  # no memory, no initialisation: only which layers the model has
        model, _ = create_model(name, NUM_CLASSES, "off", **tiny_overrides(name))
    return any(isinstance(module, ISLANDS) for module in model.modules())


WITH_ISLANDS = [name for name in NAMES if has_islands(name)]


@pytest.mark.parametrize("name", WITH_ISLANDS)
def test_float32_islands_compute_in_float32_under_bf16_autocast(name):
    """Each island's output under autocast, in training (MaskedBatchNorm's batch statistics), is
    its float32 computation on the same inputs widened to float32, within float32's rounding: a
    bf16 operation inside an island misses by bf16's (2**-8 relative). Unlike the logits above,
    whose tiny random heads pass a front end without its island within LOGIT_ATOL, this sees an
    island taken away (autocast left on in LogMel.forward, the GRUs given bf16 frames, the
    statistics computed on bf16 activations) whatever the CPU's kernels."""
    model = tiny(name).train()
    calls = []
    hooks = [
        module.register_forward_hook(lambda module, args, output: calls.append((module, args, output)))
        for module in model.modules()
        if isinstance(module, ISLANDS)
    ]
    with BF16.autocast():
        model(**inputs(model, padded_batch()))
    for hook in hooks:
        hook.remove()
    assert {type(module) for module, _, _ in calls} == {
        type(m) for m in model.modules() if isinstance(m, ISLANDS)
    }, "every island ran"
    for module, args, output in calls:
        assert not isinstance(module, nn.GRU) or args[0].dtype == torch.float32, "the GRU takes float32"
        with torch.no_grad():
            widened = [a.float() if a.is_floating_point() else a for a in args]
            expected = copy.deepcopy(module)(*widened)  # a copy: running statistics stay as they were
        for got, want in zip(tree_leaves(output), tree_leaves(expected), strict=True):
            assert got.dtype == want.dtype, type(module).__name__
            torch.testing.assert_close(
                got, want, msg=lambda m, module=module: f"{type(module).__name__}: {m}"
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

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

Measured here (2 CPU cores with AVX512-BF16, torch 2.14.1; seeds 0, 1 and 2; |float32 logits|
up to 1.7):

    max |logits(bf16 autocast) - logits(float32)|, eval mode, the padded batch below
        video_iter1 0.0054   video_iter2 0.0060   video_iter3/4/5 0.0057   audio_* 0.0049
        multimodal_iter1 0.0053   multimodal_iter2 0.0044   (softmax probabilities: 1.2e-3)
    max |cached logits - uncached logits|, both under autocast, three prepared clips; the
    tables are float32, computed without autocast as msa.trial computes them, so the
    difference is the bf16 rounding of the uncached prefix, which the table does not have
        video_iter2 0.0039   video_iter3 0.0088   video_iter4 0.0059   audio_* 0.0078
        multimodal_iter1 0.0078   multimodal_iter2 0.0039
    -> LOGIT_ATOL = 3e-2, for both: bf16 keeps 8 significant bits (a rounding of up to 2**-8
       relative per operation, about 3 decimal digits), and 3.4 to 5 times the largest measured
       difference leaves room for other kernels (another CPU's oneDNN, a GPU's) without hiding
       a real error, which moves these logits by tenths (a padding leak: 0.02 to 0.19, below).

    a clip alone vs the same clip in a batch with a longer clip, noise in its padding
        0.0 exactly for every model (the bf16 kernels here give each clip's rows the same
        result whatever else is in the batch)
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

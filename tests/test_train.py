"""msa.train: optimiser groups, schedules, metrics, the loop, checkpoints, seeding."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from msa.models import create_model, model_config, override_keys, tiny_overrides
from msa.train import (
    CheckpointError,
    OptimConfig,
    Precision,
    build_optimizer,
    build_scheduler,
    classification_metrics,
    confusion_matrix,
    evaluate,
    load_checkpoint,
    lr_multiplier,
    model_from_checkpoint,
    parameter_groups,
    place_model,
    save_checkpoint,
    seed_everything,
    train_one_epoch,
)
from msa.train.synthetic import random_batch

FRAME = 32
NUM_CLASSES = 4


def tiny(name, **overrides):
    model, _ = create_model(name, num_classes=NUM_CLASSES, **{**tiny_overrides(name), **overrides})
    return model


def loader(num_batches=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [random_batch([4, 3], [4_000, 3_000], FRAME, NUM_CLASSES, generator) for _ in range(num_batches)]


# --- optimiser --------------------------------------------------------------------------------------


def test_optim_config_is_strict():
    with pytest.raises(ValueError, match="lerning_rate.*valid keys"):
        OptimConfig.from_dict({"lerning_rate": 0.1})
    with pytest.raises(ValueError):
        OptimConfig(schedule="step")
    with pytest.raises(ValueError, match="warmup"):
        OptimConfig(schedule="inverse_sqrt", warmup_steps=0)
    assert OptimConfig.from_dict(OptimConfig(lr=3).to_dict()) == OptimConfig(lr=3.0)


def test_a_flat_hyperparameter_dict_splits_into_model_and_optimiser_settings():
    for name in ("multimodal_iter1", "video_iter1"):
        assert not set(OptimConfig.keys()) & set(override_keys(model_config(name)))


def test_parameter_groups_split_backbone_new_and_decay():
    model = tiny("video_iter4")
    config = OptimConfig(lr=1e-3, backbone_lr=1e-5, weight_decay=0.05)
    groups = {g["name"]: g for g in parameter_groups(model, config)}
    assert set(groups) == {"backbone", "backbone_no_decay", "new", "new_no_decay"}
    assert groups["backbone"]["lr"] == 1e-5 and groups["new"]["lr"] == 1e-3
    assert groups["backbone_no_decay"]["weight_decay"] == groups["new_no_decay"]["weight_decay"] == 0.0
    assert groups["new"]["weight_decay"] == 0.05
    grouped = {id(p) for g in groups.values() for p in g["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert grouped == trainable  # only trainable parameters, each once
    trunk = model.branches["video"].trunk
    assert {id(p) for p in trunk.layer4.parameters()} == {
        id(p) for name in ("backbone", "backbone_no_decay") for p in groups[name]["params"]
    }
    assert all(p.ndim == 1 for name in ("backbone_no_decay", "new_no_decay") for p in groups[name]["params"])


def test_scratch_model_has_no_backbone_group():
    names = {g["name"] for g in parameter_groups(tiny("video_iter1"), OptimConfig())}
    assert names == {"new", "new_no_decay"}


@pytest.mark.parametrize("optimizer, cls", [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_build_optimizer(optimizer, cls):
    opt = build_optimizer(tiny("audio_last2"), OptimConfig(optimizer=optimizer, momentum=0.8))
    assert isinstance(opt, cls)
    if optimizer == "sgd":
        assert all(g["momentum"] == 0.8 for g in opt.param_groups)


# --- schedules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, expected",
    [
        (OptimConfig(schedule="constant"), {0: 1.0, 5: 1.0, 999: 1.0}),
        (OptimConfig(schedule="constant", warmup_steps=4), {0: 0.25, 1: 0.5, 3: 1.0, 50: 1.0}),
        (
            OptimConfig(schedule="inverse_sqrt", warmup_steps=4),
            {0: 0.25, 2: 0.75, 3: 1.0, 15: math.sqrt(4 / 16), 99: math.sqrt(4 / 100)},
        ),
        (
            OptimConfig(schedule="cosine", warmup_steps=2),  # total_steps = 10
            {0: 0.5, 1: 1.0, 5: 0.5 * (1 + math.cos(math.pi * 4 / 8)), 9: 0.0, 20: 0.0},
        ),
        (
            OptimConfig(schedule="cosine", min_lr_ratio=0.1),
            {0: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 10)), 9: 0.1},
        ),
    ],
)
def test_schedule_values(config, expected):
    for step, value in expected.items():
        assert lr_multiplier(step, config, total_steps=10) == pytest.approx(value), step


def test_scheduler_drives_every_group():
    model = tiny("video_iter4")
    config = OptimConfig(schedule="inverse_sqrt", warmup_steps=2, lr=1e-3, backbone_lr=1e-4)
    opt = build_optimizer(model, config)
    scheduler = build_scheduler(opt, config, total_steps=10)
    seen = []
    for _ in range(4):
        seen.append({g["name"]: g["lr"] for g in opt.param_groups})
        opt.step()
        scheduler.step()
    assert [s["new"] for s in seen] == pytest.approx(
        [5e-4, 1e-3, 1e-3 * math.sqrt(2 / 3), 1e-3 * math.sqrt(2 / 4)]
    )
    assert seen[0]["backbone"] == pytest.approx(5e-5)


# --- metrics ------------------------------------------------------------------------------------------


def test_metrics_by_hand_with_a_class_never_predicted():
    # 4 classes; class 2 is present but never predicted; class 3 is absent and never predicted.
    y_true = [0, 0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 1, 0, 0, 1]
    cm = confusion_matrix(y_true, y_pred, 4)
    assert cm.tolist() == [[2, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    m = classification_metrics(cm)
    assert m["accuracy"] == pytest.approx(3 / 7)
    assert m["uar"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)  # class 3 has no recall: left out
    f1_0 = 2 * 2 / (2 * 2 + 2 + 1)  # TP 2, FP 2, FN 1
    f1_1 = 2 * 1 / (2 * 1 + 2 + 1)  # TP 1, FP 2, FN 1
    assert m["f1_macro"] == pytest.approx((f1_0 + f1_1 + 0.0) / 3)  # class 2 present, never predicted: 0


def test_macro_f1_counts_a_predicted_but_absent_class_as_zero():
    m = classification_metrics(confusion_matrix([0, 0, 1], [0, 2, 1], 3))
    assert m["f1_macro"] == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    assert m["uar"] == pytest.approx((0.5 + 1.0) / 2)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError):
        confusion_matrix([0, 4], [0, 1], 4)
    with pytest.raises(ValueError):
        classification_metrics(np.zeros((3, 3), dtype=int))


# --- loop -------------------------------------------------------------------------------------------------


def test_train_and_evaluate_report_the_contract_keys():
    model = tiny("multimodal_iter2")
    config = OptimConfig(schedule="cosine", warmup_steps=1)
    opt = build_optimizer(model, config)
    scheduler = build_scheduler(opt, config, total_steps=4)
    train = train_one_epoch(model, loader(), opt, scheduler, label_smoothing=0.1, grad_clip=1.0)
    assert set(train) == {"train_loss", "train_acc", "lr", "input_wait_seconds"}
    assert train["input_wait_seconds"] >= 0
    assert train["lr"] == pytest.approx(config.lr * lr_multiplier(2, config, total_steps=4))
    assert 0 < train["lr"] < config.lr
    result = evaluate(model, loader(), NUM_CLASSES)
    assert set(result) == {"loss", "accuracy", "f1_macro", "uar", "confusion_matrix"}
    matrix = result["confusion_matrix"]
    assert len(matrix) == NUM_CLASSES and sum(map(sum, matrix)) == 4
    assert all(type(v) is int for row in matrix for v in row)
    assert not model.training


def test_gradient_clipping_bounds_the_step():
    model = tiny("video_iter1")
    opt = build_optimizer(model, OptimConfig(optimizer="sgd", lr=1.0, momentum=0.0, weight_decay=0.0))
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    train_one_epoch(model, loader(num_batches=1), opt, grad_clip=1e-3)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert 0 < (after - before).norm() <= 1e-3 * 1.001


def test_cpu_runs_in_full_precision():
    precision = Precision("cpu")
    assert precision.dtype is None and not precision.scaler.is_enabled()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_mixed_precision_channels_last_step():
    model = place_model(tiny("multimodal_iter1", trainable_children=2), "cuda")
    precision = Precision("cuda")
    assert precision.dtype in (torch.bfloat16, torch.float16)
    train = train_one_epoch(
        model, loader(), build_optimizer(model, OptimConfig()), grad_clip=1.0, precision=precision
    )
    result = evaluate(model, loader(), NUM_CLASSES, precision=precision)
    assert math.isfinite(train["train_loss"]) and math.isfinite(result["loss"])


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("video_iter1", {}),
        ("audio_all", {"audio_arch": "tiny"}),
        ("multimodal_iter1", {"trainable_layers": 2}),
    ],
)
def test_a_tiny_model_overfits_a_tiny_batch(name, overrides):
    seed_everything(0)
    model = tiny(name, **overrides)
    data = loader(num_batches=1)
    opt = build_optimizer(model, OptimConfig(lr=3e-3, backbone_lr=3e-3, weight_decay=0.0))
    first = evaluate(model, data, NUM_CLASSES)["loss"]
    for _ in range(30):
        train_one_epoch(model, data, opt)
    last = evaluate(model, data, NUM_CLASSES)
    assert last["loss"] < 0.3 * first and last["accuracy"] == 1.0


# --- checkpoints ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["video_iter4", "multimodal_iter1"])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, name):
    model = (
        tiny(name, head="mlp", head_hidden=8, layer_weighting=True)
        if name.startswith("multi")
        else tiny(name)
    )
    opt = build_optimizer(model, OptimConfig(schedule="cosine"))
    scheduler = build_scheduler(opt, OptimConfig(schedule="cosine"), total_steps=10)
    # Move weights and BN statistics off their init.
    train_one_epoch(model, loader(num_batches=1), opt, scheduler)
    path = save_checkpoint(
        tmp_path / "ckpt" / "model.pt",
        model,
        optimizer=opt.state_dict(),
        scheduler=scheduler.state_dict(),
        epoch=3,
    )
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left behind

    rebuilt, extra = model_from_checkpoint(path)
    assert rebuilt.config == model.config and extra["epoch"] == 3
    batch = loader(num_batches=1, seed=1)[0]
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        inputs = {k: batch[k] for k in model.input_keys}
        assert torch.equal(model(**inputs), rebuilt(**inputs))
    resumed = build_optimizer(rebuilt, OptimConfig(schedule="cosine"))
    resumed.load_state_dict(extra["optimizer"])
    resumed_scheduler = build_scheduler(resumed, OptimConfig(schedule="cosine"), total_steps=10)
    resumed_scheduler.load_state_dict(extra["scheduler"])
    assert resumed_scheduler.get_last_lr() == scheduler.get_last_lr()


def test_truncated_checkpoint_names_its_path(tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", tiny("video_iter2"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.pt.*truncated or corrupt"):
        model_from_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an msa checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_checkpoint_of_an_older_model_layout_is_refused_by_name(tmp_path):
    """A checkpoint without a layer the model has since gained (say the audio frame norm)."""
    path = save_checkpoint(tmp_path / "old.pt", tiny("video_iter2"))
    payload = torch.load(path, weights_only=True)
    payload["model_state"] = {k: v for k, v in payload["model_state"].items() if "feature_norm" not in k}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"old.pt does not fit this msa's model .*Missing key"):
        model_from_checkpoint(path)


# --- reproducibility and layering -----------------------------------------------------------------------


def test_seed_everything_reproduces_training():
    def run():
        seed_everything(123)
        model = tiny("video_iter1")
        train_one_epoch(model, loader(num_batches=1), build_optimizer(model, OptimConfig()))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(run(), run())


def test_models_and_train_do_not_import_ray():
    code = (
        "import sys, msa.models, msa.train; "
        "bad = [m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'msa.tune', 'msa.data'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tensorboard_confusion_matrix_is_an_image_and_a_labelled_table(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from msa.train.figures import CELL_PIXELS, confusion_image, confusion_markdown
    from msa.trial.tensorboard import CONFUSION_TAG, log_epoch

    counts = [[3, 1], [0, 4]]  # rows true, columns predicted
    image = confusion_image(counts)
    assert image.shape == (2 * CELL_PIXELS, 2 * CELL_PIXELS, 3) and image.dtype == np.uint8
    cell = lambda row, column: image[row * CELL_PIXELS, column * CELL_PIXELS].astype(int).sum()  # noqa: E731
    assert cell(1, 1) < cell(0, 0) < cell(0, 1) < cell(1, 0), "darker = a larger fraction of the true class"
    table = confusion_markdown(counts, ("sad", "happy"))
    assert "| **sad** | 0.75 (3) | 0.25 (1) |" in table and "| **happy** | 0.00 (0) | 1.00 (4) |" in table

    writer = SummaryWriter(tmp_path)
    metrics = {
        key: 0.5 for key in ("train_loss", "val_loss", "train_acc", "val_acc", "val_f1", "val_uar", "lr")
    }
    log_epoch(writer, metrics, counts, ("sad", "happy"), epoch=1)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert CONFUSION_TAG in events.Tags()["images"]
    assert f"{CONFUSION_TAG}/text_summary" in events.Tags()["tensors"]

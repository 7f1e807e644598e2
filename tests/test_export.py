"""python -m msa.export: tiny random-weight models (a video, an audio and a multimodal one) written
as checkpoints, exported to ONNX and TorchScript by the command line, then run from the exported
file alone on inputs the export never saw (another batch size, frame count and audio length,
noise in the padding) and compared with PyTorch's model rebuilt from the checkpoint."""

import json
import os
import subprocess
import sys
import warnings

import onnx
import onnxruntime
import pytest
import torch
from conftest import REPO, tiny_trained_model

from msa.export import ATOL, load_source, read_metadata, static_model
from msa.export import formats as export_formats
from msa.export import write as export_write
from msa.export.__main__ import main
from msa.models import create_model, tiny_overrides
from msa.train import model_from_checkpoint, save_checkpoint
from msa.train.synthetic import random_batch

LABELS = ["neutral", "happy", "sad", "angry"]
FRAMES, FRAME = 4, 32  # the smoke search's clips: 4 frames of 32 px
SIZE_FLAGS = ["--frames", str(FRAMES), "--image-size", str(FRAME)]
# Clips the export's own check never used: batch 4, 5 frames, up to 9000 samples, padded.
NEW_FRAMES, NEW_SAMPLES = [5, 2, 5, 1], [7_000, 3_000, 9_000, 1_000]


def tiny_checkpoint(folder, name: str, trainable_only: bool = False):
    model = tiny_trained_model(name, len(LABELS))
    suffix = "-trainable" if trainable_only else ""
    return save_checkpoint(
        folder / f"{name}{suffix}.pt",
        model,
        trainable_only=trainable_only,
        epoch=3,
        labels=LABELS,
        metrics={"val_acc": 0.5, "val_loss": 1.2},
    )


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    return {
        name: tiny_checkpoint(folder, name)
        for name in ("video_iter3", "audio_last2", "multimodal_iter2", "audio_cnn", "audio_crnn")
    }


def new_inputs(model, seed=1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    batch = random_batch(NEW_FRAMES, NEW_SAMPLES, FRAME, len(LABELS), generator)
    video, audio = ~batch["video_mask"], ~batch["audio_mask"]
    batch["video"][video] = torch.randint(
        0, 256, batch["video"][video].shape, dtype=torch.uint8, generator=generator
    )
    batch["audio"][audio] = torch.rand(int(audio.sum()), generator=generator) * 2 - 1
    return {key: batch[key] for key in model.input_keys}


def run_exported(path, format: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The exported file alone, by its inputs' names."""
    if format == "onnx":
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == list(inputs)
        (logits,) = session.run(["logits"], {key: value.numpy() for key, value in inputs.items()})
        return torch.from_numpy(logits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(**inputs)


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as one_thread
    return subprocess.run(
        [sys.executable, "-m", "msa.export", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "name, format, how",
    [
        ("video_iter3", "onnx", "subprocess"),  # the real command line (a process costs seconds)
        # Both branches in both formats; in this process (quicker), through the same main().
        ("audio_last2", "torchscript", "main"),
        ("multimodal_iter2", "onnx", "main"),
        ("multimodal_iter2", "torchscript", "main"),
        # The spectrogram family: the dynamo exporter, and the TorchScript-based one for a GRU.
        ("audio_cnn", "onnx", "main"),
        ("audio_crnn", "onnx", "main"),
    ],
)
def test_the_exported_file_gives_pytorchs_logits(checkpoints, tmp_path, capsys, name, format, how):
    out = tmp_path / f"{name}.{format}"
    args = [str(checkpoints[name]), "--format", format, "--out", str(out), *SIZE_FLAGS]
    if how == "subprocess":
        result = cli(*args)
        assert result.returncode == 0, result.stderr
        stdout, stderr = result.stdout, result.stderr
    else:
        assert main(args) == 0
        stdout, stderr = capsys.readouterr()
    assert stdout.startswith(f"wrote {out} ") and "max |exported - PyTorch|" in stdout, stdout
    assert stderr == "", stderr
    assert [p.name for p in tmp_path.iterdir()] == [out.name], "no temporary file is left"

    model, _ = model_from_checkpoint(checkpoints[name])
    inputs = new_inputs(model.eval())
    with torch.no_grad():
        expected = model(**inputs)
    got = run_exported(out, format, inputs)
    assert got.shape == (len(NEW_FRAMES), len(LABELS))
    assert (got - expected).abs().max().item() <= ATOL
    if "video" in inputs:  # a clip without a real frame (a span without a face): average frames
        faceless = {**inputs, "video_mask": inputs["video_mask"].clone()}
        faceless["video_mask"][1] = False
        with torch.no_grad():
            expected = model(**faceless)
        assert torch.isfinite(expected).all() and not torch.equal(expected[1], got[1])
        assert (run_exported(out, format, faceless) - expected).abs().max().item() <= ATOL

    metadata = read_metadata(out)
    assert metadata["labels"] == LABELS
    assert metadata["input_names"] == list(model.input_keys) and metadata["output"] == "logits"
    assert (metadata["num_frames"], metadata["image_size"], metadata["sample_rate"]) == (
        FRAMES,
        FRAME,
        16_000,
    )
    assert metadata["preprocessing_from"] == "the command line" and metadata["epoch"] == 3
    if format == "onnx":  # what any ONNX reader sees, without msa
        props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert json.loads(props["labels"]) == LABELS
        assert json.loads(props["model_config"]) == metadata["model_config"]


@pytest.mark.parametrize(
    "name", ["video_iter1", "audio_frozen", "audio_all", "audio_cnn", "audio_crnn", "audio_transformer"]
)
def test_the_static_form_gives_the_models_logits(name):
    """What both exporters trace, against EmotionModel.forward, on what the exports above do not
    cover: the small CNN trunk, frozen speech-encoder layers with layer weighting, and an
    encoder trainable above its convolutions (tiny audio_last2 trains both its layers)."""
    torch.manual_seed(0)
    overrides = {**tiny_overrides(name), **({"layer_weighting": True} if name == "audio_frozen" else {})}
    model, _ = create_model(name, len(LABELS), "off", **overrides)
    inputs = new_inputs(model.eval())
    with torch.no_grad():
        assert (static_model(model)(*inputs.values()) - model(**inputs)).abs().max().item() <= 1e-5


def fake_experiment(root, checkpoint):
    """An experiment directory as a search leaves it, without Ray: trial_b is the best trial
    and holds ``checkpoint``; the worse trial_a holds a trainable-only one."""
    (root / "msa_args.json").parent.mkdir(parents=True)
    (root / "msa_args.json").write_text(json.dumps({"frames": FRAMES, "image_size": FRAME, "max_epochs": 1}))
    for trial, accuracy, source in (("trial_a", 0.25, None), ("trial_b", 0.75, checkpoint)):
        folder = root / trial
        (folder / "checkpoint_000000").mkdir(parents=True)
        (folder / "params.json").write_text(json.dumps({"model": "video_iter3"}))
        row = {
            "epoch": 1,
            "val_acc": accuracy,
            "val_loss": 1.0,
            "checkpoint_dir_name": "checkpoint_000000",
            "done": True,
        }
        (folder / "result.json").write_text(json.dumps(row) + "\n")
        target = folder / "checkpoint_000000" / "checkpoint.pt"
        if source is None:
            tiny_checkpoint(folder / "checkpoint_000000", "video_iter3", trainable_only=True).rename(target)
        else:
            target.write_bytes(source.read_bytes())
    return root


def test_an_experiment_directory_exports_its_best_checkpoint(checkpoints, tmp_path, capsys):
    experiment = fake_experiment(tmp_path / "results" / "search", checkpoints["video_iter3"])
    out = tmp_path / "best.pt"
    assert main([str(experiment), "--format", "torchscript", "--out", str(out)]) == 0, capsys.readouterr().err
    metadata = read_metadata(out)
    assert metadata["trial"] == "trial_b" and metadata["model"] == "video_iter3"
    assert metadata["checkpoint"] == "trial_b/checkpoint_000000/checkpoint.pt"
    assert (metadata["num_frames"], metadata["image_size"]) == (FRAMES, FRAME)
    assert metadata["preprocessing_from"] == "msa_args.json"
    assert metadata["val_metrics"] == {"val_acc": 0.5, "val_loss": 1.2}  # the checkpoint's own
    # The trial's checkpoint file itself: the search's msa_args.json and the model name are found.
    source = load_source(str(experiment / "trial_b" / "checkpoint_000000" / "checkpoint.pt"))
    assert (source.name, source.trial) == ("video_iter3", "trial_b")
    params, origin = source.prepare_params()
    assert (params.num_frames, params.image_size, origin) == (FRAMES, FRAME, "msa_args.json")


def test_a_trainable_only_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path, "video_iter3", trainable_only=True)
    out = tmp_path / "model.onnx"
    assert main([str(checkpoint), "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds only the trainable weights" in err, err
    assert str(checkpoint) in err and not out.exists()


def test_a_file_that_is_no_checkpoint_is_refused_naming_it(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("not a checkpoint\n")
    assert main([str(path), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: checkpoint {path} ") and err.count("\n") == 1, err
    assert (
        main([str(tmp_path / "missing.pt"), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 2
    )
    assert f"{tmp_path / 'missing.pt'} does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_outputs_that_differ_fail_the_export_and_leave_no_file(checkpoints, tmp_path, capsys, monkeypatch):
    honest = export_write.RUNNERS["torchscript"]
    monkeypatch.setitem(
        export_write.RUNNERS, "torchscript", lambda path: lambda batch: honest(path)(batch) + 1e-3
    )
    out = tmp_path / "model.pt"
    args = [str(checkpoints["audio_last2"]), "--format", "torchscript", "--out", str(out), *SIZE_FLAGS]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differs from PyTorch's by up to 0.001 (allowed 0.0001)" in err, err
    assert list(tmp_path.iterdir()) == []


def test_onnx_without_the_extra_names_it(checkpoints, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(export_formats, "ONNX_PACKAGES", ("onnx", "no_such_onnx_package"))
    out = tmp_path / "model.onnx"
    assert main([str(checkpoints["video_iter3"]), "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such_onnx_package" in err and "pip install -e '.[export]'" in err, err
    assert not out.exists()

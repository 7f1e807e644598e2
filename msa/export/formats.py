"""The exported files: ONNX (torch's dynamo exporter, run with onnxruntime) and TorchScript
(torch.jit.trace, run with torch.jit.load), each with the export's metadata inside (ONNX's
encoding: msa.export.metadata).

Both take the model's inputs by name (``video`` (B, T, 3, H, W) uint8 + ``video_mask`` (B, T)
bool; ``audio`` (B, S) float32 + ``audio_mask`` (B, S) bool) and return ``logits`` (B, K), with
the batch, the frames T and the samples S free. Metadata: ONNX ``metadata_props`` (one entry
per key: strings as they are, anything else as JSON); TorchScript the extra file
``METADATA_FILE`` (one JSON object).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from msa.export.metadata import OUTPUT, read_onnx_metadata, to_props

FORMATS = ("onnx", "torchscript")
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the export extra (pyproject.toml)
EXTRA_HINT = "pip install -e '.[export]'"
METADATA_FILE = "msa_export.json"  # TorchScript: the extra file holding the metadata
# torch.export's names of the free axes, which the ONNX file's inputs carry as dim_params.
AXES = {
    "video": ("batch", "frames"),
    "video_mask": ("batch", "frames"),
    "audio": ("batch", "samples"),
    "audio_mask": ("batch", "samples"),
}

Runner = Callable[[dict[str, torch.Tensor]], torch.Tensor]


class MissingExtra(RuntimeError):
    """The export extra is not installed (one line naming it)."""


def require_onnx() -> None:
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(f"--format onnx needs {', '.join(missing)}, from the export extra: {EXTRA_HINT}")


# ----------------------------------------------------------------------------- ONNX


def write_onnx(static: torch.nn.Module, example: dict[str, torch.Tensor], path: Path, metadata: dict) -> str:
    """Export ``static`` (msa.export.static) to ``path`` -> a description of the exporter. The
    opset is the exporter's default.

    The dynamo exporter (torch.export) handles every model here once the masks no longer decide
    shapes (the static form), except recurrent layers: torch.export fixes the batch and length of
    a graph with a GRU (and torch 2.14 fails on a graph's second one), so a model with one goes
    through the TorchScript-based exporter, which writes ONNX's own GRU with free axes."""
    if any(isinstance(module, torch.nn.RNNBase) for module in static.modules()):
        return _write_onnx_traced(static, example, path, metadata)
    dims = {name: torch.export.Dim(name) for name in ("batch", "frames", "samples")}
    shapes = {key: {axis: dims[name] for axis, name in enumerate(AXES[key])} for key in example}
    with warnings.catch_warnings():
        # "The axis name: batch will not be used, since it shares the same shape constraints
        # with another axis": the video and its mask share their axes, as they should.
        warnings.simplefilter("ignore", UserWarning)
        program = torch.onnx.export(
            static,
            tuple(example.values()),
            input_names=list(example),
            output_names=[OUTPUT],
            dynamic_shapes=shapes,
            dynamo=True,
            verbose=False,
        )
    program.model.metadata_props.update(to_props(metadata))
    # One self-contained file (under ONNX's 2 GB protobuf limit: wav2vec2-large is 1.3 GB), so
    # that the temporary name can simply be renamed.
    program.save(path, external_data=False)
    return f"torch.onnx.export(dynamo=True), opset {program.model.opset_imports['']}"


def _write_onnx_traced(
    static: torch.nn.Module, example: dict[str, torch.Tensor], path: Path, metadata: dict
) -> str:
    import onnx

    axes = {key: dict(enumerate(AXES[key])) for key in example}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and trace notices
        torch.onnx.export(
            static,
            tuple(example.values()),
            str(path),
            input_names=list(example),
            output_names=[OUTPUT],
            dynamic_axes=axes,
            dynamo=False,
        )
    model = onnx.load(str(path))
    for key, value in to_props(metadata).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return f"torch.onnx.export(dynamo=False: recurrent layers), opset {opset}"


def onnx_runner(path: Path) -> Runner:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {key: value.numpy() for key, value in inputs.items()}
        return torch.from_numpy(session.run([OUTPUT], feed)[0])

    return run


# ----------------------------------------------------------------------------- TorchScript


@contextmanager
def quiet():
    """Without torch.jit's deprecation notices (TorchScript is what was asked for), tracing's
    warnings, and transformers' note on the loss_function property the tracer looks at."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)


def write_torchscript(
    static: torch.nn.Module, example: dict[str, torch.Tensor], path: Path, metadata: dict
) -> str:
    """Trace ``static`` on ``example`` and save it to ``path`` -> a description of the exporter.

    Tracing, not scripting: torch.jit.script compiles no model here (it cannot type the
    branches' tuples of frozen module names, nor read the transformers config classes' source).
    A trace records one run's operations; the static form
    computes every shape from its inputs' sizes (no Python branch on values), which is what
    lets the trace run other batch sizes and lengths, and the export's check proves it on
    other ones than this example."""
    with quiet(), torch.no_grad():
        # TracerWarnings (a size turned into a Python number where transformers compares it):
        # the check after the export is what counts.
        traced = torch.jit.trace(static, tuple(example.values()), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})
    return "torch.jit.trace"


def torchscript_runner(path: Path) -> Runner:
    with quiet():
        module = torch.jit.load(str(path), map_location="cpu")

    def run(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return module(**inputs)

    return run


def read_torchscript_metadata(path: Path) -> dict[str, Any]:
    files = {METADATA_FILE: ""}
    with quiet():
        torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return json.loads(files[METADATA_FILE])


WRITERS = {"onnx": write_onnx, "torchscript": write_torchscript}
RUNNERS = {"onnx": onnx_runner, "torchscript": torchscript_runner}
READERS = {"onnx": read_onnx_metadata, "torchscript": read_torchscript_metadata}


def read_metadata(path: str | Path, format: str | None = None) -> dict[str, Any]:
    """The metadata an exported file holds (``format`` from the suffix when not given:
    ``.onnx``, else TorchScript)."""
    path = Path(path)
    return READERS[format or ("onnx" if path.suffix == ".onnx" else "torchscript")](path)

"""Using a tuned model outside this project: ``python -m msa.export MODEL --format onnx|torchscript --out FILE``.

MODEL is an experiment directory (its best trial's best kept checkpoint, msa.analysis's rule) or
a checkpoint file; either is rebuilt alone (msa.train.model_from_checkpoint). The exported file
takes the model's inputs by name and returns ``logits``, for any batch size, frame count and
audio length, and holds the metadata prediction needs (labels, the model, the clips' frames,
image size, crop and sample rate). Every export checks itself: the file's outputs must equal
PyTorch's within ``ATOL`` on the exporter's example and two batches of other sizes and
lengths, padded clips among them, or nothing is written.

Modules: ``source`` (MODEL -> the model and what is known of it), ``static`` (the evaluation
forward without data-dependent shapes, which both exporters need), ``formats`` (ONNX and
TorchScript: write, run, read the metadata), ``metadata`` (ONNX's metadata encoding, torch-free),
``write`` (one export and its check), and the command line in ``__main__``. A layer at the height of msa.report: it reads experiments through
msa.analysis and models through msa.train; only msa.predict imports it, and it never imports Ray.
"""

import importlib

# Names resolved on first use (PEP 562), so that importing msa.export.metadata alone (what
# msa.predict does for an ONNX file) pulls in neither torch nor the models.
_EXPORTS = {
    "FORMATS": "formats",
    "METADATA_FILE": "formats",
    "MissingExtra": "formats",
    "read_metadata": "formats",
    "ModelSource": "source",
    "SourceError": "source",
    "load_source": "source",
    "NotExportable": "static",
    "static_model": "static",
    "ATOL": "write",
    "ExportResult": "write",
    "ParityError": "write",
    "export_model": "write",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'msa.export' has no attribute {name!r}")
    return getattr(importlib.import_module(f"msa.export.{_EXPORTS[name]}"), name)


__all__ = list(_EXPORTS)

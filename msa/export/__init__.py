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
TorchScript: write, run, read the metadata), ``write`` (one export and its check), and the
command line in ``__main__``. A layer at the height of msa.report: it reads experiments through
msa.analysis and models through msa.train; nothing imports it, and it never imports Ray.
"""

from msa.export.formats import FORMATS, METADATA_FILE, MissingExtra, read_metadata
from msa.export.source import ModelSource, SourceError, load_source
from msa.export.static import NotExportable, static_model
from msa.export.write import ATOL, ExportResult, ParityError, export_model

__all__ = [
    "ATOL",
    "ExportResult",
    "FORMATS",
    "METADATA_FILE",
    "MissingExtra",
    "ModelSource",
    "NotExportable",
    "ParityError",
    "SourceError",
    "export_model",
    "load_source",
    "read_metadata",
    "static_model",
]

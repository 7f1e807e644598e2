"""What an exported ONNX file holds besides its graph, read and written here alone: the output's
name, the metadata's version and its encoding as ONNX ``metadata_props`` (one entry per key:
strings as they are, anything else as JSON). Imports neither torch nor the rest of msa.export,
so ``msa.predict`` reads an ONNX file without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUTPUT = "logits"  # the exported graph's one output, (B, K)
# 2: a clip whose video_mask holds no real frame is classified from its other inputs (its video
# stands for average frames, msa.models.video.VideoBranch.pool_frames).
METADATA_VERSION = 2


def to_props(metadata: dict[str, Any]) -> dict[str, str]:
    """The metadata as ONNX metadata_props entries."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()}


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported ONNX file (its weights are not read)."""
    import onnx

    metadata = {}
    for prop in onnx.load(str(path), load_external_data=False).metadata_props:
        try:
            metadata[prop.key] = json.loads(prop.value)
        except ValueError:
            metadata[prop.key] = prop.value
    return metadata

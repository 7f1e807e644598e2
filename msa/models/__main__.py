"""`msa models [--json] [--audio-weights HUB_ID|PATH]` (alias `python -m msa.models`): every
named configuration with its parameter counts.

Counts are for the real backbone sizes: ResNet-18, and wav2vec2-base or, with --audio-weights,
the speech encoder those weights hold (its config.json, from a local folder or the Hugging Face
cache: `msa weights fetch --audio ID` gets it); the spectrogram family has no backbone. The models are built on the meta
device, so nothing is allocated, initialised or downloaded.
"""

import argparse
import json
import sys

import torch

from msa.models.audio import arch_from_config
from msa.models.config import AudioConfig
from msa.models.registry import create_model, describe_model, list_models, model_config
from msa.weights import WeightsUnavailable, find_weights

NUM_CLASSES = 8  # RAVDESS's emotions; the head is the only part that depends on it
PROG = "python -m msa.models"


def parameter_counts(name: str, audio_arch: str | None = None) -> dict:
    """{name, total, trainable} of a named configuration (with this speech encoder, if given)."""
    config = model_config(name, num_classes=NUM_CLASSES)
    overrides = {"audio_arch": audio_arch} if audio_arch and isinstance(config.audio, AudioConfig) else {}
    with torch.device("meta"):
        model, _ = create_model(config, NUM_CLASSES, pretrained="off", **overrides)
    return {
        "name": name,
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def encoder_arch(source: str) -> str:
    """The speech encoder architecture of weights on this machine (raises WeightsUnavailable)."""
    weights = find_weights("audio", source)
    return arch_from_config(json.loads((weights.folder / "config.json").read_text()))


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Every named model configuration with its parameter counts."
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of {name, total, trainable}")
    parser.add_argument(
        "--audio-weights",
        help="count the audio models with this speech encoder (hub id in the cache, or a folder)",
    )
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        audio_arch = encoder_arch(args.audio_weights) if args.audio_weights else None
    except WeightsUnavailable as error:
        print(f"error: --audio-weights: {error}", file=sys.stderr)
        return 2
    rows = [parameter_counts(name, audio_arch) for name in list_models()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    encoder = f"; audio: {args.audio_weights}" if args.audio_weights else ""
    print(f"{'name':<18} {'total':>12} {'trainable':>12}  description ({NUM_CLASSES} classes{encoder})")
    for row in rows:
        print(f"{row['name']:<18} {row['total']:>12,} {row['trainable']:>12,}  {describe_model(row['name'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

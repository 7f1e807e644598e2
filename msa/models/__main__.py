"""`python -m msa.models [--json]`: every named configuration with its parameter counts.

Counts are for the real backbone sizes (ResNet-18, wav2vec2-base); the models are built on the
meta device, so nothing is allocated, initialised or downloaded.
"""

import argparse
import json

import torch

from msa.models.registry import create_model, describe_model, list_models

NUM_CLASSES = 8  # RAVDESS's emotions; the head is the only part that depends on it


def parameter_counts(name: str) -> dict:
    with torch.device("meta"):
        model, _ = create_model(name, NUM_CLASSES, pretrained="off")
    return {
        "name": name,
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m msa.models", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list of {name, total, trainable}")
    args = parser.parse_args(argv)
    rows = [parameter_counts(name) for name in list_models()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'name':<18} {'total':>12} {'trainable':>12}  description ({NUM_CLASSES} classes)")
    for row in rows:
        print(f"{row['name']:<18} {row['total']:>12,} {row['trainable']:>12,}  {describe_model(row['name'])}")


if __name__ == "__main__":
    main()

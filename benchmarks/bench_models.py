"""CPU time of one training step for every named model configuration.

Real backbone sizes (ResNet-18, wav2vec2-base) with random weights, one batch in msa.data's
collate format, the project's own train_one_epoch (forward, backward, AdamW step).

    python benchmarks/bench_models.py [--names video_iter3,audio_last2] [--steps 1] [--json OUT]
"""

import argparse
import json
import os
import platform
import time

import torch

from msa.models import create_model, list_models
from msa.train import OptimConfig, build_optimizer, seed_everything, train_one_epoch
from msa.train.synthetic import random_batch

BATCH_SIZE = 8
FRAMES = 16  # per clip
FRAME_SIZE = 112  # pixels, square
AUDIO_SAMPLES = 56_000  # 3.5 s at 16 kHz
NUM_CLASSES = 8


def bench(name: str, steps: int, warmup: int) -> dict:
    seed_everything(0)
    model, _ = create_model(name, NUM_CLASSES, pretrained="off")
    optimizer = build_optimizer(model, OptimConfig())
    batch = random_batch([FRAMES] * BATCH_SIZE, [AUDIO_SAMPLES] * BATCH_SIZE, FRAME_SIZE, NUM_CLASSES)
    for _ in range(warmup):
        train_one_epoch(model, [batch], optimizer)
    start = time.perf_counter()
    for _ in range(steps):
        train_one_epoch(model, [batch], optimizer)
    return {
        "name": name,
        "step_s": (time.perf_counter() - start) / steps,
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", default=",".join(list_models()), help="comma-separated configurations")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per configuration")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed steps first (allocator, kernel choice)"
    )
    parser.add_argument("--json", metavar="OUT", help="also write the results here")
    args = parser.parse_args()

    setup = {
        "batch_size": BATCH_SIZE,
        "frames": FRAMES,
        "frame_size": FRAME_SIZE,
        "audio_samples": AUDIO_SAMPLES,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    print(
        f"one training step, batch {BATCH_SIZE}: {FRAMES}x{FRAME_SIZE}x{FRAME_SIZE} video, "
        f"{AUDIO_SAMPLES} audio samples; {setup['threads']} threads"
    )
    print(f"{'name':<18} {'trainable':>12} {'step (s)':>9}")
    results = []
    for name in args.names.split(","):
        row = bench(name, args.steps, args.warmup)
        results.append(row)
        print(f"{row['name']:<18} {row['trainable']:>12,} {row['step_s']:>9.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"setup": setup, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()

"""Audio models without downloaded weights on real speech, under speaker-disjoint folds, in one command.

    python benchmarks/bench_real_speech.py --data ../shared/ravdess-speech          # 8 actors, 4 folds
    python benchmarks/bench_real_speech.py --data ~/RAVDESS-speech --folds ravdess6 # all 24 actors

Rows, all on the same folds (the spectrogram search's ``--crossval``; the folds' seed is --seed):
  baseline          msa's MFCC statistics + logistic regression (msa.baseline), fitted per fold by
                    the cross-validation itself
  audio_wav2vec     random weights (no download): its frozen choice (audio_frozen: a linear head
                    on a random wav2vec2-base's pooled states), cross-validated with python -m
                    msa.crossval --config. Not a search: its other choices train the 95 M-parameter
                    encoder, hours per fold on 2 cores, and random weights give them nothing to tune.
  audio_spectrogram tune_main.py --space audio_spectrogram: an ASHA + TPE search of --num-samples
                    trials of up to --max-epochs epochs on the default actor split (its own
                    validation actors choose), then --crossval of the best configuration. The folds
                    test speakers that the search validated on: the number is not nested (docs/explanation/evaluation.md)

Each row's WAR (accuracy), UAR and macro-F1 as mean +- sample std over the folds, every fold, the
wall time of each stage on this machine, and the target (UAR at least TARGET_GAIN above the
baseline's, and above it on every fold) met or missed, by how much. Writes --json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from runs import run_logged  # noqa: E402

from msa.experiment_dir import ARGS_FILE, CROSSVAL_FILE  # noqa: E402

METRICS = ("accuracy", "uar", "f1_macro")  # accuracy is WAR
TARGET_GAIN = 0.15  # UAR over the baseline's, the target
# audio_wav2vec's frozen choice: the head's settings are audio_wav2vec's defaults' middle.
WAV2VEC_CONFIG = {"model": "audio_frozen", "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 16}


def row(crossval: dict, name: str, protocol: str, seconds: float) -> dict:
    folds = [fold for fold in crossval["folds"] if fold.get("confusion_matrix") is not None]
    return {
        "name": name,
        "protocol": protocol,
        "mean": {metric: crossval["mean"][metric] for metric in METRICS},
        "std": {metric: crossval["std"][metric] for metric in METRICS},
        "folds": [{"test_actors": f["test_actors"], **{m: f[m] for m in METRICS}} for f in folds],
        "seconds": round(seconds, 1),
    }


def baseline_row(crossval: dict) -> dict:
    block = crossval["baseline"]["audio"]
    folds = [fold for fold in crossval["folds"] if fold.get("baseline")]
    return {
        "name": "baseline (MFCC statistics + logistic regression)",
        "protocol": "fitted on each fold's training actors, C chosen on its validation actors",
        "mean": {metric: block["mean"][metric] for metric in METRICS},
        "std": {metric: block["std"][metric] for metric in METRICS},
        "folds": [
            {"test_actors": f["test_actors"], **{m: f["baseline"]["audio"][m] for m in METRICS}}
            for f in folds
        ],
    }


def verdict(model: dict, baseline: dict) -> dict:
    gain = model["mean"]["uar"] - baseline["mean"]["uar"]
    per_fold = [m["uar"] - b["uar"] for m, b in zip(model["folds"], baseline["folds"], strict=True)]
    return {
        "uar_gain": round(gain, 4),
        "target_gain": TARGET_GAIN,
        "gain_met": gain >= TARGET_GAIN,
        "fold_gains": [round(g, 4) for g in per_fold],
        "above_on_every_fold": all(g > 0 for g in per_fold),
    }


def table(rows: list[dict]) -> str:
    lines = ["| model | WAR | UAR | macro-F1 | per-fold UAR | wall time |", "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r['mean'][m]:.3f} +- {r['std'][m]:.3f}" for m in METRICS]
        folds = " / ".join(f"{f['uar']:.2f}" for f in r["folds"])
        seconds = f"{r['seconds'] / 60:.1f} min" if "seconds" in r else "(in the cross-validation)"
        lines.append(f"| {r['name']} | {' | '.join(cells)} | {folds} | {seconds} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a RAVDESS speech folder (or any audio data msa reads)")
    parser.add_argument("--folds", default="4", help="K speaker-disjoint folds, or a preset (default 4)")
    parser.add_argument("--num-samples", type=int, default=32, help="spectrogram search trials (default 32)")
    parser.add_argument(
        "--max-epochs", type=int, default=30, help="epochs per trial and per fold (default 30)"
    )
    parser.add_argument(
        "--time-budget", type=int, default=1200, help="the search's limit in seconds (default 1200)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work", default="/tmp/msa-real-speech", help="experiments and cache (default %(default)s)"
    )
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "real_speech.json"))
    args = parser.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    common = ["--cache", str(work / "cache"), "--storage", str(work / "results")]
    python = sys.executable
    search = [
        python, "tune_main.py", "--space", "audio_spectrogram", "--data", args.data,
        "--num-samples", str(args.num_samples), "--max-epochs", str(args.max_epochs),
        "--time-budget", str(args.time_budget), "--metric", "val_uar", "--seed", str(args.seed),
        "--crossval", args.folds, "--name", "spectrogram", *common,
    ]  # fmt: skip
    print(f"search + cross-validation: {' '.join(search)}", flush=True)
    search_seconds, _ = run_logged(search, work / "spectrogram.log")
    experiment = work / "results" / "spectrogram"
    spectrogram = json.loads((experiment / "crossval.json").read_text())
    summary = json.loads((experiment / "summary.json").read_text())

    # Its own experiment folder (the search's settings: data, classes, seed, so the same folds),
    # as the search's already holds a cross-validation of these folds.
    wav2vec_experiment = work / "results" / "wav2vec_random"
    wav2vec_experiment.mkdir(exist_ok=True)
    shutil.copy(experiment / ARGS_FILE, wav2vec_experiment / ARGS_FILE)
    crossval = [
        python, "-m", "msa.crossval", str(wav2vec_experiment), "--folds", args.folds,
        "--config", json.dumps(WAV2VEC_CONFIG),
    ]  # fmt: skip
    print(f"audio_wav2vec, random weights: {' '.join(crossval)}", flush=True)
    wav2vec_seconds, _ = run_logged(crossval, work / "wav2vec.log")
    wav2vec = json.loads((wav2vec_experiment / CROSSVAL_FILE).read_text())

    rows = [
        baseline_row(spectrogram),
        row(
            wav2vec,
            "audio_wav2vec, random weights (audio_frozen)",
            "cross-validated, not searched",
            wav2vec_seconds,
        ),
        row(
            spectrogram,
            "audio_spectrogram, searched",
            f"{summary['num_trials']} trials (ASHA + TPE, up to {args.max_epochs} "
            f"epochs, val_uar on actors {summary['data']['actors']['val']}), best cross-validated",
            search_seconds,
        ),
    ]
    result = {
        "data": args.data,
        "folds": args.folds,
        "protocol": spectrogram["protocol"],
        "seed": args.seed,
        "epochs_per_fold": spectrogram["epochs"],
        "best_config": spectrogram["config"],
        "rows": rows,
        "target": verdict(rows[2], rows[0]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads per trial 1",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(sys.argv),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(table(rows))
    target = result["target"]
    print(
        f"target: UAR +{TARGET_GAIN:.2f} over the baseline: {'met' if target['gain_met'] else 'missed'} "
        f"(+{target['uar_gain']:.3f}); above it on every fold: {target['above_on_every_fold']} "
        f"(per fold {target['fold_gains']})"
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""At the scale of all of RAVDESS (1,440 clips, 24 actors) on this machine: preparation, the cache
on disk, the frozen-prefix feature tables (audio as float32 and float16), peak memory, and one
16-trial search.

    python -m msa.data.sample /tmp/full --full          # once: the RAVDESS-sized synthetic set
    python benchmarks/bench_full.py --data /tmp/full [--work DIR] [--json OUT] [--skip-search]

Stages (memory: peak summed PSS of the process tree, sampled every 0.25 s, as bench.py):
  prepare        python -m msa.prepare --workers 2 into an empty cache: seconds, clips/s,
                 peak memory; then the prepared clips' size on disk
  tables         the feature tables a search of video_transformer or multimodal needs, computed
                 for the train + val clips (random weights; 1 thread, as a trial): the ResNet-18
                 trunk (video_iter2 / video_iter3), its prefix up to layer3 (video_iter4), and
                 wav2vec 2.0 up to layer 10 (audio_last2) as float32 and as float16: seconds,
                 bytes, entries; and the float16 table's logits against the float32 table's
                 (same model, every val clip)
  search         tune_main.py --space video_resnet_avg (its default budget for this size: ASHA
                 + TPE, 16 trials), wall time, trial-epochs, peak memory
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402
from runs import PeakMemory, run_logged  # noqa: E402

from msa.analysis import load_experiment  # noqa: E402
from msa.data.decode import PrepareParams  # noqa: E402
from msa.data.experiment import prepare_experiment_data  # noqa: E402
from msa.data.splits import SplitConfig  # noqa: E402
from msa.features import list_tables  # noqa: E402
from msa.train.runtime import batch_inputs  # noqa: E402
from msa.trial import TrialSettings, setup_trial  # noqa: E402

TRANSFORMER = {"d_model": 64, "num_layers": 1, "num_heads": 2, "dropout": 0.1}
OPTIM = {"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 8, "schedule": "constant"}
TABLE_CONFIGS = {  # one trial config per table; the video_iter2 table is video_iter3's
    "video_iter3": {"model": "video_iter3", **TRANSFORMER, **OPTIM},
    "video_iter4": {"model": "video_iter4", **TRANSFORMER, **OPTIM, "backbone_lr": 1e-5},
    "audio_last2": {"model": "audio_last2", "layer_weighting": False, "pool_dropout": 0.1, **OPTIM,
                    "backbone_lr": 1e-5},
}  # fmt: skip
MB = 1e6


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_prepare(data: Path, cache: Path, work: Path) -> dict:
    command = [sys.executable, "-m", "msa.prepare", "--data", str(data), "--cache", str(cache),
               "--workers", "2"]  # fmt: skip
    seconds, memory = run_logged(command, work / "prepare.log", memory=True)
    clips = len(list((cache / "clips").iterdir()))
    return {
        "prepare_s": round(seconds, 1),
        "prepare_clips_per_s": round(clips / seconds, 2),
        "prepare_peak_mb": round(memory.peak_pss * 1024 / MB),
        "prepared_clips": clips,
        "prepared_mb": round(du(cache / "clips") / MB, 1),
    }


def val_logits(run) -> torch.Tensor:
    run.net.eval()
    with torch.no_grad():
        return torch.cat(
            [
                run.net(**batch_inputs(batch, run.net.input_keys, torch.device("cpu")))
                for batch in run.loaders["val"]
            ]
        )


def bench_tables(data, cache: Path) -> dict:
    torch.set_num_threads(1)
    results, tables = {}, {}
    for label, config in TABLE_CONFIGS.items():
        dtypes = ("float32", "float16") if label.startswith("audio") else ("float32",)
        for dtype in dtypes:
            settings = TrialSettings(data=data, max_epochs=1, progress=False, audio_features=dtype)
            before = {table["name"] for table in list_tables(cache)}
            with PeakMemory(os.getpid()) as memory:
                run = setup_trial(config, settings, torch.device("cpu"))
            new = [table for table in list_tables(cache) if table["name"] not in before]
            key = f"{label}_{dtype}"
            results[key] = {
                "seconds": round(run.feature_seconds, 1),
                "entries": sum(table["entries"] for table in new),
                "mb": round(sum(table["bytes"] for table in new) / MB, 1),
                "tables": [table["name"] for table in new],
                "peak_mb": round(memory.peak_pss * 1024 / MB),
            }
            if label.startswith("audio"):
                tables[dtype] = val_logits(run)
            run.close()
    difference = (tables["float16"] - tables["float32"]).abs()
    probabilities = (tables["float16"].softmax(-1) - tables["float32"].softmax(-1)).abs()
    results["audio_float16_vs_float32"] = {
        "clips": len(difference),
        "max_logit_difference": float(difference.max()),
        "max_probability_difference": float(probabilities.max()),
        "same_top1": bool((tables["float16"].argmax(-1) == tables["float32"].argmax(-1)).all()),
    }
    return results


def bench_search(data: Path, cache: Path, work: Path) -> dict:
    command = [sys.executable, "tune_main.py", "--space", "video_resnet_avg", "--data", str(data),
               "--cache", str(cache), "--storage", str(work / "results"), "--name", "full16",
               "--num-samples", "16", "--pretrained", "off"]  # fmt: skip
    seconds, memory = run_logged(command, work / "search.log", memory=True)
    experiment = work / "results" / "full16"
    epochs = len(load_experiment(experiment).epochs)
    args = json.loads((experiment / "msa_args.json").read_text())
    summary = json.loads((experiment / "summary.json").read_text())
    return {
        "search_s": round(seconds, 1),
        "search_trial_epochs": epochs,
        "search_max_epochs": args["max_epochs"],
        "search_grace_period": args["grace_period"],
        "search_peak_mb": round(memory.peak_pss * 1024 / MB),
        "search_best_val_acc": summary["best_val"]["val_acc"],
        "search_test_accuracy": summary["test"]["accuracy"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the RAVDESS-sized set (or real RAVDESS)")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_full_"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    results = {"data": str(args.data)}
    results.update(bench_prepare(args.data, cache, work))
    print(json.dumps(results, indent=1), flush=True)
    data, _ = prepare_experiment_data(
        args.data, cache, "all8", SplitConfig(), PrepareParams(), progress=False
    )
    results["train_clips"], results["val_clips"] = len(data.clips("train")), len(data.clips("val"))
    results["tables"] = bench_tables(data, cache)
    print(json.dumps(results["tables"], indent=1), flush=True)
    if not args.skip_search:
        results.update(bench_search(args.data, cache, work))
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

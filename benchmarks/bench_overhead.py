"""Where the slot time of a search of many short trials goes: inside epochs, inside trials, or
between them (Ray scheduling, actor start, imports, model building, checkpoints).

    python benchmarks/bench_overhead.py [--trials 32] [--epochs 3] [--slots 2] [--json OUT]
                                        [--label NAME] [-- EXTRA tune_main.py FLAGS]

Runs ``tune_main.py --space video_resnet_avg`` (frozen ResNet-18 + mean + linear: with the
feature cache an epoch is a few hundredths of a second) on the embedded sample, FIFO with
random search, ``--slots`` trials at a time of one CPU each, after one warm-up search that
fills the prepared-clip cache and the feature table, and reads the experiment directory back.

Shares of the slot time, ``slots x window``, where the window runs from the first trial's start
to the last trial's end (the search's own start-up, Ray's and the driver's, is reported apart as
``startup_s``):
  in_trial_share   sum of each trial's ``time_total_s`` (Ray's clock: from the trainable's start
                   to its last report) over the slot time
  in_epoch_share   sum of each trial's ``epoch_seconds`` (train + validate) over the slot time
  trial_gap_s      median time between one trial's end and the next start in the same slot
  first_epoch_lag_s  median of time_total_s minus the epochs' time (building, loading, reports)
Then a Ray-free profile of one trial's steps in this process (``profile``): model build, the
feature table's fingerprint, loaders and optimiser, an epoch, one checkpoint write and its size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from runs import run_logged, trial_windows  # noqa: E402

from msa.data.decode import PrepareParams  # noqa: E402
from msa.data.experiment import prepare_experiment_data  # noqa: E402
from msa.data.splits import SplitConfig  # noqa: E402
from msa.train import save_checkpoint  # noqa: E402
from msa.trial import TrialSettings, run_epoch, setup_trial  # noqa: E402

SPACE = "video_resnet_avg"
PROFILE_CONFIG = {"model": "video_iter2", "pool_dropout": 0.1, "lr": 1e-3, "weight_decay": 1e-4,
                  "batch_size": 8, "schedule": "constant"}  # fmt: skip


def run_search(storage: Path, name: str, trials: int, epochs: int, slots: int, extra: list[str]) -> float:
    command = [
        sys.executable, "tune_main.py", "--space", SPACE, "--storage", str(storage), "--name", name,
        "--num-samples", str(trials), "--max-epochs", str(epochs), "--scheduler", "fifo",
        "--search", "random", "--max-concurrent", str(slots), "--cpus-per-trial", "1",
        "--pretrained", "off", *extra,
    ]  # fmt: skip
    seconds, _ = run_logged(command, storage / f"{name}.log")
    return seconds


def shares(windows: pd.DataFrame, slots: int) -> dict:
    """The slot time's shares inside trials and epochs, from runs.trial_windows."""
    start = windows["start"].min()
    window = windows["end"].max() - start
    slot_time = slots * window
    # The gap a slot sits idle between trials: each trial's start after the earliest end not yet reused.
    ends, gaps = [], []
    for trial in windows.sort_values("start").itertuples():
        if len(ends) >= slots:
            ends.sort()
            gaps.append(trial.start - ends.pop(0))
        ends.append(trial.end)
    return {
        "trials": len(windows),
        "trial_epochs": int(windows["epochs"].sum()),
        "window_s": round(window, 2),
        "in_trial_share": round(windows["in_trial"].sum() / slot_time, 3),
        "in_epoch_share": round(windows["in_epochs"].sum() / slot_time, 3),
        "trial_gap_s": round(statistics.median(gaps), 2) if gaps else None,
        "median_trial_s": round(windows["in_trial"].median(), 3),
        "median_epochs_s": round(windows["in_epochs"].median(), 3),
        "first_epoch_lag_s": round((windows["in_trial"] - windows["in_epochs"]).median(), 3),
    }


def profile_trial(epochs: int) -> dict:
    """One trial's steps, timed in this process (no Ray): what each trial pays besides epochs."""
    torch.set_num_threads(1)
    data, _ = prepare_experiment_data(None, None, "all8", SplitConfig(), PrepareParams(), progress=False)
    settings = TrialSettings(data=data, max_epochs=epochs, threads=1, progress=False)
    timings = {}
    started = time.perf_counter()
    run = setup_trial(PROFILE_CONFIG, settings, torch.device("cpu"))
    timings["setup_trial_s"] = time.perf_counter() - started
    started = time.perf_counter()
    metrics, _ = run_epoch(run, 1, 0)
    timings["epoch_s"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.pt"
        started = time.perf_counter()
        save_checkpoint(path, run.model, epoch=1, labels=list(data.labels), metrics=metrics,
                        optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict())  # fmt: skip
        timings["checkpoint_write_s"] = time.perf_counter() - started
        timings["checkpoint_mb"] = path.stat().st_size / 1e6
    run.close()
    return {key: round(value, 3) for key, value in timings.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--label", default="current")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--work", type=Path)
    parser.add_argument("extra", nargs="*", help="more tune_main.py flags (after --)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_overhead_"))
    work.mkdir(parents=True, exist_ok=True)

    run_search(work, "warmup", 2, 2, args.slots, args.extra)  # the cache and feature table
    wall = run_search(work, "search", args.trials, args.epochs, args.slots, args.extra)
    measured = shares(trial_windows(work / "search"), args.slots)
    measured["search_wall_s"] = round(wall, 1)
    measured["startup_s"] = round(wall - measured["window_s"], 1)
    measured["profile"] = profile_trial(args.epochs)
    result = {
        "label": args.label,
        "trials": args.trials,
        "epochs": args.epochs,
        "slots": args.slots,
        **measured,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        stored = json.loads(args.json.read_text()) if args.json.exists() else {}
        stored[args.label] = result
        args.json.write_text(json.dumps(stored, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

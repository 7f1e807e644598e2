"""Search strategies compared on the embedded sample, at one trial-epoch budget, over seeds.

    python benchmarks/bench_strategies.py [--seeds 0 1 2] [--budget 48] [--json OUT] [--work DIR]

Each strategy is a real ``tune_main.py`` search of video_transformer (frames 8 of 64 px, random
weights: no weights are downloadable here), 2 trials at a time, ``--max-epochs 6``:

    asha_tpe     ASHA (reduction factor 3, grace 1) + Optuna TPE   budget / 2 trials
    asha_rf4     ASHA (reduction factor 4, grace 1) + Optuna TPE   budget / 1.875 trials
    fifo_random  every trial to the end, random search             budget / 6 trials
    pbt          population of budget / 6, exploit every 2 epochs
    pb2          the same population, PB2's GP bandit

The ASHA trial counts are chosen so that their expected trial-epochs (every trial 1 epoch,
1/r of them up to the next rung, ...) match the others'; the trial-epochs actually run are
measured and printed. For each strategy and seed: the best validation accuracy (the search
metric), the test accuracy of the best checkpoint (evaluated once, as every search does), and
the wall time. The table gives mean +- sample std over the seeds; the JSON every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_EPOCHS = 6
COMMON = ["--space", "video_transformer", "--frames", "8", "--image-size", "64", "--pretrained", "off"]
COMMON += ["--max-epochs", str(MAX_EPOCHS), "--max-concurrent", "2"]


def strategies(budget: int) -> dict[str, list[str]]:
    population = budget // MAX_EPOCHS
    return {
        "asha_tpe": ["--scheduler", "asha", "--grace-period", "1", "--num-samples", str(round(budget / 2))],
        "asha_rf4": [
            *("--scheduler", "asha", "--grace-period", "1", "--reduction-factor", "4"),
            *("--num-samples", str(round(budget / 1.875))),
        ],
        "fifo_random": ["--scheduler", "fifo", "--search", "random", "--num-samples", str(population)],
        "pbt": ["--scheduler", "pbt", "--num-samples", str(population)],
        "pb2": ["--scheduler", "pb2", "--num-samples", str(population)],
    }


def trial_epochs(experiment: Path) -> int:
    """Epochs trained by every trial, a redone epoch (a restarted member) counted each time."""
    return sum(len((trial / "result.json").read_text().splitlines()) for trial in experiment.glob("trial_*"))


def run(name: str, flags: list[str], seed: int, work: Path) -> dict:
    experiment = f"{name}-seed{seed}"
    command = [sys.executable, "tune_main.py", *COMMON, *flags, "--seed", str(seed)]
    command += ["--storage", str(work / "results"), "--name", experiment, "--cache", str(work / "cache")]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        return {
            "strategy": name,
            "seed": seed,
            "error": done.stderr.strip().splitlines()[-1:],
            "wall_s": seconds,
        }
    summary = json.loads((work / "results" / experiment / "summary.json").read_text())
    return {
        "strategy": name,
        "seed": seed,
        "best_val_acc": summary["best_val"]["val_acc"],
        "test_acc": summary["test"]["accuracy"],
        "wall_s": seconds,
        "trial_epochs": trial_epochs(work / "results" / experiment),
        "trials": summary["num_trials"],
        "best_model": summary["best_config"]["model"],
    }


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    return f"{mean:.3f} +- {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def table(runs: list[dict], names: list[str]) -> str:
    lines = [
        f"{'strategy':<12} {'best val acc':>16} {'test acc':>16} {'wall s':>14} {'trial-epochs':>13}  failed"
    ]
    for name in names:
        ok = [r for r in runs if r["strategy"] == name and "error" not in r]
        failed = sum(1 for r in runs if r["strategy"] == name and "error" in r)
        wall = [r["wall_s"] for r in ok]
        lines.append(
            f"{name:<12} {spread([r['best_val_acc'] for r in ok]):>16} {spread([r['test_acc'] for r in ok]):>16} "
            f"{(f'{statistics.fmean(wall):.0f} +- {statistics.stdev(wall):.0f}' if len(wall) > 1 else '-'):>14} "
            f"{spread([r['trial_epochs'] for r in ok]).split('.')[0]:>13}  {failed}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=48, help="trial-epochs per search (default 48)")
    parser.add_argument("--only", nargs="+", help="a subset of the strategies")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument("--work", type=Path, help="results and cache (default: a temporary folder)")
    args = parser.parse_args()
    plans = strategies(args.budget)
    names = args.only or list(plans)
    work = args.work or Path(tempfile.mkdtemp(prefix="msa-strategies-"))
    runs = []
    for seed in args.seeds:
        for name in names:
            runs.append(run(name, plans[name], seed, work))
            print(json.dumps(runs[-1]), flush=True)
    print(
        f"\nbudget {args.budget} trial-epochs, max {MAX_EPOCHS} epochs, seeds {args.seeds}; mean +- std over seeds"
    )
    print(table(runs, names))
    if args.json:
        args.json.write_text(json.dumps({"budget": args.budget, "seeds": args.seeds, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

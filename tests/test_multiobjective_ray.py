"""A two-objective search through the command lines a user runs: its Pareto front in
summary.json and in the report, and ``msa export --pick`` choosing from it."""

import json
import subprocess
import sys

import pytest
from conftest import REPO, smoke_search_flags
from processes import assert_no_crash_output

pytestmark = pytest.mark.ray

OBJECTIVES = ["val_f1", "latency_ms"]


def run(*command: str, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == expect, result.stdout[-3000:] + result.stderr[-3000:]
    assert_no_crash_output(result)
    return result


def test_a_two_objective_search_writes_its_front_and_export_picks_from_it(tiny_sample, tmp_path, capsys):
    from msa.analysis.html import write_report
    from msa.export.__main__ import main as export_main
    from msa.export.source import picked_trial

    search = run(
        "tune_main.py",
        *smoke_search_flags(tiny_sample, tmp_path, "front"),
        "--objectives",
        ",".join(OBJECTIVES),
        "--num-samples",
        "4",
        "--max-epochs",
        "1",
    )
    assert "multi-objective search: maximise val_f1, minimise latency_ms" in search.stdout
    assert "--scheduler fifo" in search.stdout
    experiment = tmp_path / "results" / "front"
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["objectives"] == OBJECTIVES
    front = summary["pareto_front"]
    assert front, "a finished search has a front"
    for entry in front:
        assert set(entry["objectives"]) == set(OBJECTIVES) and entry["objectives"]["latency_ms"] > 0
        assert (experiment / entry["checkpoint"]).is_file()
    # best first: val_f1 falls and latency falls along the front (no entry dominates another)
    scores = [entry["objectives"]["val_f1"] for entry in front]
    latencies = [entry["objectives"]["latency_ms"] for entry in front]
    assert scores == sorted(scores, reverse=True) and latencies == sorted(latencies, reverse=True)
    # the single best trial has the front's best val_f1 (a tie may go to another trial: the
    # best-trial rule breaks ties by val_loss, the front by latency)
    assert summary["best_val"]["val_f1"] == pytest.approx(front[0]["objectives"]["val_f1"])
    assert "Pareto front (" in search.stdout

    write_report(str(experiment), evaluate_val=False)  # msa report --no-val, in this process
    page = (experiment / "report.html").read_text()
    assert "<h2>Pareto front</h2>" in page and (experiment / "report_pareto_front.png").is_file()
    for entry in front:
        assert entry["trial"] in page

    fastest = front[-1]
    limit = fastest["objectives"]["latency_ms"] * 1.0001  # only the fastest trial meets it
    out = tmp_path / "picked.pt"
    exported = run(
        "-m", "msa.export", str(experiment), "--pick", f"latency_ms<={limit}", "--format", "torchscript",
        "--out", str(out),
    )  # fmt: skip
    assert exported.stdout.startswith(f"wrote {out} ") and out.is_file()
    assert picked_trial(str(experiment), f"latency_ms<={limit}") == fastest["trial"]
    refusal = ["--pick", "latency_ms<0", "--format", "torchscript", "--out", str(tmp_path / "none.pt")]
    assert export_main([str(experiment), *refusal]) == 2  # in this process: no second torch start
    refused = capsys.readouterr().err
    assert refused.count("\n") == 1 and "no trial of the Pareto front meets it" in refused

"""tune_main.py's argument checks: bad input exits 2 with one line, before Ray starts."""

import subprocess
import sys

import pytest
from conftest import REPO
from weight_servers import closed_port_url, use_hub

import tune_main

GOOD = ["--space", "video_transformer"]


@pytest.fixture(autouse=True)
def no_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def test_list_spaces(capsys):
    assert tune_main.main(["--list-spaces"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "video_scratch",
        "video_resnet_avg",
        "video_transformer",
        "video_iterations",
        "audio_wav2vec",
        "audio_spectrogram",
        "multimodal",
    ]
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines), "every space has a description"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "video_nope"], "valid spaces: video_scratch, video_resnet_avg"),
        ([], "--space is required"),
        ([*GOOD, "--num-samples", "0"], "--num-samples must be at least 1"),
        ([*GOOD, "--max-epochs", "-1"], "--max-epochs must be at least 1"),
        ([*GOOD, "--time-budget", "0"], "--time-budget must be positive"),
        ([*GOOD, "--grace-period", "5", "--max-epochs", "2"], "exceeds --max-epochs"),
        ([*GOOD, "--data", "/no/such/folder"], "--data /no/such/folder: no such file or folder"),
        ([*GOOD, "--gpus-per-trial", "0.5"], "has no CUDA GPU"),
        ([*GOOD, "--val-actors", "3"], "give both --val-actors and --test-actors"),
        ([*GOOD, "--val-actors", "3", "--test-actors", "3"], "in both"),
        ([*GOOD, "--cpus-per-trial", "0"], "--cpus-per-trial must be positive"),
        (
            [*GOOD, "--resume", "--name", "never-ran", "--storage", "{tmp}"],
            "--resume: no experiment 'never-ran'",
        ),
        ([*GOOD, "--storage", "{tmp}/a-file/results"], "not a writable folder"),
    ],
)
def test_bad_arguments_exit_2(args, message, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert tune_main.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_unparsable_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        tune_main.main([*GOOD, "--val-actors", ","])
    assert exit_.value.code == 2 and "--val-actors" in capsys.readouterr().err


def test_resume_with_another_space(tmp_path, capsys):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "msa_args.json").write_text('{"space": "audio_wav2vec"}')
    assert tune_main.main([*GOOD, "--resume", "--name", "exp", "--storage", str(tmp_path)]) == 2
    assert "searched space 'audio_wav2vec', not --space video_transformer" in capsys.readouterr().err


def test_bad_arguments_never_start_ray(tmp_path):
    """The real command as a user runs it: exit 2, one line, and Ray never even imported."""
    probe = (
        "import runpy, sys\nsys.argv = ['tune_main.py', '--space', 'video_nope']\n"
        "try:\n    runpy.run_path('tune_main.py', run_name='__main__')\n"
        "finally:\n    print('ray imported' if 'ray' in sys.modules else 'ray not imported')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip().startswith("error: --space video_nope")
        and len(result.stderr.strip().splitlines()) == 1
    )
    assert result.stdout.strip() == "ray not imported"


UNREACHABLE_RESNET = "http://127.0.0.1:9/resnet18-0123abcd.pth"  # the discard port: nothing listens


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Empty weight caches and an unreachable hub; the video source is an unreachable URL, so
    nothing is downloaded from the internet even where there is one."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    use_hub(monkeypatch, closed_port_url(), tmp_path / "hf")
    return ["--video-weights", UNREACHABLE_RESNET]


@pytest.mark.parametrize(
    "space, source", [("video_transformer", UNREACHABLE_RESNET), ("audio_wav2vec", "facebook/wav2vec2-base")]
)
def test_pretrained_on_without_weights_exits_2(space, source, no_weights, tmp_path, capsys):
    assert (
        tune_main.main(["--space", space, "--pretrained", "on", *no_weights, "--storage", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --pretrained on: ")
    assert source in err[0] and "msa weights fetch" in err[0] and "--pretrained off" in err[0]


def test_auto_with_real_data_and_no_weights_exits_2_before_ray(no_weights, tmp_path):
    """The real command: --data and nothing reachable stops before Ray starts, naming both ways out
    (the data is only found, not decoded, before the weights are looked for)."""
    (tmp_path / "RAVDESS" / "Actor_01").mkdir(parents=True)
    (tmp_path / "RAVDESS" / "Actor_01" / "01-01-01-01-01-01-01.mp4").write_bytes(b"not decoded yet")
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['tune_main.py', '--space', 'video_transformer', '--data', {str(tmp_path / 'RAVDESS')!r}, "
        f"'--storage', {str(tmp_path / 'results')!r}, *{no_weights!r}]\n"
        "try:\n    runpy.run_path('tune_main.py', run_name='__main__')\n"
        "finally:\n    print('ray imported' if 'ray' in sys.modules else 'ray not imported')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr[-2000:]
    err = result.stderr.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("error: --pretrained auto: ") and UNREACHABLE_RESNET in err[0]
    ), err
    assert f"msa weights fetch --video {UNREACHABLE_RESNET}" in err[0] and "--pretrained off" in err[0]
    assert result.stdout.strip().splitlines()[-1] == "ray not imported"


def test_missing_weights_file(tmp_path, capsys):
    assert tune_main.main([*GOOD, "--video-weights", str(tmp_path / "nope.pth")]) == 2
    assert "--video-weights" in capsys.readouterr().err

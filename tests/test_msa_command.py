"""The one `msa` command: every subcommand, its older alias, and the reference generated from them.

Each command runs as `msa NAME` (the console script) and under its alias (`python tune_main.py`,
`python -m msa.X`), the same code: the tests run both forms on quick paths (help, a listing, a
bad argument's exit 2) and never start Ray.
"""

import argparse
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from msa.cli.commands import BY_NAME, COMMANDS
from msa.cli.main import main as msa_main
from msa.cli.reference import parsers, render_reference

MSA = shutil.which("msa", path=str(Path(sys.executable).parent))


def run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def msa(name: str, *args: str) -> subprocess.CompletedProcess:
    """`msa NAME ARGS`, the console script as a user runs it."""
    assert MSA, "pip install -e . installs the msa console script beside the interpreter"
    return run([MSA, name, *args])


def alias(name: str, *args: str, capsys) -> tuple[int, str, str]:
    """The alias's own entry (tune_main.main, msa.X's main) in process -> (status, out, err)."""
    module = importlib.import_module("tune_main") if name == "search" else BY_NAME[name].load()
    try:
        status = module.main(list(args))
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def alias_prog(name: str) -> str:
    return "tune_main.py" if name == "search" else BY_NAME[name].alias


def test_every_command_named_in_the_issue_is_installed():
    assert list(BY_NAME) == [
        "search",
        "prepare",
        "crossval",
        "report",
        "predict",
        "export",
        "baseline",
        "weights",
        "models",
        "sample",
    ]


def test_msa_help_lists_every_command_without_importing_one():
    probe = (
        "import sys\nfrom msa.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as exit_:\n    code = exit_.code\n"
        "heavy = sorted(m for m in ('torch', 'ray', 'search_spaces', 'msa.tune.options') if m in sys.modules)\n"
        "print('exit', code, 'heavy', heavy)\n"
    )
    result = run([sys.executable, "-c", probe])
    assert result.stdout.strip().splitlines()[-1] == "exit 0 heavy []", result.stdout + result.stderr
    assert all(f"  {command.name}  " in result.stdout for command in COMMANDS)


def test_msa_without_a_command_or_with_an_unknown_one_exits_2():
    assert MSA
    for argv, message in (([], "a COMMAND is required"), (["serch"], "invalid choice: 'serch'")):
        result = run([MSA, *argv])
        assert result.returncode == 2 and message in result.stderr, result.stderr


def msa_in_process(*args: str, capsys) -> tuple[int, str, str]:
    """msa's main, what the console script calls, in this process -> (status, out, err)."""
    try:
        status = msa_main(list(args))
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.name)
def test_every_command_answers_help_under_both_names(command, capsys):
    """In process: a console script costs seconds of imports; test_the_console_script_runs_a_command
    runs the installed one."""
    status, out, _ = msa_in_process(command.name, "--help", capsys=capsys)
    alias_status, alias_out, _ = alias(command.name, "--help", capsys=capsys)
    assert status == alias_status == 0
    assert out.startswith(f"usage: msa {command.name} ")
    assert alias_out.startswith(f"usage: {alias_prog(command.name)} ")
    words = lambda text, prog: text.replace(prog, "PROG").split()  # noqa: E731  (the lines wrap differently)
    assert words(out, f"msa {command.name}") == words(alias_out, alias_prog(command.name)), (
        "the same parser under both names"
    )


def test_the_console_script_runs_a_command(capsys):
    result = msa("report", "--help")
    status, out, _ = msa_in_process("report", "--help", capsys=capsys)
    assert result.returncode == status == 0, result.stderr
    assert result.stdout == out


def test_search_lists_its_spaces_under_both_names(capsys):
    result = msa("search", "--list-spaces")
    status, out, _ = alias("search", "--list-spaces", capsys=capsys)
    assert result.returncode == status == 0
    assert result.stdout == out and out.startswith("video_scratch ")
    script = run([sys.executable, "tune_main.py", "--list-spaces"])
    assert script.returncode == 0 and script.stdout == out, "the seed's documented entry"


@pytest.mark.parametrize(
    "name, args, message",
    [
        ("search", ["--space", "video_nope"], "error: --space video_nope: unknown space"),
        ("crossval", ["/no/such/experiment"], "error: /no/such/experiment: not an experiment directory"),
        ("prepare", ["--frames", "0", "--cache-info"], "argument --frames: must be >= 1, got 0"),
        ("baseline", ["--image-size", "4"], "error: --image-size must be at least 8 pixels, got 4"),
        (
            "export",
            ["model", "--format", "onnx", "--out", "x.onnx", "--image-size", "4"],
            "--image-size >= 8",
        ),
        ("sample", ["out", "--actors", "a,b"], "argument --actors: expected a count N or ids"),
        ("weights", ["nope"], "invalid choice: 'nope'"),
    ],
)
def test_a_bad_argument_exits_2_under_both_names(name, args, message, capsys):
    """In process (the console script itself runs in the help test): msa's main and the alias's."""
    try:
        status = msa_main([name, *args])
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    alias_status, _, alias_err = alias(name, *args, capsys=capsys)
    assert status == alias_status == 2, err
    for text in (err, alias_err):
        assert message in text and "Traceback" not in text, text
    assert err.replace(f"msa {name}", "PROG").split() == alias_err.replace(alias_prog(name), "PROG").split()


def test_the_image_size_floor_is_one_rule():
    """The search, the baseline, the export and the decoding all refuse below one minimum."""
    from msa.data.decode import MIN_IMAGE_SIZE, PrepareParams
    from msa.tune.command_line import build_parser
    from msa.tune.options import SearchOptions, UsageError
    from search_spaces import SPACES

    PrepareParams(image_size=MIN_IMAGE_SIZE)
    with pytest.raises(ValueError, match=f"image_size >= {MIN_IMAGE_SIZE}"):
        PrepareParams(image_size=MIN_IMAGE_SIZE - 1)
    args = build_parser().parse_args(
        ["--space", "video_transformer", "--image-size", str(MIN_IMAGE_SIZE - 1)]
    )
    with pytest.raises(UsageError, match=f"at least {MIN_IMAGE_SIZE} pixels"):
        SearchOptions.from_namespace(args, SPACES).check()


# ----------------------------------------------------------------------------- the reference


def every_flag() -> list[tuple[str, str]]:
    """(prog, option or positional) of every parser and subparser, --help aside."""
    found = []
    for parser, prog, _ in parsers():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                names = ["{" + ",".join(action.choices) + "}"]  # as argparse shows the subcommands
            else:
                names = action.option_strings or [action.metavar or action.dest]
            found += [(prog, name) for name in names]
    return found


def test_the_reference_documents_every_flag_of_every_parser():
    page = render_reference()
    sections = {}
    for _, prog, _ in parsers():
        start = page.index(f"`{prog}` {{#")
        sections[prog] = page[start:]
    missing = []
    for prog, flag in every_flag():
        # Within the command's own section, before the next one begins.
        section = sections[prog].split("\n## ", 1)[0].split("\n### ", 1)[0]
        if f"`{flag}" not in section:
            missing.append(f"{prog} {flag}")
    assert not missing, f"flags the CLI reference lacks: {missing}"
    assert len(every_flag()) > 80, "every command's parser was read"


def test_the_reference_has_a_section_usage_and_alias_per_command():
    page = render_reference()
    for command in COMMANDS:
        assert f"## `{command.prog}` {{#{command.prog.replace(' ', '-')}}}" in page
        assert f"usage: {command.prog} " in page and f"Alias: `{command.alias}`." in page
    assert "### `msa weights fetch`" in page and "Alias: `python -m msa.weights fetch`." in page
    for group in ("data", "cache", "classes", "actors", "decoding", "resources"):
        assert f"**{group}**" in page

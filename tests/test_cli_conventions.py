"""The command line's conventions, checked over every command and option (issue 12).

- Every numeric option is parsed by one of ``varprop.cli._options``' converters: a bad value exits 2
  while the command line is parsed (before any work), with a message naming the option as typed and
  the value as written, and one bound per quantity, worded the same in every command.
- ``--samples`` (and every count) reads what ``--help`` prints: 1e3.
- Output folders that cannot be written exit 2 before any work; folders made for a failed command
  are removed again.
- With ``--json``, errors are one JSON object on stdout, with the exit code of the text mode.
- ``-V``/``--version``.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from varprop.cli import _options, build_parser, main
from varprop.report import DEFAULT_MC_SAMPLES

ROOT = Path(__file__).resolve().parents[1]
TARGET = f"{ROOT / 'examples' / 'mlp_factory.py'}:make_model"

# The smallest valid command line of each subcommand (a test below fails when a subcommand is added
# without an entry here, so that every command is covered).
MINIMAL_ARGV: dict[str, list[str]] = {
    "gain": ["elu"],
    "table": [],
    "curve": ["elu", "--no-plot"],
    "report": [],
    "fixedpoint": ["tanh"],
    "eoc": ["tanh", "--no-plot"],
    "inspect": [TARGET, "--input-shape", "8,64", "--no-plot"],
    "reproduce": [],
}

# Bad values for each kind of converter, and the message each must give.
_REAL_BAD = ["-1", "nan", "inf", "abc", "1,5"]
_COUNT_BAD = ["-1", "1.5", "1.5e3", "abc", "1e", "0x10"]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return dict(action.choices)


def numeric_options() -> Iterator[tuple[str, argparse.Action]]:
    """(command, action) of every option that converts its value (all but flags, choices, paths, text)."""
    for command, subparser in subcommands().items():
        for action in subparser._actions:
            if action.option_strings and action.type not in (None, Path, str):
                yield command, action


def _kind(action: argparse.Action) -> tuple[str, float]:
    """('count', minimum) or ('real', minimum) of a converter, from the message it gives for a bad value."""
    assert callable(action.type)
    with pytest.raises(argparse.ArgumentTypeError) as info:
        action.type("abc")
    message = str(info.value)
    match = re.fullmatch(r"must be a (whole number|number) (>=|>) (-?[0-9.]+), .*got 'abc'", message)
    assert match, message
    return ("count" if match[1] == "whole number" else "real"), float(match[3])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(capsys: pytest.CaptureFixture[str], command: str, *argv: str, code: int = 2) -> str:
    """Run; check the exit code, empty stdout and one line on stderr; return the message after the prefix."""
    result, out, err = run(capsys, command, *argv)
    assert result == code, (out, err)
    assert out == "" and "Traceback" not in err
    assert err.count("\n") == 1, err
    prefix = f"varprop {command}: error: "
    assert err.startswith(prefix), err
    return err[len(prefix) :].rstrip("\n")


def json_error(capsys: pytest.CaptureFixture[str], command: str, *argv: str, code: int = 2) -> dict[str, Any]:
    """Run with --json; check the exit code, an empty stderr and one JSON error object on stdout."""
    result, out, err = run(capsys, command, *argv, "--json")
    assert result == code, (out, err)
    assert err == ""
    data: dict[str, Any] = json.loads(out)
    assert set(data) == {"error", "kind", "exit_code", "command"}, data
    assert data["exit_code"] == code and data["command"] == command
    return data


# ----------------------------------------------------------------------------------------- options


def test_every_command_is_covered() -> None:
    assert set(subcommands()) == set(MINIMAL_ARGV)


def test_every_numeric_option_uses_a_checked_converter() -> None:
    """No raw int/float: those give 'invalid int value' and accept nan, inf and negative counts."""
    found = list(numeric_options())
    assert len(found) >= 14
    for command, action in found:
        assert getattr(action.type, "__module__", None) == _options.__name__, (command, action.option_strings)


def _bad_value_cases() -> list[tuple[str, str, str]]:
    cases = []
    for command, action in numeric_options():
        kind, minimum = _kind(action)
        below = str(int(minimum) - 1) if kind == "count" else "-1"
        values = (_COUNT_BAD if kind == "count" else _REAL_BAD) + [below]
        if kind == "real" and minimum == 0 and "must be a number > 0" in _message(action, "0"):
            values.append("0")
        cases += [(command, action.option_strings[0], value) for value in dict.fromkeys(values)]
    return cases


def _message(action: argparse.Action, value: str) -> str:
    assert callable(action.type)
    try:
        action.type(value)
    except argparse.ArgumentTypeError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize(("command", "option", "value"), _bad_value_cases())
def test_bad_values_name_the_option_and_the_value(
    capsys: pytest.CaptureFixture[str], command: str, option: str, value: str
) -> None:
    message = error_line(capsys, command, *MINIMAL_ARGV[command], f"{option}={value}")
    assert message.startswith(f"argument {option}: must be "), message
    assert message.endswith(f", got {value!r}"), message
    # No API parameter names (mc_samples, var=...), no numpy reprs (np.float64(-1.0)).
    assert "np." not in message and "_" not in message.replace(option, ""), message
    data = json_error(capsys, command, *MINIMAL_ARGV[command], f"{option}={value}")
    assert data["error"] == message and data["kind"] == "usage"


def test_one_bound_per_quantity_worded_the_same_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    """--var is a variance to preserve (> 0) in gain, table and report; the message is the same in each."""
    messages: dict[str, set[str]] = {}
    for command, action in numeric_options():
        option = action.option_strings[0]
        messages.setdefault(option, set()).add(error_line(capsys, command, *MINIMAL_ARGV[command], f"{option}=-1"))
    assert messages["--var"] == {"argument --var: must be a number > 0, got '-1'"}
    assert messages["--seed"] == {
        "argument --seed: must be a whole number >= 0, written as digits or as Ne<k> with "
        "whole N and k (1000, 1e3, 25e4), got '-1'"
    }
    assert messages["--bias-std"] == {"argument --bias-std: must be a number >= 0, got '-1'"}
    assert all(len(texts) == 1 for texts in messages.values()), messages
    var_commands = {command for command, action in numeric_options() if "--var" in action.option_strings}
    assert var_commands == {"gain", "table", "report"}
    for command in var_commands:  # at q = 0 there is no signal to preserve
        assert error_line(capsys, command, *MINIMAL_ARGV[command], "--var", "0").endswith("> 0, got '0'")


@pytest.mark.parametrize("value", ["-1e3", "-1.5e-3", "-inf", "-nan", "-.5"])
def test_negative_numbers_in_any_form_reach_the_check(capsys: pytest.CaptureFixture[str], value: str) -> None:
    """Without `=`: argparse took -1e3 for an option and said "expected one argument"."""
    assert error_line(capsys, "gain", "elu", "--var", value) == f"argument --var: must be a number > 0, got {value!r}"


def test_standard_deviations_may_be_zero(capsys: pytest.CaptureFixture[str]) -> None:
    """sigma_b = 0 (no biases) is the default; sigma_w = 0 maps every q to sigma_b^2 (its only fixed point)."""
    code, out, err = run(capsys, "fixedpoint", "tanh", "--weight-std", "0", "--bias-std", "0.5", "--json")
    assert code == 0, err
    points = json.loads(out)["fixed_points"]
    assert [point["q"] for point in points] == [pytest.approx(0.25, rel=1e-12)]


def test_counts_read_what_help_prints(capsys: pytest.CaptureFixture[str]) -> None:
    help_text = subcommands()["report"].format_help()
    default = re.search(r"\(default ([0-9e ]+)\)", " ".join(help_text.split()).split("--samples")[-1])
    assert default is not None, help_text
    printed = default.group(1).split()
    assert printed == ["1e3", "1e4", "1e5", "1e6", "1e7"]
    args = build_parser().parse_args(["report", "--samples", *printed])
    assert args.samples == list(DEFAULT_MC_SAMPLES)
    convert = _options.count()
    assert [convert(text) for text in ("1000", "1e3", "1E3", "25e4", "1e+3", " 7 ")] == [
        1000,
        1000,
        1000,
        250000,
        1000,
        7,
    ]
    message = error_line(capsys, "report", "--samples", "1e3", "1.5e3")
    assert message == (
        "argument --samples: must be a whole number >= 1, written as digits or as Ne<k> with whole N and k "
        "(1000, 1e3, 25e4), got '1.5e3'"
    )


def test_samples_1e3_runs_the_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["--out", tmp_path / "r", "--depth", "3", "--width", "16", "--batch", "8", "--samples", "1e3", "2e3"]
    code, out, err = run(capsys, "report", *argv, "--json")
    assert code == 0, err
    assert [point["samples"] for point in json.loads(out)["monte_carlo"]] == [1000, 2000]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from varprop import __version__

    for flag in ("-V", "--version"):
        code, out, err = run(capsys, flag)
        assert code == 0 and err == ""
        assert out == f"varprop {__version__}\n"


# ------------------------------------------------------------------------------------ output folders


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every command's computation fail the test: a refused folder must be refused before it."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the command started working before checking its output folder")

    import varprop.cli.basic as basic
    import varprop.cli.dynamics as dynamics
    import varprop.cli.inspect as inspect_cli

    monkeypatch.setattr(basic, "build_report", forbidden)
    monkeypatch.setattr(basic, "q_curve", forbidden)
    monkeypatch.setattr(dynamics, "edge_of_chaos_curve", forbidden)
    monkeypatch.setattr(inspect_cli, "load_factory", forbidden)


def _folder_commands(out: str) -> list[list[str]]:
    return [
        ["report", "--out", out],
        ["curve", "elu", "--out", out],
        ["eoc", "tanh", "--out", out],
        ["inspect", TARGET, "--input-shape", "8,64", "--out", out],
    ]


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("case", ["a_file", "a_file/sub", "a_file/sub/deeper"])
def test_a_file_in_the_output_path_exits_2_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str
) -> None:
    (tmp_path / "a_file").write_text("not a folder", encoding="utf-8")
    out = tmp_path / case
    for argv in _folder_commands(str(out)):
        message = error_line(capsys, *argv)
        assert (
            message == f"--out {str(out)!r} cannot be used as an output folder: {str(tmp_path / 'a_file')!r} is a file"
        )
        assert json_error(capsys, *argv)["error"] == message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.usefixtures("no_work")
def test_a_report_file_that_is_a_folder_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "index.html").mkdir()
    message = error_line(capsys, "report", "--out", str(tmp_path))
    assert message == f"--out {str(tmp_path)!r}: {str(tmp_path / 'index.html')!r} is a folder, where a file is written"


@pytest.mark.usefixtures("no_work")
@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_exits_2_before_any_work(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for out in (locked, locked / "sub"):
            for argv in _folder_commands(str(out)):
                message = error_line(capsys, *argv)
                assert message == f"--out {str(out)!r} cannot be used as an output folder: no permission to write there"
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.usefixtures("no_work")
@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's /sys, which nobody, root included, writes")
def test_a_folder_nobody_can_write_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """/sys refuses new files even to root (the chmod test above cannot run as root, as CI does)."""
    for out in ("/sys/kernel", "/sys/kernel/varprop-report"):
        for argv in _folder_commands(out):
            message = error_line(capsys, *argv)
            assert message.startswith(f"--out {out!r} cannot be used as an output folder: "), message
    assert not Path("/sys/kernel/varprop-report").exists()


@pytest.mark.usefixtures("no_work")
def test_inspect_save_is_checked_before_any_work(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("", encoding="utf-8")
    argv = ["inspect", TARGET, "--input-shape", "8,64", "--no-plot"]
    message = error_line(capsys, *argv, "--save", str(tmp_path / "a_file" / "init.pt"))
    a_file = repr(str(tmp_path / "a_file"))
    assert message == f"--save {a_file} cannot be used as an output folder: {a_file} is a file"
    message = error_line(capsys, *argv, "--save", str(tmp_path))
    assert message.endswith("is a folder, where a file is written")


def test_folders_made_for_a_failed_command_are_removed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """0*x has no finite gain: the report fails after its folder was made, and removes it again."""
    out = tmp_path / "new" / "sub"
    message = error_line(capsys, "report", "0*x", "--out", str(out))
    assert "no finite gain" in message
    assert list(tmp_path.iterdir()) == []


def test_an_io_error_while_writing_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails while the command runs (disk full) is not a mistake in the command: exit 1, kind io."""
    import varprop.cli.basic as basic

    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(basic, "save_figure", disk_full)
    out = tmp_path / "figures"
    assert error_line(capsys, "curve", "elu", "--points", "5", "--out", str(out), code=1) == (
        "[Errno 28] No space left on device"
    )
    data = json_error(capsys, "curve", "elu", "--points", "5", "--out", str(out), code=1)
    assert data["kind"] == "io"
    assert not out.exists()  # made for the command, removed again


# ---------------------------------------------------------------------------------------- --json


def _json_cases() -> list[tuple[str, list[str], str]]:
    """(command, argv, kind) of errors of every kind for every command that takes --json."""
    cases = []
    for command, argv in MINIMAL_ARGV.items():
        cases.append((command, [*argv, "--no-such-option"], "usage"))
    for command in ("gain", "curve", "fixedpoint", "eoc", "report"):
        argv = MINIMAL_ARGV[command]
        cases.append((command, ["elus", *argv[1:]] if argv else ["elus"], "VarpropValueError"))
    cases += [
        ("gain", ["elu", "--mode", "fan_avg", "--fan-in", "3"], "VarpropValueError"),
        ("fixedpoint", ["silu", "--weight-std", "2", "--bias-std", "0.1"], "VarpropValueError"),
        ("inspect", ["no_colon.py", "--input-shape", "8,64"], "VarpropValueError"),
        ("inspect", [TARGET, "--input-shape", "8,0"], "VarpropValueError"),
        ("gain", [], "usage"),
        ("reproduce", ["--markdown"], "usage"),  # --json and --markdown exclude each other
    ]
    return cases


@pytest.mark.parametrize(("command", "argv", "kind"), _json_cases())
def test_json_errors_are_json_with_the_same_exit_code(
    capsys: pytest.CaptureFixture[str], command: str, argv: list[str], kind: str
) -> None:
    data = json_error(capsys, command, *argv)
    assert data["kind"] == kind
    if argv != ["--markdown"]:  # the text mode has no --json to collide with
        assert error_line(capsys, command, *argv) == data["error"]


def test_every_command_takes_json_and_its_help_says_where_errors_go() -> None:
    for command, subparser in subcommands().items():
        json_action = next(action for action in subparser._actions if "--json" in action.option_strings)
        assert json_action.help is not None and "on stdout" in json_action.help, command
        assert '"error"' in json_action.help and '"exit_code"' in json_action.help, command
    top = build_parser().format_help()
    assert "exit codes and errors:" in top and "on stdout, one JSON object" in " ".join(top.split())


def test_json_error_without_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "frobnicate", "--json")
    assert code == 2 and err == ""
    data = json.loads(out)
    assert data["kind"] == "usage" and data["command"] is None and "invalid choice: 'frobnicate'" in data["error"]

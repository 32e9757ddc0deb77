"""The ``varprop`` command line end to end: in-process ``main([...])`` and subprocesses, text and ``--json``."""

from __future__ import annotations

import argparse
import doctest
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import varprop
from varprop.cli import build_parser, main

# shared/seed.md (40-digit quadrature), 15 significant digits.
ELU_SECOND_MOMENT = 0.644945417492924
ELU_VAR_TIMES_FAN = 1.55051880806793
ELU_STD_TIMES_SQRT_FAN = 1.24519830070071
SEED_RTOL = 5e-15


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """Run ``main([*argv, "--json"])`` in process; check exit code 0 and return the parsed JSON."""
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def run_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``main(argv)``; check exit code 2, empty stdout and a one-line message without traceback."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == ""
    assert "Traceback" not in err
    return err


def run_subprocess(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "varprop", *argv], capture_output=True, text=True, timeout=120, env=env, check=False
    )


# ---------------------------------------------------------------------------------------------- gain


def test_gain_json_has_the_seed_constants(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "gain", "elu")
    assert data["activation"] == "elu(alpha=1.0)"
    assert data["mode"] == "fan_in"
    assert data["second_moment"] == pytest.approx(ELU_SECOND_MOMENT, rel=SEED_RTOL)
    assert data["gain"] == pytest.approx(ELU_STD_TIMES_SQRT_FAN, rel=SEED_RTOL)
    assert data["fan_var"] == pytest.approx(ELU_VAR_TIMES_FAN, rel=SEED_RTOL)
    per_fan = data["per_fan"]
    assert per_fan["weight_variance_times_fan"] == pytest.approx(ELU_VAR_TIMES_FAN, rel=SEED_RTOL)
    assert per_fan["weight_std_times_sqrt_fan"] == pytest.approx(ELU_STD_TIMES_SQRT_FAN, rel=SEED_RTOL)
    assert per_fan["uniform_bound_times_sqrt_fan"] == pytest.approx(math.sqrt(3) * ELU_STD_TIMES_SQRT_FAN, rel=1e-14)
    assert "weight_std" not in data  # no fan given: only the per-fan coefficients


@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "uniform"])
def test_gain_with_fan_matches_the_api(capsys: pytest.CaptureFixture[str], distribution: str) -> None:
    data = run_json(capsys, "gain", "gelu", "--var", "2", "--fan-in", "512", "--distribution", distribution)
    assert data["weight_std"] == varprop.weight_std("gelu", 512, var=2.0)
    assert data["weight_variance"] == pytest.approx(varprop.weight_std("gelu", 512, var=2.0) ** 2, rel=1e-15)
    assert data["truncated_normal_std"] == varprop.weight_std("gelu", 512, var=2.0, distribution="truncated_normal")
    assert data["uniform_bound"] == varprop.weight_std("gelu", 512, var=2.0, distribution="uniform")
    assert data["weight_scale"] == varprop.weight_std("gelu", 512, var=2.0, distribution=distribution)  # type: ignore[arg-type]


def test_gain_modes(capsys: pytest.CaptureFixture[str]) -> None:
    fan_out = run_json(capsys, "gain", "tanh", "--mode", "fan_out", "--fan-out", "256")
    assert fan_out["gain"] == varprop.gain("tanh", mode="fan_out")
    assert fan_out["weight_std"] == varprop.weight_std("tanh", 256, 256, mode="fan_out")
    avg = run_json(capsys, "gain", "tanh", "--mode", "fan_avg", "--fan-in", "100", "--fan-out", "300")
    assert avg["weight_std"] == varprop.weight_std("tanh", 100, 300, mode="fan_avg")


def test_gain_text_labels_variance_and_standard_deviation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gain", "elu", "--fan-in", "512"]) == 0
    out = capsys.readouterr().out
    assert "1.55051880806793" in out and "1.24519830070071" in out
    assert "Var[w]  = 1.55051880806793 / n   (variance)" in out
    assert "std[w]  = 1.24519830070071 / sqrt(n)   (standard deviation)" in out
    assert f"{varprop.weight_std('elu', 512):.10g}" in out
    assert "uniform bound a" in out and "truncated normal" in out


def test_expression_activation(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "gain", "x*sigmoid(1.702*x)")
    assert data["gain"] == pytest.approx(varprop.gain("x*sigmoid(1.702*x)"), rel=1e-15)


# --------------------------------------------------------------------------------------------- table


def test_table_json_covers_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "table")
    rows = {row["activation"].split("(")[0]: row for row in data["rows"]}
    assert set(rows) == set(varprop.activations.registered_activations())
    assert rows["elu"]["fan_var"] == pytest.approx(ELU_VAR_TIMES_FAN, rel=SEED_RTOL)
    assert rows["relu"]["torch_gain"] == pytest.approx(math.sqrt(2), rel=1e-15)
    assert rows["tanh"]["torch_gain"] == pytest.approx(5 / 3, rel=1e-15)
    assert rows["selu"]["torch_gain"] == 0.75
    assert rows["gelu"]["torch_gain"] is None
    assert any("empirical" in note for note in data["notes"])


def test_table_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", "--var", "2"]) == 0
    out = capsys.readouterr().out
    assert "q = 2" in out
    assert "empirical" in out and "5/3" in out and "3/4" in out
    assert len([line for line in out.splitlines() if line.startswith("elu(")]) == 1


# --------------------------------------------------------------------------------------------- curve


def test_curve_json_without_plot(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "curve", "elu", "--no-plot")
    assert len(data["q"]) == 81
    assert data["q"][0] == pytest.approx(1e-4) and data["q"][-1] == pytest.approx(1e4)
    assert data["small_q_limit"] == 1.0 and data["large_q_limit"] == 0.5
    middle = data["q"].index(1.0)
    assert data["c"][middle] == pytest.approx(ELU_SECOND_MOMENT, rel=SEED_RTOL)
    assert data["gain"][middle] == pytest.approx(ELU_STD_TIMES_SQRT_FAN, rel=SEED_RTOL)
    assert data["stability_slope"][middle] == pytest.approx(float(varprop.dynamics.stability("elu").slope), rel=1e-12)
    assert data["files"] == []


def test_curve_writes_png_and_svg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["curve", "elu(alpha=0.5)", "--out", str(tmp_path), "--points", "21"]) == 0
    out = capsys.readouterr().out
    png, svg = tmp_path / "qcurve-elu_alpha_0.5.png", tmp_path / "qcurve-elu_alpha_0.5.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert str(png) in out
    # ELU(alpha) has slopes alpha and 1 at 0-, 0+: c -> (alpha^2 + 1)/2 = 0.625 as q -> 0; -> 1/2 as q -> inf.
    assert "c(q) -> 0.625 as q -> 0,  c(q) -> 0.5 as q -> inf" in out


def test_curve_of_activation_with_phi0_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "curve", "sigmoid", "--no-plot", "--points", "9")
    assert data["small_q_limit"] is None  # c(q) ~ sigmoid(0)^2 / q -> inf
    assert data["large_q_limit"] == 0.0


# -------------------------------------------------------------------------------------------- report


def test_report_json_is_the_main_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "report"
    argv = ["--out", str(out_dir), "--depth", "20", "--width", "128", "--batch", "32", "--samples", "1000", "20000"]
    data = run_json(capsys, "report", *argv)
    assert data["activation"] == "elu(alpha=1.0)"
    assert data["fan_var"] == pytest.approx(ELU_VAR_TIMES_FAN, rel=SEED_RTOL)
    assert [point["samples"] for point in data["monte_carlo"]] == [1000, 20000]
    assert len(data["network"]["schemes"]) == 4
    assert all(len(scheme["variances"]) == 20 for scheme in data["network"]["schemes"])
    assert Path(data["index"]) == out_dir / "index.html" and (out_dir / "index.html").is_file()
    for paths in data["figures"].values():
        assert all(Path(path).is_file() for path in paths)
    assert data["stability"]["kind"] == "stable"


# ---------------------------------------------------------------------------------------------- errors


def test_unknown_activation_suggests_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    err = run_error(capsys, "gain", "elus")
    assert err.startswith("varprop gain: error: unknown activation 'elus'; did you mean 'elu'?")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # issue 12: the option as typed, the value as written, one bound per quantity (a variance: > 0).
        (["gain", "elu", "--var", "-1"], "argument --var: must be a number > 0, got '-1'"),
        (["gain", "elu", "--var", "nan"], "argument --var: must be a number > 0, got 'nan'"),
        (["gain", "elu", "--fan-in", "0"], "argument --fan-in: must be a whole number >= 1"),
        (["gain", "elu", "--mode", "fan_avg", "--fan-in", "10"], "needs both --fan-in and --fan-out"),
        (["gain", "x*__import__('os')"], ""),
        (["table", "--var", "-2"], "argument --var: must be a number > 0, got '-2'"),
        (["curve", "gelus", "--no-plot"], "did you mean 'gelu'"),
        (["report", "elu", "--depth", "0"], "argument --depth: must be a whole number >= 1"),
    ],
)
def test_bad_input_exits_2_with_a_message(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    err = run_error(capsys, *argv)
    assert err.startswith(f"varprop {argv[0]}: error: ")
    assert message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["gain", "elu", "--mode", "fan_mid"], ["invalid choice: 'fan_mid'", "fan_in", "fan_out", "fan_avg"]),
        (["gain", "elu", "--distribution", "gaussian"], ["invalid choice", "normal", "truncated_normal", "uniform"]),
        (["gain", "elu", "--fan-in", "1.5"], ["argument --fan-in: must be a whole number >= 1", "got '1.5'"]),
        (["frobnicate"], ["invalid choice", "gain", "report"]),
        ([], ["required"]),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: list[str]) -> None:
    """argparse's own errors (the valid choices are listed; the quoting differs between Python versions)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for part in message:
        assert part in err


def test_every_subcommand_has_json() -> None:
    parser = build_parser()
    subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    assert {"gain", "table", "curve", "report"} <= set(subparsers.choices)
    for name, subparser in subparsers.choices.items():
        options = {option for action in subparser._actions for option in action.option_strings}
        assert "--json" in options, name


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"varprop {varprop.__version__}"


# ------------------------------------------------------------------------------------------ subprocess


def test_python_dash_m_varprop_end_to_end() -> None:
    result = run_subprocess("gain", "elu", "--fan-in", "512", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["weight_std"] * math.sqrt(512) == pytest.approx(ELU_STD_TIMES_SQRT_FAN, rel=SEED_RTOL)


def test_subprocess_error_has_no_traceback() -> None:
    result = run_subprocess("gain", "elus")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "did you mean 'elu'" in result.stderr and "Traceback" not in result.stderr


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("varprop")
    if not script.exists():
        pytest.skip("the varprop console script is not installed next to this interpreter")
    result = subprocess.run([str(script), "table", "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["rows"]) == len(varprop.activations.registered_activations())


def test_readme_python_examples_are_real() -> None:
    """The README's Python tour is a doctest: its pasted output must be what the code prints."""
    readme = Path(__file__).resolve().parent.parent / "README.md"
    if not readme.is_file():
        pytest.skip("README.md is not next to the tests (installed package)")
    result = doctest.testfile(str(readme), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5
    assert result.failed == 0

"""Every text output of the command line: columns that never touch, and only public names cited (issue 12).

Columns: a table's cells are separated by at least two spaces, each column is aligned (left- or
right-), and the numbers shown are the numbers of ``--json``. Before the fix ``varprop gain elu
--mode fan_out`` printed ``1 / sqrt(E[phi'^2])1.22342855755262``.

Names: generated text (every command's text, JSON and help, the report page and its figures) cites
the public API (``varprop.dynamics.simulate_plain_network``), never a private module (``varprop.dynamics._drift``).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from varprop.cli import build_parser, main
from varprop.report import build_report
from varprop.report._text import columns

ROOT = Path(__file__).resolve().parents[1]
TARGET = f"{ROOT / 'examples' / 'mlp_factory.py'}:make_model"

# A letter or bracket directly followed by a decimal number: a label that ran into its value.
RUN_TOGETHER = re.compile(r"[A-Za-z\])][-+]?[0-9]+\.[0-9]")
# A private name: varprop.dynamics._drift, varprop.torch._signal, obj._field (but not a file name like ._x).
PRIVATE = re.compile(r"varprop\._|\b[A-Za-z]\w*\._[A-Za-z]")
CELL = re.compile(r"\S+(?: \S+)*")  # a cell: words separated by single spaces


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def cells(line: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of each cell of a line whose cells are separated by two or more spaces."""
    return [(match.start(), match.end(), match.group()) for match in CELL.finditer(line)]


def assert_columns(lines: Sequence[str], align: str) -> list[list[str]]:
    """Check that ``lines`` are a table in aligned columns; return the cells."""
    table = [cells(line) for line in lines]
    for row, line in zip(table, lines, strict=True):
        assert len(row) == len(align), f"expected {len(align)} cells separated by 2+ spaces: {line!r}"
    for index, side in enumerate(align):
        edges = {row[index][0] if side == "<" else row[index][1] for row in table}
        assert len(edges) == 1, f"column {index} is not {side}-aligned:\n" + "\n".join(lines)
    return [[text for _, _, text in row] for row in table]


def test_columns_size_to_the_widest_cell() -> None:
    lines = columns([["gain = 1 / sqrt(E[phi'^2])", "1.2234"], ["n", "12"]], "<>", indent="")
    assert lines == ["gain = 1 / sqrt(E[phi'^2])  1.2234", "n                               12"]
    assert columns([["a", "b"], ["ccc", "d"]], "<<", rule=True, gap=1) == ["  a   b", "  -----", "  ccc d"]
    with pytest.raises(ValueError, match="2 cells"):
        columns([["a"]], "<<")


# ---------------------------------------------------------------------------------------------- gain


@pytest.mark.parametrize(
    "argv",
    [
        ["elu"],
        ["elu", "--mode", "fan_out"],
        ["elu", "--mode", "fan_avg"],
        ["elu", "--mode", "fan_out", "--fan-out", "256", "--distribution", "uniform"],
        ["elu", "--mode", "fan_avg", "--fan-in", "100", "--fan-out", "300"],
        ["hardshrink", "--var", "1e-3", "--fan-in", "12345678"],  # tiny and huge numbers
        ["x*sigmoid(1.702*x)", "--var", "7"],
    ],
)
def test_gain_columns_never_touch(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    out = run(capsys, "gain", *argv)
    data = json.loads(run(capsys, "gain", *argv, "--json"))
    lines = out.splitlines()
    block = [line for line in lines if line.startswith("  E[") or line.startswith("  gain =") or "n*Var[w] =" in line]
    rows = assert_columns(block, "<<<")
    assert [float(row[1]) for row in rows] == pytest.approx(
        [data["second_moment"], data["deriv_second_moment"], data["gain"], data["fan_var"]], rel=1e-14
    )
    assert rows[2][0].startswith("gain = ") and rows[2][0].endswith(")")
    if "weight_std" in data:
        start = lines.index(next(line for line in lines if line.startswith("  for fan_")))
        marked = [re.sub(r"  <- --distribution \w+$", "", line) for line in lines[start + 1 : start + 5]]
        fan_rows = assert_columns(marked, "<<<")
        keys = ["weight_variance", "weight_std", "truncated_normal_std", "uniform_bound"]
        assert [float(row[1]) for row in fan_rows] == pytest.approx([data[key] for key in keys], rel=1e-9)
    assert not RUN_TOGETHER.search(out), out


def test_the_reported_case_is_fixed(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "gain", "elu", "--mode", "fan_out")
    assert "1 / sqrt(E[phi'^2])1.2" not in out
    assert re.search(r"gain = 1 / sqrt\(E\[phi'\^2\]\)  +1\.22342855755262  +standard deviation", out), out


# ------------------------------------------------------------------------------------ other outputs


@pytest.mark.parametrize("var", ["1", "30", "1e-3"])
def test_table_columns(capsys: pytest.CaptureFixture[str], var: str) -> None:
    out = run(capsys, "table", "--var", var)
    data = json.loads(run(capsys, "table", "--var", var, "--json"))
    lines = out.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("activation")))
    body = lines[header + 2 : header + 2 + len(data["rows"])]
    rows = assert_columns([lines[header], *body], "<>>>>>>")
    assert set(lines[header + 1]) == {"-"} and len(lines[header + 1]) == max(len(line) for line in body)
    for row, expected in zip(rows[1:], data["rows"], strict=True):
        assert row[0] == expected["activation"]
        assert float(row[2]) == pytest.approx(expected["gain"], abs=5e-7)  # printed with 6 decimals
    assert not RUN_TOGETHER.search(out)


def test_curve_fixedpoint_and_eoc_columns(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "curve", "sigmoid", "--no-plot").splitlines()
    start = next(index for index, line in enumerate(out) if line.split()[:2] == ["q", "c(q)"])
    assert_columns(out[start : start + 10], ">>>>>")
    out = run(capsys, "fixedpoint", "tanh", "--weight-std", "1.5", "--bias-std", "0.1").splitlines()
    start = next(index for index, line in enumerate(out) if line.split()[:1] == ["q*"])
    assert_columns(out[start : start + 2], ">><>>>")
    out = run(capsys, "eoc", "tanh", "--bias-std", "0", "0.3", "--no-plot").splitlines()
    start = next(index for index, line in enumerate(out) if line.split()[:1] == ["sigma_b"])
    assert_columns(out[start : start + 3], ">>><")


def test_report_summary_columns(tmp_path: Path) -> None:
    summary = build_report("elu", tmp_path, depth=12, width=32, batch=16, mc_samples=(1000, 10**4))
    lines = summary.format_text().splitlines()
    start = next(index for index, line in enumerate(lines) if line.split()[:1] == ["samples"])
    assert_columns(lines[start : start + 3], ">>>>>")
    start = next(index for index, line in enumerate(lines) if line.split()[:1] == ["initialization"])
    rows = assert_columns(lines[start : start + 5], "<>>>>")
    assert rows[0] == ["initialization", "std[w]*sqrt(n)", "layer 1", "layer 10", "layer 12"]
    assert not RUN_TOGETHER.search(summary.format_text())


# --------------------------------------------------------------------------------------- public names


def _outputs(capsys: pytest.CaptureFixture[str], folder: Path) -> Iterator[tuple[str, str]]:
    """(what, text) of every command's text and JSON output, and of every help page."""
    commands: list[list[str]] = [
        ["gain", "elu", "--fan-in", "512"],
        ["table"],
        ["curve", "elu", "--points", "21", "--out", str(folder)],
        ["fixedpoint", "elu"],
        ["eoc", "tanh", "--bias-std", "0.3", "--no-plot"],  # its figure's texts: tests/test_plotting_style.py
        ["reproduce"],
        [
            "report",
            "--out",
            str(folder / "report"),
            "--depth",
            "5",
            "--width",
            "16",
            "--batch",
            "8",
            "--samples",
            "1e3",
        ],
    ]
    if _has_torch():
        commands.append(["inspect", TARGET, "--input-shape", "8,64", "--no-plot"])
    for argv in commands:
        yield " ".join(argv), _run_any(capsys, *argv)
        yield " ".join([*argv, "--json"]), _run_any(capsys, *argv, "--json")
    yield "reproduce --markdown", _run_any(capsys, "reproduce", "--markdown")
    parser = build_parser()
    yield "--help", parser.format_help()
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, subparser in getattr(action, "choices", {}).items():
            yield f"{name} --help", subparser.format_help()


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _run_any(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    main(list(argv))
    out, err = capsys.readouterr()
    return out + err


def test_no_private_name_in_any_output(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    texts = dict(_outputs(capsys, tmp_path))
    assert len(texts) >= 25
    for what, text in texts.items():
        assert text.strip(), what
        found = PRIVATE.findall(text)
        assert not found, f"`varprop {what}` cites private names {found}"
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "varprop.dynamics.simulate_plain_network" in page and "varprop.dynamics.predict_drift" in page
    assert not PRIVATE.findall(page)


def test_no_private_name_in_the_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every text drawn in the report's figures (titles, labels, legends, annotations)."""
    import varprop.report._figures as figures

    drawn: list[str] = []
    save = figures.save_figure

    def recording(fig: Any, *args: Any, **kwargs: Any) -> Any:
        from matplotlib.text import Text

        drawn.extend(text.get_text() for text in fig.findobj(Text))
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(figures, "save_figure", recording)
    build_report("elu", tmp_path, depth=5, width=16, batch=8, mc_samples=(1000, 10000, 100000))
    assert any("varprop.dynamics.predict_drift" in text for text in drawn)
    assert not [text for text in drawn if PRIVATE.search(text)]


def test_public_names_cited_exist() -> None:
    """The names the page cites are really public (each exported by the module it is cited from)."""
    cited = (
        "varprop.dynamics.simulate_plain_network",
        "varprop.dynamics.predict_drift",
        "varprop.dynamics.fixed_point",
        "varprop.gaussian.monte_carlo_moments",
        "varprop.stability",
        "varprop.moments",
    )
    for qualified in cited:
        module_name, _, name = qualified.rpartition(".")
        assert name in importlib.import_module(module_name).__all__, qualified


# Distinct formulas: an expression is parsed (and warns) once per process.
@pytest.mark.parametrize(("formula", "json_flag"), [("abs(x**2-1)", []), ("abs(x**2-3)", ["--json"])])
def test_warnings_are_one_line_without_source_paths(
    capsys: pytest.CaptureFixture[str], formula: str, json_flag: list[str]
) -> None:
    """A VarpropWarning raised by the core was printed with its private source file and line."""
    code = main(["gain", formula, *json_flag])
    out, err = capsys.readouterr()
    assert code == 0
    assert err.startswith(f"varprop gain: warning: expression {formula!r}: the kinks") and err.count("\n") == 1
    assert ".py:" not in err and not PRIVATE.search(err)
    if json_flag:
        assert json.loads(out)["activation"] == f"expr:{formula}"

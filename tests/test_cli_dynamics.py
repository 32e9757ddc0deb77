"""The ``fixedpoint`` and ``eoc`` subcommands: thin layers over the public API."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from varprop.cli import main
from varprop.dynamics._edge_of_chaos import edge_of_chaos
from varprop.dynamics._variance_map import fixed_point


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    assert main(argv) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_fixedpoint_json_matches_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["fixedpoint", "tanh", "--weight-std", "1.5", "--bias-std", "0.1", "--json"])
    expected = fixed_point("tanh", 1.5, 0.1)
    points = data["fixed_points"]
    assert isinstance(points, list) and len(points) == len(expected)
    for shown, point in zip(points, expected, strict=True):
        assert shown["q"] == point.q and shown["slope"] == point.slope and shown["kind"] == point.kind
        assert shown["chi1"] == point.chi1 and shown["depth_scale_q"] == point.depth_scale_q


def test_fixedpoint_default_weight_is_the_gain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fixedpoint", "elu"]) == 0
    out = capsys.readouterr().out
    assert "1.24519830070071" in out and "(the exact gain at q = 1)" in out
    assert "0.89096797" in out and "stable" in out


def test_fixedpoint_continuum_and_infinite_scales(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["fixedpoint", "relu", "--weight-std", str(math.sqrt(2.0)), "--json"])
    (point,) = data["fixed_points"]
    assert point["continuum"] is True and point["depth_scale_q"] is None  # inf is not JSON: null
    assert main(["fixedpoint", "relu", "--weight-std", str(math.sqrt(2.0))]) == 0
    assert "every q >= 0 is a fixed point" in capsys.readouterr().out


def test_fixedpoint_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fixedpoint", "silu", "--weight-std", "2", "--bias-std", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "varprop fixedpoint: error:" in err and "grows without bound" in err
    assert main(["fixedpoint", "tanh", "--weight-std", "-1"]) == 2
    assert "argument --weight-std: must be a number >= 0, got '-1'" in capsys.readouterr().err
    assert main(["fixedpoint", "tanh", "--weight-std", "nan"]) == 2
    assert "argument --weight-std: must be a number >= 0, got 'nan'" in capsys.readouterr().err


def test_eoc_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["eoc", "tanh", "--bias-std", "0.3", "1.0", "--no-plot", "--json"])
    rows = data["edge_of_chaos"]
    assert isinstance(rows, list) and [row["bias_std"] for row in rows] == [0.3, 1.0]
    assert rows[0]["weight_std"] == edge_of_chaos("tanh", 0.3).weight_std
    assert data["files"] == [] and data["no_edge_of_chaos"] == []
    assert main(["eoc", "relu", "--bias-std", "0", "0.5", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "1.41421356237309" in out and "every q is a fixed point" in out
    assert "no edge of chaos at sigma_b = 0.5" in out


def test_eoc_writes_the_phase_diagram(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    data = _json(capsys, ["eoc", "tanh", "--bias-std", "0.3", "--out", str(tmp_path), "--json"])
    files = [Path(str(name)) for name in data["files"]]
    assert [path.suffix for path in files] == [".png", ".svg"]
    assert all(path.exists() and path.stat().st_size > 1000 for path in files)


def test_eoc_bad_bias(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eoc", "tanh", "--bias-std", "-1", "--no-plot"]) == 2
    assert "argument --bias-std: must be a number >= 0, got '-1'" in capsys.readouterr().err

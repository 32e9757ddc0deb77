"""The phase (ordered / critical / chaotic) and both depth scales in the CLI's and the report's texts."""

from __future__ import annotations

import json

import pytest

import varprop
from varprop.cli import main
from varprop.report import ReportSummary


def test_fixedpoint_shows_the_phase(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fixedpoint", "tanh", "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["fixed_points"]
    # tanh at its q = 1 gain: q* = 0 (chi1 = gain^2 = 2.536) and q* = 1 (chi1 = 1.178), both chaotic
    assert [point["phase"] for point in points] == ["chaotic", "chaotic"]
    assert points[1]["chi1"] == pytest.approx(float(varprop.stability("tanh").chi1), rel=1e-12)
    assert main(["fixedpoint", "relu"]) == 0
    text = capsys.readouterr().out
    assert "phase" in text and "critical" in text and "ordered (chi1 < 1)" in text


def test_fixedpoint_on_the_edge_of_chaos_is_critical(capsys: pytest.CaptureFixture[str]) -> None:
    point = varprop.dynamics.edge_of_chaos("tanh", 0.3)
    assert main(["fixedpoint", "tanh", "--weight-std", repr(point.weight_std), "--bias-std", "0.3", "--json"]) == 0
    (shown,) = json.loads(capsys.readouterr().out)["fixed_points"]
    assert shown["phase"] == "critical" and shown["chi1"] == pytest.approx(1.0, abs=1e-12)


def test_report_summary_names_the_phase(default_elu_report: ReportSummary) -> None:
    stability = default_elu_report.stability
    assert stability is not None
    reference = varprop.stability("elu", var=1.0)
    assert stability.phase == reference.phase == "chaotic"
    assert stability.depth_scale_c == float(reference.depth_scale_c)
    assert stability.depth_scale_q == float(reference.depth_scale_q)
    text = default_elu_report.format_text()
    assert f"chaotic (xi_c = {stability.depth_scale_c:.4g} layers)" in text
    assert "chaotic" in default_elu_report.index.read_text(encoding="utf-8")

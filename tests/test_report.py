"""``varprop.report.build_report``: the files it writes and the numbers it reports, checked against the API."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest

import varprop
from varprop import VarpropError, VarpropValueError
from varprop.cli.basic import emit_json
from varprop.report import ReportSummary, build_report

ELU_VAR_TIMES_FAN = 1.55051880806793  # shared/seed.md, 15 digits
FAST = {"depth": 12, "width": 64, "batch": 128, "mc_samples": (1000, 10000)}


@pytest.fixture
def elu_report(default_elu_report: ReportSummary) -> ReportSummary:
    """The default report (ELU, depth 50, width 512), built once for the session (conftest.py)."""
    return default_elu_report


def test_default_report_writes_a_self_contained_page(elu_report: ReportSummary) -> None:
    index = elu_report.index
    assert index.name == "index.html" and index.is_file()
    page = index.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    # Self-contained: every image is inlined; nothing is fetched from the network.
    assert page.count('src="data:image/png;base64,') == len(elu_report.figures)
    assert "http://" not in page.replace("https://", "") and 'src="http' not in page
    assert set(elu_report.figures) == {"moments", "qcurve", "depth", "variance_map"}
    for paths in elu_report.figures.values():
        assert [path.suffix for path in paths] == [".png"]
        assert all(path.is_file() and path.parent == elu_report.out_dir for path in paths)
        assert paths[0].read_bytes()[:4] == b"\x89PNG"


def test_report_numbers_come_from_the_api(elu_report: ReportSummary) -> None:
    exact = varprop.moments("elu", with_error=True)
    assert elu_report.exact.second_moment == exact.second_moment
    assert elu_report.gain == varprop.gain("elu")
    assert elu_report.fan_var == pytest.approx(ELU_VAR_TIMES_FAN, rel=5e-15)
    assert elu_report.scales["weight_std"] == varprop.weight_std("elu", 512)
    assert elu_report.scales["uniform_bound"] == varprop.weight_std("elu", 512, distribution="uniform")
    page = elu_report.index.read_text(encoding="utf-8")
    assert f"{exact.second_moment:.15g}" in page
    assert f"{elu_report.fan_var:.15g}" in page
    text = elu_report.format_text()
    assert f"{exact.second_moment:.15g}" in text and f"{elu_report.fan_var:.15g}" in text
    assert "variance" in text and "standard deviation" in text


def test_seed_context_is_explained(elu_report: ReportSummary) -> None:
    page = elu_report.index.read_text(encoding="utf-8")
    assert "The seed answer's 1.55, in context" in page
    assert "standard deviation" in page and "√(1.55/n)" in page


def test_monte_carlo_points_are_consistent(elu_report: ReportSummary) -> None:
    points = elu_report.monte_carlo
    assert [point.samples for point in points] == [10**3, 10**4, 10**5, 10**6, 10**7]
    for point in points:
        assert point.abs_error == abs(point.estimate - float(elu_report.exact.second_moment))
        assert point.abs_error <= 5 * point.standard_error, point
    assert points[-1].standard_error < points[0].standard_error / 50  # ~ 1/sqrt(N): 1e4 times more samples


def test_closed_form_and_quadrature_agree(elu_report: ReportSummary) -> None:
    assert elu_report.closed_form is not None, "ELU's closed form is missing from the registry"
    gap = elu_report.closed_form_gap
    assert gap is not None and gap < 1e-13


def test_stability_section(elu_report: ReportSummary) -> None:
    stability = elu_report.stability
    assert stability is not None
    reference = varprop.dynamics.stability("elu", var=1.0)
    assert stability.slope == float(reference.slope) and stability.kind == "stable"
    fixed = [q for q, _, _ in stability.fixed_points]
    assert any(q == pytest.approx(1.0, rel=1e-12) for q in fixed)


def test_deep_network_section(elu_report: ReportSummary) -> None:
    schemes = {scheme.name: scheme for scheme in elu_report.schemes}
    assert set(schemes) == {"torch_default", "he", "glorot", "varprop"}
    assert schemes["torch_default"].std_times_sqrt_fan == pytest.approx(1 / math.sqrt(3), rel=1e-15)
    assert schemes["he"].std_times_sqrt_fan == pytest.approx(math.sqrt(2), rel=1e-15)
    assert schemes["glorot"].std_times_sqrt_fan == 1.0
    assert schemes["varprop"].std_times_sqrt_fan == varprop.gain("elu")
    for scheme in schemes.values():
        assert scheme.variances.shape == (50,)
        assert scheme.predicted is not None and scheme.predicted.shape == (50,)
    # Mean field: torch's default loses a factor ~3 per layer; varprop keeps the variance near 1.
    assert schemes["torch_default"].variances[-1] < 1e-15
    assert 0.5 < schemes["varprop"].variances[-1] < 2.0
    assert schemes["he"].variances[-1] > 10.0
    # The simulation and the prediction agree (the drift module's own tests bound this more tightly).
    for scheme in schemes.values():
        assert scheme.predicted is not None
        ratio = scheme.variances[-1] / scheme.predicted[-1]
        assert 0.5 < ratio < 2.0, (scheme.name, ratio)
    page = elu_report.index.read_text(encoding="utf-8")
    assert "A deep plain network" in page and "PyTorch default" in page


def test_summary_json_is_strict(elu_report: ReportSummary, capsys: pytest.CaptureFixture[str]) -> None:
    emit_json(elu_report.to_dict())
    data = json.loads(capsys.readouterr().out)
    assert data["fan_var"] == elu_report.fan_var
    assert data["figures"]["qcurve"][0].endswith("qcurve.png")


def test_other_activation_and_expression(tmp_path: Path) -> None:
    summary = build_report("x*sigmoid(1.702*x)", tmp_path / "swish", var=2.0, svg=True, **FAST)  # type: ignore[arg-type]
    assert all([path.suffix for path in paths] == [".png", ".svg"] for paths in summary.figures.values())
    assert summary.gain == varprop.gain("x*sigmoid(1.702*x)", var=2.0)
    page = summary.index.read_text(encoding="utf-8")
    assert "1.55, in context" not in page  # the seed section is ELU-specific
    assert summary.closed_form is None and "no closed form" in page
    assert re.search(r"q = 2\b", page)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(VarpropValueError, match="depth"):
        build_report("elu", tmp_path, depth=0)
    with pytest.raises(VarpropValueError, match="var"):
        build_report("elu", tmp_path, var=-1.0)
    with pytest.raises(VarpropValueError, match="did you mean 'elu'"):
        build_report("elus", tmp_path)
    assert not (tmp_path / "index.html").exists()


def test_missing_matplotlib_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(VarpropError, match=r"pip install 'varprop\[plot\]'"):
        build_report("elu", tmp_path, **FAST)  # type: ignore[arg-type]


def test_an_unusable_out_dir_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: the folder is checked first (it was written after 15 s of computing, then failed)."""
    import varprop.report._build as build

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("build_report computed before checking its folder")

    monkeypatch.setattr(build, "_compute", forbidden)
    (tmp_path / "a_file").write_text("", encoding="utf-8")
    for out in (tmp_path / "a_file", tmp_path / "a_file" / "sub"):
        with pytest.raises(
            VarpropValueError, match=r"out_dir .* cannot be used as an output folder: .*a_file' is a file"
        ):
            build_report("elu", out, **FAST)  # type: ignore[arg-type]
    (tmp_path / "report" / "index.html").mkdir(parents=True)
    with pytest.raises(VarpropValueError, match=r"index.html' is a folder, where a file is written"):
        build_report("elu", tmp_path / "report", **FAST)  # type: ignore[arg-type]


def test_a_failed_report_removes_the_folders_it_made(tmp_path: Path) -> None:
    with pytest.raises(VarpropValueError, match="no finite gain"):
        build_report("0*x", tmp_path / "new" / "sub", **FAST)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    with pytest.raises(VarpropValueError, match="no finite gain"):
        build_report("0*x", tmp_path / "kept", **FAST)  # type: ignore[arg-type]
    assert (tmp_path / "kept").is_dir() and list((tmp_path / "kept").iterdir()) == []  # not made by it: kept

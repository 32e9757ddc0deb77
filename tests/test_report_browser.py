"""The report page in a real browser (headless Chromium): it fits the screen and every figure loads.

At 1280 and 800 px (and 500 px, where tables turn into one block per row) the page must not scroll
sideways: the document is no wider than the viewport, no element sticks out of its container's
content box, and no element clips its content. Every figure must have loaded, and all figures are
drawn alike (one width, one resolution: varprop.plotting's style), so they show at one width.
Skipped only where no Chromium is installed (.ci/run installs Debian's package).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from browser import NO_BROWSER, find_chromium, measure_layout
from varprop.plotting._style import DPI, FIGURE_WIDTH
from varprop.report import ReportSummary, build_report

BROWSER = find_chromium()
pytestmark = pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)


@pytest.fixture
def default_report(default_elu_report: ReportSummary) -> ReportSummary:
    """`varprop report` with its defaults (ELU, depth 50: the table has a "layer 50" column; conftest.py)."""
    return default_elu_report


@pytest.fixture(scope="module")
def formula_report(tmp_path_factory: pytest.TempPathFactory) -> ReportSummary:
    """A report for a user formula (no closed form, other numbers, SVG links), deeper than the default."""
    folder = tmp_path_factory.mktemp("browser") / "formula"
    return build_report(
        "x*sigmoid(1.702*x)", folder, var=2.0, depth=120, width=64, batch=32, mc_samples=(1000, 10000), svg=True
    )


def _check_layout(summary: ReportSummary, width: int) -> None:
    assert BROWSER is not None
    layout = measure_layout(BROWSER, summary.index, width)
    assert layout["innerWidth"] == width, layout  # the viewport really is as wide as asked
    assert layout["scrollWidth"] <= layout["clientWidth"], f"the page scrolls sideways at {width} px: {layout}"
    assert layout["overflowing"] == [], f"elements wider than their container at {width} px"
    assert layout["clipped"] == [], f"elements that clip their content at {width} px"
    images = layout["images"]
    assert len(images) == len(summary.figures) >= 4
    for image in images:
        assert image["complete"] and image["naturalWidth"] > 0, image
    # One figure style: every PNG is FIGURE_WIDTH inches at DPI, and all show at the same width.
    assert {image["naturalWidth"] for image in images} == {round(FIGURE_WIDTH * DPI)}, images
    shown = [image["width"] for image in images]
    assert max(shown) - min(shown) < 1.0, images
    assert shown[0] == pytest.approx(min(layout["bodyContentWidth"], FIGURE_WIDTH * DPI), abs=1.0), layout


@pytest.mark.parametrize("width", [1280, 800, 500])  # 500: the narrowest window Chromium opens
def test_default_report_fits_the_screen(default_report: ReportSummary, width: int) -> None:
    _check_layout(default_report, width)


@pytest.mark.parametrize("width", [1280, 800])
def test_formula_report_fits_the_screen(formula_report: ReportSummary, width: int) -> None:
    _check_layout(formula_report, width)


def test_the_deep_table_shows_every_layer(default_report: ReportSummary) -> None:
    """The "layer 50" column is there (nothing was dropped to make the table fit)."""
    page = Path(default_report.index).read_text(encoding="utf-8")
    assert "<th>layer 50</th>" in page and page.count('data-label="layer 50"') == len(default_report.schemes)

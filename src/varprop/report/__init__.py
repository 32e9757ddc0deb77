"""The ``varprop report`` main job: an HTML page with the exact numbers, their context and figures.

``build_report(act, out_dir)`` computes everything through the public API, writes ``index.html``
and its figures (PNG and SVG) into ``out_dir``, and returns a ``ReportSummary``. It needs the
``plot`` extra (matplotlib).
"""

from __future__ import annotations

from ._build import DEFAULT_MC_SAMPLES, REPORT_FILES, build_report
from ._output import OutputFolder
from ._summary import MonteCarloPoint, ReportSummary, SchemeResult, StabilityResult
from ._text import columns, display_width

__all__ = [
    "DEFAULT_MC_SAMPLES",
    "REPORT_FILES",
    "MonteCarloPoint",
    "OutputFolder",
    "ReportSummary",
    "SchemeResult",
    "StabilityResult",
    "build_report",
    "columns",
    "display_width",
]

"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest

from varprop.report import ReportSummary, build_report


@pytest.fixture(scope="session")
def default_elu_report(tmp_path_factory: pytest.TempPathFactory) -> ReportSummary:
    """`varprop report` with its defaults (ELU, depth 50, width 512), built once for the session."""
    return build_report("elu", tmp_path_factory.mktemp("report") / "varprop-report")

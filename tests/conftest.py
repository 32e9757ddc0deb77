"""Test-session settings: Hugging Face libraries offline before anything imports them, a network guard, and
the default report shared by the report tests (``default_elu_report``).

``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` are read when ``huggingface_hub`` and ``transformers`` are first
imported, so they are set here (pytest imports conftest.py before any test module). The zoo tests build every model
from a small config written in the test (``Model(config)``, ``AutoModel*.from_config``): no tokenizer, no download.
``no_network`` makes any attempt to open an internet socket fail loudly, so a test that would download is a defect
that shows (every ``tests/test_zoo_*.py`` module uses it: ``pytestmark = pytest.mark.usefixtures("no_network")``).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # (the small configs trigger notices about defaults)

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from varprop.report import ReportSummary, build_report

_INTERNET = (socket.AF_INET, socket.AF_INET6)


class NetworkAccessError(RuntimeError):
    """Raised by ``no_network`` when a test tries to open an internet connection."""


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any TCP/UDP connection to an internet address (IPv4/IPv6) for the duration of the test."""

    def refuse(self: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        if self.family in _INTERNET:
            raise NetworkAccessError(f"test tried to open a network connection to {address!r}")
        return original_connect(self, address, *args, **kwargs)

    def refuse_ex(self: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        if self.family in _INTERNET:
            raise NetworkAccessError(f"test tried to open a network connection to {address!r}")
        return original_connect_ex(self, address, *args, **kwargs)

    def refuse_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise NetworkAccessError(f"test tried to resolve the host name {host!r}")

    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_ex)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    yield


@pytest.fixture(scope="session")
def default_elu_report(tmp_path_factory: pytest.TempPathFactory) -> ReportSummary:
    """`varprop report` with its defaults (ELU, depth 50, width 512), built once for the session."""
    return build_report("elu", tmp_path_factory.mktemp("report") / "varprop-report")

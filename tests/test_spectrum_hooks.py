"""The Jacobian spectrum in ``varprop report --spectrum`` and ``varprop inspect --spectrum`` (issue 11, item 4)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")
torch = pytest.importorskip("torch")

import varprop  # noqa: E402
import varprop.torch as vt  # noqa: E402
from varprop import cli  # noqa: E402
from varprop.report import _figures as figures  # noqa: E402
from varprop.report import build_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET = f"{ROOT / 'examples' / 'mlp_factory.py'}:make_model"


def test_report_draws_measured_and_predicted_spectra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: dict[str, Any] = {}
    original = figures.jacobian_spectrum_figure

    def recording(predicted: Any, measured: Any, **kwargs: Any) -> Any:
        drawn.update(predicted=predicted, measured=measured)
        return original(predicted, measured, **kwargs)

    monkeypatch.setattr(figures, "jacobian_spectrum_figure", recording)
    summary = build_report("tanh", tmp_path, depth=6, width=48, batch=8, mc_samples=(), spectrum=True)
    assert summary.figures["spectrum"][0].is_file()
    page = summary.index.read_text(encoding="utf-8")
    assert "The Jacobian&#x27;s singular values" in page or "The Jacobian's singular values" in page
    assert page.count('src="data:image/png;base64,') == len(summary.figures)
    # The figure shows the public API's numbers: the prediction at the report's gain and q, and the samples.
    for label, distribution in (("Gaussian", "gaussian"), ("orthogonal", "orthogonal")):
        expected = varprop.dynamics.sample_jacobian_singular_values(
            "tanh", summary.gain, 6, 48, q=1.0, distribution=distribution, seed=0
        )
        np.testing.assert_array_equal(drawn["measured"][label], expected)
        prediction = drawn["predicted"][label]
        assert (prediction.weight_std, prediction.q, prediction.depth) == (summary.gain, 1.0, 6)
        assert prediction.distribution == distribution


def test_report_cli_spectrum_flag(run: Callable[..., Any], tmp_path: Path) -> None:
    argv = ["report", "elu", "--out", tmp_path, "--depth", "4", "--width", "16", "--batch", "8", "--samples", "1000"]
    code, out, err = run(*argv, "--spectrum", "--json")
    assert code == 0, err
    assert json.loads(out)["figures"]["spectrum"] == [str(tmp_path / "spectrum.png")]
    assert (tmp_path / "spectrum.png").is_file()


def test_report_without_the_option_has_no_spectrum(tmp_path: Path) -> None:
    summary = build_report("elu", tmp_path, depth=3, width=16, batch=8, mc_samples=())
    assert "spectrum" not in summary.figures
    assert not (tmp_path / "spectrum.png").exists()


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., Any]]:
    optional = cli._optional_modules
    monkeypatch.setattr(cli, "_optional_modules", lambda: list(dict.fromkeys([*optional(), "inspect"])))

    def invoke(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return code, out, err

    yield invoke


def test_inspect_prints_and_returns_the_spectrum(run: Callable[..., Any]) -> None:
    code, out, err = run("inspect", TARGET, "--input-shape", "16,64", "--init", "none", "--no-plot", "--spectrum")
    assert code == 0, err
    assert "Jacobian 10x64 at 4 inputs (exact)" in out and "spread p90/p10" in out
    code, out, err = run(
        "inspect", TARGET, "--input-shape", "16,64", "--init", "none", "--no-plot", "--spectrum", "--json"
    )
    assert code == 0, err
    data = json.loads(out)["jacobian"]
    # The same measurement through the API: the factory's model under torch.manual_seed(0), batch seed + 1.
    torch.manual_seed(0)
    sys_path = str(ROOT / "examples")
    sys.path.insert(0, sys_path)
    try:
        import mlp_factory  # type: ignore[import-not-found]
    finally:
        sys.path.remove(sys_path)
    model = mlp_factory.make_model()
    batch = torch.randn((16, 64), generator=torch.Generator().manual_seed(1))
    expected = vt.jacobian_spectrum(model, batch)
    assert data["method"] == "exact" and data["output_dim"] == 10 and data["input_dim"] == 64
    for level in ("10", "50", "90"):
        assert data["percentiles"][level] == pytest.approx(expected.percentiles[int(level)], rel=1e-6)

"""One figure style for every figure of ``varprop.plotting`` (issue 12).

Before, the report's variance-map figure was 5.6 inches wide with 10-point text and the q-curve 16.6
inches with 9-point text; shown at the same width on the page, the first had a much larger font
scale. Now every figure is ``FIGURE_WIDTH`` inches wide, every text in it has one of the sizes of
``FONT_SIZES``, and every PNG is ``FIGURE_WIDTH * DPI`` pixels wide.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import varprop
import varprop.plotting as plotting
from varprop.dynamics._qcurve import q_curve, stability_slopes
from varprop.plotting._style import DPI, FIGURE_WIDTH, FONT_SIZES


class _Signal:
    """The two members of ``SignalStats`` that ``plot_signal`` reads (the torch adapter is not needed here)."""

    def __init__(self, layers: int, scale: float) -> None:
        self.labels = [f"layer{index}" for index in range(layers)]
        self._values = scale ** np.arange(layers, dtype=np.float64)

    def column(self, statistic: str) -> np.ndarray:
        return self._values if statistic != "mean" else self._values - 1.0


def _q_curve() -> Any:
    curve = q_curve("elu", points=21)
    return plotting.q_curve_figure(curve, slope=stability_slopes("elu", curve))


def _moments() -> Any:
    exact = float(varprop.moments("elu").second_moment)
    sizes = [1000, 10000, 100000]
    estimates = [varprop.gaussian.monte_carlo_moments("elu", samples=size, seed=1) for size in sizes]
    return plotting.moments_convergence_figure(
        exact,
        sizes,
        [float(estimate.second_moment) for estimate in estimates],
        [float(estimate.second_moment_se) for estimate in estimates],
        exact_error=1e-15,
        closed_form_gap=2e-16,
        title="elu",
        seed_value=0.645,
    )


def _depth() -> Any:
    layers = np.arange(1, 21, dtype=np.float64)
    return plotting.depth_variance_figure(
        {"a": 0.9**layers, "b": 1.1**layers},
        predicted={"a": 0.9**layers},
        bands={"a": (0.8 * 0.9**layers, 1.2 * 0.9**layers)},
        title="depth",
    )


def _phase() -> Any:
    diagram = varprop.dynamics.phase_diagram("tanh", np.linspace(0.0, 1.0, 6), np.linspace(0.5, 3.0, 6))
    edge = varprop.dynamics.edge_of_chaos_curve("tanh", [0.0, 0.5])
    return plotting.phase_diagram_figure(diagram, edge, title="tanh")


def _stability() -> Any:
    q = np.logspace(-2, 2, 9)
    return plotting.stability_figure({"elu": varprop.stability("elu", var=q)}, title="slopes")


def _variance_map() -> Any:
    weight = float(varprop.gain("elu"))
    points = [point for point in varprop.dynamics.fixed_point("elu", weight_std=weight) if point.q > 0]
    return plotting.variance_map_figure(varprop.dynamics.variance_map("elu", weight_std=weight), points)


def _spectrum() -> Any:
    predicted = {
        "Gaussian": varprop.dynamics.predict_jacobian_spectrum("tanh", 1.2, 4),
        "orthogonal": varprop.dynamics.predict_jacobian_spectrum("identity", 1.0, 4, distribution="orthogonal"),
    }
    measured = {"Gaussian": varprop.dynamics.sample_jacobian_singular_values("tanh", 1.2, 4, 64)}
    return plotting.jacobian_spectrum_figure(predicted, measured, title="spectrum")


def _signal() -> Any:
    return plotting.plot_signal({"one": _Signal(12, 0.9), "two": _Signal(12, 1.05)}, title="signal")


FIGURES: dict[str, Callable[[], Any]] = {
    "q_curve_figure": _q_curve,
    "moments_convergence_figure": _moments,
    "depth_variance_figure": _depth,
    "phase_diagram_figure": _phase,
    "stability_figure": _stability,
    "variance_map_figure": _variance_map,
    "plot_signal": _signal,
    "jacobian_spectrum_figure": _spectrum,
}


def test_every_figure_function_is_checked() -> None:
    drawing = {name for name in plotting.__all__ if name.endswith("_figure") and name != "save_figure"}
    assert drawing | {"plot_signal"} == set(FIGURES)


def _png_width(path: Path) -> int:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width: int = struct.unpack(">I", header[16:20])[0]
    return width


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_one_width_one_resolution_one_set_of_font_sizes(name: str, tmp_path: Path) -> None:
    from matplotlib.text import Text

    fig = FIGURES[name]()
    assert fig.get_size_inches()[0] == pytest.approx(FIGURE_WIDTH, abs=1e-9), name
    fig.canvas.draw()  # lays out tick labels, legends and titles as saving does
    sizes = {
        (text.get_text(), text.get_fontsize())
        for text in fig.findobj(Text)
        if text.get_visible() and text.get_text().strip()
    }
    assert sizes, name
    odd = sorted((label, size) for label, size in sizes if size not in FONT_SIZES.values())
    assert not odd, f"{name}: texts outside the style's sizes {sorted(set(FONT_SIZES.values()))}: {odd}"
    (path,) = plotting.save_figure(fig, tmp_path / name, ("png",))
    assert _png_width(path) == round(FIGURE_WIDTH * DPI)


def test_the_variance_map_now_matches_the_q_curve() -> None:
    """The reported case: the variance map's axis labels and ticks have the q-curve's sizes, in a figure as wide."""
    from matplotlib.text import Text

    def label_sizes(fig: Any) -> set[float]:
        fig.canvas.draw()
        ax = fig.axes[0]
        texts: list[Text] = [ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]
        return {text.get_fontsize() for text in texts if text.get_text()}

    vmap, curve = _variance_map(), _q_curve()
    assert vmap.get_size_inches()[0] == curve.get_size_inches()[0]
    assert label_sizes(vmap) == label_sizes(curve) == {FONT_SIZES["label"], FONT_SIZES["tick"]}

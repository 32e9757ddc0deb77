"""The Jacobian's singular values at init: measured histograms beside the free-probability prediction.

Draws data computed by the public API (``varprop.predict_jacobian_spectrum``, and singular values from
``varprop.sample_jacobian_singular_values`` or ``varprop.torch.jacobian_spectrum``); torch is not
imported here and matplotlib only on first use (``pip install 'varprop[plot]'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .._errors import VarpropValueError
from ..dynamics._free_probability import JacobianSpectrumPrediction
from ._style import new_figure, style_axes, styled

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["jacobian_spectrum_figure"]

FloatArray = NDArray[np.float64]
_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
_BINS_PER_DECADE = 6  # histogram bins on the log axis
#: Measured singular values below this fraction of the largest are rounding noise of a float64 product of
#: matrices (machine epsilon 2.2e-16 times a modest growth factor) and are not placed on the axis.
ROUNDING_FLOOR = 1e-13
#: The axis spans at most this many decades below its top (a Gaussian net's prediction reaches 1e-40).
_DECADES = 24


class _Pooled(Protocol):
    """A ``varprop.torch.JacobianSpectrum``: its singular values pooled over inputs, with weights."""

    def pooled(self) -> tuple[FloatArray, FloatArray]: ...


def _values_and_weights(measured: Any) -> tuple[FloatArray, FloatArray]:
    if hasattr(measured, "pooled"):
        values, weights = measured.pooled()
        return np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    values = np.sort(np.asarray(measured, dtype=np.float64).ravel())
    if values.size == 0:
        raise VarpropValueError("jacobian_spectrum_figure got an empty set of measured singular values")
    return values, np.full(values.size, 1.0 / values.size)


@styled
def jacobian_spectrum_figure(
    predicted: Mapping[str, JacobianSpectrumPrediction],
    measured: Mapping[str, _Pooled | FloatArray] | None = None,
    *,
    rounding_floor: float = ROUNDING_FLOOR,
    title: str = "",
) -> Figure:
    """The density of the Jacobian's singular values on a log axis: measured (histogram) vs predicted (line).

    Plotted as the density per unit of ln s, s p(s), so that areas on the log axis are probabilities.
    A prediction that is a point mass (linear orthogonal nets) is a vertical line; dotted verticals mark
    each prediction's 10th and 90th percentiles (their ratio is the spread, in the legend).

    Args:
        predicted: label -> ``varprop.predict_jacobian_spectrum(...)`` (e.g. "Gaussian", "orthogonal").
        measured: label -> singular values (an array, or a ``varprop.torch.JacobianSpectrum``); a label
            shared with ``predicted`` gets the same colour.
        rounding_floor: measured values below this fraction of their largest are counted (the legend
            gives their share) but not drawn: rounding noise (1e-13 suits float64; use ~1e-5 for float32).
        title: figure title.

    Returns:
        The matplotlib figure.

    Raises:
        VarpropValueError: nothing to draw, or an empty measurement.

    Example:
        >>> import varprop
        >>> from varprop.plotting.spectrum import jacobian_spectrum_figure
        >>> prediction = varprop.predict_jacobian_spectrum("tanh", 1.2, 5)
        >>> fig = jacobian_spectrum_figure({"Gaussian": prediction})  # doctest: +SKIP
    """
    runs = dict(measured or {})
    if not predicted and not runs:
        raise VarpropValueError("jacobian_spectrum_figure needs at least one prediction or measurement")
    labels = list(dict.fromkeys([*predicted, *runs]))
    colors = {label: _COLORS[index % len(_COLORS)] for index, label in enumerate(labels)}
    fig, (ax,) = new_figure([1.0], 3.6)
    lows, highs = [], []
    for label, spectrum in runs.items():
        values, weights = _values_and_weights(spectrum)
        placed = values > rounding_floor * values.max()
        hidden = float(weights[~placed].sum())
        note = f" ({100 * hidden:.0f}% below {rounding_floor:.0e} × max: zero up to rounding)" if hidden > 0 else ""
        low, high = np.log10(values[placed].min()), np.log10(values[placed].max())
        bins = max(int(np.ceil((high - low) * _BINS_PER_DECADE)), 1)
        edges = np.logspace(low - 0.01, high + 0.01, bins + 1)
        counts, _ = np.histogram(values[placed], bins=edges, weights=weights[placed])
        per_log = counts / np.diff(np.log(edges))
        ax.stairs(per_log, edges, color=colors[label], alpha=0.35, fill=True, label=f"{label}: measured{note}")
        lows.append(edges[0])
        highs.append(edges[-1])
    for label, prediction in predicted.items():
        color = colors[label]
        spread = "∞" if not np.isfinite(prediction.spread) else f"{prediction.spread:.3g}"
        name = f"{label}: free probability (p90/p10 = {spread})"
        if prediction.singular_values.size == 0:
            ax.axvline(prediction.percentiles[50], color=color, lw=2.0, label=name + ", a point mass")
            lows.append(prediction.percentiles[50] / 2)
            highs.append(prediction.percentiles[50] * 2)
            continue
        s = prediction.singular_values
        curve = s * prediction.density
        shown = curve > 1e-4 * curve.max()
        ax.plot(s[shown], curve[shown], color=color, lw=1.8, label=name)
        for level in (10, 90):
            if prediction.percentiles[level] > 0:
                ax.axvline(prediction.percentiles[level], color=color, lw=1.0, ls=":")
        lows.append(float(s[shown].min()))
        highs.append(float(s[shown].max()))
    ax.set_xscale("log")
    if lows and highs:
        ax.set_xlim(max(min(lows), max(highs) * 10.0**-_DECADES), max(highs))
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("singular value s of the input-output Jacobian")
    ax.set_ylabel("density per unit ln s")
    ax.legend(loc="upper left", frameon=False)
    style_axes(ax)
    if title:
        ax.set_title(title)
    return fig
